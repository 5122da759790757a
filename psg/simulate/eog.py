"""Electro-oculogram E1-M2 (EOG-L) and E2-M2 (EOG-R).

The cornea is positive relative to the retina, so eye rotation moves a dipole under the electrodes.
With the AASM placement (E1 1 cm below the left outer canthus, E2 1 cm above the right one) both
horizontal and vertical conjugate eye movements give deflections of opposite polarity on E1 and E2,
whereas EEG picked up from the frontal cortex (slow waves, K-complexes, some alpha) is in phase on both
(AASM Manual v2.6; Carskadon & Dement 2011). Eye movements rendered:

* wake, eyes open: saccades (~0.5-1.5/s) and blinks (10-25/min; Bentivoglio et al. 1997, Mov Disord
  12:1028); eyes closed: few movements;
* N1: slow rolling eye movements, 0.2-0.6 Hz sinusoidal excursions (AASM: initial deflection > 500 ms);
* REM: rapid conjugate saccades (< 500 ms rise) in phasic bursts separated by tonic stretches.

The amplifier's 0.3 Hz low-frequency filter (AASM recommended EOG setting) turns held eye positions
into the familiar sharp deflection with exponential return.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, oaconvolve, sosfilt

from psg.simulate.neuro_params import NeuroParams
from psg.simulate.noise import CTRL_FS, add_transients, poisson_times, slow_gaussian, slow_modulation, upsample
from psg.simulate.stage_tracks import StageTracks

#: AASM recommended EOG low-frequency filter (Hz).
EOG_HIGHPASS_HZ = 0.3
#: Duration (s) of a saccade's position change; rapid eye movements reach their target in < 100 ms.
SACCADE_S = 0.06
#: Residual amplifier and skin noise on each EOG derivation (uV SD).
EOG_NOISE_UV = 2.0


def render_eog(
    params: NeuroParams, tracks: StageTracks, frontal: np.ndarray, fs: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Return (EOG-L, EOG-R) for the night: anti-phase eye movements plus in-phase frontal EEG."""
    n = frontal.size
    eye = _saccades(params, tracks, fs, n, rng) + _slow_eye_movements(params, tracks, fs, n, rng)
    blink_rate = params.blink_per_min / 60.0 * tracks.eyes_open
    blinks = poisson_times(rng, blink_rate, refractory_s=0.8)
    add_transients(eye, fs, blinks, [_blink(params, fs, rng) for _ in blinks])
    eye = sosfilt(butter(1, EOG_HIGHPASS_HZ, "highpass", fs=fs, output="sos"), eye).astype(np.float32)
    left = eye + frontal + EOG_NOISE_UV * rng.standard_normal(n, dtype=np.float32)
    right = -eye + frontal + EOG_NOISE_UV * rng.standard_normal(n, dtype=np.float32)
    return left, right


def _saccades(params: NeuroParams, tracks: StageTracks, fs: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Eye position made of fixations joined by fast saccades: steps smoothed over ``SACCADE_S``."""
    rate = (
        params.saccade_per_s_open * tracks.eyes_open
        + params.rem_saccade_per_s * tracks.rem_phasic
        + 0.05 * tracks.weights[4]  # isolated REMs in tonic REM
        + 0.3 * tracks.arousal
    )
    times = poisson_times(rng, rate, refractory_s=0.15)
    size = tracks.level(params.saccade_uv)[np.minimum((times * CTRL_FS).astype(np.int64), tracks.n - 1)]
    targets = size * rng.uniform(-1.0, 1.0, times.size)
    steps = np.diff(targets, prepend=0.0)
    velocity = np.zeros(n, dtype=np.float32)
    np.add.at(velocity, np.minimum((times * fs).astype(np.int64), n - 1), steps)
    position = np.cumsum(velocity, dtype=np.float32)
    kernel = np.hanning(int(SACCADE_S * fs) + 2)[1:-1]
    smoothed: np.ndarray = oaconvolve(position, (kernel / kernel.sum()).astype(np.float32), mode="same")
    return smoothed


def _slow_eye_movements(
    params: NeuroParams, tracks: StageTracks, fs: float, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Slow rolling eye movements: 0.2-0.6 Hz excursions in N1 and drowsy eyes-closed wake."""
    presence = np.array([0.25, 1.0, 0.2, 0.0, 0.0, 0.0]) * params.sem_uv
    level = tracks.level(presence) * (1.0 - tracks.eyes_open) * slow_modulation(rng, tracks.n, 0.4, 8.0)
    freq = 0.2 + 0.4 / (1.0 + np.exp(-1.5 * slow_gaussian(rng, tracks.n, 10.0)))
    phase = 2 * np.pi * np.cumsum(upsample(freq, fs, n), dtype=np.float64) / fs
    return (upsample(level, fs, n) * np.sin(phase)).astype(np.float32)


def _blink(params: NeuroParams, fs: float, rng: np.random.Generator) -> np.ndarray:
    """A blink: a fast rise and slower fall lasting 200-400 ms (eyeball rotates up, Bell's phenomenon)."""
    tau = float(rng.uniform(0.05, 0.08))
    t = np.arange(int(8 * tau * fs)) / fs
    shape = (t / (2 * tau)) ** 2 * np.exp(2.0 - t / tau)  # peak 1 at t = 2 tau
    return (params.blink_uv * float(rng.lognormal(0.0, 0.2)) * shape).astype(np.float32)
