"""The speed-ups of the per-epoch analysis compute what the straightforward code computed.

Each test holds a compact copy of the original implementation (NeuroKit2's own calls, SciPy's
``resample_poly`` design, the per-channel signal-loss loop, ``np.median``) and compares on simulated
nights with artifacts and on perturbed inputs: R peaks, signal-loss spans and model signals bit for
bit, features of selected epochs exactly as for the whole recording.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from psg.dsp import median, runs
from psg.features import epoch_features
from psg.features.cardiac import detect_r_peaks, ecg_r_peak_indices
from psg.model_input import RunningNormaliser, _list_median, to_model_rate, to_model_rate_many
from psg.montage import MODEL_CHANNELS
from psg.quality.signal_loss import CHANNELS, PHYSIOLOGICAL_RANGE, loss_spans, loss_spans_many
from psg.recording import Recording, Signal
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def nights() -> list[Recording]:
    """Two 12-minute nights with artifacts (lead-off, clipping, mains, movement)."""
    timeline = synthetic_timeline(hours=0.2, seed=3, ahi=20)
    return [simulate(timeline, seed=seed, artifacts=True) for seed in (7, 28)]


def _reference_r_peaks(x: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray]:
    nk = pytest.importorskip("neurokit2", reason="the reference R-peak detector (the train extra)")
    cleaned = nk.ecg_clean(x, sampling_rate=fs)
    _, info = nk.ecg_peaks(cleaned, sampling_rate=fs, correct_artifacts=False)
    return cleaned, np.asarray(info["ECG_R_Peaks"], dtype=np.int64)


def test_r_peaks_equal_neurokit_on_simulated_ecg(nights: list[Recording]) -> None:
    for night in nights:
        ecg = night.signals["ECG"]
        window = int(90 * ecg.fs)
        for start in range(0, ecg.data.size - window + 1, window // 2):
            x = ecg.data[start : start + window]
            ref_clean, ref_peaks = _reference_r_peaks(x, ecg.fs)
            cleaned, peaks = ecg_r_peak_indices(x, ecg.fs)
            np.testing.assert_array_equal(cleaned, ref_clean)
            np.testing.assert_array_equal(peaks, ref_peaks)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("fs", [100.0, 128.0, 250.0, 256.0, 500.0])
def test_r_peaks_equal_neurokit_on_odd_signals(fs: float) -> None:
    t = np.arange(int(40 * fs)) / fs
    for x in (
        RNG.normal(size=t.size),  # noise: many short "QRS"
        np.round((np.sin(2 * np.pi * 1.2 * t) > 0.98) + 0.05 * RNG.normal(size=t.size), 2),  # plateaus
        np.sin(2 * np.pi * 1.1 * t) + 0.01 * RNG.normal(size=t.size),  # no QRS at all
    ):
        ref_clean, ref_peaks = _reference_r_peaks(x, fs)
        cleaned, peaks = ecg_r_peak_indices(x, fs)
        np.testing.assert_array_equal(cleaned, ref_clean)
        np.testing.assert_array_equal(peaks, ref_peaks)


def test_r_peaks_around_missing_samples_are_neurokits_on_each_finite_run(nights: list[Recording]) -> None:
    """A gap (NaN, inf) splits the ECG: each finite run gets NeuroKit2's beats as if it were alone (NeuroKit2
    interpolated across the gap instead, and can put a beat on the interpolated edge); none in the gap."""
    ecg = nights[0].signals["ECG"]
    fs = ecg.fs
    x = ecg.data[: int(90 * fs)].copy()
    x[int(30 * fs) : int(32 * fs)] = np.nan
    x[int(60 * fs)] = np.inf
    x[int(60 * fs) + 5] = np.nan  # a 4-sample run between two bad samples: too short for any beat
    cleaned, peaks = ecg_r_peak_indices(x, fs)
    expected = []
    for lo, hi in ((0, int(30 * fs)), (int(32 * fs), int(60 * fs)), (int(60 * fs) + 6, x.size)):
        run_clean, run_peaks = _reference_r_peaks(x[lo:hi], fs)
        np.testing.assert_array_equal(cleaned[lo:hi], run_clean)
        expected.append(run_peaks + lo)
    np.testing.assert_array_equal(peaks, np.concatenate(expected))
    assert (
        np.isnan(cleaned[int(30 * fs) : int(32 * fs)]).all()
        and np.isnan(cleaned[int(60 * fs) : int(60 * fs) + 6]).all()
    )
    assert peaks.size >= 90 * 0.8  # the beats of 90 s at >= 48 bpm, minus the gap


@pytest.mark.parametrize("fs", [0.0, -1.0, float("nan"), float("inf"), 0.5, 1.0, 3.0, 5.0, 50.0, 256.0])
def test_r_peaks_of_degenerate_input_are_none_rather_than_an_error(fs: float) -> None:
    """What NeuroKit2 raised on (too short for its filters or its 0.75-s average, a rate its 0.1-s kernel does
    not fit, all samples missing) gives no beats and a NaN or cleaned signal of the input's length."""
    for x in (np.empty(0), np.ones(1), RNG.normal(size=5), RNG.normal(size=30), np.full(2000, np.nan)):
        cleaned, peaks = ecg_r_peak_indices(x, fs)
        assert cleaned.shape == x.shape and peaks.dtype == np.int64
        assert peaks.size == 0 or (fs >= 5 and x.size == 2000 and np.isfinite(x).all()), (fs, x.size)


