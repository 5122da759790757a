"""Shared model fixtures: a tiny untrained checkpoint and a simulated half-hour EDF+ night.

Why tiny and untrained: tests check contracts (shapes, JSON, errors, slot filling), never accuracy, and
must not need the shipped checkpoint. The tokenizer is built from real captions of the simulated night so
generated captions use the real slot machinery.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from model_runtime.model.checkpoint import Checkpoint, save_checkpoint
from model_runtime.model.config import ModelConfig
from model_runtime.model.prompts import event_prompts, stage_prompts
from model_runtime.model.recoca import ReCoCa
from model_runtime.model.tokenizer import CaptionTokenizer, slot_pieces
from psg.captions import MODALITIES
from psg.formats.edf import write_edf
from psg.recording import Recording
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline

#: Small enough to build and run in well under a second per batch on two busy cores.
TINY_CONFIG = ModelConfig(
    name="tiny",
    width=32,
    depth=2,
    heads=2,
    decoder_tokens=2,
    embed_dim=16,
    decoder_width=32,
    decoder_depth=1,
    decoder_heads=2,
)


@pytest.fixture(scope="session")
def simulated_recording() -> Recording:
    """A 30-minute simulated night with scored stages and events (AHI 30)."""
    return simulate(synthetic_timeline(hours=0.5, seed=1, ahi=30), seed=1)


@pytest.fixture(scope="session")
def simulated_edf(simulated_recording: Recording, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated night written as EDF+ (stages and events as annotations)."""
    path = tmp_path_factory.mktemp("night") / "night.edf"
    write_edf(simulated_recording, path)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(simulated_recording: Recording, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a saved tiny ReCoCa checkpoint (random weights, real vocabulary, random prompt features)."""
    from psg.captions.night import caption_night

    records, _ = caption_night(simulated_recording, style="varied", seed=0)
    tokenizer = CaptionTokenizer.build(
        (slot_pieces(r["captions"][m], m, r["features"]) for r in records for m in MODALITIES), min_count=1
    )
    rng = np.random.default_rng(0)
    s_prompts, e_prompts = stage_prompts(), event_prompts()
    dim = TINY_CONFIG.text_dim
    s_features = {k: rng.standard_normal((len(v), dim)).astype(np.float32) for k, v in s_prompts.items()}
    e_features = {k: rng.standard_normal((len(v), dim)).astype(np.float32) for k, v in e_prompts.items()}
    torch.manual_seed(0)
    model = ReCoCa(TINY_CONFIG, len(tokenizer)).eval()
    ckpt = Checkpoint(model, tokenizer, s_prompts, s_features, e_prompts, e_features, {}, {"tiny": True})
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Model tests run torch on one thread: the tiny test model is ~8x faster so on a busy 2-core box."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
