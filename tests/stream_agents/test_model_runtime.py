"""SleepLMRuntime (the "sleeplm" live runtime) on a tiny untrained checkpoint: order, per-bed causal
smoothing, replays, unscorable epochs, embeddings and advisories; runtime resolution from the settings.

The checkpoint is random (tests/model/conftest.py), so these tests check contracts, never accuracy.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.shipped import SHIPPED_CHECKPOINT
from model_runtime.model.zero_shot import causal_smooth
from model_runtime.serving.caption_records import EMBEDDING_DECIMALS, caption_records, inference_records
from model_runtime.serving.rules_runtime import RulesRuntime
from model_runtime.serving.runtimes import RUNTIMES, chosen_runtime, default_runtime, load_runtime
from model_runtime.serving.sleeplm_runtime import SleepLMRuntime, is_scorable, load_model
from plumbing.settings import Settings
from psg.captions import MODALITIES
from psg.codecs import EpochMessage
from psg.errors import PSGError
from psg.features import epoch_features
from psg.json_codec import decode_json, encode_json
from psg.model_input import recording_model_epochs
from psg.montage import AUX_CHANNELS, EEG_C3, EEG_C4, EOG_L, MODEL_CHANNELS
from psg.recording import Recording
from tests.model.conftest import simulated_recording, tiny_checkpoint  # noqa: F401  (shared fixtures)

N_EPOCHS = 16
ADVISORY_KEYS = {"type", "onset_s", "duration_s", "channel", "source", "score"}


@pytest.fixture(scope="module")
def night(simulated_recording: Recording) -> tuple[np.ndarray, list[dict]]:  # noqa: F811
    """Model input and measured features of the first ``N_EPOCHS`` epochs of the simulated night."""
    return recording_model_epochs(simulated_recording)[:N_EPOCHS], epoch_features(simulated_recording)[:N_EPOCHS]


@pytest.fixture
def runtime(tiny_checkpoint: Path) -> SleepLMRuntime:  # noqa: F811
    return SleepLMRuntime(tiny_checkpoint, backend="torch")


def good_quality() -> dict[str, list[str]]:
    return {ch: [] for ch in (*MODEL_CHANNELS, *AUX_CHANNELS)}


def messages(
    night: tuple[np.ndarray, list[dict]], bed: str, epochs: range, recording: str = "rec-1", shift: int = 0
) -> list[EpochMessage]:
    """EpochMessages of ``bed`` for ``epochs``, signals and features of night epoch ``(e + shift) % n``."""
    x, features = night
    out = []
    for e in epochs:
        i = (e + shift) % len(x)
        out.append(
            EpochMessage(
                bed_id=bed,
                recording_id=recording,
                epoch=e,
                start_time=1.7e9 + 30.0 * e,
                signals=x[i],
                aux=np.full((2, 30), np.nan, np.float32),
                quality=good_quality(),
                features=features[i],
                events=[],
                end_received_at=1.7e9 + 30.0 * (e + 1),
            )
        )
    return out


def interleave(*streams: list[EpochMessage]) -> list[EpochMessage]:
    return [m for group in zip(*streams, strict=True) for m in group]


def probs(results: list) -> np.ndarray:
    return np.array([r.probabilities for r in results])


def test_sleeplm_is_registered_and_load_runtime_passes_only_the_options_a_runtime_takes(
    tiny_checkpoint: Path,  # noqa: F811
) -> None:
    runtime = load_runtime("sleeplm", checkpoint=tiny_checkpoint, backend="torch")
    assert isinstance(runtime, SleepLMRuntime) and RUNTIMES["sleeplm"] is SleepLMRuntime
    assert runtime.name == "sleeplm"
    rules = load_runtime("rules", checkpoint=tiny_checkpoint, backend="torch")
    assert isinstance(rules, RulesRuntime)
    with pytest.raises(ValueError, match="sleeplm"):
        load_runtime("nope")


def test_a_batch_of_several_beds_is_answered_in_order(runtime: SleepLMRuntime, night) -> None:
    batch = interleave(messages(night, "bed-a", range(6)), messages(night, "bed-b", range(6), shift=7))
    results = runtime.infer(batch)
    assert [(r.bed_id, r.recording_id, r.epoch) for r in results] == [
        (m.bed_id, m.recording_id, m.epoch) for m in batch
    ]
    dim = runtime.lm.checkpoint.config.embed_dim
    for message, r in zip(batch, results, strict=True):
        assert r.stage_source == "model" and r.stage in STAGE_LABELS
        assert len(r.probabilities) == 5 and abs(sum(r.probabilities) - 1.0) < 1e-6
        assert r.stage == STAGE_LABELS[int(np.argmax(r.probabilities))]
        assert set(r.captions) == set(MODALITIES) and all(text.strip() for text in r.captions.values())
        assert r.embedding.shape == (dim,) and abs(float(np.linalg.norm(r.embedding)) - 1.0) < 1e-3
        assert r.advisories == []  # the tiny checkpoint has no calibrated thresholds
        # The four modality levels are the measured-feature captions, word for word the rules runtime's.
        rules = RulesRuntime().infer([message])[0]
        assert {m: r.captions[m] for m in MODALITIES[1:]} == {m: rules.captions[m] for m in MODALITIES[1:]}


def test_smoothing_is_causal_per_bed_and_continues_across_batches(runtime: SleepLMRuntime, night) -> None:
    a, b = messages(night, "bed-a", range(10)), messages(night, "bed-b", range(10), shift=5)
    # Offline: the same night's zero-shot probabilities, causally smoothed in one go.
    x = np.stack([m.signals for m in a])
    offline = causal_smooth(runtime.lm.stage_probabilities(runtime.lm.embed(x)))
    # Live: bed a's epochs in three batches, interleaved with bed b (whose chain must stay separate).
    mixed = interleave(a, b)
    results = runtime.infer(mixed[:6]) + runtime.infer(mixed[6:7]) + runtime.infer(mixed[7:])
    live_a = probs([r for r in results if r.bed_id == "bed-a"])
    np.testing.assert_allclose(live_a, offline, atol=1e-5)
    # Causal: the first epochs' answers do not depend on what came after; bed b alone gives bed b's answer.
    alone_b = SleepLMRuntime.from_model(runtime.lm)
    np.testing.assert_allclose(probs(alone_b.infer(b)), probs([r for r in results if r.bed_id == "bed-b"]), atol=1e-5)
    np.testing.assert_allclose(probs(alone_b.infer(messages(night, "bed-c", range(4)))), offline[:4], atol=1e-5)
    # Smoothing really is applied (a sticky chain differs from the raw zero-shot probabilities).
    assert not np.allclose(live_a, runtime.lm.stage_probabilities(runtime.lm.embed(x)), atol=1e-6)


def test_a_replayed_epoch_does_not_advance_the_chain_twice(
    runtime: SleepLMRuntime, night, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = messages(night, "bed-a", range(12))
    lm = runtime.lm
    straight = causal_smooth(lm.stage_probabilities(lm.embed(np.stack([m.signals for m in a]))))
    replaying = SleepLMRuntime.from_model(runtime.lm)
    first = replaying.infer(a[:8])
    again = replaying.infer(a[4:8])  # a restarted worker re-sends held epochs: answered from the stored priors
    np.testing.assert_allclose(probs(again), probs(first[4:8]), atol=1e-6)
    assert [r.stage for r in again] == [r.stage for r in first[4:8]]
    rest = replaying.infer(a[8:])
    np.testing.assert_allclose(probs(first + rest), straight, atol=1e-5)
    # A replay older than the stored priors gets the unsmoothed probabilities, and the chain stays as it was.
    monkeypatch.setattr("model_runtime.serving.sleeplm_runtime.PRIOR_EPOCHS", 2)
    small = SleepLMRuntime.from_model(runtime.lm)
    small.infer(a[:8])
    old = small.infer([a[1]])[0]
    raw = lm.stage_probabilities(lm.embed(a[1].signals[None]))[0]
    np.testing.assert_allclose(old.probabilities, raw, atol=1e-5)
    np.testing.assert_allclose(probs(small.infer(a[8:])), straight[8:], atol=1e-5)


def test_a_new_recording_or_a_gap_restarts_or_propagates_the_chain(runtime: SleepLMRuntime, night) -> None:
    runtime.infer(messages(night, "bed-a", range(8)))
    renamed = messages(night, "bed-a", range(3), recording="rec-2")
    fresh = SleepLMRuntime.from_model(runtime.lm)
    np.testing.assert_allclose(probs(runtime.infer(renamed)), probs(fresh.infer(renamed)), atol=1e-5)
    # Epochs missing from the stream (a gap): the next one is still answered, with a proper distribution.
    later = runtime.infer(messages(night, "bed-a", range(40, 42), recording="rec-2"))
    assert all(abs(sum(r.probabilities) - 1.0) < 1e-6 for r in later)


def test_unscorable_epochs_still_get_a_result(runtime: SleepLMRuntime, night) -> None:
    batch = messages(night, "bed-a", range(4))
    lost = good_quality() | {EEG_C3: ["missing"], EEG_C4: ["flat"], EOG_L: ["missing", "gap"]}
    half = good_quality() | {EEG_C3: ["missing"], EEG_C4: ["flat"]}
    assert not is_scorable(lost) and is_scorable(half) and is_scorable({})
    batch[1] = dataclasses.replace(batch[1], quality=lost, signals=np.zeros_like(batch[1].signals))
    batch[2] = dataclasses.replace(batch[2], quality=half)
    results = runtime.infer(batch)
    assert [r.epoch for r in results] == [0, 1, 2, 3]
    assert results[1].stage == "?" and results[1].stage_source == "model"
    assert results[1].probabilities is None and results[1].embedding is None and results[1].advisories == []
    assert set(results[1].captions) == set(MODALITIES) and all(t.strip() for t in results[1].captions.values())
    assert results[2].stage in STAGE_LABELS and results[2].embedding is not None
    # Only unscorable epochs in a batch: no model call needed, still one result each; a replay of one is fine.
    only = runtime.infer([batch[1], dataclasses.replace(batch[1], bed_id="bed-z")] + [batch[1]])
    assert [r.stage for r in only] == ["?", "?", "?"]


def test_advisories_have_the_detected_event_shape(runtime: SleepLMRuntime, night) -> None:
    lm = runtime.lm
    lm.checkpoint.calibration["event_thresholds"] = {label: -1.0 for label in lm.event_labels}  # all fire
    try:
        results = runtime.infer(messages(night, "bed-a", range(3, 5)))
    finally:
        lm.checkpoint.calibration.pop("event_thresholds")
    for r in results:
        assert [a["type"] for a in r.advisories] == lm.event_labels
        for advisory in r.advisories:
            assert set(advisory) == ADVISORY_KEYS and advisory["source"] == "model"
            assert advisory["onset_s"] == r.epoch * 30.0 and advisory["duration_s"] == 30.0
            assert -1.0 <= advisory["score"] <= 1.0
    json.dumps([r.advisories for r in results], allow_nan=False)


def test_inference_records_carry_embeddings_only_for_runtimes_that_embed(runtime: SleepLMRuntime, night) -> None:
    batch = interleave(messages(night, "bed-a", range(3)), messages(night, "bed-b", range(3)))
    records = inference_records(runtime, batch)
    assert [(r["bed_id"], r["epoch"]) for r in records.captions] == [(m.bed_id, m.epoch) for m in batch]
    assert [(r["bed_id"], r["epoch"]) for r in records.embeddings] == [(m.bed_id, m.epoch) for m in batch]
    assert all(r["runtime"] == "sleeplm" and r["stage_source"] == "model" for r in records.captions)
    for record in records.embeddings:
        decoded = decode_json(encode_json(record), ("bed_id", "recording_id", "epoch", "start_time", "embedding"))
        assert decoded["schema"] == 1 and decoded["runtime"] == "sleeplm"
        assert len(decoded["embedding"]) == runtime.lm.checkpoint.config.embed_dim
        assert all(round(v, EMBEDDING_DECIMALS) == v for v in decoded["embedding"])
    rules = inference_records(RulesRuntime(), batch)
    assert rules.embeddings == [] and rules.captions == caption_records(RulesRuntime(), batch)


def _served(settings: Settings) -> str:
    """The runtime a worker started with ``settings`` serves (what ``create_app`` resolves)."""
    return chosen_runtime(settings.runtime, settings.checkpoint)


def test_runtime_resolution_from_the_settings(
    tiny_checkpoint: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shipped = "sleeplm" if SHIPPED_CHECKPOINT.is_file() else "rules"
    for name in ("SLEEPLM_RUNTIME", "SLEEPLM_CHECKPOINT", "SLEEPLM_MODEL_BACKEND", "SLEEPLM_LAB_HEAD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env file
    assert default_runtime() == shipped and _served(Settings()) == shipped
    assert _served(Settings(checkpoint=tiny_checkpoint)) == "sleeplm"
    monkeypatch.setenv("SLEEPLM_RUNTIME", "rules")
    monkeypatch.setenv("SLEEPLM_CHECKPOINT", str(tiny_checkpoint))
    monkeypatch.setenv("SLEEPLM_MODEL_BACKEND", "torch")
    settings = Settings()
    assert _served(settings) == "rules"
    assert settings.runtime_options == {"checkpoint": tiny_checkpoint, "backend": "torch", "lab_head": None}
    monkeypatch.setenv("SLEEPLM_RUNTIME", "")
    assert _served(Settings()) == "sleeplm"
    monkeypatch.setenv("SLEEPLM_MODEL_BACKEND", "tensorflow")
    with pytest.raises(ValueError, match="model_backend"):
        Settings()


def test_a_missing_checkpoint_is_named_at_start(tmp_path: Path) -> None:
    from stream_agents.app import create_app

    missing = tmp_path / "none.pt"
    with pytest.raises(PSGError, match="none.pt"):
        load_model(missing, backend="torch")
    settings = Settings(kafka="127.0.0.1:1", data_dir=tmp_path / "data", checkpoint=missing)
    with pytest.raises(ValueError, match="SLEEPLM_CHECKPOINT"):
        create_app(settings, runtime_name="sleeplm")