def _reference_loss_spans(sig: Signal) -> list[tuple[str, float, float]]:
    """``loss_spans`` as it was: one channel at a time, every check on every sample."""
    block = max(1, int(round(sig.fs)))
    n_blocks = sig.data.size // block
    if n_blocks == 0:
        return []
    x = sig.data[: n_blocks * block].reshape(n_blocks, block)
    spec = CHANNELS.get(sig.label)
    spans: list[tuple[str, float, float]] = []
    per_block = block / sig.fs

    def add(reason: str, mask: np.ndarray, min_s: float) -> None:
        for s, e in zip(*runs(mask), strict=True):
            if (e - s) * per_block >= min_s:
                spans.append((reason, s * per_block, e * per_block))

    if sig.label in PHYSIOLOGICAL_RANGE:
        lo, hi = PHYSIOLOGICAL_RANGE[sig.label]
        add("lead_off", np.any((x < lo) | (x > hi), axis=1), 5.0)
    elif sig.label not in ("SpO2", "HR", "POS"):
        span = (spec.physical_max - spec.physical_min) if spec else max(float(np.ptp(sig.data)), 1.0)
        flat = np.ptp(x, axis=1) <= 1e-5 * span
        at_zero = np.all(np.abs(x) <= 1e-5 * span, axis=1)
        railed = np.zeros(n_blocks, dtype=bool)
        if spec is not None:
            tol = 1e-3 * span
            beyond = np.nanmax(x) > spec.physical_max + tol or np.nanmin(x) < spec.physical_min - tol
            if not (spec.unit == "a.u." and beyond):  # a breathing trace beyond our range has a range of its own
                railed = np.mean((x >= spec.physical_max - tol) | (x <= spec.physical_min + tol), axis=1) >= 0.2
            add("clipped", railed, 1.0)
        add("lead_off", flat & at_zero, 5.0)
        add("flat", flat & ~at_zero & ~railed, 5.0)
    return sorted(spans, key=lambda s: s[1])


