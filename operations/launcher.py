"""``sleeplm up``: the whole live path on one machine, loopback only, one command.

It starts a local Kafka-protocol broker (unless ``--broker``/``SLEEPLM_KAFKA`` names one), creates the
topics, then runs each part as its own child process, exactly the commands a scaled-out deployment
runs (``sleeplm beds``, ``bridge``, ``worker``, ``api``), with settings passed through the environment.

Before anything starts (and before the banner), ``preflight`` checks what would make a part fail: the data
dir must be writable, the API port free, a named broker (``--broker``/``SLEEPLM_KAFKA``) must answer, or the
embedded one be installed; a problem is one line naming it and the flag or variable that changes it (exit 2).

Each part's output goes to ``<data-dir>/logs/<part>-<run>.log``, one file per part per run
(``plumbing.logs``: every line stamped, no escape codes, bounded), ``<part>.log`` linking to the newest; a
part that dies is reported with the last lines of its own output in this run.

Ctrl-C (SIGINT) or SIGTERM stops the parts in data-flow order (beds, bridge, worker, API) with SIGTERM,
kills any that does not stop within the grace period, stops the broker and returns: no process is left
behind. Children also get SIGTERM from the kernel if the launcher itself dies (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from device_bridges.lsl_config import configure_lsl
from plumbing.broker import EmbeddedBroker, start_broker, tansu_binary, wait_for_port
from plumbing.logs import LogPump, part_log_path, prune_runs, run_stamp
from plumbing.metrics import enable_multiprocess
from plumbing.settings import Settings
from plumbing.topics import ensure_topics
from psg.errors import PSGError

STOP_GRACE_S = 10.0
#: Lines of a dead part's own output the launcher prints.
REPORT_LINES = 12
#: Where ``sleeplm up`` keeps its local admin token, under the data dir.
ADMIN_TOKEN_FILE = "admin.token"


@dataclass(frozen=True)
class UpOptions:
    """What ``sleeplm up`` runs: simulated beds and how fast their device clock goes."""

    beds: int = 4
    speed: float = 1.0
    hours: float = 8.0
    seed: int = 0
    nights: int | None = None


@dataclass
class _Child:
    name: str
    process: subprocess.Popen
    log_path: Path
    pump: LogPump | None = None


@dataclass
class LiveStack:
    """The running parts of ``sleeplm up`` (the launcher and the integration tests use it)."""

    settings: Settings
    broker: EmbeddedBroker | None = None
    children: list[_Child] = field(default_factory=list)
    admin_token_path: Path | None = None
    run: str = ""

    @property
    def logs_dir(self) -> Path:
        return self.settings.data_dir / "logs"

    def log_path(self, part: str) -> Path:
        """This run's log file of ``part`` (``logs/<part>-<run>.log``); older runs' beyond ``KEEP_RUNS`` go."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        if not self.run:
            self.run = run_stamp(self.logs_dir)
        prune_runs(self.logs_dir, part)
        return part_log_path(self.logs_dir, part, self.run)

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def start(self, options: UpOptions) -> None:
        """Start broker, topics, beds, bridge, worker and API; raises ``PSGError`` if a part fails to start."""
        settings = self.settings
        enable_multiprocess(settings.metrics_dir, fresh=True)
        if settings.kafka is None:
            self.broker = start_broker(log_path=self.log_path("broker"))
            settings.kafka = self.broker.bootstrap
            settings.session_timeout_s = min(settings.session_timeout_s, 6.0)
        ensure_topics(settings.kafka, settings.partitions, samples_retention_hours=settings.samples_retention_hours)
        self.admin_token_path = ensure_local_admin_token(settings)
        env = self.child_env()
        self.spawn("api", ["api"], env)
        self.spawn("worker", ["worker"], env)
        self.spawn("bridge", ["bridge"], env)
        beds = [
            "beds",
            "--beds",
            str(options.beds),
            "--speed",
            str(options.speed),
            "--hours",
            str(options.hours),
            "--seed",
            str(options.seed),
        ]
        self.spawn("beds", beds + (["--nights", str(options.nights)] if options.nights else []), env)
        wait_for_port(settings.api_host, settings.api_port, timeout_s=60.0, probe=self.check_children)

    def child_env(self) -> dict[str, str]:
        """The environment every part gets: the settings as ``SLEEPLM_*`` plus LSL and metrics config."""
        s = self.settings
        env = dict(os.environ)
        env.update(
            {
                "SLEEPLM_KAFKA": s.kafka or "",
                "SLEEPLM_PARTITIONS": str(s.partitions),
                "SLEEPLM_DATA_DIR": str(s.data_dir.resolve()),
                "SLEEPLM_DB_URL": s.database_url,
                "SLEEPLM_API_HOST": s.api_host,
                "SLEEPLM_API_PORT": str(s.api_port),
                "SLEEPLM_APP_ID": s.app_id,
                "SLEEPLM_SESSION_TIMEOUT_S": str(s.session_timeout_s),
                "SLEEPLM_ONE_RECORD_PER_BATCH": "true" if s.one_record_per_batch else "false",
                "SLEEPLM_RUNTIME": s.runtime or "",
                "SLEEPLM_MODEL_BACKEND": s.model_backend,
                "SLEEPLM_CHECKPOINT": str(s.checkpoint.resolve()) if s.checkpoint else "",
                "SLEEPLM_LAB_HEAD": str(s.lab_head.resolve()) if s.lab_head else "",
                "PROMETHEUS_MULTIPROC_DIR": str(s.metrics_dir.resolve()),
                "LSLAPICFG": os.environ["LSLAPICFG"],
                "PYTHONUNBUFFERED": "1",
                "NO_COLOR": "1",  # the logs are files: no colour codes from any library that honours it
            }
        )
        # one machine: the API's /metrics already shows every part; worker and bridge would both bind this port
        env.pop("SLEEPLM_METRICS_PORT", None)
        return env

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> _Child:
        """Start ``sleeplm <args>`` as a child in its own session, its output to this run's ``logs/<name>-<run>.log``
        through a ``LogPump`` (every line stamped, no escape codes)."""
        pump = LogPump(self.log_path(name))
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "sleeplm", *args],
                stdout=pump.write_end,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            pump.close_write_end()
        child = _Child(name, process, pump.path, pump)
        self.children.append(child)
        return child

    def check_children(self) -> None:
        """``PSGError`` naming the first part that failed, with the last lines of its own output in this run
        (a clean exit is fine: beds with a bounded number of nights end when their nights do)."""
        for child in self.children:
            code = child.process.poll()
            if code not in (None, 0):
                raise PSGError(
                    f"`sleeplm {child.name}` exited with status {code}; its last lines "
                    f"({child.log_path}):\n{last_lines(child)}"
                )

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """SIGTERM the parts in data-flow order, SIGKILL what is still running after ``grace_s``."""
        order = ("beds", "bridge", "worker", "api")
        for name in order:
            for child in self.children:
                if child.name == name and child.process.poll() is None:
                    _signal_group(child.process, signal.SIGTERM)
                    try:
                        child.process.wait(timeout=grace_s)
                    except subprocess.TimeoutExpired:
                        _signal_group(child.process, signal.SIGKILL)
                        child.process.wait()
        for child in self.children:  # anything a part started in its own group
            _signal_group(child.process, signal.SIGKILL)
        if self.broker is not None:
            self.broker.stop()
        for child in self.children:  # the logs complete before the launcher returns
            if child.pump is not None:
                child.pump.join(timeout_s=2.0)


