"""Reading what the live path stored, straight from the SQLite file (independent of the API), the
assertions the live tests share on it, starting their beds, and running ``sleeplm up`` as a user does."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.up_process import start_up
from plumbing.broker import free_port
from plumbing.settings import Settings
from psg.captions import MODALITIES
from psg.codecs import QUALITY_FLAGS
from store.engine import sqlite_file
from tests.live.conftest import wait_until


def sqlite_path(settings: Settings) -> Path:
    path = sqlite_file(settings.database_url)
    assert path is not None, f"the live tests read a SQLite store, got {settings.database_url}"
    return path


def stored_epochs(settings: Settings) -> dict[str, list[int]]:
    """bed id -> the stored epoch indices (every row, in insertion order)."""
    path = sqlite_path(settings)
    if not path.exists():
        return {}
    with sqlite3.connect(path, timeout=5) as db:
        try:
            rows = db.execute("SELECT bed_id, epoch FROM epochs ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # the store has not run its migrations yet
            return {}
    out: dict[str, list[int]] = defaultdict(list)
    for bed, epoch in rows:
        out[bed].append(epoch)
    return dict(out)


def stored_rows(settings: Settings) -> list[dict]:
    """Every stored epoch row with its JSON columns decoded."""
    with sqlite3.connect(sqlite_path(settings), timeout=5) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM epochs ORDER BY bed_id, epoch")]
    for row in rows:
        for key in ("captions", "quality", "features"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
    return rows


def complete(settings: Settings, beds: int, epochs: int) -> bool:
    """True once ``beds`` beds each have at least ``epochs`` stored epochs."""
    found = stored_epochs(settings)
    return len(found) >= beds and all(len(v) >= epochs for v in found.values())


def start_beds(stack, beds: int, speed: float, hours: float) -> None:  # noqa: ANN001 (the live stack fixture)
    """A bridge and ``beds`` simulated LSL beds (seed 3, one night each) as processes of ``stack``."""
    env = stack.child_env()
    stack.spawn("bridge", ["bridge"], env)
    args = ["beds", "--beds", str(beds), "--speed", str(speed), "--hours", str(hours), "--seed", "3", "--nights", "1"]
    stack.spawn("beds", args, env)


def gap_channels(row: dict) -> set[str]:
    """Channels of a stored epoch flagged ``gap``, except the simulated monitor's HR in epoch 0 (it reports
    HR 0, no value yet, for its first 2 s: not a gap in delivery)."""
    gaps = {channel for channel, flags in row["quality"].items() if "gap" in flags}
    if row["epoch"] == 0:
        gaps.discard("HR")
    return gaps


def assert_each_epoch_once(settings: Settings, beds: int, epochs: int, gaps_allowed: bool = False) -> None:
    """``beds`` beds stored, each with epochs 0..epochs-1 exactly once, every row a stage, the five captions
    and known quality flags; and no ``gap`` flag unless ``gaps_allowed`` (data really gone from the device)."""
    found = stored_epochs(settings)
    assert len(found) == beds, f"beds stored: {sorted(found)}"
    for bed, indices in found.items():
        assert sorted(indices) == list(range(epochs)), f"{bed}: stored epochs {sorted(indices)}"
    for row in stored_rows(settings):
        assert row["stage"] in {"W", "N1", "N2", "N3", "R", "?"}
        assert set(row["captions"]) == set(MODALITIES) and all(row["captions"].values())
        assert all(set(flags) <= set(QUALITY_FLAGS) for flags in row["quality"].values())
        if not gaps_allowed:
            assert not gap_channels(row), f"{row['bed_id']} epoch {row['epoch']}: unexpected gap flags"


def beds_of_up(launcher: subprocess.Popen, api: str, token_file: Path, auth: dict[str, str]) -> list[dict] | None:
    """The beds a running ``sleeplm up`` serves, signing in with its admin token (kept in ``auth``); None while
    the token or the API is not there yet. Fails the test when the launcher has exited."""
    assert launcher.poll() is None, f"sleeplm up exited: {launcher.stdout.read() if launcher.stdout else ''}"
    if not token_file.is_file():
        return None
    auth["Authorization"] = f"Bearer {token_file.read_text().strip()}"
    try:
        return httpx.get(f"{api}/api/beds", timeout=2, headers=auth).json()
    except httpx.HTTPError:
        return None


@dataclass
class Up:
    """A ``sleeplm up`` a live test runs: its launcher, API port and admin sign-in, the beds the API listed when
    it was ready, and (once stopped) everything it printed."""

    launcher: subprocess.Popen[str]
    port: int
    auth: dict[str, str] = field(default_factory=dict)
    beds: list[dict] = field(default_factory=list)
    output: str = ""

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def up_serving(
    data_dir: Path, env: dict[str, str], beds: int, hours: float, epochs: int = 0, listed: int | None = None
) -> Iterator[Up]:
    """``sleeplm up --beds N --speed 20 --hours H --nights 1`` on a free port, handed to the block once the API
    lists ``listed`` beds (default ``beds``; 0: the API answering is enough), each with ``epochs`` epochs
    (fails after 120 s, or as soon as the launcher exits). Ctrl-C when the block ends, however it ends, and
    ``Up.output`` holds what ``up`` printed: the caller checks its exit code, so a run that did not stop
    cleanly fails the test."""
    port = free_port()
    launcher = start_up(sys.executable, beds, "20", port, data_dir, env, "--hours", str(hours), "--nights", "1")
    up = Up(launcher, port)
    want = beds if listed is None else listed

    def ready() -> bool:
        found = beds_of_up(launcher, up.api, data_dir / "admin.token", up.auth)
        if found is None or len(found) < want:
            return False
        up.beds[:] = found
        try:
            return not epochs or all(
                len(httpx.get(f"{up.api}/api/beds/{b['bed_id']}/epochs", timeout=2, headers=up.auth).json()) >= epochs
                for b in found
            )
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, 120, f"{want} bed(s) with {epochs} epochs through the API")
        yield up
    finally:
        launcher.send_signal(signal.SIGINT)
        up.output, _ = launcher.communicate(timeout=60)
