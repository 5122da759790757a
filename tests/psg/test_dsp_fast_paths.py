"""The fast DSP paths in ``psg.dsp`` give SciPy's results: filters bit for bit, Welch to round-off.

SciPy 1.17 runs ``welch``/``csd`` through ``ShortTimeFFT`` (2-5 ms of overhead per call on the live
path's short inputs) and redesigns a Butterworth filter on every ``butter`` call; ``psg.dsp`` replaces
them with a NumPy Welch and cached designs. These tests pin the equivalence on random inputs.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import signal

from psg import dsp

RNG = np.random.default_rng(20240601)

FILTERS = [
    (2, (0.05 / 16, 1.0 / 16), "bandpass", None),  # bandpass(x, 32, 0.05, 1.0)
    (2, 0.2, "lowpass", None),
    (1, 0.3, "highpass", None),
    (5, 0.5, "highpass", 256.0),  # NeuroKit2's ECG cleaning
    (2, (0.5, 2.0), "bandpass", 256.0),  # the slow-wave band
]


def _scipy_sos(order: int, wn: float | tuple[float, float], btype: str, fs: float | None) -> np.ndarray:
    return signal.butter(order, list(wn) if isinstance(wn, tuple) else wn, btype=btype, output="sos", fs=fs)


@pytest.mark.parametrize(("order", "wn", "btype", "fs"), FILTERS)
def test_cached_design_and_sosfiltfilt_are_bit_identical(
    order: int, wn: float | tuple[float, float], btype: str, fs: float | None
) -> None:
    filt = dsp.butter_filter(order, wn, btype, fs)
    sos = _scipy_sos(order, wn, btype, fs)
    np.testing.assert_array_equal(filt.sos, sos)
    assert filt.sos.flags.writeable is False
    for shape in [(2880,), (3, 7680), (1, 100), (60,)]:
        x = RNG.normal(size=shape) * 30 + 5
        np.testing.assert_array_equal(dsp.sosfiltfilt(filt, x), signal.sosfiltfilt(sos, x))
        strided = RNG.normal(size=(*shape, 2))[..., 1]  # not contiguous
        np.testing.assert_array_equal(dsp.sosfiltfilt(filt, strided), signal.sosfiltfilt(sos, strided))
    x32 = RNG.normal(size=500).astype(np.float32)
    out = dsp.sosfiltfilt(filt, x32)
    np.testing.assert_array_equal(out, signal.sosfiltfilt(sos, x32))
    assert out.dtype == np.float64


def test_sosfiltfilt_tail_equals_the_tail_of_the_full_result() -> None:
    filt = dsp.butter_filter(2, (0.5, 2.0), "bandpass", 256.0)
    x = RNG.normal(size=(2, 23040))
    full = signal.sosfiltfilt(_scipy_sos(2, (0.5, 2.0), "bandpass", 256.0), x)
    for keep_from in (0, 1, 7680, 15360, 23039):
        np.testing.assert_array_equal(dsp.sosfiltfilt(filt, x, keep_from=keep_from), full[:, keep_from:])
    with pytest.raises(ValueError, match="keep_from"):
        dsp.sosfiltfilt(filt, x, keep_from=23040)
    with pytest.raises(ValueError, match="padlen"):
        dsp.sosfiltfilt(filt, x[:, :10])


def test_bandpass_matches_designing_in_place() -> None:
    x = RNG.normal(size=2880)
    nyq = 16.0
    np.testing.assert_array_equal(
        dsp.bandpass(x, 32.0, 0.05, 2.0),
        signal.sosfiltfilt(signal.butter(2, [0.05 / nyq, 2.0 / nyq], btype="bandpass", output="sos"), x),
    )
    np.testing.assert_array_equal(
        dsp.bandpass(x, 32.0, None, 2.0), signal.sosfiltfilt(signal.butter(2, 2.0 / nyq, output="sos"), x)
    )
    short = x[:20]
    np.testing.assert_array_equal(dsp.bandpass(short, 32.0, 0.05, 2.0), short - short.mean())


@pytest.mark.parametrize(
    ("n", "nperseg", "fs"),
    [
        (7680, 512, 256.0),
        (320, 160, 32.0),
        (2880, 2048, 32.0),
        (7680, 1024, 256.0),
        (7680, 2560, 256.0),
        (7680, 256, 256.0),
        (101, 33, 10.0),
        (50, 64, 10.0),
    ],
)
def test_welch_and_cross_spectrum_equal_scipy(n: int, nperseg: int, fs: float) -> None:
    x = RNG.normal(size=(3, n)) * 10 + 3 + np.linspace(0, 5, n)  # offset and drift: the detrend matters
    y = RNG.normal(size=(3, n)) + 0.5 * x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy warns when nperseg > n (and shortens it, as dsp does)
        f_ref, p_ref = signal.welch(x, fs=fs, nperseg=nperseg, axis=-1)
        _, pyy_ref = signal.welch(y, fs=fs, nperseg=nperseg, axis=-1)
        _, c_ref = signal.csd(x, y, fs=fs, nperseg=nperseg, axis=-1)
    freqs, psd = dsp.welch(x, fs, nperseg)
    np.testing.assert_array_equal(freqs, f_ref)  # band edges compare frequencies exactly
    np.testing.assert_allclose(psd, p_ref, rtol=1e-10, atol=0)
    freqs2, pxx, pyy, pxy = dsp.welch_pair(x, y, fs, nperseg)
    np.testing.assert_array_equal(freqs2, f_ref)
    np.testing.assert_allclose(pxx, p_ref, rtol=1e-10, atol=0)
    np.testing.assert_allclose(pyy, pyy_ref, rtol=1e-10, atol=0)
    np.testing.assert_allclose(pxy, c_ref, rtol=1e-10, atol=1e-12 * np.abs(c_ref).max())
    f1, p1 = dsp.welch(x[1], fs, nperseg)  # 1-D input
    np.testing.assert_allclose(p1, p_ref[1], rtol=1e-10, atol=0)


def test_analytic_signal_equals_hilbert() -> None:
    for n in (7680, 7679, 2):
        x = RNG.normal(size=(3, n))
        np.testing.assert_array_equal(dsp.analytic_signal(x), signal.hilbert(x, axis=-1))


def test_dominant_period_unchanged() -> None:
    fs = 32.0
    t = np.arange(int(90 * fs)) / fs
    x = np.sin(2 * np.pi * 0.25 * t) + 0.1 * RNG.normal(size=t.size)
    assert dsp.dominant_period_s(x, fs) == pytest.approx(4.0, rel=0.05)
    assert dsp.dominant_period_s(x[:100], fs) is None and dsp.dominant_period_s(np.ones(t.size), fs) is None


def test_shared_results_memoise_by_identity_only_inside_the_block() -> None:
    x = RNG.normal(size=2880)
    outside_a, outside_b = dsp.bandpass(x, 32.0, 0.05, 1.0), dsp.bandpass(x, 32.0, 0.05, 1.0)
    assert outside_a is not outside_b and outside_a.flags.writeable
    with dsp.shared_results():
        first = dsp.bandpass(x, 32.0, 0.05, 1.0)
        assert dsp.bandpass(x, 32.0, 0.05, 1.0) is first  # same object, same arguments
        assert dsp.bandpass(x, 32.0, 0.05, 2.0) is not first  # other arguments
        assert dsp.bandpass(x.copy(), 32.0, 0.05, 1.0) is not first  # equal values, other object
        assert not first.flags.writeable  # a caller cannot change what the next one gets
        np.testing.assert_array_equal(first, outside_a)
        with dsp.shared_results():  # a nested block starts empty
            assert dsp.bandpass(x, 32.0, 0.05, 1.0) is not first
    assert dsp.bandpass(x, 32.0, 0.05, 1.0) is not first
    assert x.flags.writeable  # inputs are never frozen


def test_runs() -> None:
    starts, ends = dsp.runs(np.array([1, 1, 0, 0, 1, 0, 1, 1, 1], dtype=bool))
    assert starts.tolist() == [0, 4, 6] and ends.tolist() == [2, 5, 9]
    assert [a.size for a in dsp.runs(np.zeros(5, dtype=bool))] == [0, 0]
