"""A real-data prior for staging: YASA's per-epoch stage probabilities as features.

Why: every rhythm our stage head learnt was drawn by our simulator, and on real EEG its own spectral
features are shifted (real wake looked like REM or N2 to it). YASA (Vallat & Walker, eLife 2021) ships
LightGBM classifiers trained on thousands of real, expert-scored nights; their probabilities are a prior
learnt from real signals that the head can lean on. They enter the head as input features only: the head
still maps into the shared text space and a stage is still the nearest stage prompt (zero-shot by text).
No torch is involved (YASA is NumPy, SciPy, MNE and LightGBM), so serving stays light.

What YASA is given: each EEG derivation of the recording in turn (probabilities averaged over those
usable in an epoch), the left EOG (else the right) and the chin EMG when they are sampled fast enough to
carry their bands, all resampled to 100 Hz (YASA needs > 80 Hz; a 50-Hz EEG is upsampled, its 25-30 Hz
band empty). YASA picks its classifier for that channel set. Any recording of at least one epoch is
staged (YASA warns below 5 min; its recording-relative features then carry little). Where it cannot run
(no usable EEG, under 30 s, an error) the block is zeros with its flag off, so the head stages from its
own features, as it learnt to in training (``model_runtime.training.stage_head_training`` blanks the block at
random). Cost: ~2.5 ms per epoch and EEG derivation, plus ~6 s once per process (importing YASA and
compiling antropy's numba functions).

>>> prior = yasa_prior(recording)   # (n_epochs, N_PRIOR): p(W, N1, N2, N3, R) and the flag
"""

from __future__ import annotations

import glob
import logging
import os
import warnings
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import signal as sps

from psg.montage import EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R, EPOCH_S
from psg.recording import Recording, Signal

#: Stage order of the probabilities (the model's STAGE_LABELS; psg does not import model_runtime).
STAGES = ("W", "N1", "N2", "N3", "R")
PRIOR_NAMES: tuple[str, ...] = (*(f"yasa_p_{s}" for s in STAGES), "yasa_ok")
N_PRIOR = len(PRIOR_NAMES)
YASA_FS = 100.0
#: Lowest native rates YASA's bands survive (EEG/EOG 0.4-30 Hz, with a 50-Hz EEG's upper band empty;
#: chin EMG is only useful with its high-frequency power).
MIN_FS = {"eeg": 40.0, "eog": 40.0, "emg": 60.0}
_FLAT_STD_UV = 0.1
_LOG = logging.getLogger(__name__)


def yasa_prior(recording: Recording, n_epochs: int | None = None) -> np.ndarray:
    """(n_epochs, N_PRIOR): YASA's stage probabilities per 30-s epoch and whether YASA staged the epoch.

    With two EEG derivations YASA stages each (with the same EOG and EMG) and the probabilities are
    averaged over the derivations usable in each epoch, as ``stage_spectra`` averages its features.
    """
    n = recording.n_epochs if n_epochs is None else n_epochs
    out = np.zeros((n, N_PRIOR))
    eegs = [s for label in (EEG_C4, EEG_C3) if (s := _usable(recording.get(label), "eeg"))]
    if not eegs or n == 0:
        return out
    others = {}
    for group, labels in (("eog", (EOG_L, EOG_R)), ("emg", (EMG_CHIN,))):
        sig = next((s for label in labels if (s := _usable(recording.get(label), group))), None)
        if sig is not None:
            others[group] = sig
    total, count = np.zeros((n, 5)), np.zeros(n)
    for eeg in eegs:
        ok = ~_bad_epochs(eeg, n)
        if not ok.any():
            continue
        try:
            probs = _yasa_probabilities({"eeg": eeg, **others}, n)
        except Exception as exc:  # noqa: BLE001 - YASA failing must not stop staging; the head copes without
            _LOG.warning("YASA prior unavailable for one EEG: %s: %s", type(exc).__name__, exc)
            continue
        total[ok] += probs[ok]  # probs has n rows: _at_yasa_rate pads or cuts the signal to n epochs
        count += ok
    staged = count > 0
    out[staged, :5] = total[staged] / count[staged, None]
    out[staged, 5] = 1.0
    return out


def _usable(sig: Signal | None, group: str) -> Signal | None:
    if sig is None or sig.fs < MIN_FS[group] or sig.data.size < EPOCH_S * sig.fs:
        return None
    return sig


def _bad_epochs(sig: Signal, n: int) -> np.ndarray:
    """(n,) epochs that are missing, mostly NaN or flat in ``sig``."""
    per = int(round(EPOCH_S * sig.fs))
    bad = np.ones(n, dtype=bool)
    x = np.asarray(sig.data, dtype=np.float64)
    usable = min(n, x.size // per)
    if usable:
        e = x[: usable * per].reshape(usable, per)
        finite = np.isfinite(e)
        with warnings.catch_warnings():  # an all-NaN epoch has no spread: it is bad either way
            warnings.simplefilter("ignore", RuntimeWarning)
            std = np.nanstd(np.where(finite, e, np.nan), axis=1)
        bad[:usable] = (finite.mean(axis=1) < 0.5) | ~(np.nan_to_num(std) > _FLAT_STD_UV)
    return bad


def _at_yasa_rate(sig: Signal, n: int) -> np.ndarray:
    x = np.nan_to_num(np.asarray(sig.data, dtype=np.float64))
    if sig.fs != YASA_FS:
        r = Fraction(YASA_FS / sig.fs).limit_denominator(1000)
        x = sps.resample_poly(x, r.numerator, r.denominator, padtype="line")
    samples = int(n * EPOCH_S * YASA_FS)
    return x[:samples] if x.size >= samples else np.pad(x, (0, samples - x.size))


def _yasa_probabilities(channels: dict[str, Signal], n: int) -> np.ndarray:
    """(n, 5) probabilities from YASA's classifier for this channel set, in ``STAGES`` order."""
    import mne
    import yasa

    names = list(channels)
    data = np.stack([_at_yasa_rate(channels[g], n) for g in names]) * 1e-6  # uV -> V, as MNE stores
    raw = mne.io.RawArray(data, mne.create_info(names, YASA_FS, names), verbose="error")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("yasa").setLevel(logging.ERROR)
        staging = yasa.SleepStaging(
            raw,
            eeg_name="eeg",
            eog_name="eog" if "eog" in channels else None,
            emg_name="emg" if "emg" in channels else None,
        )
        features = staging.get_features()
        clf = _classifier("+".join(names))
        proba = clf.predict_proba(features[clf.feature_name_])
    columns = [list(clf.classes_).index(s) for s in STAGES]
    return np.asarray(proba, dtype=np.float64)[:, columns]


@lru_cache(maxsize=8)
def _classifier(channel_set: str) -> Any:  # a LightGBM classifier; lightgbm (YASA's dependency) is untyped
    """YASA's newest shipped classifier for ``channel_set`` ('eeg', 'eeg+eog', 'eeg+eog+emg', ...), loaded once."""
    import joblib
    import yasa

    folder = os.path.join(os.path.dirname(yasa.__file__), "classifiers")
    files = glob.glob(os.path.join(folder, glob.escape(f"clf_{channel_set}") + "_lgb_*.joblib"))
    if not files:
        raise FileNotFoundError(f"YASA ships no classifier for {channel_set}")

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(v) for v in path.rsplit("_lgb_", 1)[1].removesuffix(".joblib").split("."))

    with warnings.catch_warnings():  # its pickles name an older scikit-learn's LabelEncoder; they load fine
        warnings.simplefilter("ignore")
        return joblib.load(max(files, key=version))
