"""``bench_model`` on a tiny checkpoint: the keys the CLI prints, positive rates, both backends; the
SleepLM-Base-sized reference encoder has the size its docstring claims."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from model_runtime.evaluation.bench import bench_model, gpu_bench, reference_parameters, simulated_input
from model_runtime.training.onnx_export import export_onnx
from psg.errors import PSGError

KEYS = {
    "epochs_per_s",
    "captions_per_s",
    "batch",
    "device",
    "backend",
    "reference_epochs_per_s",
    "speedup_vs_reference",
    "parameters",
    "checkpoint_mb",
}


@pytest.fixture(scope="module")
def private_checkpoint(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy, so the export below never changes what ``backend="auto"`` picks for other tests."""
    path = tmp_path_factory.mktemp("bench") / "tiny.pt"
    shutil.copy(tiny_checkpoint, path)
    return path


def test_bench_model_on_torch(private_checkpoint: Path) -> None:
    result = bench_model(private_checkpoint, backend="torch", batch=8, seconds=0.5, reference=False, device="cpu")
    assert KEYS <= set(result)
    assert result["backend"] == "torch" and result["device"] == "cpu" and result["batch"] == 8
    assert result["epochs_per_s"] > 0 and result["captions_per_s"] >= result["epochs_per_s"]
    assert result["reference_epochs_per_s"] is None and result["speedup_vs_reference"] is None
    assert result["parameters"] > 0 and 0 < result["checkpoint_mb"] < 5
    assert set(result["seconds_per_batch"]) == {"encode", "stage", "caption"}


def test_bench_model_on_onnx(private_checkpoint: Path) -> None:
    export_onnx(private_checkpoint)
    result = bench_model(private_checkpoint, backend="auto", batch=8, seconds=0.5, reference=False)
    if not torch.cuda.is_available():
        assert result["backend"] == "onnx" and result["device"] == "cpu"
    assert result["epochs_per_s"] > 0 and result["runs"] >= 1


def test_reference_encoder_is_sleeplm_base_sized() -> None:
    assert 53e6 < reference_parameters() < 56e6


def test_simulated_input_is_tiled_model_input() -> None:
    x = simulated_input(70)
    assert x.shape == (70, 10, 1920) and x.dtype.name == "float32"
    with pytest.raises(PSGError, match="batch must be >= 1"):
        simulated_input(0)


def test_bench_rejects_a_non_positive_duration(private_checkpoint: Path) -> None:
    with pytest.raises(PSGError, match="seconds must be > 0"):
        bench_model(private_checkpoint, seconds=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="measures on the GPU when there is one")
def test_gpu_bench_is_none_without_cuda() -> None:
    assert gpu_bench() is None
