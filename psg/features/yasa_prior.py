"""A real-data prior for staging: YASA's per-epoch stage probabilities as features.

Why: every rhythm our stage head learnt was drawn by our simulator, and on real EEG its own spectral
features are shifted (real wake looked like REM or N2 to it). YASA (Vallat & Walker, eLife 2021) ships
LightGBM classifiers trained on thousands of real, expert-scored nights; their probabilities are a prior
learnt from real signals that the head can lean on. They enter the head as input features only: the head
still maps into the shared text space and a stage is still the nearest stage prompt (zero-shot by text).
Serving needs neither torch nor the ``yasa`` package (whose MNE, antropy and numba weigh ~410 MB): YASA's
features are computed by ``psg.features.yasa_features`` (a NumPy/SciPy port of YASA 0.8.1's, equal to
them) and its classifiers ship as LightGBM text models in ``psg/features/yasa_classifiers/``, with the
same probabilities as YASA's (``tests/psg/test_yasa_features.py``).

What YASA is given: each EEG derivation of the recording in turn (probabilities averaged over those
usable in an epoch), the left EOG (else the right) and the chin EMG when they are sampled fast enough to
carry their bands, all resampled to 100 Hz (YASA needs > 80 Hz). A 50-Hz EEG or EOG is upsampled and the
band above its anti-alias edge, which YASA's features read and which it never had, is filled with noise
continuing the epoch's own power law (``psg.features.band_extension``: without it the real awake EEG at
50 Hz read as sleep, 4 / 12 W). The classifier is YASA's for that channel set. Any recording of at least one epoch is
staged (YASA warns below 5 min; its recording-relative features then carry little). Where it cannot run
(no usable EEG, under 30 s, an error) the block is zeros with its flag off, so the head stages from its
own features, as it learnt to in training (``model_runtime.training.stage_head_training`` blanks the block at
random). Cost: ~2.5 ms per epoch and EEG derivation, plus loading a classifier (~7 MB of LightGBM text)
once per process and channel set.

>>> prior = yasa_prior(recording)   # (n_epochs, N_PRIOR): p(W, N1, N2, N3, R) and the flag
"""

from __future__ import annotations

import gzip
import json
import logging
import warnings
from collections.abc import Mapping
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal as sps

from psg.features.band_extension import extend_band
from psg.features.eeg_bandwidth import full_band
from psg.features.night_reference import NightReference, load_night_reference
from psg.features.yasa_features import staging_features
from psg.montage import EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R, EPOCH_S
from psg.recording import ORIGIN, RECORDED, Recording, Signal

#: Stage order of the probabilities (the model's STAGE_LABELS; psg does not import model_runtime).
STAGES = ("W", "N1", "N2", "N3", "R")
PRIOR_NAMES: tuple[str, ...] = (*(f"yasa_p_{s}" for s in STAGES), "yasa_ok")
N_PRIOR = len(PRIOR_NAMES)
YASA_FS = 100.0
#: The EEG derivations YASA stages, each in turn (probabilities averaged).
EEG_DERIVATIONS = (EEG_C4, EEG_C3)
#: Lowest native rates YASA's bands survive (EEG/EOG 0.4-30 Hz, with a 50-Hz EEG's upper band empty;
#: chin EMG is only useful with its high-frequency power).
MIN_FS = {"eeg": 40.0, "eog": 40.0, "emg": 60.0}
_FLAT_STD_UV = 0.1
_LOG = logging.getLogger(__name__)
CLASSIFIERS = Path(__file__).resolve().parent / "yasa_classifiers"


def yasa_prior(recording: Recording, n_epochs: int | None = None) -> np.ndarray:
    """(n_epochs, N_PRIOR): YASA's stage probabilities per 30-s epoch and whether YASA staged the epoch.

    With two EEG derivations YASA stages each (with the same EOG and EMG) and the probabilities are
    averaged over the derivations usable in each epoch, as ``stage_spectra`` averages its features. A
    recorded file shorter than a night (``psg.recording.ORIGIN``: real signals, which go to the real-prior
    head) has its shape features scaled partly to a reference night (``psg.features.night_reference``), and
    an EEG of it that its device low-passed below YASA's band is left out where another is full-band
    (``psg.features.eeg_bandwidth.full_band``); simulated and in-memory recordings get YASA's own scaling
    and every derivation, what the full head was trained on.
    """
    n = recording.n_epochs if n_epochs is None else n_epochs
    out = np.zeros((n, N_PRIOR))
    eegs, others = yasa_inputs(recording.signals)
    if not eegs or n == 0:
        return out
    reference = None
    if recording.metadata.get(ORIGIN) == RECORDED:
        reference = load_night_reference()
        eegs = full_band(eegs)  # a device-low-passed EEG beside a full-band one is left out (eeg_bandwidth)
    total, count = np.zeros((n, 5)), np.zeros(n)
    for eeg in eegs:
        ok = ~bad_epochs(eeg, n)
        if not ok.any():
            continue
        try:
            probs = _yasa_probabilities({"eeg": eeg, **others}, n, reference)
        except Exception as exc:  # noqa: BLE001 - YASA failing must not stop staging; the head copes without
            _LOG.warning("YASA prior unavailable for one EEG: %s: %s", type(exc).__name__, exc)
            continue
        total[ok] += probs[ok]  # probs has n rows: at_yasa_rate pads or cuts the signal to n epochs
        count += ok
    staged = count > 0
    out[staged, :5] = total[staged] / count[staged, None]
    out[staged, 5] = 1.0
    return out


