"""Hypothesis writes EDF/BDF files byte by byte (``tests.psg.edf_bytes``), valid and damaged, and reads them back.

Valid: EDF or BDF, plain, EDF+C or EDF+D with gaps, 1-3 signals at rates from 0.5 to 512 Hz, data
records of 0.5-5 s: every sample comes back within one quantisation step at its place on the time
axis, gaps are where the record onsets leave them, an annotation lands at its onset, nothing is warned.
Damaged: one header fault at a time: it is either tolerated with a read warning naming it, or the
signal it concerns is dropped with a warning, or the file is refused with one line naming the file
and the field. Never another exception, never a Python warning.
"""

from __future__ import annotations

import dataclasses
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from psg.errors import FormatError
from psg.formats.edf import read_edf
from tests.psg.edf_bytes import FileSpec, SignalSpec, build, quantum

_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def valid_files(draw: st.DrawFn) -> FileSpec:
    fmt = draw(st.sampled_from(["EDF", "BDF"]))
    plus = draw(st.sampled_from([None, "C", "D"]))
    record_s = draw(st.sampled_from([0.5, 1.0, 2.0, 5.0]))
    n_records = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    signals = []
    for i in range(draw(st.integers(1, 3))):
        spr = draw(st.sampled_from([1, 5, 25, 128, 256]))
        scale = draw(st.sampled_from([1e-3, 1.0, 250.0]))
        signals.append(SignalSpec(f"S{i}", spr, rng.normal(0.0, scale, (n_records, spr)), dimension="uV"))
    onsets = None
    if plus == "D":
        steps = [record_s + draw(st.sampled_from([0.0, 0.0, 1.0, 37.5, 600.0])) for _ in range(n_records - 1)]
        onsets = np.concatenate([[0.0], np.cumsum(steps)]).tolist()
    annotations = []
    if plus:
        at = (onsets or [k * record_s for k in range(n_records)])[-1] + record_s / 2
        annotations = [(at, 10.0, "Obstructive Apnea")]
    return FileSpec(signals, record_s=record_s, fmt=fmt, plus=plus, onsets=onsets, annotations=annotations)


def _write(spec: FileSpec, folder: Path) -> Path:
    path = folder / f"variant.{spec.fmt.lower()}"
    path.write_bytes(build(spec))
    return path


@_SETTINGS
@given(spec=valid_files())
def test_valid_variants_read_back_in_place(spec: FileSpec) -> None:
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("error")
        recording = read_edf(_write(spec, Path(folder)))
    assert recording.read_warnings == []
    onsets = np.array(spec.onsets if spec.onsets is not None else [k * spec.record_s for k in range(spec.n_records)])
    expected_gaps = [
        (float(a + spec.record_s), float(b))
        for a, b in zip(onsets[:-1], onsets[1:], strict=True)
        if b - a > spec.record_s
    ]
    assert len(recording.gaps) == len(expected_gaps)
    for gap, expected_gap in zip(recording.gaps, expected_gaps, strict=True):
        assert gap == pytest.approx(expected_gap)
    for signal_spec in spec.signals:
        signal = recording.signals[signal_spec.label]
        assert signal.fs == pytest.approx(signal_spec.samples_per_record / spec.record_s)
        step = quantum(spec, signal_spec)
        for k, onset in enumerate(onsets):
            start = int(np.floor(onset * signal.fs + 0.5))  # off the sample grid: the nearest sample, halves up
            placed = signal.data[start : start + signal_spec.samples_per_record]
            np.testing.assert_allclose(placed, signal_spec.data[k], atol=step)
    if spec.annotations:
        assert recording.timeline is not None
        (event,) = recording.timeline.events
        assert event.onset_s == pytest.approx(spec.annotations[0][0], abs=1e-6)
        assert event.end_s <= recording.duration_s + 10.0


def _base(n_records: int = 4) -> FileSpec:
    rng = np.random.default_rng(1)
    return FileSpec(
        [
            SignalSpec("C3-M2", 100, rng.normal(0, 20, (n_records, 100))),
            SignalSpec("ECG", 200, rng.normal(0, 0.5, (n_records, 200)), dimension="mV"),
        ]
    )


