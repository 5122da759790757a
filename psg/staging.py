"""A transparent rule-based sleep stager: a fallback estimate, not a scorer.

Used where no better stage exists: the live path before the SleepLM model is loaded, and ``caption``
on files without stage annotations. Every stage it returns must be shown as an *estimate*.

The rules restate the AASM visual criteria (Berry et al., AASM Manual v2.6, 2020) in terms of the
per-epoch features of ``psg.features`` (mean of the available central EEG derivations):

1. no usable EEG -> unscored;
2. N3 when slow waves (0.5-2 Hz, > 75 uV peak-to-peak) cover >= 20 % of the epoch (the AASM rule itself);
3. W when alpha dominates (AASM: alpha over > 50 % of the epoch; here relative alpha power above
   ``alpha_wake``) or chin tone is clearly above the night's typical level (eyes-open wake has little
   alpha but high tone, blinks and saccades);
4. R when chin tone is at the night's low (AASM: "chin EMG tone ... lowest of the entire recording"),
   without spindles or slow waves (sigma power and slow-wave coverage below the N2 cues);
5. N2 when spindle-band (sigma) power is raised or K-complex/slow-wave activity covers a few % of
   the epoch;
6. otherwise N1 (low-amplitude mixed-frequency activity without N2 features).

Chin tone and eye-movement power vary tenfold between people and amplifiers, so they are judged
relative to the night's own median (the median epoch of a night is usually N2), which needs no
calibration per bed. Last, a smoothing pass applies the AASM continuity idea in its simplest form: a
single sleep epoch whose two neighbours agree on another stage takes their stage (a lone wake epoch is
kept: brief awakenings are real). Accuracy on simulated nights is reported in ``tests/psg/test_staging.py``.
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
    alpha_wake: float = 0.25  # relative 8-12 Hz power: alpha rhythm over most of the epoch (W)
    tone_wake: float = 1.6  # chin tone / night median: waking tone
    tone_atonia: float = 0.6  # chin tone / night median: REM atonia (lowest tone of the night)
    sigma_n2: float = 0.08  # relative 12-16 Hz power: spindles present (N2)
    slow_wave_n2_pct: float = 3.0  # slow-wave coverage from K-complexes and N2 delta activity


DEFAULT_THRESHOLDS = RuleThresholds()


def rule_stages(features: Sequence[Features], thresholds: RuleThresholds = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Estimated stage code (``Stage`` values, int8) for each epoch's features dict."""
    n = len(features)
    stages = np.full(n, int(Stage.UNSCORED), dtype=np.int8)
    if n == 0:
        return stages
    eeg = {band: _eeg_mean(features, band) for band in ("alpha", "sigma", "slow_wave_pct")}
    tone = _relative_to_median(np.array([_num(f.get("emg_tone_uv")) for f in features]))
    t = thresholds
    has_eeg = np.isfinite(eeg["alpha"])
    has_tone = np.isfinite(tone)
    n3 = eeg["slow_wave_pct"] >= t.n3_slow_wave_pct
    wake = (eeg["alpha"] >= t.alpha_wake) | (has_tone & (tone >= t.tone_wake))
    n2_cues = (eeg["sigma"] >= t.sigma_n2) | (eeg["slow_wave_pct"] >= t.slow_wave_n2_pct)
    rem = has_tone & (tone <= t.tone_atonia) & ~n2_cues
    for stage, mask in ((Stage.N1, has_eeg), (Stage.N2, n2_cues), (Stage.R, rem), (Stage.W, wake), (Stage.N3, n3)):
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
    return values / np.median(finite)


def _smooth(stages: np.ndarray) -> np.ndarray:
    """A single non-wake epoch between two neighbours of one other (scored) stage takes their stage."""
    out = stages.copy()
    prev, cur, nxt = stages[:-2], stages[1:-1], stages[2:]
    lone = (prev == nxt) & (cur != prev) & (cur != Stage.W) & (cur != Stage.UNSCORED) & (prev != Stage.UNSCORED)
    out[1:-1][lone] = prev[lone]
    return out
