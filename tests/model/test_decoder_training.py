"""``sleeplm train --decoder-only``: a new caption decoder on a frozen checkpoint (issue 15's retrain path).

The promise is that only the caption side moves: every tensor outside ``CAPTION_SIDE`` is bit-identical,
so embeddings, zero-shot stages and the fingerprint the reference bank is tied to stay as they were,
while the vocabulary follows the corpus captions and kept pieces keep their learned rows. Runs the real
command on the tiny test model, with the corpus cache filled by a short simulated night under every key
the corpus would render (no 8-h synthetic nights to render in a test).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from model_runtime.model.checkpoint import CAPTION_SIDE, load_checkpoint
from model_runtime.serving.model_api import SleepLM
from model_runtime.training.corpus import default_specs, night_from_recording, save_night
from model_runtime.training.dataset import build_tokenizer, load_split
from model_runtime.training.decoder_training import remap_decoder
from psg.model_input import recording_model_epochs
from psg.recording import Recording
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline
from sleeplm.cli import app


def _corpus(cache: Path, data: Path, recording: Recording) -> None:
    """Every night the default corpus of an empty data folder would render, as the one short night."""
    for spec in default_specs(data, per_source=12, synthetic=8):
        night = night_from_recording(recording, spec.key, spec.split, seed=spec.seed)
        save_night(night, cache)


def test_decoder_only_training_moves_only_the_caption_side(tiny_checkpoint: Path, tmp_path: Path) -> None:
    data, cache, out = tmp_path / "data", tmp_path / "corpus", tmp_path / "retrained.pt"
    data.mkdir()
    recording = simulate(synthetic_timeline(hours=0.25, seed=2, ahi=40), seed=3)
    _corpus(cache, data, recording)
    args = ["train", "--decoder-only", "--init", str(tiny_checkpoint), "--out", str(out), "--steps", "4"]
    result = CliRunner().invoke(app, [*args, "--data", str(data), "--cache", str(cache), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["decoder_retraining"]

    before, after = load_checkpoint(tiny_checkpoint), load_checkpoint(out)
    old, new = before.model.state_dict(), after.model.state_dict()
    frozen = [name for name in old if not name.startswith(CAPTION_SIDE)]
    assert frozen and all(torch.equal(old[name], new[name]) for name in frozen)
    assert not torch.equal(old["memory_proj.weight"], new["memory_proj.weight"])  # the caption side trained
    assert after.fingerprint == before.fingerprint
    assert after.tokenizer.vocab == build_tokenizer(load_split(cache, "train", progress=False)).vocab
    assert report["vocab"]["after"] == len(after.tokenizer) and report["options"]["steps"] == 4
    assert after.stage_prompt_features.keys() == before.stage_prompt_features.keys()
    assert after.calibration == before.calibration

    x = np.asarray(recording_model_epochs(recording)[:6], dtype=np.float32)
    lm_before, lm_after = SleepLM.load(tiny_checkpoint, backend="torch"), SleepLM.load(out, backend="torch")
    np.testing.assert_array_equal(lm_before.embed(x), lm_after.embed(x))
    assert lm_before.stage(x)[0] == lm_after.stage(x)[0]
    assert len(lm_after.describe(x, [{}] * len(x))) == len(x)


def test_remapped_decoder_keeps_the_rows_of_kept_pieces(tiny_checkpoint: Path) -> None:
    ckpt = load_checkpoint(tiny_checkpoint)
    old = ckpt.tokenizer
    vocab = [*old.vocab[:20], "▁brand-new", *old.vocab[25:]]
    new = type(old)(vocab)
    rows = ckpt.model.decoder.embed.weight.detach().clone()
    layer = ckpt.model.decoder.layers[0].mlp[0].weight.detach().clone()
    model = remap_decoder(ckpt.model, old, new)
    weight = model.decoder.embed.weight.detach()
    assert weight.shape[0] == len(vocab) and model.decoder.head.weight is model.decoder.embed.weight
    for i, piece in enumerate(vocab):
        if piece in old.index:
            assert torch.equal(weight[i], rows[old.index[piece]])
    assert torch.equal(model.decoder.layers[0].mlp[0].weight, layer)
