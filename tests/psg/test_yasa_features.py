"""The YASA port equals YASA: the same features, and the shipped classifiers give the same probabilities.

Why: serving stages with ``psg.features.yasa_features`` and the LightGBM models in
``psg/features/yasa_classifiers/`` so that the base install needs no ``yasa`` (MNE, antropy, numba). The stage
head leans on these probabilities on real signals (issue 12), so they must be YASA's: here the real YASA 0.8.1
(the train extra) computes them beside the port, on a simulated night and on the real recordings we have.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import psg.features.yasa_prior as yp
from psg.features.night_reference import night_statistics
from psg.features.yasa_features import centred_triangular_mean, past_mean, robust_scale_with, staging_features
from psg.formats.edf import read_mapped_edf
from psg.montage import EEG_C3, EEG_C4, EMG_CHIN, EOG_L
from psg.recording import Recording, Signal
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline
from tests.conftest import real_file

yasa = pytest.importorskip("yasa", reason="the comparison needs the real YASA (the train extra)")
mne = pytest.importorskip("mne", reason="YASA takes its signals as an MNE Raw")

CHANNEL_SETS = (("eeg",), ("eeg", "eog"), ("eeg", "emg"), ("eeg", "eog", "emg"))


@pytest.fixture(scope="module")
def night() -> Recording:
    """40 simulated minutes (80 epochs) with two EEG derivations, EOG and chin EMG."""
    return simulate(synthetic_timeline(hours=40 / 60, seed=7, ahi=15), seed=7)


def _yasa_features(signals: dict[str, np.ndarray]) -> object:
    """YASA's own ``SleepStaging.get_features`` of 100-Hz signals in uV (a pandas DataFrame)."""
    names = list(signals)
    raw = mne.io.RawArray(
        np.stack(list(signals.values())) * 1e-6, mne.create_info(names, 100.0, names), verbose="error"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("yasa").setLevel(logging.ERROR)
        staging = yasa.SleepStaging(
            raw,
            eeg_name="eeg",
            eog_name="eog" if "eog" in signals else None,
            emg_name="emg" if "emg" in signals else None,
        )
        return staging.get_features()


def _yasa_probabilities(channels: dict[str, Signal], n: int, reference: object) -> np.ndarray:
    """What ``yasa_prior`` computed with the yasa package before the port: YASA's features and its pickled
    classifier (``predict_proba``), columns in ``STAGES`` order. YASA knows no night reference."""
    import joblib

    assert reference is None, "compare the port with YASA on recordings scaled to themselves"

    features = _yasa_features({g: yp.at_yasa_rate(sig, n) for g, sig in channels.items()})
    path = Path(yasa.__file__).parent / "classifiers" / f"clf_{'+'.join(channels)}_lgb_0.5.0.joblib"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = joblib.load(path)
        proba = clf.predict_proba(features[clf.feature_name_])
    return np.asarray(proba)[:, [list(clf.classes_).index(s) for s in yp.STAGES]]


def _prior_both_ways(recording: Recording, monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, np.ndarray]:
    """Our prior and YASA's on ``recording`` taken as unmarked (a recorded file's short recordings are scaled
    partly to a night reference, which YASA has not: ``tests/psg/test_night_reference.py``)."""
    recording = Recording(recording.record_id, recording.signals)
    ours = yp.yasa_prior(recording)
    with monkeypatch.context() as patch:
        reference: Callable[[dict[str, Signal], int, object], np.ndarray] = _yasa_probabilities
        patch.setattr(yp, "_yasa_probabilities", reference)
        theirs = yp.yasa_prior(recording)
    return ours, theirs


@pytest.mark.parametrize("kinds", CHANNEL_SETS, ids="+".join)
def test_features_equal_yasas(night: Recording, kinds: tuple[str, ...]) -> None:
    labels = {"eeg": EEG_C4, "eog": EOG_L, "emg": EMG_CHIN}
    signals = {k: yp.at_yasa_rate(night.signals[labels[k]], night.n_epochs) for k in kinds}
    theirs = _yasa_features(signals)
    # the uV -> V -> uV round trip YASA makes through MNE (yasa_prior makes it too)
    names, ours = staging_features({k: (x * 1e-6) * 1e6 for k, x in signals.items()})
    assert names == list(theirs.columns)
    assert ours.shape == (night.n_epochs, len(names)) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, theirs.to_numpy(dtype=np.float64), rtol=1e-6, atol=0)


