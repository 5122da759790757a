"""Night reports as documents: HTML and PDF from a recorded night, and a bed's report from the live store.

The reports run in-process (``CliRunner``), the file ones on a generated half-hour night, so they need
no shared data; most error cases run the real entry point, because the one-line message and exit
status 2 are ``sleeplm.cli.main``'s.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from psg.errors import PSGError
from psg.formats import write_edf
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline
from sleeplm.cli import app
from store import Store
from tests.records import make_record

#: The bed night below: 10 wake, 60 N2, 20 N3 and 30 REM epochs, with epoch 5 (wake) never stored.
BED_STAGES = ["W"] * 10 + ["N2"] * 60 + ["N3"] * 20 + ["R"] * 30
MISSING_EPOCH = 5


def sleeplm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sleeplm", *args], capture_output=True, text=True, timeout=120)


def report(*args: str) -> dict:
    """Run ``sleeplm report`` in-process; the summary.json it wrote."""
    result = CliRunner().invoke(app, ["report", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = Path(args[args.index("--out") + 1])
    return json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "night.edf"
    write_edf(simulate(synthetic_timeline(hours=0.5, seed=3, ahi=20), seed=1), path)
    return path


@pytest.fixture
def bed_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir whose store holds bed-1's night (features, captions, a few apneas) and one alert."""
    monkeypatch.delenv("SLEEPLM_DB_URL", raising=False)
    data_dir = tmp_path / "data"
    records = []
    for epoch, stage in enumerate(BED_STAGES):
        if epoch == MISSING_EPOCH:
            continue
        apnea = {"type": "obstructive_apnea", "onset_s": 30.0 * epoch + 3.0, "duration_s": 14.0}
        events = [apnea] if epoch % 10 == 3 else []
        features = {"spo2_mean": 95.0 if events else 96.0, "spo2_min": 88.0 if events else 94.0, "hr_bpm": 60.0}
        records.append(make_record(epoch, stage=stage, events=events, features=features))
    alert = {
        "id": "bed-1:spo2_critical:1700001000",
        "bed_id": "bed-1",
        "recording_id": "rec-1",
        "type": "spo2_critical",
        "priority": "high",
        "state": "raised",
        "raised_at": 1_700_001_000.0,
        "updated_at": 1_700_001_000.0,
        "evidence": {"start": 1_700_000_990.0, "end": 1_700_001_000.0, "count": 1, "values": {"min_spo2": 79.0}},
        "escalated": False,
        "escalated_at": None,
        "acknowledged_by": None,
        "acknowledged_at": None,
        "resolved_at": None,
        "audit": [],
    }
    with Store(f"sqlite:///{data_dir / 'sleeplm.db'}") as store:
        store.insert_epochs(records)
        store.apply_alert_events([{"event": "raised", "alert": alert}])
        store.acknowledge_alert(alert["id"], "nurse-ann", "nurse", at=1_700_001_060.0)
    return data_dir


def test_html_report_is_self_contained_and_holds_the_indices(night: Path, tmp_path: Path) -> None:
    out = tmp_path / "html"
    summary = report(str(night), "--out", str(out), "--format", "html")["summary"]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page and "<link" not in page and "<script" not in page
    [image] = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert base64.b64decode(image)[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "night.png").read_bytes() == base64.b64decode(image)  # the same figure as the PNG file
    for text in (
        f"{summary['tst_min']:.1f} min",
        f"{summary['sleep_efficiency_pct']:.1f}%",
        f"{summary['ahi']:.1f}/h",
        f"{summary['odi']:.1f}/h",
        f"{summary['spo2_min']:.1f}%",
        f"{summary['n2_min']:.1f} min ({summary['n2_pct_tst']:.1f}% of TST)",
        f"{summary['arousal_index']:.1f}/h",
        "synthetic-3",
        "Hour by hour",
        "hypopnea",
    ):
        assert text in page, text
    assert summary["caption"].split(".")[0] in page
    assert "Alerts" not in page  # a file has no alerting: no empty section


def test_pdf_report_has_pages(night: Path, tmp_path: Path) -> None:
    out = tmp_path / "pdf"
    report(str(night), "--out", str(out), "--format", "pdf")
    pdf = (out / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 2  # text pages and the overview figure


def test_bed_report_from_the_store_lists_alerts_and_stage_percentages(bed_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "bed"
    document = report("--bed", "bed-1", "--data-dir", str(bed_store), "--out", str(out), "--format", "html")
    summary = document["summary"]
    assert (document["record_id"], document["recording_id"]) == ("bed-1", "rec-1")
    assert summary["n_epochs"] == len(BED_STAGES) and summary["unscored_min"] == 0.5  # the missing epoch
    assert (summary["n2_pct_tst"], summary["n3_pct_tst"], summary["r_pct_tst"]) == (54.55, 18.18, 27.27)
    assert summary["apnea_count"] == 11 and summary["arousal_index"] is None  # epochs 13, 23, ..., 113 asleep
    assert (summary["spo2_min"], summary["t90_min"]) == (88.0, 0.0)
    page = (out / "report.html").read_text(encoding="utf-8")
    for text in (
        "54.5% of TST",
        "18.2% of TST",
        "27.3% of TST",
        "spo2_critical",
        "high",
        "acknowledged",
        "nurse-ann",
        "rec-1",
        "stage_event text 3",
        "obstructive apnea",
    ):
        assert text in page, text
    assert "http://" not in page and "https://" not in page
    report("--bed", "bed-1", "--data-dir", str(bed_store), "--out", str(out), "--format", "pdf")
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")


def test_unknown_bed_and_missing_store_are_one_line_errors(bed_store: Path, tmp_path: Path) -> None:
    result = sleeplm("report", "--bed", "bed-9", "--data-dir", str(bed_store), "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "bed-9" in result.stderr and "sleeplm.db" in result.stderr and "bed-1" in result.stderr
    empty = tmp_path / "nothing"  # in-process: the entry point's handling of PSGError was checked just above
    result = CliRunner().invoke(app, ["report", "--bed", "bed-1", "--data-dir", str(empty), "--out", str(tmp_path)])
    assert isinstance(result.exception, PSGError)
    assert "no such database" in str(result.exception) and str(empty) in str(result.exception)
    assert not empty.exists()  # a report never creates a store


@pytest.mark.parametrize("args", [["NIGHT", "--bed", "bed-1"], []], ids=["both", "neither"])
def test_exactly_one_of_night_or_bed(args: list[str], night: Path, tmp_path: Path) -> None:
    args = [str(night) if a == "NIGHT" else a for a in args]
    result = sleeplm("report", *args, "--out", str(tmp_path / "x"), "--format", "html")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "NIGHT" in result.stderr and "--bed" in result.stderr
    assert not (tmp_path / "x").exists()
