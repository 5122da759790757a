"""Issue 13 in the model commands: ``--scoring`` and Sleep-EDF pairing give ``stage`` its truth and accuracy;
annotation-only and shorter-than-an-epoch files exit 2 with the one-line rule in every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from psg.formats import read_edf, write_nsrr_xml
from psg.recording import Recording
from psg.timeline import Stage
from tests.cli_runner import run_cli
from tests.scoring_files import write_hypnogram, write_psg, write_short_psg


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return run_cli(monkeypatch, capsys, *args)


@pytest.fixture(scope="module")
def model_args(tiny_checkpoint: Path) -> list[str]:
    return ["--checkpoint", str(tiny_checkpoint), "--backend", "torch"]


@pytest.fixture(scope="module")
def files(simulated_recording: Recording, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A Sleep-EDF pair, the same PSG under a plain name, an NSRR XML of its truth and a 6-s file."""
    folder = tmp_path_factory.mktemp("scored")
    truth = simulated_recording.timeline
    files = {
        "psg": write_psg(simulated_recording, folder / "SC4555E0-PSG.edf"),
        "hypnogram": write_hypnogram(truth, folder / "SC4555EC-Hypnogram.edf"),
        "plain": write_psg(simulated_recording, folder / "plain.edf"),
        "xml": folder / "truth.xml",
        "short": write_short_psg(folder / "short.edf"),
    }
    write_nsrr_xml(truth, files["xml"])
    return files


def test_stage_json_carries_the_paired_hypnogram_as_truth(
    files: dict[str, Path],
    model_args: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(monkeypatch, capsys, "stage", str(files["psg"]), "--json", *model_args)
    assert code == 0, err
    result = json.loads(out)
    assert f"scoring: {files['hypnogram']} (Sleep-EDF hypnogram of SC4555E0-PSG.edf)" in err
    assert result["scoring"] == str(files["hypnogram"])
    truth = read_edf(files["hypnogram"]).timeline
    assert result["truth"] == [Stage(int(s)).label for s in truth.stages[: len(result["stages"])]]
    scored = [(s, t) for s, t in zip(result["stages"], result["truth"], strict=True) if t != "?"]
    assert result["accuracy"] == pytest.approx(sum(s == t for s, t in scored) / len(scored))


@pytest.mark.parametrize("kind", ["hypnogram", "xml"])
def test_stage_scoring_option(
    kind: str,
    files: dict[str, Path],
    model_args: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plain = run(monkeypatch, capsys, "stage", str(files["plain"]), "--json", *model_args)
    assert plain[0] == 0 and json.loads(plain[1])["truth"] is None and json.loads(plain[1])["accuracy"] is None
    code, out, err = run(
        monkeypatch, capsys, "stage", str(files["plain"]), "--json", "--scoring", str(files[kind]), *model_args
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["scoring"] == str(files[kind]) and len(result["truth"]) == len(result["stages"])
    assert 0.0 <= result["accuracy"] <= 1.0
    code, out, err = run(
        monkeypatch,
        capsys,
        "describe",
        str(files["plain"]),
        "--json",
        "--epochs",
        "3:5",
        "--scoring",
        str(files[kind]),
        *model_args,
    )
    assert code == 0, err
    assert [t["epoch"] for t in json.loads(out)["truth"]] == [3, 4]


@pytest.mark.parametrize("command", ["stage", "describe", "query", "probe", "adapt"])
def test_short_and_annotation_only_files_exit_2_with_one_line(
    command: str,
    files: dict[str, Path],
    tiny_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    extra = {"query": ["apnea"], "adapt": ["--out", str(tmp_path / "head.npz")]}.get(command, [])
    backend = [] if command == "adapt" else ["--backend", "torch"]
    for path, message in (
        (files["short"], f"{files['short']}: recording lasts 6.0 s, shorter than one 30-s epoch"),
        (files["hypnogram"], f"{files['hypnogram']}: annotation-only file: no signals to analyse"),
    ):
        code, _, err = run(
            monkeypatch, capsys, command, str(path), *extra, "--checkpoint", str(tiny_checkpoint), *backend
        )
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(lines) == 1 and message in lines[0], err
        assert "Traceback" not in err