def _with_signal(**fields: str) -> FileSpec:
    base = _base()
    return dataclasses.replace(base, signals=[dataclasses.replace(base.signals[0], **fields), base.signals[1]])


#: fault -> (the file, what happens: "warn" (read, all signals), "drop" (read without C3-M2) or "refuse",
#: a fragment of the warning or the message)
FAULTS: dict[str, tuple[FileSpec, str, str]] = {
    "record count -1": (dataclasses.replace(_base(), n_records_field="-1"), "warn", "-1 (an interrupted recording)"),
    "stale record count": (dataclasses.replace(_base(), n_records_field="9"), "warn", "the file holds 4: used 4"),
    "record count not a number": (dataclasses.replace(_base(), n_records_field="x"), "warn", "(not a number)"),
    "blanked start date": (dataclasses.replace(_base(), startdate="00.00.00"), "warn", "start date '00.00.00'"),
    "impossible start date": (dataclasses.replace(_base(), startdate="31.02.89"), "warn", "start date '31.02.89'"),
    "impossible start time": (dataclasses.replace(_base(), starttime="25.61.00"), "warn", "start time '25.61.00'"),
    "cut mid-record": (dataclasses.replace(_base(), truncate_bytes=100), "warn", "incomplete last data record"),
    "0 samples per record": (
        dataclasses.replace(_base(), signals=[*_base().signals, SignalSpec("Crc16", 0, np.zeros((4, 0)))]),
        "warn",
        "'Crc16' dropped: 0 samples per data record",
    ),
    "repeated label": (
        dataclasses.replace(_base(), signals=[*_base().signals, _base().signals[0]]),
        "warn",
        "'C3-M2' repeats",
    ),
    "physical range not a number": (_with_signal(physical_min="abc"), "drop", "physical minimum 'abc' is not a number"),
    "empty physical range": (_with_signal(physical_min=""), "drop", "physical minimum '' is not a number"),
    "physical min = max": (_with_signal(physical_min="5", physical_max="5"), "drop", "physical minimum = maximum"),
    "digital min > max": (
        _with_signal(digital_min="100", digital_max="-100"),
        "drop",
        "digital minimum 100 >= maximum",
    ),
    "record duration 0": (
        dataclasses.replace(_base(), record_s_field="0"),
        "refuse",
        "'duration of a data record' is '0'; expected a positive number of seconds",
    ),
    "record duration text": (
        dataclasses.replace(_base(), record_s_field="one"),
        "refuse",
        "'duration of a data record' is 'one'",
    ),
    "no whole record": (dataclasses.replace(_base(1), truncate_bytes=200), "refuse", "no complete data record"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_damaged_variant(tmp_path: Path, fault: str) -> None:
    spec, outcome, fragment = FAULTS[fault]
    path = _write(spec, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if outcome == "refuse":
            with pytest.raises(FormatError) as info:
                read_edf(path)
            message = str(info.value)
            assert message.startswith(f"{path}: ") and fragment in message and "\n" not in message
            return
        recording = read_edf(path)
    assert any(fragment in w for w in recording.read_warnings), recording.read_warnings
    assert ("C3-M2" in recording.signals) == (outcome == "warn")
    assert "ECG" in recording.signals and recording.signals["ECG"].fs == 200


@_SETTINGS
@given(spec=valid_files(), cut=st.integers(1, 4000), byte=st.integers(0, 255), at=st.integers(0, 4000))
def test_random_damage_is_read_or_refused_in_one_line(spec: FileSpec, cut: int, byte: int, at: int) -> None:
    """A valid file with one byte overwritten and its tail cut: read (maybe with warnings) or one-line refusal."""
    raw = bytearray(build(spec))
    raw[at % len(raw)] = byte
    raw = raw[: max(len(raw) - cut, 1)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "damaged.edf"
        path.write_bytes(bytes(raw))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                read_edf(path)
            except FormatError as exc:
                assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc)
