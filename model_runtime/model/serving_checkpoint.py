"""What serving needs of a checkpoint, in one NumPy file beside its ONNX graphs: no torch to load it.

A checkpoint (``.pt``) is a torch file, and ``torch.load`` is the only reader of it. Serving (onnxruntime
graphs for the signal side) needs from it only the caption vocabulary, the prompts and their frozen MiniLM
features, the calibration, the text projection (384 -> E, two linear layers around an exact GELU: 0.2 M
weights, applied here in NumPy) and a few sizes. ``write_serving_file`` (run by ``sleeplm export``, train
extra) writes them to ``<name>.onnx/serving.npz``; ``load_serving_checkpoint`` reads it with NumPy alone
(``allow_pickle=False``: a checkpoint is data, never code). The export's ``meta.json`` ties the folder to
the ``.pt`` it came from (its sha256), and ``OnnxBackend`` refuses a stale folder, so this file can never
serve another checkpoint's prompts.

``ServingCheckpoint`` and ``model_runtime.model.checkpoint.Checkpoint`` share the interface ``SleepLM`` uses
(``config``, ``tokenizer``, prompts, ``calibration``, ``patches``, ``logit_scale``, ``embed_text``,
``fingerprint``), so ``SleepLM`` runs on either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import erf

from model_runtime.model.config import ModelConfig
from model_runtime.model.tokenizer import CaptionTokenizer
from psg.errors import PSGError
from psg.montage import MODEL_EPOCH_SAMPLES

SERVING_FILE = "serving.npz"
FORMAT = "sleeplm-serving/1"
_PROJECTION = ("text_proj.0.weight", "text_proj.0.bias", "text_proj.2.weight", "text_proj.2.bias")


@dataclass
class ServingCheckpoint:
    """A checkpoint's serving data, read without torch; see the module docstring."""

    config: ModelConfig
    tokenizer: CaptionTokenizer
    stage_prompts: dict[str, list[str]]
    stage_prompt_features: dict[str, np.ndarray]
    event_prompts: dict[str, list[str]]
    event_prompt_features: dict[str, np.ndarray]
    projection: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # w1 (384, 384), b1, w2 (E, 384), b2
    logit_scale: float  # exp(logit_scale) clamped to 100, as the model's contrastive loss uses it
    fingerprint: str  # model_runtime.model.checkpoint.weights_fingerprint of the weights it came from
    calibration: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)

    @property
    def patches(self) -> int:
        return MODEL_EPOCH_SAMPLES // self.config.patch_samples

    def embed_text(self, features: np.ndarray) -> np.ndarray:
        """Frozen MiniLM sentence embeddings (N, 384) -> unit vectors in the shared space (N, E): the model's
        ``text_proj`` (Linear, exact GELU, Linear) and L2 normalisation, in float32 NumPy."""
        w1, b1, w2, b2 = self.projection
        h = np.asarray(features, np.float32) @ w1.T + b1
        h = 0.5 * h * (1.0 + erf(h / np.float32(np.sqrt(2.0))))
        z = (h @ w2.T + b2).astype(np.float32)
        return z / np.maximum(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def write_serving_file(ckpt: Any, folder: Path) -> Path:
    """Write ``folder/serving.npz`` from a loaded torch ``Checkpoint`` (train extra)."""
    state = ckpt.model.state_dict()
    arrays: dict[str, np.ndarray] = {name: state[name].detach().cpu().float().numpy() for name in _PROJECTION}
    for kind in ("stage", "event"):
        for label, features in getattr(ckpt, f"{kind}_prompt_features").items():
            arrays[f"{kind}_prompt_features/{label}"] = np.asarray(features, np.float32)
    meta = {
        "format": FORMAT,
        "config": ckpt.config.to_dict(),
        "vocab": ckpt.tokenizer.vocab,
        "stage_prompts": ckpt.stage_prompts,
        "event_prompts": ckpt.event_prompts,
        "calibration": ckpt.calibration,
        "training": ckpt.training,
        "logit_scale": ckpt.logit_scale,
        "fingerprint": ckpt.fingerprint,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    path = Path(folder) / SERVING_FILE
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    return path


def load_serving_checkpoint(folder: Path) -> ServingCheckpoint:
    """Read ``folder/serving.npz``; ``PSGError`` naming the file and the fix when it is missing or foreign."""
    path = Path(folder) / SERVING_FILE
    hint = f"run `sleeplm export --onnx {folder}` (train extra)"
    if not path.is_file():
        raise PSGError(f"{path} not found: the ONNX export predates torch-free serving; {hint}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        meta = json.loads(str(arrays.pop("meta")))
    except (OSError, ValueError, KeyError) as exc:
        raise PSGError(f"{path}: not a SleepLM serving file ({exc}); {hint}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PSGError(f"{path}: not a SleepLM serving file (expected format {FORMAT!r}); {hint}")
    features: dict[str, dict[str, np.ndarray]] = {"stage": {}, "event": {}}
    for name, array in arrays.items():
        kind, _, label = name.partition("_prompt_features/")
        if label:
            features[kind][label] = array
    return ServingCheckpoint(
        config=ModelConfig.from_dict(meta["config"]),
        tokenizer=CaptionTokenizer(meta["vocab"]),
        stage_prompts=meta["stage_prompts"],
        stage_prompt_features=features["stage"],
        event_prompts=meta["event_prompts"],
        event_prompt_features=features["event"],
        projection=tuple(arrays[name] for name in _PROJECTION),
        logit_scale=float(meta["logit_scale"]),
        fingerprint=str(meta["fingerprint"]),
        calibration=meta.get("calibration", {}),
        training=meta.get("training", {}),
    )
