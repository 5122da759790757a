"""Submental (chin) EMG.

Surface EMG is the summed activity of many motor units: band-limited Gaussian noise (~10-100 Hz at
a 256 Hz amplifier) whose RMS follows muscle tone. Tone is highest in wake, falls through N1-N3 and is
lowest in REM (atonia, AASM Manual v2.6), where brief phasic twitches (< 250 ms bursts, Frauscher
et al. 2008, Sleep 31:724) break through. Arousals carry a burst of tone, which AASM requires for
scoring an arousal in REM.
"""

from __future__ import annotations

import numpy as np

from psg.simulate.neuro_params import NeuroParams
from psg.simulate.noise import add_transients, bandpass_shape, poisson_times, shaped_noise, slow_modulation, upsample
from psg.simulate.stage_tracks import StageTracks

#: Surface chin EMG spectrum: most power between 10 and 100 Hz (Merletti & Parker 2004).
EMG_BAND_HZ = (10.0, 100.0)


def render_emg(params: NeuroParams, tracks: StageTracks, fs: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Chin EMG for ``n`` samples at ``fs`` (uV)."""
    tone = params.emg_tone_uv * tracks.level(params.emg_rel) * slow_modulation(rng, tracks.n, 0.2, 30.0)
    carrier = shaped_noise(rng, n, fs, bandpass_shape(*EMG_BAND_HZ, order=3))
    emg: np.ndarray = carrier * upsample(tone, fs, n)
    twitch_rate = params.twitch_per_min / 60.0 * (tracks.weights[4] + 2.0 * tracks.rem_phasic)
    twitches = poisson_times(rng, twitch_rate, refractory_s=0.5)
    rem_tone = params.emg_tone_uv * params.emg_rel[4]
    add_transients(emg, fs, twitches, [_twitch(rem_tone, fs, rng) for _ in twitches])
    return emg


def _twitch(rem_tone_uv: float, fs: float, rng: np.random.Generator) -> np.ndarray:
    """A phasic REM twitch: a 50-250 ms burst several times the atonic background."""
    m = int(rng.uniform(0.05, 0.25) * fs)
    burst = rng.standard_normal(m) * np.hanning(m)
    return (float(rng.uniform(3.0, 8.0)) * rem_tone_uv * burst).astype(np.float32)
