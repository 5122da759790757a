"""``sleeplm up``: the whole live path on one machine, loopback only, one command.

It starts a local Kafka-protocol broker (unless ``--broker``/``SLEEPLM_KAFKA`` names one), creates the
topics, then runs each part as its own child process, exactly the commands a scaled-out deployment
runs (``sleeplm beds``, ``bridge``, ``worker``, ``api``), with settings passed through the environment.
Each child logs to ``<data-dir>/logs/<part>.log``. Ctrl-C (SIGINT) or SIGTERM stops the parts in
data-flow order (beds, bridge, worker, API) with SIGTERM, kills any that does not stop within the grace
period, stops the broker and returns: no process is left behind. Children also get SIGTERM from the
kernel if the launcher itself dies (Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from device_bridges.lsl_config import configure_lsl
from psg.errors import PSGError
from services.broker import EmbeddedBroker, start_broker, wait_for_port
from services.metrics import enable_multiprocess
from services.settings import Settings
from services.topics import ensure_topics

STOP_GRACE_S = 10.0
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


@dataclass
class LiveStack:
    """The running parts of ``sleeplm up`` (the launcher and the integration tests use it)."""

    settings: Settings
    broker: EmbeddedBroker | None = None
    children: list[_Child] = field(default_factory=list)
    admin_token_path: Path | None = None

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def start(self, options: UpOptions) -> None:
        """Start broker, topics, beds, bridge, worker and API; raises ``PSGError`` if a part fails to start."""
        settings = self.settings
        logs = settings.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        enable_multiprocess(settings.metrics_dir, fresh=True)
        if settings.kafka is None:
            self.broker = start_broker(log_path=logs / "broker.log")
            settings.kafka = self.broker.bootstrap
            settings.one_record_per_batch = True
            settings.session_timeout_s = min(settings.session_timeout_s, 6.0)
        ensure_topics(settings.kafka, settings.partitions)
        self.admin_token_path = ensure_local_admin_token(settings)
        env = self.child_env()
        self.spawn("api", ["api"], env)
        self.spawn("worker", ["worker"], env)
        self.spawn("bridge", ["bridge"], env)
        beds = ["beds", "--beds", str(options.beds), "--speed", str(options.speed), "--hours", str(options.hours),
                "--seed", str(options.seed)]
        self.spawn("beds", beds + (["--nights", str(options.nights)] if options.nights else []), env)
        wait_for_port(settings.api_host, settings.api_port, timeout_s=60.0, probe=self.check_children)

    def child_env(self) -> dict[str, str]:
        """The environment every part gets: the settings as ``SLEEPLM_*`` plus LSL and metrics config."""
        s = self.settings
        env = dict(os.environ)
        env.update({
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
            "PROMETHEUS_MULTIPROC_DIR": str(s.metrics_dir.resolve()),
            "LSLAPICFG": os.environ["LSLAPICFG"],
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> _Child:
        """Start ``sleeplm <args>`` as a child in its own session, logging to ``logs/<name>.log``."""
        log_path = self.settings.data_dir / "logs" / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - the child owns it; closed when the child exits
        process = subprocess.Popen(
            [sys.executable, "-m", "sleeplm", *args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
        log.close()
        child = _Child(name, process, log_path)
        self.children.append(child)
        return child

    def check_children(self) -> None:
        """``PSGError`` naming the first part that failed, with the end of its log (a clean exit is fine:
        beds with a bounded number of nights end when their nights do)."""
        for child in self.children:
            code = child.process.poll()
            if code not in (None, 0):
                tail = child.log_path.read_text(errors="replace")[-2000:] if child.log_path.exists() else ""
                raise PSGError(f"`sleeplm {child.name}` exited with status {code}; end of {child.log_path}:\n{tail}")

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
    """Run the stack until SIGINT/SIGTERM or until a part dies; returns the exit status."""
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
    return "\n".join([
        f"sleeplm up: {options.beds} simulated bed(s) at {options.speed:g}x real time",
        f"  web page   {stack.api_url}/   (sign in with the admin token in {stack.admin_token_path})",
        f"  API        {stack.api_url}/api/ward   (every route but /api/health needs 'Authorization: Bearer <token>')",
        f"  OpenAPI    {stack.api_url}/openapi.json",
        f"  metrics    {stack.api_url}/metrics",
        f"  broker     {broker}",
        f"  store      {s.database_url}",
        f"  logs       {(s.data_dir / 'logs').resolve()}",
        "Press Ctrl-C to stop.",
    ])


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
