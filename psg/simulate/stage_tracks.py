"""Slowly varying state of the sleeper at the control rate: stage weights, arousals, eyes open, REM phasic.

Every amplitude the neuro renderers draw is a per-stage value blended by these tracks, so that

* stage changes are smoothed over a few seconds (EEG does not switch at a 30-s epoch boundary; the
  scorer's epoch is a summary of a gradual process, Ogilvie 2001, Sleep Med Rev 5:247);
* an arousal pulls every rhythm towards its arousal value for its scored span (AASM: an abrupt shift
  of EEG frequency lasting >= 3 s), with the 1-s ramps of ``NightPlan.envelope``;
* UNSCORED epochs (movement time, artifact, '?') are drawn as wake with body movement, which is what
  a scorer most often leaves unscored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from psg.simulate.noise import CTRL_FS
from psg.simulate.plan import NightPlan
from psg.timeline import Stage

#: Rows of every per-stage table: the five stages, then the value during an arousal.
ROWS: tuple[str, ...] = ("W", "N1", "N2", "N3", "R", "arousal")
STAGE_ORDER: tuple[Stage, ...] = (Stage.W, Stage.N1, Stage.N2, Stage.N3, Stage.R)
#: Width (s) of the raised-cosine kernel smoothing stage changes.
TRANSITION_S = 6.0


@dataclass
class StageTracks:
    """Blending weights at ``CTRL_FS``: ``weights`` (5 x n) sums to 1 per sample; the rest are 0..1."""

    weights: np.ndarray
    arousal: np.ndarray
    unscored: np.ndarray
    eyes_open: np.ndarray
    rem_phasic: np.ndarray
    night_frac: np.ndarray

    @property
    def n(self) -> int:
        return int(self.arousal.size)

    def level(self, table: np.ndarray) -> np.ndarray:
        """Blend a 6-row per-stage table (``ROWS``) into a track: stage mix, overridden by arousals."""
        table = np.asarray(table, dtype=np.float64)
        base = table[:5] @ self.weights
        track: np.ndarray = (1.0 - self.arousal) * base + self.arousal * table[5]
        return track


def stage_tracks(
    plan: NightPlan, eyes_open_s: tuple[float, float], rem_phasic_s: tuple[float, float], rng: np.random.Generator
) -> StageTracks:
    """Build the tracks for ``plan``.

    ``eyes_open_s``/``rem_phasic_s`` are (mean open, mean closed) and (mean phasic, mean tonic)
    bout lengths in seconds for the alternating wake-eyes and REM phasic/tonic processes.
    """
    factor = int(CTRL_FS)
    stages = np.repeat(plan.stage_per_s, factor)
    n = stages.size
    kernel = np.hanning(int(TRANSITION_S * CTRL_FS) + 1)
    kernel /= kernel.sum()
    onehot = np.zeros((5, n))
    for row, stage in enumerate(STAGE_ORDER):
        onehot[row] = stages == stage
    unscored = (stages == Stage.UNSCORED).astype(np.float64)
    onehot[0] += unscored
    weights = np.vstack([_smooth(row, kernel) for row in onehot])
    weights /= np.maximum(weights.sum(axis=0, keepdims=True), 1e-9)
    arousal = plan.envelope(plan.arousals, CTRL_FS, ramp_s=1.0)[:n]
    eyes = _alternating(rng, n, *eyes_open_s)
    phasic = _alternating(rng, n, *rem_phasic_s)
    return StageTracks(
        weights=weights,
        arousal=np.pad(arousal, (0, n - arousal.size)),
        unscored=_smooth(unscored, kernel),
        eyes_open=_smooth(eyes, np.hanning(int(CTRL_FS)) / np.hanning(int(CTRL_FS)).sum()) * weights[0],
        rem_phasic=phasic * weights[4],
        night_frac=np.arange(n) / max(n - 1, 1),
    )


def _smooth(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Same-length convolution with edge values held (no fade at the start and end of the night)."""
    pad = kernel.size // 2
    padded = np.concatenate([np.full(pad, x[0] if x.size else 0.0), x, np.full(pad, x[-1] if x.size else 0.0)])
    return np.convolve(padded, kernel, mode="same")[pad : pad + x.size]


def _alternating(rng: np.random.Generator, n: int, mean_on_s: float, mean_off_s: float) -> np.ndarray:
    """0/1 track of alternating bouts with exponential durations (a two-state Markov process)."""
    mean_cycle = mean_on_s + mean_off_s
    n_bouts = int(3 * (n / CTRL_FS) / mean_cycle) + 8  # ample: the total then exceeds n w.h.p.
    on = np.arange(n_bouts) % 2 == 0
    if rng.random() < mean_off_s / mean_cycle:
        on = ~on  # start in the "off" state with its stationary probability
    lengths = np.maximum(1, np.round(rng.exponential(np.where(on, mean_on_s, mean_off_s)) * CTRL_FS))
    state = np.repeat(on.astype(np.float64), lengths.astype(np.int64))
    if state.size < n:
        state = np.pad(state, (0, n - state.size))
    return state[:n]
