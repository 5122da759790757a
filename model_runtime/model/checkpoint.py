"""Checkpoint files: weights (float16), config, vocabulary, prompt embeddings and calibration in one file.

The prompts' frozen MiniLM embeddings travel inside the checkpoint, so serving stages and events needs
no text encoder at all; it is loaded only for new text (queries, watch rules). Loading uses
``torch.load(weights_only=True)``: a checkpoint is data, never code.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from model_runtime.model.config import ModelConfig
from model_runtime.model.recoca import ReCoCa
from model_runtime.model.shipped import checkpoint_or_shipped
from model_runtime.model.tokenizer import CaptionTokenizer
from psg.errors import PSGError

FORMAT = "sleeplm-recoca/1"
#: Parameters that only write captions (the decoder and the projection into its memory). They decide no
#: embedding, stage or event score, so the fingerprint leaves them out: a decoder-only retrain
#: (``model_runtime.training.decoder_training``) keeps the reference bank built on the embeddings valid.
CAPTION_SIDE = ("decoder.", "memory_proj.")
#: The checkpoint shipped in the repository (``sleeplm train --config small`` reproduces it).


@dataclass
class Checkpoint:
    """A loaded model plus everything needed to use it."""

    model: ReCoCa
    tokenizer: CaptionTokenizer
    stage_prompts: dict[str, list[str]]
    stage_prompt_features: dict[str, np.ndarray]  # label -> (n_prompts, 384)
    event_prompts: dict[str, list[str]]
    event_prompt_features: dict[str, np.ndarray]
    calibration: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)

    # --- the interface SleepLM uses, shared with model_runtime.model.serving_checkpoint.ServingCheckpoint ---
    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def patches(self) -> int:
        return self.model.encoder.patches

    @property
    def logit_scale(self) -> float:
        """exp(logit_scale) clamped to 100, as the contrastive loss uses it."""
        return float(self.model.logit_scale.detach().exp().clamp(max=100))

    def embed_text(self, features: np.ndarray) -> np.ndarray:
        """Frozen MiniLM sentence embeddings (N, 384) -> unit vectors (N, E) in the shared space."""
        with torch.inference_mode():
            return self.model.embed_text(torch.from_numpy(np.asarray(features, np.float32))).numpy()

    @property
    def fingerprint(self) -> str:
        """A short hash of the weights that make embeddings (all but ``CAPTION_SIDE``): the same checkpoint on
        any backend gives the same fingerprint, a retrained signal or text side another (the reference bank
        is tied to it), a retrained caption decoder the same."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            if name.startswith(CAPTION_SIDE):
                continue
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().numpy().tobytes())
        return digest.hexdigest()[:16]


def save_checkpoint(ckpt: Checkpoint, path: Path) -> Path:
    """Write ``ckpt`` (weights as float16) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to(torch.float16) if v.is_floating_point() else v for k, v in ckpt.model.state_dict().items()
    }
    payload = {
        "format": FORMAT,
        "config": ckpt.model.config.to_dict(),
        "vocab": ckpt.tokenizer.vocab,
        "state_dict": state,
        "stage_prompts": ckpt.stage_prompts,
        "stage_prompt_features": {k: torch.from_numpy(v) for k, v in ckpt.stage_prompt_features.items()},
        "event_prompts": ckpt.event_prompts,
        "event_prompt_features": {k: torch.from_numpy(v) for k, v in ckpt.event_prompt_features.items()},
        "calibration": ckpt.calibration,
        "training": ckpt.training,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path | None = None) -> Checkpoint:
    """Read a checkpoint (default: the shipped one); clear errors for a missing or foreign file."""
    path = checkpoint_or_shipped(path)
    if not path.is_file():
        raise PSGError(f"model checkpoint {path} not found; train one with `sleeplm train --out {path}`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not our checkpoint"
        raise PSGError(f"{path}: not a SleepLM checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise PSGError(f"{path}: not a SleepLM checkpoint (expected format {FORMAT!r})")
    config = ModelConfig.from_dict(payload["config"])
    tokenizer = CaptionTokenizer(payload["vocab"])
    model = ReCoCa(config, len(tokenizer))
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
    model.eval()
    return Checkpoint(
        model=model,
        tokenizer=tokenizer,
        stage_prompts=payload["stage_prompts"],
        stage_prompt_features={k: v.float().numpy() for k, v in payload["stage_prompt_features"].items()},
        event_prompts=payload["event_prompts"],
        event_prompt_features={k: v.float().numpy() for k, v in payload["event_prompt_features"].items()},
        calibration=payload.get("calibration", {}),
        training=payload.get("training", {}),
    )
