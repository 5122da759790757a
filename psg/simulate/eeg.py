"""Central EEG (C3-A2, C4-A1) and the frontal EEG that E1/E2 pick up.

The EEG is the sum of five stationary rhythms (1/f background, delta, theta, alpha, beta) whose
amplitudes follow the stage tracks, plus sparse graphoelements placed as transients: spindles and
K-complexes (N2, fewer in N3), vertex sharp waves (N1) and sawtooth waves (REM). The delta component
is a brown (1/f^2) process, so its growing share from N1 to N3 is what steepens the spectral slope
with depth of sleep (Lendner et al. 2020, eLife 9:e55092). C3 and C4 share the cortical sources and
each adds a small local part; the frontal mix weights slow waves and K-complexes up and alpha down,
because both are frontally dominant while alpha is posterior (Happe et al. 2002, Clin Neurophysiol
113:1586; Cash et al. 2009, Science 324:1084).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import sawtooth

from psg.simulate.neuro_params import NeuroParams
from psg.simulate.noise import (
    add_transients,
    bandpass_shape,
    peak_shape,
    poisson_times,
    shaped_noise,
    slow_modulation,
    upsample,
)
from psg.simulate.stage_tracks import StageTracks

#: SD of the local (electrode-specific) part of C3/C4 relative to the shared background.
LOCAL_FRACTION = 0.35
#: How strongly each graphoelement reaches the frontal sites under E1/E2.
FRONTAL_TRANSIENTS = {"spindle": 0.5, "k_complex": 1.0, "vertex": 0.3, "sawtooth": 0.4}


@dataclass
class EEGOut:
    c3: np.ndarray
    c4: np.ndarray
    frontal: np.ndarray


def render_eeg(params: NeuroParams, tracks: StageTracks, fs: float, n: int, rng: np.random.Generator) -> EEGOut:
    """Render C3-A2, C4-A1 and the frontal EEG for ``n`` samples at ``fs``."""
    shapes = {
        "aperiodic": bandpass_shape(0.5, 40.0, slope=params.aperiodic_slope),
        "delta": bandpass_shape(0.4, 3.5, slope=2.0),
        "theta": peak_shape(params.theta_hz, 1.0),
        "alpha": peak_shape(params.alpha_hz, 0.45),
        "beta": bandpass_shape(16.0, 30.0),
    }
    central = np.zeros(n, dtype=np.float32)
    frontal = np.zeros(n, dtype=np.float32)
    for name, shape in shapes.items():
        level = tracks.level(params.eeg_uv[name]) * _modulation(name, params, tracks, rng)
        component = shaped_noise(rng, n, fs, shape) * upsample(level, fs, n)
        central += component
        frontal += params.frontal_pickup[name] * component
    local_level = upsample(LOCAL_FRACTION * tracks.level(params.eeg_uv["aperiodic"]), fs, n)
    c3 = central + shaped_noise(rng, n, fs, shapes["aperiodic"]) * local_level
    c4 = central + shaped_noise(rng, n, fs, shapes["aperiodic"]) * local_level
    for kind, (onsets, kernels) in _graphoelements(params, tracks, fs, rng).items():
        for x in (c3, c4):
            add_transients(x, fs, onsets, kernels)
        add_transients(frontal, fs, onsets, [FRONTAL_TRANSIENTS[kind] * k for k in kernels])
    return EEGOut(c3=c3, c4=c4, frontal=frontal)


def _modulation(name: str, params: NeuroParams, tracks: StageTracks, rng: np.random.Generator) -> np.ndarray:
    """Waxing and waning of a rhythm, plus the two physiological gates on it.

    Alpha waxes and wanes over seconds and is blocked by eye opening (Berger 1929); slow-wave
    amplitude declines across the night as homeostatic sleep pressure dissipates (process S,
    Borbely 1982, Hum Neurobiol 1:195).
    """
    if name == "alpha":
        gate = 1.0 - (1.0 - params.alpha_eyes_open) * tracks.eyes_open
        return slow_modulation(rng, tracks.n, 0.35, 2.0) * gate
    if name == "delta":
        decline = 1.0 + params.swa_decline * (0.5 - tracks.night_frac)
        return slow_modulation(rng, tracks.n, 0.15, 10.0) * decline
    return slow_modulation(rng, tracks.n, 0.15, 10.0)


def _rate(tracks: StageTracks, per_min: np.ndarray) -> np.ndarray:
    return tracks.level(per_min) / 60.0


def _graphoelements(
    params: NeuroParams, tracks: StageTracks, fs: float, rng: np.random.Generator
) -> dict[str, tuple[np.ndarray, list[np.ndarray]]]:
    """Onsets (s) and waveforms of spindles, K-complexes, vertex sharp waves and sawtooth waves."""
    out: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
    spindles = poisson_times(rng, _rate(tracks, params.spindle_per_min), refractory_s=3.0)
    kcs = poisson_times(rng, _rate(tracks, params.kc_per_min), refractory_s=5.0)
    # About half of K-complexes are followed by a spindle (Halasz 2005, Sleep Med Rev 9:391).
    trailing = kcs[rng.random(kcs.size) < 0.5] + 0.6
    spindle_onsets = np.concatenate([spindles, trailing])
    out["spindle"] = (spindle_onsets, [_spindle(params, fs, rng) for _ in spindle_onsets])
    out["k_complex"] = (kcs, [_k_complex(params, fs, rng) for _ in kcs])
    vertex = poisson_times(rng, _rate(tracks, params.vertex_per_min), refractory_s=2.0)
    out["vertex"] = (vertex, [_vertex_wave(params, fs, rng) for _ in vertex])
    saw = poisson_times(rng, _rate(tracks, params.sawtooth_per_min), refractory_s=4.0)
    out["sawtooth"] = (saw, [_sawtooth_burst(params, fs, rng) for _ in saw])
    return out


def _spindle(params: NeuroParams, fs: float, rng: np.random.Generator) -> np.ndarray:
    """A waxing-waning 11-16 Hz burst of 0.5-2 s (AASM spindle definition)."""
    duration = float(np.clip(rng.lognormal(np.log(0.9), 0.3), 0.5, 2.0))
    freq = float(np.clip(params.spindle_hz + rng.normal(0.0, 0.4), 11.5, 15.5))
    t = np.arange(int(duration * fs)) / fs
    amp = params.spindle_uv * float(rng.lognormal(0.0, 0.25))
    return (amp * np.sin(np.pi * t / duration) ** 2 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _k_complex(params: NeuroParams, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Biphasic wave lasting > 0.5 s: a sharp negative component then a slower positive one (AASM)."""
    t = np.arange(int(1.4 * fs)) / fs
    pp = params.kc_uv * float(rng.lognormal(0.0, 0.2))
    width = float(rng.uniform(0.08, 0.12))
    wave = -0.6 * np.exp(-(((t - 0.3) / width) ** 2)) + 0.45 * np.exp(-(((t - 0.75) / (2.2 * width)) ** 2))
    return (pp * wave).astype(np.float32)