def yasa_inputs(signals: Mapping[str, Signal]) -> tuple[list[Signal], dict[str, Signal]]:
    """What YASA is given (see the module docstring): the usable EEG derivations, in ``EEG_DERIVATIONS``
    order, and the EOG and EMG every derivation is staged with (``"eog"``/``"emg"`` where usable)."""
    eegs = [s for label in EEG_DERIVATIONS if (s := usable_signal(signals.get(label), "eeg"))]
    others = {}
    for group, labels in (("eog", (EOG_L, EOG_R)), ("emg", (EMG_CHIN,))):
        sig = next((s for label in labels if (s := usable_signal(signals.get(label), group))), None)
        if sig is not None:
            others[group] = sig
    return eegs, others


def usable_signal(sig: Signal | None, group: str) -> Signal | None:
    if sig is None or sig.fs < MIN_FS[group] or sig.data.size < EPOCH_S * sig.fs:
        return None
    return sig


def bad_epochs(sig: Signal, n: int) -> np.ndarray:
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


def at_yasa_rate(sig: Signal, n: int) -> np.ndarray:
    """``sig`` at 100 Hz, ``n`` epochs long; a recording below 60 Hz gets its missing band filled (band_extension)."""
    x = np.nan_to_num(np.asarray(sig.data, dtype=np.float64))
    if sig.fs != YASA_FS:
        r = Fraction(YASA_FS / sig.fs).limit_denominator(1000)
        x = sps.resample_poly(x, r.numerator, r.denominator, padtype="line")
    samples = int(n * EPOCH_S * YASA_FS)
    x = x[:samples] if x.size >= samples else np.pad(x, (0, samples - x.size))
    return extend_band(x, YASA_FS, sig.fs, int(EPOCH_S * YASA_FS))


def _yasa_probabilities(channels: dict[str, Signal], n: int, reference: NightReference | None) -> np.ndarray:
    """(n, 5) probabilities from YASA's classifier for this channel set, in ``STAGES`` order."""
    # uV -> V -> uV, the round trip YASA makes through MNE (which stores volts): it moves a sample by ~1e-16
    # relative, and a near-silent channel's zero crossings (a feature) move with it; kept, so the
    # probabilities are YASA's to the last bit
    signals = {g: (at_yasa_rate(sig, n) * 1e-6) * 1e6 for g, sig in channels.items()}
    names, features = staging_features(signals, reference)
    return classifier_probabilities("+".join(channels), names, features)


def classifier_probabilities(channel_set: str, names: list[str], features: np.ndarray) -> np.ndarray:
    """(n, 5) probabilities, in ``STAGES`` order, of YASA's classifier for ``channel_set`` on a feature
    table (``staging_features``' names and rows; the live path builds it per epoch, ``psg.features.live_stage``)."""
    booster, classes = _classifier(channel_set)
    order = [names.index(f) for f in booster.feature_name()]
    proba = booster.predict(features[:, order])
    columns = [classes.index(s) for s in STAGES]
    return np.asarray(proba, dtype=np.float64)[:, columns]


@lru_cache(maxsize=8)
def _classifier(channel_set: str) -> tuple[Any, list[str]]:  # lightgbm is untyped
    """YASA's classifier for ``channel_set`` ('eeg', 'eeg+eog', 'eeg+eog+emg', ...) and its output classes, loaded once.

    The classifiers ship in ``psg/features/yasa_classifiers/`` as LightGBM text models rebuilt from YASA's
    pickles (``python -m psg.features.yasa_classifiers.build``), so serving needs ``lightgbm`` but not ``yasa``.
    """
    import lightgbm

    manifest = json.loads((CLASSIFIERS / "manifest.json").read_text())
    if channel_set not in manifest:
        raise FileNotFoundError(f"no YASA classifier for {channel_set} in {CLASSIFIERS} (have {sorted(manifest)})")
    entry = manifest[channel_set]
    text = gzip.decompress((CLASSIFIERS / entry["file"]).read_bytes()).decode()
    return lightgbm.Booster(model_str=text), list(entry["classes"])
