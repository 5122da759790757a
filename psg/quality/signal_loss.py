"""Where a channel carries no physiology, with the reason (``psg.detectors.signal_loss`` turns the spans into
the ``signal_loss`` technical events; the other detectors use ``usable_mask`` to skip them).

Reasons, checked on 1-s blocks of each channel (traces under 2 Hz: 2-sample blocks, ``MIN_BLOCK_SAMPLES``):

* ``missing``: a channel of the standard montage (``psg.montage.CHANNELS``) is not in the recording;
* ``lead_off``: the trace is flat at zero (a disconnected electrode behind a high-pass amplifier reads
  0) or, for the oximeter and the monitor rate, outside the physiological range (probes report
  0 / invalid when off the finger);
* ``flat``: the trace does not move at all (peak-to-peak below 1e-5 of the channel's range) for at
  least ``FLAT_MIN_S`` - real biosignals always carry noise, even an apnea's flow;
* ``clipped``: at least ``CLIP_FRACTION`` of a second's samples sit on the amplifier rail, for at least
  ``CLIP_MIN_S``.

"The channel's range" (rails, and the scale of the flat and at-zero tests) is the one the recording declares
(``Signal.rails``: a file's EDF/BDF physical range) and our montage's typical one only where none is known
(``channel_range``). A real file's range is its own: the Nox A1 writes its belts in volts, swinging ~50 uV on
a +-0.5 mV range, which against our +-5 a.u. read "at zero" for the whole recording, and its C4-M1 reached
707 uV on a +-3.3 mV amplifier, which against our +-500 uV read "clipped". Where the range is assumed, a
breathing trace in arbitrary units (airflow, effort belts) that goes beyond our +-5 a.u. was recorded on a
range of its own (a lab's device in its own units) and is not checked against ours (a nasal-pressure trace
written x100 was otherwise "clipped" from end to end); the voltage channels keep our ranges (our simulator's
movement artifacts pass them and are flagged). Likewise a file whose samples pass the range its header
declares did not record on that range (a malformed header), and is not railed against it.

Flatness is not checked on slow, legitimately constant channels (SpO2, HR, body position).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from psg.dsp import runs, shared_get, shared_put
from psg.montage import CHANNELS, HR, POS, SPO2
from psg.recording import Signal

FLAT_MIN_S = 5.0
#: Samples per checked block of a trace at least: one sample has no peak-to-peak, so a 1-Hz trace (Sleep-EDF's
#: oro-nasal flow) read in 1-sample blocks was "flat" from end to end; it is checked in 2-s blocks. (The
#: range checks of SpO2 and HR judge each sample: 1-s blocks at 1 Hz.)
MIN_BLOCK_SAMPLES = 2
CLIP_FRACTION = 0.2
CLIP_MIN_S = 1.0
#: Plausible ranges; readings outside mean the probe is off (SpO2 < 50% is not measured reliably).
PHYSIOLOGICAL_RANGE = {SPO2: (50.0, 100.0), HR: (20.0, 250.0)}
LEAD_OFF_MIN_S = 5.0
#: The unit of the breathing traces, whose scale is each lab's own (``clipped`` in the module docstring).
ARBITRARY_UNIT = "a.u."
_NOT_FLAT_CHECKED = frozenset({SPO2, HR, POS})


Spans = list[tuple[str, float, float]]


def loss_spans(signal: Signal) -> Spans:
    """(reason, start_s, end_s) of every span where ``signal`` carries no physiology."""
    return loss_spans_many([signal])[0]


def loss_spans_many(signals: Sequence[Signal]) -> list[Spans]:
    """``loss_spans`` of each of ``signals``, computed together for signals of one rate and length.

    The checks are per 1-s block, so a bed's channels of one stream (six at 256 Hz, three at 32 Hz)
    are one (channels, blocks, samples) array and each reduction runs once for all of them: the live
    path checks every channel of every epoch, where the per-call overhead of NumPy dominates.
    """
    out: list[Spans] = [[] for _ in signals]
    groups: dict[tuple[float, int, str], list[int]] = {}
    for i, sig in enumerate(signals):
        found, spans = shared_get("loss_spans", sig)
        if found:
            out[i] = spans
            continue
        kind = sig.label if sig.label in PHYSIOLOGICAL_RANGE else ("none" if sig.label in _NOT_FLAT_CHECKED else "")
        groups.setdefault((sig.fs, sig.data.size, kind), []).append(i)
    for (fs, size, kind), rows in groups.items():
        block = max(1 if kind else MIN_BLOCK_SAMPLES, int(round(fs)))  # a range check needs one sample
        n_blocks = size // block
        if n_blocks == 0 or kind == "none":
            continue
        group = [signals[i] for i in rows]
        x = np.stack([sig.data[: n_blocks * block] for sig in group]).reshape(len(group), n_blocks, block)
        masks = _range_masks(kind, x) if kind else _trace_masks(group, x)
        hit = [np.asarray(mask.any(axis=1)) for _, mask, _ in masks]  # the usual case: nothing lost anywhere
        for r, i in enumerate(rows):
            row_masks = [(reason, mask[r], min_s) for (reason, mask, min_s), h in zip(masks, hit, strict=True) if h[r]]
            out[i] = _timed(row_masks, block / fs) if row_masks else []
    for i, sig in enumerate(signals):
        shared_put("loss_spans", sig, (), out[i])
    return out


#: (reason, per-signal-and-block mask, minimum duration s), in the order spans are reported.
_Masks = list[tuple[str, np.ndarray, float]]


def _range_masks(label: str, x: np.ndarray) -> _Masks:
    """Oximeter / monitor channels: any reading out of range in a block (NaN ignored) is lead-off."""
    lo, hi = PHYSIOLOGICAL_RANGE[label]
    bad = (np.fmin.reduce(x, axis=2) < lo) | (np.fmax.reduce(x, axis=2) > hi)
    return [("lead_off", bad, LEAD_OFF_MIN_S)]


def channel_range(signal: Signal) -> tuple[float, float] | None:
    """The range ``signal`` was recorded on: its own rails where the recording says them, else our montage's
    for its label (None for a channel outside the montage: such a trace is never railed)."""
    if signal.rails is not None:
        return signal.rails
    spec = CHANNELS.get(signal.label)
    return None if spec is None else (spec.physical_min, spec.physical_max)


def _trace_masks(signals: list[Signal], x: np.ndarray) -> _Masks:
    """Railed, at-zero and flat blocks of signals (``x``: (signals, blocks, samples)).

    From the block extremes (NaN propagates: a block with a missing sample is neither flat nor at
    zero): peak-to-peak is max - min, and every |x| <= t exactly when max <= t and min >= -t.
    """
    ranges = [channel_range(sig) for sig in signals]
    span = np.array(
        [(r[1] - r[0]) if r else max(float(np.ptp(sig.data)), 1.0) for sig, r in zip(signals, ranges, strict=True)]
    )[:, None]
    top, bottom = x.max(axis=2), x.min(axis=2)
    flat = top - bottom <= 1e-5 * span
    at_zero = (top <= 1e-5 * span) & (bottom >= -1e-5 * span)
    not_a_rail_if_passed = [sig.rails is not None or _unit(sig) == ARBITRARY_UNIT for sig in signals]
    railed = _railed(x, ranges, not_a_rail_if_passed, 1e-3 * span, top, bottom)
    return [
        ("clipped", railed, CLIP_MIN_S),
        ("lead_off", flat & at_zero, FLAT_MIN_S),
        ("flat", flat & ~at_zero & ~railed, FLAT_MIN_S),
    ]


def _unit(signal: Signal) -> str | None:
    """The montage's unit for ``signal``'s label (None off the montage: a raw file channel)."""
    spec = CHANNELS.get(signal.label)
    return None if spec is None else spec.unit


def _railed(
    x: np.ndarray,
    ranges: list[tuple[float, float] | None],
    not_a_rail_if_passed: list[bool],
    tol: np.ndarray,
    top: np.ndarray,
    bottom: np.ndarray,
) -> np.ndarray:
    """Per signal and block: at least ``CLIP_FRACTION`` of the samples within ``tol`` of a rail (the
    channel's range; never for a signal without one). ``top`` / ``bottom``: the block extremes.

    Only blocks that reach a rail at all (NaN-skipping extremes) are counted sample by sample: a live
    trace rarely touches the rails, so this is usually no work. Where a range is a file's own or one of
    arbitrary units (``not_a_rail_if_passed``), a trace with any sample beyond it (by more than ``tol``) was not
    recorded on it and is never railed (module docstring).
    """
    physical_max = np.array([r[1] if r else np.inf for r in ranges])[:, None]
    physical_min = np.array([r[0] if r else -np.inf for r in ranges])[:, None]
    high, low = physical_max - tol, physical_min + tol
    railed = np.zeros(x.shape[:2], dtype=bool)
    if np.isnan(top).any():  # a block with a missing sample: its extremes without the NaN
        top, bottom = np.fmax.reduce(x, axis=2), np.fmin.reduce(x, axis=2)
    passable = np.array(not_a_rail_if_passed)[:, None]
    beyond = passable & ((top > physical_max + tol) | (bottom < physical_min - tol)).any(axis=1, keepdims=True)
    near = ((top >= high) | (bottom <= low)) & ~beyond
    if near.any():
        rows, blocks = np.nonzero(near)
        samples = x[rows, blocks]
        hi, lo = high[rows], low[rows]
        railed[rows, blocks] = np.mean((samples >= hi) | (samples <= lo), axis=1) >= CLIP_FRACTION
    railed[[r is None for r in ranges]] = False
    return railed


def _timed(masks: _Masks, seconds_per_block: float) -> Spans:
    """Runs of each (1-D) mask at least their minimum duration, as (reason, start_s, end_s) by start."""
    spans: Spans = []
    for reason, mask, min_s in masks:
        for s, e in zip(*runs(mask), strict=True):
            if (e - s) * seconds_per_block >= min_s:
                spans.append((reason, s * seconds_per_block, e * seconds_per_block))
    return sorted(spans, key=lambda s: s[1])


def usable_mask(signal: Signal, n: int, fs: float) -> np.ndarray:
    """True at each of ``n`` samples (rate ``fs``) where ``signal`` is not lost."""
    ok = np.ones(n, dtype=bool)
    for _, start, end in loss_spans(signal):
        ok[int(start * fs) : int(np.ceil(end * fs))] = False
    return ok
