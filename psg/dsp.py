"""Small signal-processing helpers shared by the simulator, the features and the detectors.

Only what more than one module needs lives here: zero-phase filters (``scipy.signal.sosfiltfilt``, so
event edges are not shifted in time, which matters when detected spans are matched to scored ones),
Welch spectra, run finding on boolean masks, and the breath-by-breath peak-to-peak envelope that AASM
respiratory rules are stated in ("peak signal excursion").

Speed matters here: the live path analyses an epoch per bed every 30 s, hundreds of beds per box, and
runs these helpers ~40 times per epoch on 30-90 s of samples, where the fixed cost of a SciPy call
outweighs the arithmetic:

* filter designs are cached (``butter_filter``): ``scipy.signal.butter`` takes 1-3 ms per call
  (``zpk2sos`` in Python), ``sosfilt_zi`` another 0.3-0.7 ms, while filtering 90 s at 256 Hz takes
  0.3 ms. ``sosfiltfilt`` runs SciPy's own algorithm (odd extension, ``sosfilt`` forward and back from
  the steady state) with the cached state, and is bit-identical to ``scipy.signal.sosfiltfilt``;
  ``sosfilt``'s Cython kernel is called directly (its Python wrapper costs ~0.1 ms per call, more
  than filtering a 90-s respiratory window), and ``keep_from`` stops the backward pass where the
  caller's interest starts;
* ``welch`` / ``welch_pair`` (Welch and cross spectra, as ``scipy.signal.welch`` / ``csd``) are a
  NumPy Welch: SciPy 1.17 computes them through ``ShortTimeFFT``, whose per-call overhead is 2-5 ms
  for the short inputs here (a 30-s epoch in 2-s segments), against ~0.1 ms for the same segments,
  Hann window, constant detrend, one-sided density scaling and mean as one batched FFT. Results
  equal SciPy's to float64 round-off (~1e-15 relative; tested), frequencies exactly;
* ``shared_results`` lets the features and the detectors of one analysis share a filtered signal,
  its breathing period and its envelope instead of computing them twice;
* ``median`` and ``analytic_signal`` are ``np.median`` and ``scipy.signal.hilbert`` without their call
  overhead, bit for bit.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ParamSpec, TypeVar, cast

import numpy as np
from scipy import fft as sp_fft
from scipy import ndimage, signal

try:  # SciPy's sosfilt kernel (private; see _sosfilt): the public wrapper when it moves
    from scipy.signal._sosfilt import _sosfilt as _sosfilt_kernel
except ImportError:  # pragma: no cover - depends on the SciPy version
    _sosfilt_kernel = None


# --- results shared within one analysis -----------------------------------------------------------

#: The memo of the innermost ``shared_results`` block: key -> (argument object, result).
_SHARED: ContextVar[dict[tuple[Any, ...], tuple[object, Any]] | None] = ContextVar("psg_dsp_shared", default=None)


@contextmanager
def shared_results() -> Iterator[None]:
    """Inside the block, helpers marked ``@shared`` compute once per input object.

    The live epoch analysis runs the features and the detectors over the same window, and both
    band-pass the same airflow, take its breathing period and check every channel for signal loss.
    Within the block a second call with the *same object* (identity, not equality) and equal other
    arguments returns the first result, so inputs must not be modified inside the block; array results
    are made read-only so a caller cannot change what the next one gets. Outside any block the
    helpers compute every time.
    """
    token = _SHARED.set({})
    try:
        yield
    finally:
        _SHARED.reset(token)


def shared_get(name: str, obj: object, args: tuple[Any, ...] = ()) -> tuple[bool, Any]:
    """(found, result) of ``name`` for ``obj`` and ``args`` in the current ``shared_results`` block."""
    memo = _SHARED.get()
    if memo is None:
        return False, None
    hit = memo.get((name, id(obj), args))
    if hit is None or hit[0] is not obj:
        return False, None
    return True, hit[1]


def shared_put(name: str, obj: object, args: tuple[Any, ...], result: Any) -> Any:
    """Remember ``result`` for ``obj`` and ``args`` in the current block (if any); return it."""
    memo = _SHARED.get()
    if memo is not None:
        if isinstance(result, np.ndarray) and result is not obj:
            result.flags.writeable = False
        memo[(name, id(obj), args)] = (obj, result)  # holding obj keeps its id from being reused
    return result


_P = ParamSpec("_P")
_R = TypeVar("_R")


def shared(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorator: inside ``shared_results``, memoise ``fn`` by its first argument's identity and the
    other (hashable, positional or keyword) arguments. The result keeps ``fn``'s signature for the
    type checker, since the wrapper returns what ``fn`` returned (or its remembered result)."""
    call: Callable[..., _R] = fn  # the wrapper splits off the first argument, which a ParamSpec cannot name

    @functools.wraps(fn)
    def wrapper(first: object, *args: Any, **kwargs: Any) -> Any:
        key = (args, tuple(sorted(kwargs.items())))
        if _SHARED.get() is None or not _hashable(key):
            return call(first, *args, **kwargs)
        found, result = shared_get(fn.__qualname__, first, key)
        if found:
            return result
        return shared_put(fn.__qualname__, first, key, call(first, *args, **kwargs))

    return cast("Callable[_P, _R]", wrapper)


