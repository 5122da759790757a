"""Where a channel carries no physiology, with the reason (``psg.detectors.signal_loss`` turns the spans into
the ``signal_loss`` technical events; the other detectors use ``usable_mask`` to skip them).

Reasons, checked on 1-s blocks of each channel:

* ``missing``: a channel of the standard montage (``psg.montage.CHANNELS``) is not in the recording;
* ``lead_off``: the trace is flat at zero (a disconnected electrode behind a high-pass amplifier reads
  0) or, for the oximeter and the monitor rate, outside the physiological range (probes report
  0 / invalid when off the finger);
* ``flat``: the trace does not move at all (peak-to-peak below 1e-5 of the channel's range) for at
  least ``FLAT_MIN_S`` - real biosignals always carry noise, even an apnea's flow;
* ``clipped``: at least ``CLIP_FRACTION`` of a second's samples sit on the amplifier rail (the EDF
  physical range), for at least ``CLIP_MIN_S``. A breathing trace in arbitrary units (airflow, effort belts)
  that goes beyond our +-5 a.u. was recorded on a range of its own (a lab's file or device, in its own units)
  and is not checked against ours: a real nasal-pressure trace written x100 was "clipped" from end to end, so
  no apnea could be scored on it. The voltage channels keep our ranges, an amplifier's typical ones (our
  simulator's movement artifacts pass them and are flagged; a real EEG at 707 uV on a wider amplifier is too).

Flatness is not checked on slow, legitimately constant channels (SpO2, HR, body position).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from psg.dsp import runs, shared_get, shared_put
from psg.montage import CHANNELS, HR, POS, SPO2, ChannelSpec
from psg.recording import Signal

FLAT_MIN_S = 5.0
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
        block = max(1, int(round(fs)))
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


def _trace_masks(signals: list[Signal], x: np.ndarray) -> _Masks:
    """Railed, at-zero and flat blocks of signals (``x``: (signals, blocks, samples)).

    From the block extremes (NaN propagates: a block with a missing sample is neither flat nor at
    zero): peak-to-peak is max - min, and every |x| <= t exactly when max <= t and min >= -t. A
    signal without an EDF physical range (not a montage channel) is never railed.
    """
    specs = [CHANNELS.get(sig.label) for sig in signals]
    span = np.array(
        [
            (spec.physical_max - spec.physical_min) if spec else max(float(np.ptp(sig.data)), 1.0)
            for sig, spec in zip(signals, specs, strict=True)
        ]
    )[:, None]
    top, bottom = x.max(axis=2), x.min(axis=2)
    flat = top - bottom <= 1e-5 * span
    at_zero = (top <= 1e-5 * span) & (bottom >= -1e-5 * span)
    railed = _railed(x, specs, 1e-3 * span, top, bottom)
    return [
        ("clipped", railed, CLIP_MIN_S),
        ("lead_off", flat & at_zero, FLAT_MIN_S),
        ("flat", flat & ~at_zero & ~railed, FLAT_MIN_S),
    ]


def _railed(
    x: np.ndarray, specs: list[ChannelSpec | None], tol: np.ndarray, top: np.ndarray, bottom: np.ndarray
) -> np.ndarray:
    """Per signal and block: at least ``CLIP_FRACTION`` of the samples within ``tol`` of a rail (the
    EDF physical range; never for a signal without one). ``top`` / ``bottom``: the block extremes.

    Only blocks that reach a rail at all (NaN-skipping extremes) are counted sample by sample: a live
    trace rarely touches the rails, so this is usually no work. A trace in arbitrary units with any sample
    beyond the range (by more than ``tol``) was not recorded on it and is never railed (module docstring).
    """
    physical_max = np.array([spec.physical_max if spec else np.inf for spec in specs])[:, None]
    physical_min = np.array([spec.physical_min if spec else -np.inf for spec in specs])[:, None]
    high, low = physical_max - tol, physical_min + tol
    railed = np.zeros(x.shape[:2], dtype=bool)
    if np.isnan(top).any():  # a block with a missing sample: its extremes without the NaN
        top, bottom = np.fmax.reduce(x, axis=2), np.fmin.reduce(x, axis=2)
    arbitrary = np.array([spec is not None and spec.unit == ARBITRARY_UNIT for spec in specs])[:, None]
    beyond = arbitrary & ((top > physical_max + tol) | (bottom < physical_min - tol)).any(axis=1, keepdims=True)
    near = ((top >= high) | (bottom <= low)) & ~beyond
    if near.any():
        rows, blocks = np.nonzero(near)
        samples = x[rows, blocks]
        hi, lo = high[rows], low[rows]
        railed[rows, blocks] = np.mean((samples >= hi) | (samples <= lo), axis=1) >= CLIP_FRACTION
    railed[[spec is None for spec in specs]] = False
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
