"""Turn one assembled epoch (with its context) into an ``EpochMessage``: the epocher's default analysis.

The epocher hands over an ``EpochWindow``: the native-rate samples of the current epoch and of up to
``context_epochs`` epochs before it (NaN where samples are missing), per montage label. The analysis
measures the current epoch exactly as the offline pipeline measures a file:

* features: ``psg.features.epoch_features`` over the window, taking the current epoch's dict. The
  context matters: R peaks, breaths and slow waves at the epoch edges are found with their
  neighbours, and ``flow_amplitude`` is relative to the window's ordinary breath (offline it is the
  night's; both read 1.0 for a normal breath);
* events: ``psg.detectors.detect_events`` over the window, keeping those overlapping the current
  epoch, with times relative to the recording start (``DetectedEvent.to_dict``);
* quality flags per channel (``psg.quality.epoch_flags``) on the current epoch's native samples;
* model signals: 10 x 1920 float32, robust z-scored (``stream_agents.normalise``);
* stage measurements, for a bed whose origin is recorded (real signals): the stage head's per-epoch
  measurements (``psg.features.live_stage``), which the runtime turns into the real bed's stage;
* aux: SpO2 and HR at 1 Hz (30 values, NaN where there is no valid reading). HR is the monitor's HR
  channel where the bed sends one, else the instantaneous rate from ECG R peaks
  (``psg.features.cardiac.detect_r_peaks``), else NaN.

Feature and detector code needs finite samples, so the window is filled first: short holes are
bridged by a straight line (the spectra barely notice), but an epoch with less than half of a channel's
samples is set to zero for that channel, which the feature code reads as a flat lead and reports as
None rather than a number computed from interpolation (its quality flags say 'gap'). POS holds its
last code. A channel with no sample in the whole window is left out of the recording (features None).

Cost: this runs for every epoch of every bed (500 beds: ~17 epochs/s on a 2-core box), so the window
is analysed once, with nothing computed for the context epochs that only the current one needs:
features are computed for the current epoch only (``epoch_features(..., epochs=[k])``, the same
values as for the whole window), the ECG R peaks are detected once for the features, the cardiac
detectors and the aux HR (``window_r_peaks``), and inside ``psg.dsp.shared_results`` the features
and the detectors share the window's filtered signals and every channel's signal-loss spans (taken
for all channels at once). ``benchmarks/epoch_analysis_speed.py`` measures it; the golden test
(``tests/stream_agents/test_epoch_analysis_golden.py``) pins the output to what the straightforward
version produced.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from psg.codecs import EpochMessage
from psg.detectors import detect_events
from psg.dsp import shared_results
from psg.features import epoch_features
from psg.features.live_stage import epoch_measurements
from psg.json_codec import to_jsonable
from psg.model_input import RunningNormaliser, fill_hold, fill_linear
from psg.montage import AUX_CHANNELS, ECG, EPOCH_S, HR, MODEL_CHANNELS, POS
from psg.quality.epoch_flags import epoch_quality
from psg.quality.signal_loss import PHYSIOLOGICAL_RANGE, loss_spans_many
from psg.recording import RECORDED, Recording, Signal

_LOG = logging.getLogger(__name__)

#: Below this fraction of real samples an epoch of a channel is zeroed for the feature code (see above).
MIN_FEATURE_FRACTION = 0.5


@dataclass(frozen=True)
class EpochWindow:
    """The current epoch ``epoch`` of one bed with its context, as the epocher assembled it.

    ``signals`` hold native-rate samples from the start of epoch ``first_epoch`` to the end of
    ``epoch`` (NaN where missing), one ``Signal`` per montage label of the bed's streams.
    ``normaliser`` is the bed's running normaliser; ``end_received_at`` the arrival time of the chunk
    that completed the epoch; ``origin`` the bed's ``psg.recording.ORIGIN`` as its chunks carried it
    (None when the source did not say).
    """

    bed_id: str
    recording_id: str
    recording_start: float
    epoch: int
    first_epoch: int
    signals: dict[str, Signal]
    normaliser: RunningNormaliser
    end_received_at: float
    origin: str | None = None

    def epoch_slice(self, fs: float, epoch: int) -> slice:
        """Samples of ``epoch`` inside the window's arrays at rate ``fs`` (epoch starts rounded per epoch)."""
        base = int(round(self.first_epoch * EPOCH_S * fs))
        return slice(int(round(epoch * EPOCH_S * fs)) - base, int(round((epoch + 1) * EPOCH_S * fs)) - base)

    def current(self, label: str) -> Signal:
        """The current epoch of channel ``label``."""
        sig = self.signals[label]
        return sig.with_data(sig.data[self.epoch_slice(sig.fs, self.epoch)])


