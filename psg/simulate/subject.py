"""Per-night physiology: the subject-level parameters that make two simulated nights differ.

Drawn once per (timeline, seed) from ranges reported for adults in the sleep literature, so that
a model trained on simulated nights cannot memorise one "subject". Modules that need more specific
parameters draw them from their own random stream (``NightPlan.rng(name)``) rather than growing
this shared set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SubjectParams:
    """Physiological constants of one simulated night."""

    alpha_hz: float  # posterior dominant rhythm, 8.5-11.5 Hz in healthy adults
    spindle_hz: float  # sleep spindle centre frequency, 12-14.5 Hz (AASM 11-16 Hz)
    eeg_gain: float  # scalp EEG amplitude factor (skull thickness, age): ~0.75-1.3
    eog_gain: float  # eye-movement amplitude factor
    emg_tone_uv: float  # waking chin EMG RMS, uV
    hr_bpm: float  # resting waking heart rate
    breathing_rate_bpm: float  # waking breathing rate
    baseline_spo2: float  # waking SpO2, %
    resp_gain: float  # effort/flow amplitude factor
    mains_hz: float  # 50 or 60 Hz, for the mains-hum artifact

    @classmethod
    def draw(cls, rng: np.random.Generator) -> SubjectParams:
        return cls(
            alpha_hz=float(rng.uniform(8.5, 11.5)),
            spindle_hz=float(rng.uniform(12.0, 14.5)),
            eeg_gain=float(np.exp(rng.normal(0.0, 0.15))),
            eog_gain=float(np.exp(rng.normal(0.0, 0.2))),
            emg_tone_uv=float(rng.uniform(8.0, 20.0)),
            hr_bpm=float(rng.uniform(55.0, 78.0)),
            breathing_rate_bpm=float(rng.uniform(12.0, 18.0)),
            baseline_spo2=float(rng.uniform(94.0, 98.0)),
            resp_gain=float(np.exp(rng.normal(0.0, 0.2))),
            mains_hz=float(rng.choice([50.0, 60.0])),
        )
