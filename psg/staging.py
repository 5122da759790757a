"""A transparent rule-based sleep stager: a fallback estimate, not a scorer.

Used where no better stage exists: the live path before the SleepLM model is loaded, and ``caption``
on files without stage annotations. Every stage it returns must be shown as an *estimate*.

The rules restate the AASM visual criteria (Berry et al., AASM Manual v2.6, 2020) in terms of the
per-epoch features of ``psg.features`` (mean of the available central EEG derivations), checked in
this order, the first that holds wins:

1. no usable EEG -> unscored;
2. N3 when slow waves (0.5-2 Hz, > 75 uV peak-to-peak) cover >= 20 % of the epoch (the AASM rule itself);
3. W when alpha dominates (AASM: alpha over > 50 % of the epoch) and chin tone is not atonic, or when
   rapid eye movements come with waking chin tone (AASM W with eyes open: blinks, reading and rapid
   eye movements "with normal or high chin muscle tone");
4. R when chin tone is at the night's low (AASM: "chin EMG tone ... lowest of the entire recording")
   without the synchronised delta activity of N2/N3;
5. N2 when delta activity dominates the spectrum or K-complex/slow-wave activity covers a few % of
   the epoch (AASM N2 rests on K-complexes and spindles; 30-s relative sigma power does not separate
   N2 from N1 or R because spindles last about a second, so the stager does not use it);
6. otherwise N1 (low-amplitude, mixed-frequency, theta-rich activity).

Chin tone and eye-movement power vary tenfold between people and amplifiers, so they are judged
relative to the night's own median epoch (usually N2), which needs no calibration per bed; the
relative-power thresholds were set from the per-stage feature distributions of simulated nights
(``psg.simulate``), whose EEG follows the published stage spectra. Last, a smoothing pass applies the
AASM continuity idea in its simplest form: a single sleep epoch whose two neighbours agree on another
stage takes their stage (a lone wake epoch is kept: brief awakenings are real). Accuracy against
simulated truth is checked in ``tests/psg/test_staging.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from psg.features.neuro import EEG_PREFIXES
from psg.timeline import Stage

Features = Mapping[str, float | int | str | None]


@dataclass(frozen=True)
class RuleThresholds:
    """Decision thresholds of ``rule_stages``; each comment says which AASM criterion it stands for."""

    n3_slow_wave_pct: float = 20.0  # AASM N3: >= 20 % of the epoch slow waves > 75 uV p-p
    alpha_wake: float = 0.2  # relative 8-12 Hz power: alpha rhythm over most of the epoch (W)
    tone_wake: float = 1.3  # chin tone / night median: waking tone with eye movements (W)
    tone_atonia: float = 0.6  # chin tone / night median: REM atonia (lowest tone of the night)
    rapid_eog: float = 50.0  # rapid eye-movement power / night median: REMs or waking saccades present
    delta_n2: float = 0.55  # relative 0.5-4 Hz power: synchronised sleep EEG (N2)
    slow_wave_n2_pct: float = 3.0  # slow-wave coverage from K-complexes and N2 delta activity


DEFAULT_THRESHOLDS = RuleThresholds()


def rule_stages(features: Sequence[Features], thresholds: RuleThresholds = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Estimated stage code (``Stage`` values, int8) for each epoch's features dict."""
    n = len(features)
    stages = np.full(n, int(Stage.UNSCORED), dtype=np.int8)
    if n == 0:
        return stages
    eeg = {band: _eeg_mean(features, band) for band in ("alpha", "delta", "slow_wave_pct")}
    tone = _relative_to_median(np.array([_num(f.get("emg_tone_uv")) for f in features]))
    rapid = _relative_to_median(np.array([_num(f.get("eog_rapid_power")) for f in features]))
    t = thresholds
    has_eeg = np.isfinite(eeg["alpha"])
    not_atonic = ~(tone <= t.tone_atonia)  # True where tone is unknown: atonia must be measured
    n3 = eeg["slow_wave_pct"] >= t.n3_slow_wave_pct
    wake = ((eeg["alpha"] >= t.alpha_wake) & not_atonic) | ((rapid >= t.rapid_eog) & (tone >= t.tone_wake))
    n2 = (eeg["delta"] >= t.delta_n2) | (eeg["slow_wave_pct"] >= t.slow_wave_n2_pct)
    # R: atonia with low-voltage EEG free of K-complexes (AASM). Relative delta is no evidence against R:
    # REM's 1/f background puts more than half of 0.5-30 Hz power below 4 Hz in many people.
    rem = (tone <= t.tone_atonia) & (eeg["slow_wave_pct"] < t.slow_wave_n2_pct)
    for stage, mask in ((Stage.N1, has_eeg), (Stage.N2, n2), (Stage.R, rem), (Stage.W, wake), (Stage.N3, n3)):
        stages[mask & has_eeg] = int(stage)  # later rules win: N3 > W > R > N2 > N1
    return _smooth(stages)


def _num(value: float | int | str | None) -> float:
    return float(value) if isinstance(value, (int, float)) else np.nan


def _eeg_mean(features: Sequence[Features], suffix: str) -> np.ndarray:
    """Mean of a feature over the available central derivations (NaN where none is usable)."""
    values = np.array([[_num(f.get(f"{p}_{suffix}")) for p in EEG_PREFIXES.values()] for f in features])
    usable = np.isfinite(values)
    total = np.where(usable, values, 0.0).sum(axis=1)
    count = usable.sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _relative_to_median(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values) & (values > 0)]
    if finite.size == 0:
        return np.full(values.shape, np.nan)
    relative: np.ndarray = values / np.median(finite)
    return relative


def _smooth(stages: np.ndarray) -> np.ndarray:
    """A single non-wake epoch between two neighbours of one other (scored) stage takes their stage."""
    out = stages.copy()
    prev, cur, nxt = stages[:-2], stages[1:-1], stages[2:]
    lone = (prev == nxt) & (cur != prev) & (cur != Stage.W) & (cur != Stage.UNSCORED) & (prev != Stage.UNSCORED)
    out[1:-1][lone] = prev[lone]
    return out