def recording_windows(
    recording: Recording, bed_id: str = "bed-1", origin: str | None = None, context_epochs: int = 2
) -> Iterator[EpochWindow]:
    """The windows an epocher with ``context_epochs`` assembles from ``recording`` streamed in order, without
    the streaming: to measure the live analysis and runtime on a file (benchmarks, tests) epoch by epoch."""
    normaliser = RunningNormaliser()
    for epoch in range(recording.n_epochs):
        first = max(0, epoch - context_epochs)
        signals = {}
        for label, sig in recording.signals.items():
            a, b = int(round(first * EPOCH_S * sig.fs)), int(round((epoch + 1) * EPOCH_S * sig.fs))
            signals[label] = sig.with_data(sig.data[a:b])
        yield EpochWindow(bed_id, recording.record_id, 0.0, epoch, first, signals, normaliser, 0.0, origin)


def analyse(window: EpochWindow) -> EpochMessage:
    """Features, events, quality, model signals and aux of ``window``'s current epoch."""
    current = {label: window.current(label) for label in window.signals}
    recording = feature_recording(window)
    k = window.epoch - window.first_epoch
    features: dict[str, Any] = {}
    events: list[dict[str, Any]] = []
    with shared_results():  # features and detectors share filtered signals and signal-loss spans
        loss_spans_many(list(recording.signals.values()))  # every channel's, at once (memoised)
        r_peaks = window_r_peaks(recording)
        if recording.signals and recording.n_epochs > k:
            features = to_jsonable(epoch_features(recording, epochs=[k], r_peaks=r_peaks)[0])
            start, end = k * EPOCH_S, (k + 1) * EPOCH_S
            offset = window.first_epoch * EPOCH_S
            events = [
                to_jsonable(replace(e, onset_s=e.onset_s + offset).to_dict())
                for e in detect_events(recording, r_peaks=r_peaks)
                if e.onset_s < end and e.end_s > start
            ]
    model_input = {label: (current[label].data, current[label].fs) for label in MODEL_CHANNELS if label in current}
    return EpochMessage(
        bed_id=window.bed_id,
        recording_id=window.recording_id,
        epoch=window.epoch,
        start_time=window.recording_start + window.epoch * EPOCH_S,
        signals=window.normaliser.model_signals(window.epoch, model_input),
        aux=aux_channels(window, recording, r_peaks),
        quality=epoch_quality(current),
        features=features,
        events=events,
        end_received_at=window.end_received_at,
        origin=window.origin,
        stage_measurements=live_stage_measurements(window, current) if window.origin == RECORDED else None,
    )


def live_stage_measurements(window: EpochWindow, current: dict[str, Signal]) -> dict[str, Any] | None:
    """The stage head's measurements of the current epoch (``psg.features.live_stage``), for a recorded bed
    only: simulated beds are staged by the signal encoder, and the ~5-20 ms per epoch is spent where it
    buys something. None (the encoder stages the epoch) if they cannot be taken: the stream goes on."""
    try:
        return epoch_measurements(current, window.signals, window.epoch - window.first_epoch)
    except Exception as exc:  # noqa: BLE001 - one epoch's measurements must not stop the bed's stream
        _LOG.warning("epoch %s/%s/%s: no stage measurements: %s", window.bed_id, window.recording_id, window.epoch, exc)
        return None