def _hashable(key: tuple[Any, ...]) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return True


# --- filters -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SosFilter:
    """A designed IIR filter in second-order sections with what ``sosfiltfilt`` needs, computed once.

    ``zi`` is ``scipy.signal.sosfilt_zi(sos)`` (the step-response steady state); ``edge`` the length of
    the odd extension ``scipy.signal.sosfiltfilt`` pads each end with (3 x the filter's taps).
    """

    sos: np.ndarray
    zi: np.ndarray
    edge: int


@lru_cache(maxsize=256)
def butter_filter(order: int, wn: float | tuple[float, float], btype: str, fs: float | None = None) -> SosFilter:
    """``scipy.signal.butter(order, wn, btype, fs=fs, output='sos')``, designed once per argument set.

    The arguments are passed to SciPy exactly as given (``wn`` normalised to Nyquist when ``fs`` is
    None), so a cached design is bit-identical to designing it in place. The arrays are read-only.
    """
    sos = signal.butter(order, list(wn) if isinstance(wn, tuple) else wn, btype=btype, output="sos", fs=fs)
    n_sections = sos.shape[0]
    ntaps = 2 * n_sections + 1 - min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    zi = signal.sosfilt_zi(sos)
    sos.setflags(write=False)
    zi.setflags(write=False)
    return SosFilter(sos, zi, 3 * ntaps)


def sosfiltfilt(filt: SosFilter, x: np.ndarray, keep_from: int = 0) -> np.ndarray:
    """Zero-phase filtering of ``x`` (1-D, or 2-D along the last axis) by ``filt``: SciPy's
    ``sosfiltfilt`` with the default odd padding, step for step, but with the cached design state.

    ``keep_from`` returns only the samples from that index on (``y[..., keep_from:]``), with the same
    values: the backward pass runs from the end and simply stops there, which saves most of it when
    only the last epoch of a window is wanted.
    """
    x = np.asarray(x)
    if x.shape[-1] <= filt.edge:
        raise ValueError(f"The length of the input vector x must be greater than padlen, which is {filt.edge}.")
    if not 0 <= keep_from < x.shape[-1]:
        raise ValueError(f"keep_from must be in [0, {x.shape[-1]}), got {keep_from}")
    ext = _odd_ext(x, filt.edge)
    zi = filt.zi.reshape((filt.zi.shape[0],) + (1,) * (x.ndim - 1) + (2,))
    y = _sosfilt(filt.sos, ext, zi * ext[..., :1])
    y = _sosfilt(filt.sos, y[..., filt.edge + keep_from :][..., ::-1], zi * y[..., -1:])
    return y[..., ::-1][..., : -filt.edge]