def _perturbed(sig: Signal) -> Signal:
    x = sig.data.copy()
    kind = RNG.integers(0, 5)
    if kind == 1:
        x[RNG.integers(0, x.size) :][: RNG.integers(1, x.size)] = np.nan
    elif kind == 2:
        x[: x.size // 3] = 0.0
    elif kind == 3:
        spec = CHANNELS.get(sig.label)
        x = np.clip(x * 50, spec.physical_min, spec.physical_max) if spec else x * 50
    elif kind == 4:
        x[x.size // 2 :] = x[x.size // 2]
    return Signal(sig.label, x, sig.fs, sig.unit)


def test_loss_spans_equal_the_channel_by_channel_checks(nights: list[Recording]) -> None:
    for night in nights:
        for start_s in range(0, int(night.duration_s) - 90, 60):
            signals = [
                _perturbed(Signal(s.label, s.window(start_s, start_s + 90), s.fs, s.unit))
                for s in night.signals.values()
            ]
            signals.append(Signal("custom", RNG.normal(size=900) * 1e-7, 10.0, "uV"))  # no montage spec
            reference = [_reference_loss_spans(s) for s in signals]
            assert loss_spans_many(signals) == reference
            assert [loss_spans(s) for s in signals] == reference


def test_median_helpers_equal_numpy() -> None:
    assert np.isnan(median(np.array([1.0, np.nan, 2.0]))) and median(np.array([3.0, np.inf, 1.0])) == 3.0
    for n in [*range(1, 30), 960, 1919, 1920]:
        x = np.round(RNG.normal(size=n) * 50, int(RNG.integers(0, 3)))  # ties too
        assert median(x) == float(np.median(x))
        assert _list_median(list(x[:20])) == float(np.median(x[:20]))


def test_model_signals_equal_the_per_channel_reference(nights: list[Recording]) -> None:
    """Resampling with SciPy's own default design, one channel at a time, and ``np.median`` statistics."""
    night = nights[0]
    fast, epochs = RunningNormaliser(6), range(min(8, night.n_epochs))
    reference: dict[str, dict[int, tuple[float, float]]] = {}
    for epoch in epochs:
        channels = {
            label: (night.signals[label].window(30 * epoch, 30 * epoch + 30).copy(), night.signals[label].fs)
            for label in MODEL_CHANNELS
        }
        channels["EOG-L"][0][100:300] = np.nan  # one channel with a gap takes the single-channel path
        out = fast.model_signals(epoch, channels)
        batched = to_model_rate_many(channels)
        for row, label in enumerate(MODEL_CHANNELS):
            if label == "POS":
                continue
            data, fs = channels[label]
            x = to_model_rate(data, fs)
            np.testing.assert_array_equal(batched[label], x)
            ratio = 64.0 / fs
            if ratio != 1 and np.isfinite(data).all():
                up, down = (1, int(round(1 / ratio))) if ratio < 1 else (int(round(ratio)), 1)
                direct = signal.resample_poly(data, up, down, padtype="line")[:1920]
                np.testing.assert_array_equal(x[: direct.size], direct)
            finite = x[np.isfinite(x)]
            med = float(np.median(finite))
            stats = reference.setdefault(label, {})
            stats[epoch] = (med, 1.4826 * float(np.median(np.abs(finite - med))))
            window = [stats[e] for e in stats if e > epoch - 6]
            centre, scale = np.median([s[0] for s in window]), np.median([s[1] for s in window])
            expected = np.nan_to_num((x - centre) / scale, nan=0.0).astype(np.float32)
            np.testing.assert_array_equal(out[row], expected)


def test_features_of_selected_epochs_equal_the_whole_recording(nights: list[Recording]) -> None:
    night = nights[1]
    cut = {label: Signal(s.label, s.window(300, 390), s.fs, s.unit) for label, s in night.signals.items()}
    window = Recording("w", cut)
    whole = epoch_features(window)
    beats = detect_r_peaks(window.signals["ECG"])
    for k in range(window.n_epochs):
        (one,) = epoch_features(window, epochs=[k], r_peaks=beats)
        assert one.keys() == whole[k].keys()
        for key, value in whole[k].items():
            if isinstance(value, float):
                assert one[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
            else:
                assert one[key] == value, key
    assert epoch_features(window, epochs=[2, 0])[1]["c3_delta"] == pytest.approx(whole[0]["c3_delta"], rel=1e-9)
    with pytest.raises(Exception, match="outside"):
        epoch_features(window, epochs=[3])
