"""The CLI contract later checks call exactly: simulate -> caption -> detect -> report, and clear errors.

Runs the real console entry point in a subprocess on a generated one-hour night, so it needs no shared data.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from psg.formats import read_edf, write_nsrr_xml
from psg.synthetic import synthetic_timeline

CHANNEL_LABELS = [
    "ECG",
    "ABD",
    "THX",
    "AF",
    "EOG-L",
    "EOG-R",
    "EEG C3-A2",
    "EEG C4-A1",
    "EMG Chin",
    "POS",
    "SpO2",
    "HR",
]
DETECTED_TYPES = {
    "obstructive_apnea",
    "central_apnea",
    "mixed_apnea",
    "hypopnea",
    "desaturation",
    "bradycardia",
    "tachycardia",
    "asystole",
    "signal_loss",
}


def sleeplm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sleeplm", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    timeline = folder / "night.xml"
    write_nsrr_xml(synthetic_timeline(hours=1.0, seed=4, ahi=30.0), timeline)
    edf = folder / "night.edf"
    result = sleeplm("simulate", str(timeline), "--out", str(edf), "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert "120 epochs" in result.stdout
    return edf


def test_simulate_writes_edf_plus_with_exact_labels_and_truth(night: Path) -> None:
    recording = read_edf(night)
    assert list(recording.signals) == CHANNEL_LABELS
    assert recording.timeline is not None and recording.timeline.n_epochs == 120
    assert any(
        e.type in {"hypopnea", "obstructive_apnea", "central_apnea", "mixed_apnea"} for e in recording.timeline.events
    )


def test_caption_writes_one_line_per_epoch_then_summary(night: Path, tmp_path: Path) -> None:
    out = tmp_path / "captions.jsonl"
    result = sleeplm("caption", str(night), "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 121 and set(lines[-1]) == {"summary", "channels"}
    assert lines[-1]["channels"]["missing"] == [] and lines[-1]["summary"]["not_recorded"] == {}
    first = lines[0]
    assert {"epoch", "start_s", "stage", "features", "captions"} <= set(first)
    assert {"hr_bpm", "rmssd_ms", "spo2_mean", "spo2_min", "resp_rate_bpm"} <= set(first["features"])
    assert set(first["captions"]) == {"stage_event", "brain", "cardiac", "respiratory", "somatic"}
    assert [line["epoch"] for line in lines[:-1]] == list(range(120))
    assert lines[1]["start_s"] == 30.0
    hr = lines[10]["features"]["hr_bpm"]
    assert hr is not None and f"{hr:.1f}" in lines[10]["captions"]["cardiac"]  # numbers come from features


def test_detect_json_lists_typed_events(night: Path) -> None:
    result = sleeplm("detect", str(night), "--json")
    assert result.returncode == 0, result.stderr
    events = json.loads(result.stdout)["events"]
    assert events and {e["type"] for e in events} <= DETECTED_TYPES
    assert all({"type", "onset_s", "duration_s"} <= set(e) for e in events)
    assert any(e["type"] in {"hypopnea", "obstructive_apnea", "central_apnea", "mixed_apnea"} for e in events)


def test_report_writes_summary_and_plot(night: Path, tmp_path: Path) -> None:
    result = sleeplm("report", str(night), "--out", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["summary"]["ahi"] > 5 and 0 < summary["summary"]["tst_min"] <= 60
    png = (tmp_path / "report" / "night.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_malformed_timeline_is_a_clear_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{"not": "a list"}')
    result = sleeplm("simulate", str(bad), "--out", str(tmp_path / "x.edf"))
    assert result.returncode == 2
    assert "broken.json" in result.stderr and "Traceback" not in result.stderr


def test_caption_rejects_an_unknown_style(night: Path, tmp_path: Path) -> None:
    result = sleeplm("caption", str(night), "--out", str(tmp_path / "c.jsonl"), "--style", "poetic")
    assert result.returncode == 2 and "canonical" in result.stderr


def test_version_and_short_help() -> None:
    version = sleeplm("--version")
    assert version.returncode == 0 and version.stdout.startswith("sleeplm ")
    for args in (["-h"], ["stage", "-h"], ["report", "-h"]):
        result = sleeplm(*args)
        assert result.returncode == 0 and result.stdout.startswith("Usage: sleeplm"), args
        assert "<bool>" not in result.stdout and "{night}" not in result.stdout


def test_outputs_that_cannot_be_written_are_one_line(night: Path, tmp_path: Path) -> None:
    """An existing file as the report folder, a folder as the caption file: exit 2, one line, no traceback."""
    existing = tmp_path / "README.md"
    existing.write_text("not a folder\n")
    report = sleeplm("report", str(night), "--out", str(existing))
    folder = tmp_path / "a-folder"
    folder.mkdir()
    caption = sleeplm("caption", str(night), "--out", str(folder))
    for result, path in ((report, existing), (caption, folder)):
        lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert len(lines) == 1 and str(path) in lines[0]
