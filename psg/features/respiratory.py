"""Per-epoch respiratory features: breathing rate per sensor, flow amplitude and shape, SpO2.

Whole-night processing happens once (band-pass, breath detection, envelopes); epochs only slice it.

* rates: breaths are inspiration peaks of the band-passed (0.05-1 Hz) signal, at least 1.5 s apart
  (<= 40 breaths/min) and at least 30% of the channel's typical breath excursion high, so noise in
  an apnea is not counted; rate = 60 x (peaks - 1) / (time from first to last peak). ``resp_rate_bpm``
  prefers the belts (THX, then ABD): they keep counting efforts through an obstructive apnea, when
  airflow has none; AF is the fallback.
* ``flow_amplitude``: median breath excursion (peak-to-peak over one breath) in the epoch over the
  night's median, so 1.0 is this night's ordinary breath.
* ``flow_flatness``: inspiratory flattening index, mean over peak of each inspiration's flow
  (2/pi = 0.64 for a rounded breath, towards 1 for the plateau of flow limitation; cf. Hosselet et
  al., AJRCCM 1998); median over the epoch's breaths that are not themselves part of an apnea.
* SpO2 mean, minimum and least-squares trend (%/min) over valid readings.

Any sensor rate works: the band-pass corners stay below the Nyquist frequency (``psg.dsp.breathing_band``),
so a 1-Hz oro-nasal channel (Sleep-EDF) or 25-Hz flow is read like the montage's 32 Hz.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeGuard

import numpy as np
from scipy import signal as sps

from psg.dsp import breathing_band, dominant_period_s, median, peak_to_peak, runs
from psg.montage import ABD, AF, SPO2, THX
from psg.quality.signal_loss import usable_mask
from psg.recording import Recording, Signal
from psg.timeline import EPOCH_S

MIN_BREATH_S = 1.5
MIN_BREATH_FRACTION = 0.3
_RATE_PREFERENCE = (THX, ABD, AF)


def respiratory_epoch_features(
    recording: Recording, n_epochs: int, epochs: Sequence[int] | None = None
) -> list[dict[str, float | None]]:
    """Respiratory features of each 30-s epoch (None where a channel is missing or flat).

    ``epochs`` limits the result to those epoch indices, in that order (default: all ``n_epochs``);
    the whole-record processing (filters, breath detection, the typical breath) is the same either way.
    """
    selected = list(range(n_epochs)) if epochs is None else [int(e) for e in epochs]
    rates = {label: _epoch_rates(recording.get(label), n_epochs, selected) for label in (ABD, THX, AF)}
    amplitude, flatness = _flow_shape(recording.get(AF), n_epochs, selected)
    spo2 = _spo2(recording.get(SPO2), n_epochs, selected)
    out = []
    for e in range(len(selected)):
        best = next((rates[label][e] for label in _RATE_PREFERENCE if rates[label][e] is not None), None)
        out.append(
            {
                "resp_rate_bpm": best,
                "resp_rate_abd_bpm": rates[ABD][e],
                "resp_rate_thx_bpm": rates[THX][e],
                "resp_rate_af_bpm": rates[AF][e],
                "flow_amplitude": amplitude[e],
                "flow_flatness": flatness[e],
                **spo2[e],
            }
        )
    return out


def _usable(sig: Signal | None) -> TypeGuard[Signal]:
    return sig is not None and sig.data.size > 0 and bool(np.ptp(sig.data) > 0)


def _epoch_rates(sig: Signal | None, n_epochs: int, selected: list[int]) -> list[float | None]:
    if not _usable(sig):
        return [None] * len(selected)
    x = breathing_band(sig.data, sig.fs, 1.0)
    typical = _typical_excursion(x, sig.fs)
    ok = usable_mask(sig, x.size, sig.fs)
    peaks, _ = sps.find_peaks(x, distance=int(MIN_BREATH_S * sig.fs), prominence=MIN_BREATH_FRACTION * typical)
    peaks = peaks[ok[peaks]]
    times = peaks / sig.fs
    edges = np.searchsorted(times, np.arange(n_epochs + 1) * EPOCH_S)
    out: list[float | None] = []
    for e in selected:
        t = times[edges[e] : edges[e + 1]]
        out.append(60.0 * (t.size - 1) / float(t[-1] - t[0]) if t.size >= 3 else None)
    return out


def _typical_excursion(x: np.ndarray, fs: float) -> float:
    return median(peak_to_peak(x, fs, _breath_window(x, fs)))


def _breath_window(x: np.ndarray, fs: float) -> float:
    return float(np.clip(1.25 * (dominant_period_s(x, fs) or 4.0), 3.0, 10.0))


def _flow_shape(
    sig: Signal | None, n_epochs: int, selected: list[int]
) -> tuple[list[float | None], list[float | None]]:
    if not _usable(sig):
        return [None] * len(selected), [None] * len(selected)
    fs = sig.fs
    x = breathing_band(sig.data, fs, 2.0)
    env = peak_to_peak(x, fs, _breath_window(x, fs))
    ok = usable_mask(sig, x.size, fs)
    night = median(env[ok]) if ok.any() else 0.0
    # inspirations: runs of positive flow; flatness = mean / peak of each
    starts, stops = runs(x > 0)
    keep = (stops - starts) >= int(0.5 * fs)
    starts, stops = starts[keep], stops[keep]
    if starts.size:
        bounds = np.stack([starts, stops], axis=1).ravel()
        padded = np.append(x, 0.0)  # a run may end at the last sample
        sums = np.add.reduceat(padded, bounds)[0::2]
        peaks = np.maximum.reduceat(padded, bounds)[0::2]
        flatness = sums / (stops - starts) / np.maximum(peaks, 1e-12)
        real = env[starts] >= MIN_BREATH_FRACTION * night  # ignore the noise ripples of an apnea
        starts, flatness = starts[real], flatness[real]
    else:
        flatness = np.empty(0)
    breath_t = starts / fs
    edges = np.searchsorted(breath_t, np.arange(n_epochs + 1) * EPOCH_S)
    amplitude: list[float | None] = []
    flat: list[float | None] = []
    per_epoch = int(EPOCH_S * fs)
    for e in selected:
        seg, seg_ok = env[e * per_epoch : (e + 1) * per_epoch], ok[e * per_epoch : (e + 1) * per_epoch]
        amplitude.append(median(seg[seg_ok]) / night if night > 0 and seg_ok.any() else None)
        f = flatness[edges[e] : edges[e + 1]]
        flat.append(median(f) if f.size else None)
    return amplitude, flat


def _spo2(sig: Signal | None, n_epochs: int, selected: list[int]) -> list[dict[str, float | None]]:
    empty: dict[str, float | None] = {"spo2_mean": None, "spo2_min": None, "spo2_trend": None}
    if sig is None:
        return [dict(empty) for _ in selected]
    ok = usable_mask(sig, sig.data.size, sig.fs)
    out: list[dict[str, float | None]] = []
    for e in selected:
        i0, i1 = int(e * EPOCH_S * sig.fs), int((e + 1) * EPOCH_S * sig.fs)
        v, m = sig.data[i0:i1], ok[i0:i1]
        if m.sum() < 2:
            out.append(dict(empty))
            continue
        t_min = np.arange(i0, i1)[m] / sig.fs / 60.0
        slope = float(np.polyfit(t_min, v[m], 1)[0]) if np.ptp(t_min) > 0 else 0.0
        out.append({"spo2_mean": float(v[m].mean()), "spo2_min": float(v[m].min()), "spo2_trend": slope})
    return out
