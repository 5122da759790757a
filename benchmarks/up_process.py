"""Starting ``sleeplm up`` the way a user does, watching it, stopping it and finding what it left behind.

One place for what the ``sleeplm up`` benchmarks (``live_up.py``, ``lean_serving.py``) and the live tests of
``up`` (``tests/live/helpers.py``) would otherwise each write again: the command line, the process settings
(own session, so a stuck run can be killed as a group; stdin closed; stdout and stderr in one pipe), the
admin sign-in once the API answers, the Ctrl-C stop, and the search for processes left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import httpx


def start_up(
    python: str,
    beds: int,
    speed: float | str,
    api_port: int,
    data_dir: Path,
    env: dict[str, str],
    *extra: str,
    cwd: Path | None = None,
) -> subprocess.Popen[str]:
    """``PYTHON -m sleeplm up --beds N --speed X --api-port P --data-dir D [EXTRA...]`` in a session of its own.

    ``cwd``: where it runs. ``python -m`` puts the working directory first on ``sys.path``, so a caller that
    measures an installed environment passes an empty folder of its own (a stray ``re.py`` in a shared /tmp
    once shadowed the standard library)."""
    command = [python, "-m", "sleeplm", "up", "--beds", str(beds), "--speed", str(speed)]
    command += ["--api-port", str(api_port), "--data-dir", str(data_dir), *extra]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


def collect_output(launcher: subprocess.Popen[str]) -> tuple[list[str], threading.Thread]:
    """The launcher's output lines as they come, read by a daemon thread (a full pipe would block ``up``)."""
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(launcher.stdout or ()), daemon=True)
    reader.start()
    return output, reader


def signed_in(client: httpx.Client, data_dir: Path) -> bool:
    """True once ``/api/health`` answers; then ``client`` carries the local admin token ``sleeplm up`` keeps in
    ``data_dir`` (every route but health needs one). Raises ``httpx.HTTPError`` while the API is not up."""
    if client.get("/api/health").status_code != 200:
        return False
    token = (data_dir / "admin.token").read_text().strip()
    client.headers["Authorization"] = f"Bearer {token}"
    return True


def stop_up(launcher: subprocess.Popen[str], timeout_s: float = 60) -> None:
    """Ctrl-C (SIGINT) and wait; a launcher still running after ``timeout_s`` is killed with its whole group."""
    launcher.send_signal(signal.SIGINT)
    try:
        launcher.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()


def broker_port(output: list[str]) -> str | None:
    """The embedded broker's port, from the banner line ``up`` prints for it (None when there is none)."""
    line = next((line for line in output if "broker" in line and "127.0.0.1:" in line), "")
    return line.rsplit(":", 1)[-1].strip() or None


def processes_of(data_dir: Path, broker: str | None) -> dict[int, str]:
    """pid -> command line of every process whose environment names ``data_dir`` (the parts of ``up``) or whose
    command line is the broker on port ``broker``: after a clean Ctrl-C there must be none."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ, cmdline = (entry / "environ").read_bytes(), (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if f"SLEEPLM_DATA_DIR={data_dir}".encode() in environ or (
            broker and b"tansu" in cmdline and f":{broker}".encode() in cmdline
        ):
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found
