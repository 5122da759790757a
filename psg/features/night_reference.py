"""Where a piece of a night sits in a whole one: reference statistics for YASA's recording-relative features.

Why: YASA scales its smoothed features (7.5-min centred and 2-min past means) to the recording's own median
and 5-95 % range, as it was trained on whole nights, where that range spans every stage. A recording that is
only a piece of a night (a lab's 30-min excerpt from mid-sleep, 5 min of wake, one N3 epoch) is scaled to
itself instead, and a stretch of deep sleep then looks like the middle of a night. Measured on held-out
simulated nights (``benchmarks/night_reference.py``, ``benchmarks/RESULTS.md`` "A piece of a night"): YASA on
30-min mid-night excerpts of one EEG is right 0.52 of the time with the excerpt's own scale and 0.73 with its
whole night's; and it stages the real N3 epoch of ``$SLEEPLM_DATA/real-signals`` N2.

So for a recording shorter than ``OWN_SCALE_EPOCHS`` (2 h), the features of a signal's *shape* (relative band
powers and their ratios, entropy, fractal dimensions, zero crossings, Hjorth parameters, skewness, kurtosis:
none of them moves with a lab's gain) are scaled with statistics blended from the recording's own and a
reference night's, the reference weighing ``1 - epochs / OWN_SCALE_EPOCHS``; from 2 h on they are the
recording's own, as YASA computes them. The amplitude features (``std``, ``iqr``, ``abspow``) always keep the
recording's own scale: a lab's gain, electrodes and subject set their level, and no reference knows it; so
do the chin EMG's shape features (``UNREFERENCED_KINDS``: the simulator's EMG is unlike any real one).
Why 2 h and not a whole night: on held-out simulated nights perturbed the way labs differ, 2-h excerpts
were staged 4-11 points worse with the blend reaching to 6 h than with their own scale, while 5-min and
30-min excerpts gained the same either way (``benchmarks/RESULTS.md``).

The reference is the median, over simulated training nights, of each night's median, 5th and 95th percentile
of every shape feature (our simulator's nights agree 0.86 with their source hypnograms under YASA, so their
feature *distributions* over a night are a plausible stand-in; no real whole night is at hand). It ships as
``yasa_classifiers/night_reference.json``, built by ``python -m model_runtime.training.yasa_reference``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

#: From this many epochs on (2 h) a recording is scaled to its own statistics alone, as YASA scales it.
OWN_SCALE_EPOCHS = 240
#: Per-epoch features whose level follows the lab's gain (YASA's names without the channel kind).
AMPLITUDE_FEATURES = frozenset({"std", "iqr", "abspow"})
#: YASA's two smoothed blocks, by their column suffix.
WINDOWS = ("c7min", "p2min")
FORMAT = "sleeplm-night-reference/1"
DEFAULT_PATH = Path(__file__).resolve().parent / "yasa_classifiers" / "night_reference.json"


#: Channel kinds the reference has no statistics for: our simulated chin EMG is white noise in YASA's band,
#: unlike real chin EMG in every shape feature (YASA's training nights, ``benchmarks/yasa_training_quantiles.py``),
#: so a reference built from it put a real chin EMG's shape features 17-40 robust units outside anything YASA
#: was trained on (the Nox A1 file). A recording's own EMG statistics stand instead, as YASA scales them.
UNREFERENCED_KINDS = frozenset({"emg"})


def is_shape_feature(name: str) -> bool:
    """True for a YASA base feature (``eeg_beta``) whose level does not follow the recording's gain."""
    return name.split("_", 1)[-1] not in AMPLITUDE_FEATURES


def has_reference(name: str) -> bool:
    """True for a base feature the reference night gives statistics for: a shape feature of EEG or EOG."""
    return is_shape_feature(name) and name.split("_", 1)[0] not in UNREFERENCED_KINDS


@dataclass(frozen=True)
class NightReference:
    """Per window and shape feature, the reference night's (median, 5th percentile, 95th percentile)."""

    stats: dict[str, dict[str, tuple[float, float, float]]]
    entries: int  # whole nights (one per EEG derivation of each) the medians were taken over
    #: From this many epochs on a recording is scaled to itself alone.
    own_scale_epochs: int = OWN_SCALE_EPOCHS

    def blend(self, window: str, names: list[str], own: np.ndarray, n_epochs: int) -> np.ndarray:
        """(3, m) statistics (median, low, high) for ``names``: ``own`` (the recording's) where the feature
        has no reference or the recording is long enough, else blended towards the reference by its length."""
        weight = min(1.0, n_epochs / self.own_scale_epochs)
        if weight >= 1.0:
            return own
        missing = (np.nan, np.nan, np.nan)
        reference = np.array([self.stats[window].get(name, missing) for name in names]).T  # (3, m)
        referenced = np.isfinite(reference).all(axis=0)
        # a recording with no statistic of its own for a feature (all NaN) takes the reference's
        blended = np.where(np.isfinite(own).all(axis=0), weight * own + (1.0 - weight) * reference, reference)
        return np.where(referenced, blended, own)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, "entries": self.entries, "stats": self.stats}, indent=1, sort_keys=True)


def night_statistics(rolled: np.ndarray) -> np.ndarray:
    """(3, m) median, 5th and 95th percentile per column of (n, m) ``rolled`` (NaN ignored): what
    scikit-learn's ``robust_scale(quantile_range=(5, 95))`` centres and scales by."""
    if np.isnan(rolled).any():
        with warnings.catch_warnings():  # an all-NaN column has no statistic: NaN, as in scikit-learn
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.stack([np.nanmedian(rolled, axis=0), *np.nanpercentile(rolled, (5, 95), axis=0)])
    return np.stack([np.median(rolled, axis=0), *np.percentile(rolled, (5, 95), axis=0)])


def build_night_reference(nights: Iterable[tuple[list[str], dict[str, np.ndarray]]]) -> NightReference:
    """The reference from whole nights: each a (base feature names, window -> (3, m) ``night_statistics``)
    pair; per feature, the median over the nights that have it of each statistic."""
    collected: dict[str, dict[str, list[np.ndarray]]] = {w: {} for w in WINDOWS}
    count = 0
    for names, by_window in nights:
        count += 1
        for window in WINDOWS:
            stats = by_window[window]
            for j, name in enumerate(names):
                if has_reference(name) and np.all(np.isfinite(stats[:, j])):
                    collected[window].setdefault(name, []).append(stats[:, j])
    if count == 0:
        raise ValueError("build_night_reference needs at least one night")
    medians = {
        window: {name: _triple(np.median(np.stack(rows), axis=0)) for name, rows in sorted(found.items())}
        for window, found in collected.items()
    }
    return NightReference(medians, count)


@lru_cache(maxsize=4)
def load_night_reference(path: Path = DEFAULT_PATH) -> NightReference:
    """The reference shipped with the classifiers (or at ``path``), checked once per process."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the YASA night reference: {exc}") from exc
    if data.get("format") != FORMAT or set(data.get("stats", {})) != set(WINDOWS):
        raise ValueError(
            f"{path}: expected a {FORMAT} file with stats for {WINDOWS}, got format {data.get('format')!r}"
        )
    stats = {window: {name: _triple(v) for name, v in data["stats"][window].items()} for window in WINDOWS}
    return NightReference(stats, int(data["entries"]))


def _triple(values: np.ndarray | list[float]) -> tuple[float, float, float]:
    median, low, high = (float(v) for v in values)
    return median, low, high