@pytest.mark.parametrize("kinds", CHANNEL_SETS, ids="+".join)
def test_shipped_classifiers_are_yasas(kinds: tuple[str, ...]) -> None:
    """The LightGBM text models are YASA's pickles: same features, same classes, all 400 iterations."""
    import joblib

    booster, classes = yp._classifier("+".join(kinds))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = joblib.load(Path(yasa.__file__).parent / "classifiers" / f"clf_{'+'.join(kinds)}_lgb_0.5.0.joblib")
    assert booster.feature_name() == clf.feature_name_
    assert classes == list(clf.classes_)
    assert booster.current_iteration() == clf.booster_.current_iteration()


def test_prior_equals_yasas_on_a_simulated_night(night: Recording, monkeypatch: pytest.MonkeyPatch) -> None:
    for labels in ((EEG_C3, EEG_C4, EOG_L, EMG_CHIN), (EEG_C4, EOG_L), (EEG_C3, EMG_CHIN), (EEG_C4,)):
        part = Recording("part", {label: night.signals[label] for label in labels})
        ours, theirs = _prior_both_ways(part, monkeypatch)
        assert ours[:, -1].all(), labels  # staged everywhere
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6, err_msg=str(labels))


@pytest.mark.parametrize("relative", ["sleep-edf-short/short_psg.edf", "nox-a1-2min/subject1.edf"])
def test_prior_equals_yasas_on_real_files(real_signals: Path, relative: str, monkeypatch: pytest.MonkeyPatch) -> None:
    recording, _ = read_mapped_edf(real_file(real_signals, relative))
    ours, theirs = _prior_both_ways(recording, monkeypatch)
    assert ours[:, -1].any(), relative
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("relative", "fs", "mirror"),
    [
        ("yasa/data_N3_no-spindles_30sec_100Hz.txt", 100.0, False),
        ("yasa/data_N2_spindles_15sec_200Hz.txt", 200.0, True),
    ],
)
def test_prior_equals_yasas_on_real_eeg_snippets(
    real_signals: Path, relative: str, fs: float, mirror: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = np.loadtxt(real_file(real_signals, relative))
    data = np.concatenate([x, x[::-1]]) if mirror else x  # 15 s: mirrored to one epoch, as the staging tests do
    ours, theirs = _prior_both_ways(Recording("snippet", {EEG_C4: Signal(EEG_C4, data, fs, "uV")}), monkeypatch)
    assert ours[0, -1] == 1.0
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_smoothing_equals_pandas_and_sklearn_bit_for_bit() -> None:
    """The NumPy rolling means and robust scaling are pandas' and scikit-learn's (which serving no longer
    installs), on what a night's features can hold: NaN (flat epochs), runs of one value, one sign, a column
    with no value at all, magnitudes from 1e-8 to 1e8 (where the running Kahan sums round), 1 to 200 epochs."""
    pd = pytest.importorskip("pandas", reason="the reference rolling means (the train extra)")
    preprocessing = pytest.importorskip("sklearn.preprocessing", reason="the reference robust_scale (train extra)")
    rng = np.random.default_rng(18)
    for n in (1, 2, 3, 4, 5, 8, 14, 15, 16, 31, 200):
        x = rng.normal(size=(n, 6)) * 10.0 ** rng.integers(-8, 9, size=6)
        x[:, 1] = np.round(x[:, 1] / 1e3)  # repeated values
        x[:, 2] = -np.abs(x[:, 2]) - 1e9 * (rng.random(n) < 0.3)
        x[:, 3] = 3.3
        x[rng.random((n, 6)) < 0.15] = np.nan
        x[:, 4] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # all-NaN medians
            frame = pd.DataFrame(x)
            for theirs, ours in (
                (
                    frame.rolling(window=15, center=True, min_periods=1, win_type="triang").mean(),
                    centred_triangular_mean(x),
                ),
                (frame.rolling(window=4, min_periods=1).mean(), past_mean(x)),
            ):
                np.testing.assert_array_equal(ours, theirs.to_numpy(), err_msg=str(n))
                reference = preprocessing.robust_scale(theirs, quantile_range=(5, 95))
                scaled = robust_scale_with(ours, night_statistics(ours))
                np.testing.assert_array_equal(scaled, reference, err_msg=str(n))