def last_lines(child: _Child, n: int = REPORT_LINES) -> str:
    """The last ``n`` lines ``child`` wrote in this run (none from an earlier run's file)."""
    if child.pump is None:
        text = child.log_path.read_text(errors="replace") if child.log_path.exists() else ""
        return "\n".join(text.splitlines()[-n:])
    child.pump.join(timeout_s=2.0)  # it has exited: read what it wrote to the end
    lines = list(child.pump.tail)[-n:]
    return "\n".join(lines) if lines else "(it wrote nothing)"


def preflight(settings: Settings) -> None:
    """What would make ``sleeplm up`` fail after its banner, checked before anything starts: ``PSGError``
    (one line: the problem, and the flag or variable that changes it) for a data dir that cannot be written,
    an API port in use, a named broker that does not answer, no embedded broker to start."""
    _check_data_dir(settings.data_dir)
    _check_port(settings.api_host, settings.api_port, "the API", "--api-port or SLEEPLM_API_PORT")
    if settings.kafka:
        _check_broker(settings.kafka)
    else:
        tansu_binary()


def _check_data_dir(data_dir: Path) -> None:
    change = "choose another with --data-dir or SLEEPLM_DATA_DIR"
    probe = data_dir / "logs" / f".write-test-{os.getpid()}"
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
        for name in ("sleeplm.db", "admin.token"):
            if (data_dir / name).exists():
                with open(data_dir / name, "ab"):
                    pass
    except OSError as exc:
        where = exc.filename or data_dir
        raise PSGError(f"data dir {data_dir}: cannot write {where} ({exc.strerror or exc}); {change}") from None


