"""The model commands through the real CLI (typer app in-process): JSON shapes, options, and exit 2 on bad input."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from model_runtime.model.prompts import STAGE_LABELS
from psg.captions import MODALITIES
from sleeplm.cli import app, main

runner = CliRunner()


def run_json(*args: str) -> dict:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``sleeplm.cli.main`` (the console script) with ``args``: exit code and the last stderr line."""
    monkeypatch.setattr(sys, "argv", ["sleeplm", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    lines = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.strip()]
    return int(exit_info.value.code or 0), lines[-1] if lines else ""


@pytest.fixture(scope="module")
def model_args(tiny_checkpoint: Path) -> list[str]:
    return ["--checkpoint", str(tiny_checkpoint), "--backend", "torch"]


def test_stage_json(simulated_edf: Path, model_args: list[str]) -> None:
    smoothed = run_json("stage", str(simulated_edf), *model_args)
    raw = run_json("stage", str(simulated_edf), "--no-smooth", *model_args)
    for result in (smoothed, raw):
        assert set(result) == {
            "stages",
            "best_stages",
            "probabilities",
            "uncertain",
            "gaps",
            "stage_source",
            "stage_head",
            "origin",
            "channels",
            "truth",
            "accuracy",
            "scoring",
        }
        assert result["stage_head"] is None  # the tiny checkpoint has no stage head: the signal encoder stages
        assert result["origin"] == "simulated"  # our simulator wrote the file, and its header says so
        probs = np.asarray(result["probabilities"])
        assert probs.shape == (60, 5) and np.allclose(probs.sum(axis=1), 1.0)
        assert result["stages"] == [STAGE_LABELS[i] for i in probs.argmax(axis=1)]
    assert not np.allclose(smoothed["probabilities"], raw["probabilities"])


def test_stage_table(simulated_edf: Path, model_args: list[str]) -> None:
    result = runner.invoke(app, ["stage", str(simulated_edf), *model_args])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-2].startswith("60 epochs: W ")
    assert lines[-1] == "staged by: signal encoder"  # the tiny checkpoint has no stage head


def test_describe_json_slice_and_modalities(simulated_edf: Path, model_args: list[str]) -> None:
    result = run_json("describe", str(simulated_edf), "--epochs", "2:4", "--modality", "somatic", *model_args)
    assert [(c["epoch"], c["start_s"], c["modality"]) for c in result["captions"]] == [
        (2, 60.0, "somatic"),
        (3, 90.0, "somatic"),
    ]
    assert all(set(c) == {"epoch", "start_s", "modality", "text"} for c in result["captions"])
    default = run_json("describe", str(simulated_edf), "--epochs", "10", *model_args)
    assert [(c["epoch"], c["modality"]) for c in default["captions"]] == [(10, "stage_event")]
    every = run_json("describe", str(simulated_edf), "--epochs", "0:1", "--modality", "all", *model_args)
    assert [c["modality"] for c in every["captions"]] == list(MODALITIES)


def test_query_json(simulated_edf: Path, model_args: list[str]) -> None:
    result = run_json("query", str(simulated_edf), "obstructive apnea during REM", "--top", "3", *model_args)
    assert set(result) == {"matches", "channels", "threshold", "method"} and len(result["matches"]) == 3
    for m in result["matches"]:
        assert set(m) == {"epoch", "start_s", "score", "spans"}
        assert all(m["start_s"] <= a < b <= m["start_s"] + 30.0 for a, b in m["spans"])


def test_probe_json_over_two_files(simulated_edf: Path, model_args: list[str]) -> None:
    result = run_json("probe", str(simulated_edf), str(simulated_edf), "--shots", "2", "--seed", "3", *model_args)
    assert set(result) == {"shots", "accuracy", "macro_f1", "kappa", "per_class_f1", "train_epochs", "test_epochs"}
    assert result["shots"] == 2 and result["train_epochs"] + result["test_epochs"] == 120
    assert set(result["per_class_f1"]) <= set(STAGE_LABELS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["stage", "{missing}"], "no such file"),
        (["stage", "{text}"], "not an EDF or BDF file"),
        (["describe", "{edf}", "--epochs", "3-5"], "--epochs must be A:B"),
        (["describe", "{edf}", "--epochs", "50:70"], "out of range"),
        (["describe", "{edf}", "--modality", "eeg"], "unknown modality"),
        (["query", "{edf}", "  "], "query text is empty"),
        (["query", "{edf}", "apnea", "--top", "0"], "--top must be >= 1"),
        (["probe", "{edf}", "--shots", "0"], "--shots must be >= 1"),
        (["stage", "{edf}", "--backend", "tpu"], "--backend must be one of"),
        (["stage", "{edf}", "--checkpoint", "{missing}"], "not found"),
        (["train", "--config", "huge"], "unknown model config"),
        (["train", "--init", "{edf}"], "--init is for --decoder-only"),
        (["train", "--decoder-only", "--init", "{missing}"], "no such checkpoint"),
        (["bench", "model", "--batch", "0"], "--batch must be >= 1"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str],
    message: str,
    simulated_edf: Path,
    tiny_checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = tmp_path / "night.edf"
    text.write_text("not an EDF\n")
    paths = {"missing": str(tmp_path / "absent.edf"), "text": str(text), "edf": str(simulated_edf)}
    argv = [a.format(**paths) for a in args]
    if "--checkpoint" not in argv and argv[0] in ("stage", "describe", "query", "probe"):
        argv += ["--checkpoint", str(tiny_checkpoint)]
    if "--backend" not in argv and argv[0] != "train":
        argv += ["--backend", "torch"]
    code, line = run_main(monkeypatch, capsys, *argv)
    assert code == 2
    assert line.startswith("error: ") and message in line, line


def test_every_command_is_registered() -> None:
    for args in (["train"], ["export"], ["eval"], ["bench", "model"], ["probe"], ["query"], ["describe"]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (args, result.output)
    assert "--no-smooth" in runner.invoke(app, ["stage", "--help"]).stdout
    assert "--onnx" in runner.invoke(app, ["export", "--help"]).stdout


def test_export_then_stage_on_onnx(tiny_checkpoint: Path, simulated_edf: Path, tmp_path: Path) -> None:
    """`export` without --onnx writes <name>.onnx/ beside the checkpoint, where --backend onnx finds it."""
    checkpoint = tmp_path / "copy.pt"  # a copy: an export beside the shared fixture would change --backend auto
    shutil.copy(tiny_checkpoint, checkpoint)
    result = runner.invoke(app, ["export", "--checkpoint", str(checkpoint)])
    assert result.exit_code == 0, (result.output, result.exception)
    assert str(tmp_path / "copy.onnx") in result.stdout
    args = ["stage", str(simulated_edf), "--checkpoint", str(checkpoint)]
    on_onnx = run_json(*args, "--backend", "onnx")
    on_torch = run_json(*args, "--backend", "torch")
    assert np.allclose(on_onnx["probabilities"], on_torch["probabilities"], atol=1e-3)
