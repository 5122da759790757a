"""stage_night on a recording with a gap (EDF+D): gap epochs are "gap", listed, and never read by the model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.night import NightInput, describe_night, load_night_input, stage_night
from model_runtime.serving.night_gaps import GAP_VERDICT, recorded_epochs
from psg.recording import Recording, Signal
from tests.model.test_stage_head import _random_head

GAP = (310.0, 420.0)  # epochs 10-13 (the first and last partly)
GAP_EPOCHS = [10, 11, 12, 13]


@pytest.fixture(scope="module")
def lm(tiny_checkpoint: Path) -> SleepLM:
    return SleepLM.load(tiny_checkpoint, backend="torch")


def _gapped(night: NightInput, fill: float | None = 0.0) -> NightInput:
    """``night`` with every signal replaced by ``fill`` in GAP (None: loud noise), the gap declared."""
    rng = np.random.default_rng(5)
    signals = {}
    for label, sig in night.recording.signals.items():
        data = sig.data.copy()
        i0, i1 = int(GAP[0] * sig.fs), int(GAP[1] * sig.fs)
        data[i0:i1] = rng.normal(0, 300, i1 - i0) if fill is None else fill
        signals[label] = Signal(label, data, sig.fs, sig.unit)
    recording = Recording(
        night.recording.record_id, signals, night.recording.start_time, night.recording.timeline, gaps=(GAP,)
    )
    return replace(night, recording=recording)


@pytest.fixture(scope="module")
def night(simulated_edf: Path) -> NightInput:
    return load_night_input(simulated_edf)


def test_gap_epochs_are_gap_with_zero_probabilities_and_listed(lm: SleepLM, night: NightInput) -> None:
    gapped = _gapped(night)
    result = stage_night(lm, gapped, smooth=False)
    assert result["gaps"] == GAP_EPOCHS
    assert [i for i, s in enumerate(result["stages"]) if s == GAP_VERDICT] == GAP_EPOCHS
    assert [i for i, s in enumerate(result["best_stages"]) if s == GAP_VERDICT] == GAP_EPOCHS
    probs = np.asarray(result["probabilities"])
    assert probs.shape == (night.n_epochs, 5) and not probs[GAP_EPOCHS].any()
    recorded = np.ones(night.n_epochs, dtype=bool)
    recorded[GAP_EPOCHS] = False
    np.testing.assert_allclose(probs[recorded], lm.stage_probabilities(lm.embed(night.x[recorded])), atol=1e-6)
    assert result["uncertain"] == []
    assert stage_night(lm, night)["gaps"] == []


def test_the_stage_head_never_reads_a_gap(lm: SleepLM, night: NightInput) -> None:
    head = _random_head(np.random.default_rng(2), dim=lm.stage_classes.shape[1])
    head.classes = lm.stage_classes.astype(np.float32)
    lm.stage_head = head
    try:
        zeros, noise = stage_night(lm, _gapped(night)), stage_night(lm, _gapped(night, fill=None))
    finally:
        lm.stage_head = None
    assert zeros["gaps"] == noise["gaps"] == GAP_EPOCHS
    assert zeros["stages"] == noise["stages"]  # what the gap holds changes nothing: not even the z-scores
    np.testing.assert_allclose(zeros["probabilities"], noise["probabilities"])
    assert not np.asarray(zeros["probabilities"])[GAP_EPOCHS].any()
    assert all(u["epoch"] not in GAP_EPOCHS for u in zeros["uncertain"])


def test_recorded_epochs_cut_the_gap_epochs_out(night: NightInput) -> None:
    gapped = _gapped(night).recording
    cut = recorded_epochs(gapped, gapped.gap_epochs())
    assert cut.n_epochs == gapped.n_epochs - len(GAP_EPOCHS) and not cut.gaps
    eeg = next(iter(cut.signals.values()))
    source = gapped.signals[eeg.label]
    np.testing.assert_array_equal(eeg.window(300.0, 330.0), source.window(420.0, 450.0))


def test_describe_says_nothing_was_recorded_in_a_gap_epoch(lm: SleepLM, night: NightInput) -> None:
    captions = describe_night(lm, _gapped(night), slice(9, 12), "all")["captions"]
    texts = {(c["epoch"], c["modality"]): c["text"] for c in captions}
    assert texts[(11, "brain")] == "No signal was recorded in this epoch (recording gap)."
    assert texts[(10, "stage_event")] == "No signal was recorded in this epoch from 10.0 to 30.0 s (recording gap)."
    assert "recording gap" not in texts[(9, "stage_event")]
