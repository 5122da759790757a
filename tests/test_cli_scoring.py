"""Issue 13 through the console entry point: scoring files as truth or as the night to report, and the one
rule for files a signal analysis cannot use (annotation-only, shorter than an epoch): exit 2, one line.

``sleeplm.cli.main`` runs in-process (as ``tests/model/test_model_cli.py`` does) so a dozen invocations stay
fast; its exit code and stderr are exactly the console script's.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from psg.formats import write_nsrr_xml
from psg.recording import Recording
from tests.cli_runner import run_cli
from tests.scoring_files import simulated_night, write_events_only, write_hypnogram, write_psg, write_short_psg

START = datetime(2019, 11, 2, 23, 5, 0)


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_cli(monkeypatch, capsys, *args)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def night() -> Recording:
    return simulated_night(hours=0.5, seed=5, ahi=40.0)


@pytest.fixture(scope="module")
def pair(night: Recording, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A Sleep-EDF-named PSG (signals only) and its hypnogram (annotation-only EDF+) in one folder."""
    folder = tmp_path_factory.mktemp("sleep-edf")
    psg = write_psg(night, folder / "SC4321E0-PSG.edf", START)
    return psg, write_hypnogram(night.timeline, folder / "SC4321EC-Hypnogram.edf", START)


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_short_psg(tmp_path_factory.mktemp("short") / "six-seconds.edf")


