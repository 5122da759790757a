"""The nurse web page in real headless Chromium, end to end on the real live stack.

The stack is the one ``tests/live`` runs (its ``stack`` fixture: an embedded Tansu broker, then the parts as
processes: API, worker, bridge and simulated beds streaming over LSL at 10x real time). Tokens for a nurse,
a viewer and an admin are created in the store the way ``sleeplm token create`` does. ``ward.mjs`` (Playwright
driving Debian's Chromium) then signs in, watches captions arrive live, raises a bed's SpO2 limit as admin
so a desaturation alert is raised live (and another bed's critical limit, so a high alert escalates and
must sort that bed first), cuts the browser's connections to check the feed resumes, opens the bed view,
searches the night, acknowledges the alert and checks that a viewer cannot. Screenshots go to
``out/browser/`` (ignored by git) for a person to look at. The run's beds and bridge get an LSL session
of their own, so another live test running on the same machine (its beds are also bed-01, ...) cannot
feed this one.

Skips, naming what is missing, without ``/usr/bin/chromium``, ``node`` or the Playwright package
(``npm install --prefix tests/browser --no-package-lock``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from plumbing.broker import wait_for_port
from store import Store
from tests.live.conftest import stack, wait_until  # noqa: F401 - the live stack fixture, reused as it is
from tests.live.helpers import stored_epochs

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPT = HERE / "ward.mjs"
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO / "out" / "browser"
SCREENSHOTS = ("ward.png", "bed.png", "alert-acknowledged.png")

BEDS = 3
ALERT_BED, HIGH_BED = "bed-01", "bed-02"  # beds are bed-01 .. bed-NN (device_bridges.simulated.bed_ids)
NURSE, VIEWER, ADMIN = "night-nurse-ward-3", "ward-display", "charge-nurse"
SCRIPT_TIMEOUT_S = 150.0


def _missing() -> str | None:
    if not CHROMIUM.is_file():
        return f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if shutil.which("node") is None:
        return "node is not on PATH (apt-get install nodejs npm)"
    if not (HERE / "node_modules" / "playwright-core" / "package.json").is_file():
        return "playwright-core is not installed: run `npm install --prefix tests/browser --no-package-lock`"
    return None


pytestmark = [pytest.mark.live, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


def _marked_processes(marker: str, data_dir: Path | None = None) -> list[int]:
    """PIDs whose environment carries our run marker (node, Chromium) or names ``data_dir`` (the parts)."""
    needles = [f"SLEEPLM_BROWSER_RUN={marker}".encode()]
    if data_dir is not None:
        needles.append(f"SLEEPLM_DATA_DIR={data_dir}".encode())
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(b"\0" + n + b"\0" in b"\0" + environ + b"\0" for n in needles):
            pids.append(int(entry.name))
    return pids


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _private_lsl_config(folder: Path, session: str) -> Path:
    """The shipped LSL configuration plus a session id of our own: LSL resolves only streams of the same
    session, so simulated beds of another test run on this machine (also called bed-01, ...) stay invisible
    to our bridge, and ours to theirs."""
    shipped = Path(os.environ["LSLAPICFG"]).read_text()
    path = folder / "lsl_api.cfg"
    path.write_text(shipped.replace("[lab]\n", f"[lab]\nSessionID = sleeplm-browser-{session}\n", 1))
    assert "SessionID" in path.read_text(), f"no [lab] section in {os.environ['LSLAPICFG']}"
    return path


def test_nurse_page_in_headless_chromium(stack, tmp_path: Path) -> None:  # noqa: F811 - the imported fixture
    started = time.monotonic()
    settings = stack.settings
    data_dir = settings.data_dir.resolve()
    marker = uuid.uuid4().hex
    with Store(settings.database_url) as store:  # migrates the file before any part opens it
        nurse = store.create_token(NURSE, "nurse")[0]
        viewer = store.create_token(VIEWER, "viewer")[0]
        admin = store.create_token(ADMIN, "admin")[0]
    env = {**stack.child_env(), "LSLAPICFG": str(_private_lsl_config(tmp_path, marker[:12]))}
    stack.spawn("api", ["api"], env)
    stack.spawn("worker", ["worker"], env)
    stack.spawn("bridge", ["bridge"], env)
    stack.spawn(
        "beds", ["beds", "--beds", str(BEDS), "--speed", "10", "--hours", "1", "--seed", "3", "--nights", "1"], env
    )
    wait_for_port(settings.api_host, settings.api_port, timeout_s=60.0, probe=stack.check_children)

    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):
        old.unlink()
    node_env = {
        **os.environ,
        "SLEEPLM_BROWSER_RUN": marker,
        "SLEEPLM_URL": stack.api_url,
        "NURSE_TOKEN": nurse,
        "NURSE_NAME": NURSE,
        "VIEWER_TOKEN": viewer,
        "ADMIN_TOKEN": admin,
        "ALERT_BED": ALERT_BED,
        "HIGH_BED": HIGH_BED,
        "SCREENSHOT_DIR": str(SHOTS),
        "DEADLINE_S": str(int(SCRIPT_TIMEOUT_S - 5)),
    }
    script = subprocess.Popen(
        ["node", str(SCRIPT)],
        cwd=HERE,
        env=node_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = script.communicate(timeout=SCRIPT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(script.pid, signal.SIGKILL)
        output, _ = script.communicate()
    finally:
        _kill(_marked_processes(marker))  # a Chromium the script could not close
    browser_s = time.monotonic() - started
    print(output)
    print(f"browser test: {browser_s:.1f} s from the stack's start to the script's end")

    logs = ""
    if script.returncode != 0:
        logs = f"\nstored epochs per bed: { {bed: len(e) for bed, e in stored_epochs(settings).items()} }"
        for child in stack.children:
            text = child.log_path.read_text(errors="replace") if child.log_path.exists() else ""
            logs += f"\n--- {child.name} ---\n{text[-2500:]}"
    assert script.returncode == 0, f"ward.mjs failed (status {script.returncode}):\n{output}{logs}"
    for name in SCREENSHOTS:
        shot = SHOTS / name
        assert shot.is_file() and shot.stat().st_size > 1000, f"screenshot {shot} missing or empty"

    [acked] = [line.split()[1] for line in output.splitlines() if line.startswith("ACKNOWLEDGED ")]
    with Store(settings.database_url) as store:
        alert = store.alert(acked)
    assert (alert["state"], alert["acknowledged_by"], alert["bed_id"]) == ("acknowledged", NURSE, ALERT_BED)

    stopping = time.monotonic()
    stack.stop(grace_s=5.0)
    assert stack.broker is not None and stack.broker.process.poll() is not None, "the broker is still running"
    wait_until(lambda: not _marked_processes(marker, data_dir), 10, "every process of the test to end")
    took = time.monotonic() - started
    print(f"stack stopped in {time.monotonic() - stopping:.1f} s; whole test {took:.1f} s")
    assert took < 180, f"the browser test took {took:.0f} s (limit 180 s)"