def analytic_signal(x: np.ndarray) -> np.ndarray:
    """``scipy.signal.hilbert(x, axis=-1)`` (the analytic signal), the same FFT steps without its
    array-API overhead."""
    n = x.shape[-1]
    spectrum = sp_fft.fft(x, n, axis=-1)
    spectrum[..., 1 : (n + 1) // 2] *= 2.0
    spectrum[..., n // 2 + 1 if n % 2 == 0 else (n + 1) // 2 :] = 0.0
    analytic: np.ndarray = sp_fft.ifft(spectrum, axis=-1)  # scipy.fft is untyped
    return analytic


def _sosfilt(sos: np.ndarray, x: np.ndarray, zi: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfilt(sos, x, axis=-1, zi=zi)[0]`` for float64 ``x`` of 1 or 2 dimensions.

    SciPy's wrapper spends ~0.1 ms per call on axis juggling and validation, more than filtering a
    90-s window takes; with its Cython kernel importable this does the same preparation (a C-ordered
    float64 copy of ``x``, the state as (rows, sections, 2)) and calls the kernel directly, else it
    calls the wrapper. Bit-identical either way (tested against ``scipy.signal.sosfiltfilt``).
    """
    if _sosfilt_kernel is None or x.dtype != np.float64 or x.ndim > 2:
        filtered: np.ndarray = signal.sosfilt(sos.copy(), x, axis=-1, zi=zi)[0]  # scipy.signal is untyped
        return filtered
    rows = np.array(x.reshape(-1, x.shape[-1]), dtype=np.float64, order="C")  # filtered in place
    state = np.ascontiguousarray(zi.swapaxes(0, -2).reshape(-1, sos.shape[0], 2), dtype=np.float64)
    _sosfilt_kernel(sos.copy(), rows, state)  # the kernel wants a writable buffer; the cached one is not
    return rows.reshape(x.shape)


def _odd_ext(x: np.ndarray, n: int) -> np.ndarray:
    """``scipy.signal._arraytools.odd_ext`` along the last axis: ``x`` extended by ``n`` samples each side
    by point reflection about its end samples."""
    if n < 1:
        return x
    left, right = x[..., :1], x[..., -1:]
    return np.concatenate((2 * left - x[..., n:0:-1], x, 2 * right - x[..., -2 : -(n + 2) : -1]), axis=-1)


@shared
def bandpass(x: np.ndarray, fs: float, low_hz: float | None, high_hz: float | None, order: int = 2) -> np.ndarray:
    """Zero-phase Butterworth band-pass (or low/high-pass when one corner is None)."""
    nyq = fs / 2.0
    if low_hz is not None and high_hz is not None:
        filt = butter_filter(order, (low_hz / nyq, high_hz / nyq), "bandpass")
    elif high_hz is not None:
        filt = butter_filter(order, high_hz / nyq, "lowpass")
    elif low_hz is not None:
        filt = butter_filter(order, low_hz / nyq, "highpass")
    else:
        return np.asarray(x, dtype=np.float64)
    if x.size <= 3 * (2 * order + 1) * 2:
        centred: np.ndarray = np.asarray(x, dtype=np.float64) - np.mean(x)
        return centred
    return sosfiltfilt(filt, x)


def breathing_band(x: np.ndarray, fs: float, high_hz: float) -> np.ndarray:
    """``x`` band-passed from 0.05 Hz to ``high_hz``, the upper corner kept under 0.4 ``fs``: slow
    respiratory sensors (Sleep-EDF's 1-Hz oro-nasal flow) otherwise get a design scipy refuses."""
    return bandpass(x, fs, 0.05, min(high_hz, 0.4 * fs))


@lru_cache(maxsize=64)
def _hann(n: int) -> np.ndarray:
    """``scipy.signal.get_window('hann', n)`` (periodic, as Welch uses it), read-only."""
    win: np.ndarray = signal.get_window("hann", n)
    win.setflags(write=False)
    return win


@lru_cache(maxsize=64)
def _rfftfreq(n: int, fs: float) -> np.ndarray:
    """The frequencies SciPy's Welch reports for ``n``-sample segments at ``fs`` (its exact expression)."""
    freqs: np.ndarray = sp_fft.rfftfreq(n, 1 / fs)
    freqs.setflags(write=False)
    return freqs


def _segment_spectra(x: np.ndarray, nperseg: int) -> tuple[np.ndarray, float]:
    """FFT of every Welch segment of ``x`` along its last axis: (..., n_segments, nperseg // 2 + 1),
    with the segments' mean removed and the Hann window applied; and the window's power sum."""
    segments = _segments(x, nperseg, nperseg - nperseg // 2)
    segments = segments - np.add.reduce(segments, axis=-1, keepdims=True) / nperseg
    win = _hann(nperseg)
    return sp_fft.rfft(segments * win, axis=-1), float(np.dot(win, win))


def _segments(x: np.ndarray, nperseg: int, step: int) -> np.ndarray:
    """Read-only view of the overlapping segments of ``x`` along its last axis: (..., n_segments, nperseg).

    The same view as ``sliding_window_view(x, nperseg, axis=-1)[..., ::step, :]``, built directly.
    """
    x = np.ascontiguousarray(x)
    n_segments = (x.shape[-1] - nperseg) // step + 1
    shape = x.shape[:-1] + (n_segments, nperseg)
    strides = x.strides[:-1] + (step * x.strides[-1], x.strides[-1])
    view = np.ndarray(shape, dtype=x.dtype, buffer=x, strides=strides)
    view.flags.writeable = False
    return view


def _density(cross: np.ndarray, fs: float, nperseg: int, win_power: float) -> np.ndarray:
    """Mean over segments of one-sided power (or cross) density, scaled like SciPy's ``scaling='density'``."""
    p: np.ndarray = np.add.reduce(cross, axis=-2) / (cross.shape[-2] * fs * win_power)
    p[..., 1 : -1 if nperseg % 2 == 0 else None] *= 2
    return p


def _nperseg(n: int, nperseg: int) -> int:
    """SciPy's rule: a segment longer than the input is cut to the input length."""
    if nperseg < 1:
        raise ValueError(f"Parameter nperseg={nperseg} is not a positive integer!")
    return min(nperseg, n)


def welch(x: np.ndarray, fs: float, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.welch(x, fs, nperseg=nperseg, axis=-1)`` with its defaults (Hann, 50 % overlap,
    constant detrend, one-sided density, mean), as one batched FFT (see the module docstring)."""
    x = np.asarray(x, dtype=np.float64)
    nperseg = _nperseg(x.shape[-1], nperseg)
    spectra, win_power = _segment_spectra(x, nperseg)
    power = spectra.real * spectra.real + spectra.imag * spectra.imag
    return _rfftfreq(nperseg, fs), _density(power, fs, nperseg, win_power)


def welch_pair(x: np.ndarray, y: np.ndarray, fs: float, nperseg: int) -> tuple[np.ndarray, ...]:
    """Welch spectra of ``x`` and ``y`` and their cross-spectral density (``scipy.signal.csd(x, y)``:
    conj(X) Y) from one FFT per signal: (freqs, Pxx, Pyy, Pxy)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    nperseg = _nperseg(x.shape[-1], nperseg)
    sx, win_power = _segment_spectra(x, nperseg)
    sy, _ = _segment_spectra(y, nperseg)
    pxx = _density(sx.real * sx.real + sx.imag * sx.imag, fs, nperseg, win_power)
    pyy = _density(sy.real * sy.real + sy.imag * sy.imag, fs, nperseg, win_power)
    pxy = _density(np.conj(sx) * sy, fs, nperseg, win_power)
    return _rfftfreq(nperseg, fs), pxx, pyy, pxy


def median(x: np.ndarray) -> float:
    """``float(np.median(x))`` of a 1-D array: for finite values from one ``np.partition``, as NumPy
    computes it (the middle value, or the mean of the two middle ones), without ~50 us of call overhead."""
    x = np.asarray(x)
    if x.size == 0 or x.ndim != 1 or not np.isfinite(x).all():
        return float(np.median(x))
    half = x.size // 2
    if x.size % 2:
        return float(np.partition(x, half)[half])
    part = np.partition(x, (half - 1, half))
    return (float(part[half - 1]) + float(part[half])) / 2.0


def runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and end (exclusive) indices of every run of True in a 1-D boolean mask."""
    m = np.concatenate(([False], np.asarray(mask, dtype=bool), [False]))
    edges = np.flatnonzero(m[1:] != m[:-1])
    return edges[0::2], edges[1::2]


@shared
def peak_to_peak(x: np.ndarray, fs: float, window_s: float) -> np.ndarray:
    """Centred running max minus running min over ``window_s``.

    With a window of about one breath this is the "peak signal excursion" of the breath around each
    sample (AASM Manual 2.6, respiratory rules): it stays high between the peaks of normal breaths and
    falls only where breaths really shrink. The price is that a reduction shows up ``window_s / 2``
    late and ends ``window_s / 2`` early, which callers undo by widening detected spans.
    """
    size = max(1, int(round(window_s * fs)))
    excursion: np.ndarray = ndimage.maximum_filter1d(x, size, mode="nearest") - ndimage.minimum_filter1d(
        x, size, mode="nearest"
    )
    return excursion


@shared
def dominant_period_s(x: np.ndarray, fs: float, low_hz: float = 0.1, high_hz: float = 0.6) -> float | None:
    """Period of the strongest rhythm between ``low_hz`` and ``high_hz`` (Welch spectrum), or None."""
    if x.size < int(64 * fs) or not np.any(np.diff(x)):
        return None
    f, p = welch(x, fs, nperseg=int(64 * fs))
    band = (f >= low_hz) & (f <= high_hz)
    if not np.any(band) or not np.any(p[band] > 0):
        return None
    return float(1.0 / f[band][np.argmax(p[band])])