def window_r_peaks(recording: Recording) -> np.ndarray | None:
    """R-peak times (s) of the window's ECG, detected once for the features, the cardiac detectors and
    the aux heart rate (None without an ECG)."""
    from psg.features.cardiac import detect_r_peaks  # imported only when there is an ECG

    ecg = recording.signals.get(ECG)
    return None if ecg is None else detect_r_peaks(ecg)


def feature_recording(window: EpochWindow) -> Recording:
    """The window as a finite-valued ``Recording`` for the feature and detector code (see the module doc).

    A channel without a missing sample is passed as a read-only view (the usual case: no copy); the
    others are filled on a copy.
    """
    signals: dict[str, Signal] = {}
    for label, sig in window.signals.items():
        data = np.asarray(sig.data, dtype=np.float64)
        finite = np.isfinite(data)
        if finite.all():
            view = data.view()
            view.flags.writeable = False
            signals[label] = sig.with_data(view)
            continue
        if not finite.any():
            continue
        if label == POS:
            signals[label] = sig.with_data(fill_hold(data))
            continue
        data = data.copy()
        for epoch in range(window.first_epoch, window.epoch + 1):
            part = window.epoch_slice(sig.fs, epoch)
            segment = finite[part]
            if segment.size and segment.mean() < MIN_FEATURE_FRACTION:
                data[part] = 0.0
        signals[label] = sig.with_data(fill_linear(data))
    return Recording(record_id=f"{window.bed_id}/{window.recording_id}/{window.epoch}", signals=signals)


def aux_channels(window: EpochWindow, recording: Recording, r_peaks: np.ndarray | None = None) -> np.ndarray:
    """(2, 30) float32: SpO2 (%) and HR (bpm) per second of the current epoch, NaN without a valid reading.

    ``r_peaks``: the window's ECG R peaks when the caller has them (``window_r_peaks``).
    """
    n = int(EPOCH_S)
    out = np.full((len(AUX_CHANNELS), n), np.nan)
    for row, label in enumerate(AUX_CHANNELS):
        if label in window.signals:
            out[row] = per_second(window.current(label), PHYSIOLOGICAL_RANGE[label], n)
    hr_row = AUX_CHANNELS.index(HR)
    if not np.isfinite(out[hr_row]).any() and ECG in recording.signals:
        start_s = (window.epoch - window.first_epoch) * EPOCH_S
        out[hr_row] = ecg_heart_rate(recording.signals[ECG], start_s, n, r_peaks)
    return out.astype(np.float32)


def per_second(sig: Signal, bounds: tuple[float, float], n: int) -> np.ndarray:
    """Mean of the valid readings (finite, inside ``bounds``) in each of the ``n`` seconds of ``sig``."""
    x = np.asarray(sig.data, dtype=np.float64)
    second = np.minimum((np.arange(x.size) / sig.fs).astype(np.int64), n - 1)
    valid = np.isfinite(x) & (x >= bounds[0]) & (x <= bounds[1])
    sums = np.bincount(second[valid], weights=x[valid], minlength=n)[:n]
    counts = np.bincount(second[valid], minlength=n)[:n]
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def ecg_heart_rate(ecg: Signal, start_s: float, n: int, r_peaks: np.ndarray | None = None) -> np.ndarray:
    """Instantaneous HR (60 / RR, plausible beats only) at the middle of each of ``n`` seconds from ``start_s``
    (``r_peaks``: the R peaks of ``ecg`` when the caller has them)."""
    from psg.features.cardiac import detect_r_peaks  # imported only when ECG HR is needed

    beats = detect_r_peaks(ecg) if r_peaks is None else r_peaks
    if beats.size < 2:
        return np.full(n, np.nan)
    rate = 60.0 / np.diff(beats)
    times = beats[1:]
    lo, hi = PHYSIOLOGICAL_RANGE[HR]
    keep = (rate >= lo) & (rate <= hi)
    times, rate = times[keep], rate[keep]
    t = start_s + np.arange(n) + 0.5
    if times.size == 0:
        return np.full(n, np.nan)
    hr: np.ndarray = np.interp(t, times, rate)
    # No extrapolation beyond a couple of seconds of the first/last measured beat.
    hr[(t < times[0] - 2.0) | (t > times[-1] + 2.0)] = np.nan
    return hr
