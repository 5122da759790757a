"""ONNX export: onnxruntime reproduces torch (embeddings, masked sub-windows, whole greedy captions), and
every way an export folder can be wrong gives a clear error.

The shared ``tiny_checkpoint`` is copied first: an export beside it would switch every later test that
loads it with ``backend="auto"`` to onnxruntime.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from model_runtime.model.backends import TorchBackend
from model_runtime.model.checkpoint import load_checkpoint
from model_runtime.model.onnx_backend import ENCODER_FILE, GRAPH_FILES, META_FILE, OnnxBackend, sha256_of
from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.shipped import SHIPPED_CHECKPOINT, onnx_dir_for
from model_runtime.serving.model_api import SleepLM
from model_runtime.training.onnx_export import export_onnx
from psg.errors import PSGError
from psg.model_input import recording_model_epochs
from psg.recording import Recording


@pytest.fixture(scope="module")
def exported(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the tiny checkpoint with its export beside it; returns the checkpoint path."""
    path = tmp_path_factory.mktemp("onnx") / "tiny.pt"
    shutil.copy(tiny_checkpoint, path)
    export_onnx(path)
    return path


@pytest.fixture(scope="module")
def epochs(simulated_recording: Recording) -> np.ndarray:
    return recording_model_epochs(simulated_recording)[:24]


def test_onnx_dir_sits_beside_the_checkpoint(tmp_path: Path) -> None:
    assert onnx_dir_for(tmp_path / "m.pt") == tmp_path / "m.onnx"
    assert onnx_dir_for(str(tmp_path / "m.pt")) == tmp_path / "m.onnx"
    assert onnx_dir_for(None) == SHIPPED_CHECKPOINT.with_suffix(".onnx")


def test_export_writes_both_graphs_and_metadata(exported: Path) -> None:
    folder = onnx_dir_for(exported)
    assert all((folder / name).is_file() for name in GRAPH_FILES)
    meta = json.loads((folder / META_FILE).read_text())
    assert meta["checkpoint"] == "tiny.pt"
    assert meta["checkpoint_sha256"] == sha256_of(exported)
    assert meta["opset"] == 18
    assert meta["torch"] == torch.__version__ and meta["onnx"] and meta["onnxruntime"]
    assert max(meta["verified_max_abs_diff"].values()) < 1e-4
    assert not list(folder.parent.glob("*.tmp-*")), "the temporary export folder is left behind"


def test_encode_matches_torch_with_and_without_a_keep_mask(exported: Path, epochs: np.ndarray) -> None:
    model = load_checkpoint(exported).model
    torch_backend = TorchBackend(model, "cpu")
    onnx_backend = OnnxBackend(onnx_dir_for(exported), threads=1)
    keep = np.zeros((len(epochs), model.encoder.patches), dtype=bool)
    for i in range(len(epochs)):  # localisation's sliding sub-windows
        keep[i, i % 10 : i % 10 + 5] = True
    for mask in (None, keep):
        for got, want in zip(onnx_backend.encode(epochs, mask), torch_backend.encode(epochs, mask), strict=True):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, atol=1e-4)


def test_first_decoder_step_takes_an_empty_cache(exported: Path) -> None:
    backend = OnnxBackend(onnx_dir_for(exported), threads=1)
    past_k, past_v = backend.empty_cache(3)
    assert past_k.shape[3] == 0
    memory = np.random.default_rng(0).standard_normal((3, 2, 32)).astype(np.float32)
    logits, k, v = backend.step(np.array([3, 4, 5]), 0, memory, past_k, past_v)
    assert logits.shape[0] == 3 and k.shape[3] == 1 and v.shape == k.shape
    logits2, k2, _ = backend.step(logits.argmax(1), 1, memory, k, v)
    assert k2.shape[3] == 2 and np.isfinite(logits2).all()


def test_served_step_reuses_cross_attention_only_for_the_same_memory(exported: Path) -> None:
    """``step`` projects each memory array once; a different array (next caption batch) is projected anew
    and every result equals the plain ``decoder_step.onnx`` graph."""
    backend = OnnxBackend(onnx_dir_for(exported), threads=1)
    rng = np.random.default_rng(1)
    memories = [rng.standard_normal((2, 2, 32)).astype(np.float32) for _ in range(2)]
    past_k, past_v = backend.empty_cache(2)
    token = np.array([3, 4])
    for memory in (*memories, memories[0], memories[0].copy()):
        got = backend.step(token, 0, memory, past_k, past_v)
        want = backend.step_graph(token, 0, memory, past_k, past_v)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, atol=1e-5)


def test_greedy_captions_are_the_same_tokens_on_both_backends(exported: Path, epochs: np.ndarray) -> None:
    on_torch = SleepLM.load(exported, backend="torch", device="cpu")
    on_onnx = SleepLM.load(exported, backend="onnx")
    assert on_onnx.backend.name == "onnx"
    emb_t, mem_t = on_torch.encode(epochs)
    emb_o, mem_o = on_onnx.encode(epochs)
    stages_t = [STAGE_LABELS[i] for i in on_torch.stage_probabilities(emb_t).argmax(1)]
    stages_o = [STAGE_LABELS[i] for i in on_onnx.stage_probabilities(emb_o).argmax(1)]
    assert stages_t == stages_o
    captions = on_onnx.generate(mem_o, "stage_event", stages_o)
    assert captions == on_torch.generate(mem_t, "stage_event", stages_t)
    assert any(captions), "an untrained decoder still writes pieces before <eos>"


def test_auto_backend_picks_the_export_beside_the_checkpoint(exported: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("auto prefers torch on a GPU")
    assert SleepLM.load(exported).backend.name == "onnx"


def test_missing_or_incomplete_export_names_the_command(tmp_path: Path, exported: Path) -> None:
    with pytest.raises(PSGError, match="not found.*sleeplm export --onnx"):
        OnnxBackend(tmp_path / "nowhere.onnx")
    partial = tmp_path / "partial.onnx"
    partial.mkdir()
    shutil.copy(onnx_dir_for(exported) / ENCODER_FILE, partial)
    with pytest.raises(PSGError, match=r"incomplete \(missing decoder_step.onnx, .*meta.json\).*sleeplm export"):
        OnnxBackend(partial)
    lonely = tmp_path / "lonely.pt"
    shutil.copy(exported, lonely)
    with pytest.raises(PSGError, match="lonely.onnx not found.*sleeplm export --onnx"):
        SleepLM.load(lonely, backend="onnx")


def test_export_refuses_to_overwrite_a_foreign_folder(tmp_path: Path, exported: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not an export")
    with pytest.raises(PSGError, match="not a SleepLM ONNX export"):
        export_onnx(exported, foreign)
    assert (foreign / "notes.txt").is_file()


def test_a_changed_checkpoint_makes_its_export_stale(tmp_path: Path, exported: Path) -> None:
    path = tmp_path / "tiny.pt"
    shutil.copy(exported, path)
    shutil.copytree(onnx_dir_for(exported), onnx_dir_for(path))
    OnnxBackend(onnx_dir_for(path))  # same bytes: fine
    with path.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(PSGError, match="stale.*sleeplm export --onnx"):
        OnnxBackend(onnx_dir_for(path))