def _vertex_wave(params: NeuroParams, fs: float, rng: np.random.Generator) -> np.ndarray:
    """Sharply contoured negative wave < 0.5 s, maximal over the vertex (AASM N1)."""
    t = np.arange(int(0.5 * fs)) / fs
    amp = float(rng.uniform(50.0, 100.0)) * params.eeg_uv["aperiodic"][1] / 8.0
    wave = -np.exp(-(((t - 0.15) / 0.05) ** 2)) + 0.3 * np.exp(-(((t - 0.3) / 0.08) ** 2))
    vertex: np.ndarray = (amp * wave).astype(np.float32)
    return vertex


def _sawtooth_burst(params: NeuroParams, fs: float, rng: np.random.Generator) -> np.ndarray:
    """A train of 3-8 triangular 2-6 Hz waves, the REM sawtooth pattern (Pearl et al. 2002, Sleep 25:235)."""
    freq = float(rng.uniform(2.0, 5.0))
    n_waves = int(rng.integers(3, 9))
    t = np.arange(int(n_waves / freq * fs)) / fs
    amp = float(rng.uniform(15.0, 30.0)) * params.eeg_uv["aperiodic"][4] / 6.5
    envelope = np.sin(np.pi * t / max(t[-1], 1.0 / fs)) if t.size else t
    burst: np.ndarray = (amp * envelope * sawtooth(2 * np.pi * freq * t, width=0.8)).astype(np.float32)
    return burst