@pytest.mark.parametrize("fmt", ["png", "html", "pdf"])
def test_report_of_a_hypnogram_is_the_scored_night(
    fmt: str,
    pair: tuple[Path, Path],
    night: Recording,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hypnogram = pair[1]
    code, out, err = run(monkeypatch, capsys, "report", str(hypnogram), "--out", str(tmp_path), "--format", fmt)
    assert code == 0, err
    assert "annotation-only file: reporting the scored night" in err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["stage_source"] == "scored" and summary["scoring"] == str(hypnogram)
    assert summary["summary"]["tib_min"] == 30.0 and summary["summary"]["tst_min"] > 0
    assert summary["summary"]["spo2_mean"] is None and "spo2_mean" in summary["summary"]["not_recorded"]
    assert summary["scored_events"] and summary["detected_events"] == {}
    if summary["summary"]["apnea_count"] or summary["summary"]["hypopnea_count"]:
        assert summary["summary"]["ahi"] > 0
    if fmt != "png":
        assert (tmp_path / f"report.{fmt}").stat().st_size > 10_000


def test_report_of_an_event_export_counts_its_events(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    events = write_events_only(tmp_path / "cpap.edf", n=97)
    code, _, err = run(monkeypatch, capsys, "report", str(events), "--out", str(tmp_path / "r"))
    assert code == 0, err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["scored_events"] == {"central_apnea": 97} and summary["summary"]["rei"] > 50
    assert summary["duration_h"] > 1.5


def test_sleep_edf_pair_is_found_and_named_on_stderr(
    pair: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    psg, hypnogram = pair
    out = tmp_path / "captions.jsonl"
    code, _, err = run(monkeypatch, capsys, "caption", str(psg), "--out", str(out))
    assert code == 0, err
    assert f"scoring: {hypnogram} (Sleep-EDF hypnogram of {psg.name})" in err
    last = json.loads(out.read_text().splitlines()[-1])
    assert last["summary"]["stage_source"] == "annotation"  # the hypnogram's stages, not the rule stager's


@pytest.mark.parametrize("kind", ["edf", "xml"])
def test_scoring_option_gives_truth_to_detect_and_report(
    kind: str,
    pair: tuple[Path, Path],
    night: Recording,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    psg = write_psg(night, tmp_path / "plain.edf", START)  # no pair by name: only --scoring gives truth
    if kind == "edf":
        scoring = pair[1]
    else:
        scoring = tmp_path / "scored.xml"
        write_nsrr_xml(night.timeline, scoring)
    code, out, err = run(monkeypatch, capsys, "detect", str(psg), "--json", "--scoring", str(scoring))
    assert code == 0, err
    agreement = json.loads(out)["agreement"]
    assert agreement["scoring"] == str(scoring) and agreement["scored"] >= 1
    assert f"scoring: {scoring} (--scoring)" in err
    code, _, err = run(monkeypatch, capsys, "report", str(psg), "--out", str(tmp_path / "r"), "--scoring", str(scoring))
    assert code == 0, err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert summary["scoring"] == str(scoring) and summary["stage_source"] == "annotation"
    code, out, err = run(monkeypatch, capsys, "detect", str(psg), "--json")
    assert code == 0 and json.loads(out)["agreement"] is None


def test_scoring_that_does_not_fit_is_one_line_naming_it(
    pair: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    longer = write_hypnogram(simulated_night(hours=1.0).timeline, tmp_path / "other-night.edf", START)
    broken = tmp_path / "broken.xml"
    broken.write_text("<PSGAnnotation>")
    for scoring, problem in (
        (longer, "after the PSG's end"),
        (broken, "not a readable XML"),
        (tmp_path / "absent.xml", "no such file"),
    ):
        code, _, err = run(
            monkeypatch, capsys, "caption", str(pair[0]), "--out", str(tmp_path / "c.jsonl"), "--scoring", str(scoring)
        )
        lines = error_lines(err)
        assert code == 2 and len(lines) == 1 and str(scoring) in lines[0] and problem in lines[0], err
        assert "Traceback" not in err


@pytest.mark.parametrize("command", ["caption", "detect", "report"])
def test_short_and_annotation_only_files_exit_2_with_one_line(
    command: str,
    short: Path,
    pair: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    extra = {"caption": ["--out", str(tmp_path / "c.jsonl")], "detect": [], "report": ["--out", str(tmp_path)]}
    cases = [(short, f"{short}: recording lasts 6.0 s, shorter than one 30-s epoch")]
    if command != "report":  # report reports a scoring file's night instead
        cases.append((pair[1], f"{pair[1]}: annotation-only file: no signals to analyse"))
    for path, message in cases:
        code, _, err = run(monkeypatch, capsys, command, str(path), *extra[command])
        lines = error_lines(err)
        assert code == 2 and len(lines) == 1 and message in lines[0], err
        assert "Traceback" not in err


@pytest.mark.parametrize(
    "name", ["real-signals/sleep-edf-short/SC4001EC-Hypnogram.edf", "edf-corpus/edfio__SC4001EC-Hypnogram.bdf"]
)
def test_report_of_the_real_sleep_edf_hypnogram(
    name: str,
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Sleep-EDF's SC4001 hypnogram: 22.1 h up to its last scored epoch (the trailing '?' run is no time in bed)."""
    hypnogram = shared_data / name
    if not hypnogram.is_file():
        pytest.skip(f"{hypnogram} not in the shared data")
    code, _, err = run(monkeypatch, capsys, "report", str(hypnogram), "--out", str(tmp_path))
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())["summary"]
    assert summary["tib_min"] == 1325.0 and summary["tst_min"] == 326.5 and summary["r_min"] == 62.5
    assert summary["ahi"] is None and summary["not_recorded"]["ahi"] == "no respiratory events in the scoring"


def test_real_hypnogram_paired_with_an_excerpt_is_refused_naming_it(
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The 5-min excerpt of SC4001's PSG under its Sleep-EDF name pairs with the 22-h hypnogram: wrong night."""
    folder = shared_data / "real-signals" / "sleep-edf-short"
    if not (folder / "short_psg.edf").is_file():
        pytest.skip(f"{folder} not in the shared data")
    psg = tmp_path / "SC4001E0-PSG.edf"
    psg.write_bytes((folder / "short_psg.edf").read_bytes())
    hypnogram = tmp_path / "SC4001EC-Hypnogram.edf"
    hypnogram.write_bytes((folder / "SC4001EC-Hypnogram.edf").read_bytes())
    code, _, err = run(monkeypatch, capsys, "detect", str(psg))
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1, err
    assert f"{hypnogram}: scored stages end 22.00 h after the PSG's end" in lines[0]