def _check_port(host: str, port: int, what: str, change: str) -> None:
    """Bind ``host:port`` the way uvicorn does (``SO_REUSEADDR``: a port in TIME_WAIT is fine, a listener not)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            reason = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise PSGError(f"port {port} on {host} ({what}): {reason}; choose another with {change}") from None


def _check_broker(bootstrap: str, timeout_s: float = 3.0) -> None:
    problems = []
    for server in (s.strip() for s in bootstrap.split(",") if s.strip()):
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout_s):
                return
        except (OSError, ValueError) as exc:
            problems.append(f"{server}: {getattr(exc, 'strerror', None) or exc}")
    raise PSGError(
        f"broker {bootstrap} does not answer ({'; '.join(problems)}); start it, or change --broker or "
        "SLEEPLM_KAFKA (unset: an embedded broker)"
    )


def ensure_local_admin_token(settings: Settings) -> Path:
    """The admin token of this machine's ``sleeplm up``, in ``<data-dir>/admin.token`` (mode 0600): reused
    while it still verifies, created (and audited as made by ``sleeplm up``) otherwise. Every API route
    needs a token; on a one-machine install this is the one to sign in to the web page with and to make
    the ward's own tokens (``sleeplm token create``)."""
    from store import Store

    path = settings.data_dir / ADMIN_TOKEN_FILE
    with Store(settings.database_url) as store:
        if path.is_file() and store.verify_token(path.read_text().strip()) is not None:
            return path
        token, _ = store.create_token("sleeplm-up-admin", "admin", created_by="sleeplm up")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token + "\n")
    return path


def run_up(settings: Settings, options: UpOptions) -> int:
    """Run the stack until SIGINT/SIGTERM or until a part dies; returns the exit status. ``preflight`` first:
    its ``PSGError`` (exit 2 from the command line) comes before anything starts."""
    preflight(settings)
    configure_lsl()
    stack = LiveStack(settings)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stack.start(options)
        print(_banner(stack, options), flush=True)
        while not stop.wait(1.0):
            stack.check_children()
        print("stopping ...", flush=True)
        return 0
    except PSGError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("stopped: no part of sleeplm up is running.", flush=True)


def _banner(stack: LiveStack, options: UpOptions) -> str:
    s = stack.settings
    broker = f"embedded Tansu at {s.kafka}" if stack.broker else f"Kafka at {s.kafka}"
    return "\n".join(
        [
            f"sleeplm up: {options.beds} simulated bed(s) at {options.speed:g}x real time",
            f"  web page   {stack.api_url}/   (sign in with the admin token in {stack.admin_token_path})",
            f"  API        {stack.api_url}/api/ward   "
            "(every route but /api/health needs 'Authorization: Bearer <token>')",
            f"  OpenAPI    {stack.api_url}/openapi.json",
            f"  metrics    {stack.api_url}/metrics",
            f"  broker     {broker}",
            f"  store      {s.database_url}",
            f"  logs       {(s.data_dir / 'logs').resolve()}",
            "Press Ctrl-C to stop.",
        ]
    )


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM us if the launcher dies (no orphaned parts)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
