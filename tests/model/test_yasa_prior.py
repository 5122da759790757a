"""The YASA prior block of the stage head's input: its shape, missing channels, short files and failures.

Why these: the block must never stop staging. Files without EEG, EOG or EMG, files of one epoch or less,
slow channels and a YASA error all have to give a block of the right shape whose flag says what happened.
"""

from __future__ import annotations

import numpy as np
import pytest

import psg.features.yasa_prior as yp
from psg.features.stage_spectra import N_INPUT, PRIOR_COLUMNS, stage_feature_matrix
from psg.features.yasa_prior import N_PRIOR, yasa_prior
from psg.montage import EEG_C3, EEG_C4, EMG_CHIN, EOG_L
from psg.recording import Recording, Signal


@pytest.fixture(scope="module")
def short(simulated_recording: Recording) -> Recording:
    """The first 6 minutes (12 epochs) of EEG, EOG and chin EMG."""
    out = {}
    for label in (EEG_C3, EEG_C4, EOG_L, EMG_CHIN):
        sig = simulated_recording.signals[label]
        out[label] = Signal(label, sig.data[: int(360 * sig.fs)], sig.fs, sig.unit)
    return Recording("short", out)


def _only(recording: Recording, *labels: str, seconds: float | None = None) -> Recording:
    out = {}
    for label in labels:
        sig = recording.signals[label]
        data = sig.data if seconds is None else sig.data[: int(seconds * sig.fs)]
        out[label] = Signal(label, data, sig.fs, sig.unit)
    return Recording("part", out)


def test_block_shape_probabilities_and_flag(short: Recording) -> None:
    prior = yasa_prior(short)
    assert prior.shape == (12, N_PRIOR)
    assert (prior[:, -1] == 1).all()
    np.testing.assert_allclose(prior[:, :5].sum(axis=1), 1.0, atol=1e-6)
    x = stage_feature_matrix(short).model_input()
    assert x.shape == (12, N_INPUT)
    np.testing.assert_allclose(x[:, PRIOR_COLUMNS], prior, atol=1e-6)


def test_missing_channels(short: Recording) -> None:
    eeg_only = yasa_prior(_only(short, EEG_C4))
    assert (eeg_only[:, -1] == 1).all()
    no_eeg = yasa_prior(_only(short, EOG_L, EMG_CHIN))
    assert no_eeg.shape == (12, N_PRIOR) and not no_eeg.any()
    # a 1-Hz chin EMG (Sleep-EDF's) cannot carry its band: ignored, the EEG is still staged
    slow = Signal(EMG_CHIN, short.signals[EMG_CHIN].data[::256], 1.0, "uV")
    with_slow = yasa_prior(Recording("s", {EEG_C3: short.signals[EEG_C3], EMG_CHIN: slow}))
    assert (with_slow[:, -1] == 1).all()
    assert yp.usable_signal(slow, "emg") is None


def test_short_files(short: Recording) -> None:
    one = yasa_prior(_only(short, EEG_C3, seconds=30.0))
    assert one.shape == (1, N_PRIOR) and one[0, -1] == 1  # YASA warns under 5 min but stages one epoch
    assert yasa_prior(_only(short, EEG_C3, seconds=20.0)).shape == (0, N_PRIOR)
    assert yasa_prior(_only(short, EEG_C3, seconds=20.0), n_epochs=1).tolist() == [[0.0] * N_PRIOR]


def test_bad_epochs_and_yasa_failure(short: Recording, monkeypatch: pytest.MonkeyPatch) -> None:
    sig = short.signals[EEG_C3]
    data = sig.data.copy()
    per = int(30 * sig.fs)
    data[2 * per : 3 * per] = np.nan
    prior = yasa_prior(Recording("gap", {EEG_C3: Signal(EEG_C3, data, sig.fs, sig.unit)}))
    assert prior[2, -1] == 0 and not prior[2].any()
    assert (np.delete(prior[:, -1], 2) == 1).all()

    def broken(*_: object) -> np.ndarray:
        raise RuntimeError("no classifier")

    monkeypatch.setattr(yp, "_yasa_probabilities", broken)
    failed = yasa_prior(short)
    assert failed.shape == (12, N_PRIOR) and not failed.any()
