"""Body-movement bursts, shared by the neuro renderer (wake, unscored epochs) and the artifact layer.

A gross body movement swamps EEG, EOG and EMG alike: large slow electrode/cable sway (0.3-6 Hz) plus
muscle activity (20-100 Hz) for a few seconds (AASM "movement time": the signals are obscured by
movement artifact). Each call returns unit-SD pieces that the caller scales per channel.
"""

from __future__ import annotations

import numpy as np

from psg.simulate.noise import bandpass_shape, shaped_noise

#: Per-channel-family amplitude (uV SD) of the slow sway and the muscle part of a movement.
MOVEMENT_UV = {"eeg": (60.0, 15.0), "eog": (90.0, 20.0), "emg": (10.0, 60.0)}


def movement_burst(rng: np.random.Generator, n: int, fs: float, family: str, gain: float = 1.0) -> np.ndarray:
    """A tapered movement burst of ``n`` samples for a channel family ('eeg', 'eog' or 'emg'), times ``gain``."""
    sway_uv, muscle_uv = MOVEMENT_UV[family]
    burst = sway_uv * sway(rng, n, fs)
    burst += muscle_uv * shaped_noise(rng, n, fs, bandpass_shape(20.0, min(100.0, 0.45 * fs), order=3))
    return (gain * float(rng.lognormal(0.0, 0.3)) * burst).astype(np.float32)


def sway(rng: np.random.Generator, n: int, fs: float) -> np.ndarray:
    """Unit-SD slow (0.3-6 Hz, 1/f) swing, tapered in and out: cables and electrodes moved by the body."""
    return shaped_noise(rng, n, fs, bandpass_shape(0.3, min(6.0, 0.45 * fs), slope=1.0)) * np.hanning(n) ** 0.5
