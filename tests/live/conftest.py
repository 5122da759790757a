"""Fixtures of the live-path integration tests: a real Tansu broker and the parts as real processes.

Every part runs exactly as in production (``python -m sleeplm <part>``) with settings from the
environment, bound to 127.0.0.1 on free ports, and is stopped by the fixture.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from operations.launcher import LiveStack
from plumbing.broker import free_port
from plumbing.settings import Settings

LIVE_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is ``live`` (``pytest -m "not live"`` leaves the real stack out); a
    ``pytestmark`` here would mark nothing, since a conftest's module marks do not reach test modules."""
    for item in items:
        if LIVE_DIR in item.path.parents:
            item.add_marker(pytest.mark.live)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[LiveStack]:
    """A ``LiveStack`` with an embedded broker and topics, no parts started yet."""
    from plumbing.broker import start_broker
    from plumbing.metrics import enable_multiprocess
    from plumbing.topics import ensure_topics

    settings = Settings(
        data_dir=tmp_path / "data",
        api_port=free_port(),
        partitions=2,
        session_timeout_s=6.0,
        app_id=f"test-{tmp_path.name[-12:]}",
    )
    (settings.data_dir / "logs").mkdir(parents=True)
    enable_multiprocess(settings.metrics_dir, fresh=True)
    broker = start_broker(log_path=settings.data_dir / "logs" / "broker.log")
    settings.kafka = broker.bootstrap
    ensure_topics(broker.bootstrap, settings.partitions)
    live = LiveStack(settings, broker=broker)
    try:
        yield live
    finally:
        live.stop(grace_s=5.0)


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, stack: LiveStack | None = None) -> None:
    """Poll ``condition`` until true; fail naming ``what`` (with the parts' log tails) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if stack is not None:
            stack.check_children()
        time.sleep(0.5)
    logs = ""
    if stack is not None:
        for child in stack.children:
            text = child.log_path.read_text(errors="replace") if child.log_path.exists() else ""
            logs += f"\n--- {child.name} ---\n{text[-1500:]}"
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}{logs}")
