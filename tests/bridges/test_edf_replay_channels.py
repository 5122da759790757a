"""EDF replay (``sleeplm beds --source FILE.edf``) goes through channel recognition: a clinical file at
50-100 Hz becomes montage-labelled outlets the epocher accepts. Unit level: no LSL outlet, no broker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_bridges.bed_nights import edf_recording, night_for
from device_bridges.simulated import rate_groups
from psg.epoching.epocher import _check_rate
from psg.formats import write_edf
from psg.montage import AF, ECG, EEG_C3, EEG_C4, EMG_CHIN, EOG_L, SPO2
from psg.recording import Recording, Signal


def _clinical_50hz(path: Path) -> Path:
    """Two minutes of a 50-Hz clinical montage under the labels an amplifier writes, in volts."""
    fs, seconds = 50.0, 120
    t = np.arange(int(fs * seconds)) / fs
    eeg = 30e-6 * np.sin(2 * np.pi * 10 * t)
    signals = {
        "C3-A1": Signal("C3-A1", eeg, fs, "V"),
        "C4-M1": Signal("C4-M1", eeg, fs, "V"),
        "E1-M2": Signal("E1-M2", 50e-6 * np.sin(2 * np.pi * 0.5 * t), fs, "V"),
        "Chin1-Chin2": Signal("Chin1-Chin2", 5e-6 * np.sin(2 * np.pi * 20 * t), fs, "V"),
        "ECG II": Signal("ECG II", 1e-3 * np.sin(2 * np.pi * 1.1 * t) ** 31, fs, "V"),
        "Flow": Signal("Flow", np.sin(2 * np.pi * 0.25 * t[::5]), fs / 5, ""),
        "SpO2": Signal("SpO2", np.full(seconds, 96.0), 1.0, "%"),
    }
    write_edf(Recording("clinical-50hz", signals), path)
    return path


def test_a_50_hz_clinical_edf_replays_as_montage_labelled_outlets(tmp_path: Path) -> None:
    recording = edf_recording(_clinical_50hz(tmp_path / "clinical.edf"))
    assert set(recording.signals) == {EEG_C3, EEG_C4, EOG_L, EMG_CHIN, ECG, AF, SPO2}
    assert recording.signals[EEG_C3].unit == "uV" and recording.signals[ECG].unit == "mV"  # volts converted
    assert abs(recording.signals[EEG_C3].data).max() == pytest.approx(30, rel=0.1)
    groups = {g.name: g for g in rate_groups(recording.signals)}
    assert {label for g in groups.values() for label in g.labels} == set(recording.signals)
    for group in groups.values():
        _check_rate(group.name, "bed-edf", group.labels, group.fs)  # the epocher takes every stream
    assert night_for(tmp_path / "clinical.edf", 0, hours=1.0, seed=0).signals.keys() == recording.signals.keys()


def test_sleep_edf_short_replays_its_eeg_eog_and_1_hz_flow_not_its_1_hz_emg(shared_data: Path) -> None:
    path = shared_data / "real-signals" / "sleep-edf-short" / "short_psg.edf"
    if not path.is_file():
        pytest.skip(f"{path} not in the shared data")
    recording = edf_recording(path)
    assert set(recording.signals) == {EEG_C3, EEG_C4, EOG_L, AF}  # a chin EMG at 1 Hz: not analysable
    assert abs(recording.signals[AF].data).max() <= 5.0  # its +-2048 units on our +-5 a.u.
    groups = {g.fs: g for g in rate_groups(recording.signals)}
    assert set(groups) == {100.0, 1.0} and set(groups[1.0].labels) == {AF}
    for group in groups.values():
        _check_rate(group.name, "bed-edf", group.labels, group.fs)


def test_a_lab_s_belts_in_volts_stream_on_our_range_and_still_breathe(tmp_path: Path) -> None:
    """A stream carries no range, so a file's belts in volts (50 uV swings on +-0.5 mV) are replayed on our
    +-5 a.u. (x10000): live, judged on our range, they breathe instead of reading lead-off; EEG stays in uV."""
    import edfio

    from psg.quality.epoch_flags import epoch_quality

    fs, t = 32.0, np.arange(32 * 90) / 32.0
    belt = 5e-5 * np.sin(2 * np.pi * 0.25 * t) + 1e-6 * np.random.default_rng(5).standard_normal(t.size)
    eeg = 30e-6 * np.sin(2 * np.pi * 10 * np.arange(128 * 90) / 128)
    path = tmp_path / "lab.edf"
    edfio.Edf(
        [
            edfio.EdfSignal(belt, fs, label="Chest", physical_dimension="V", physical_range=(-5e-4, 5e-4)),
            edfio.EdfSignal(eeg, 128, label="C3-M2", physical_dimension="V", physical_range=(-3.2e-3, 3.2e-3)),
        ]
    ).write(path)
    recording = edf_recording(path)
    thx = recording.signals["THX"]
    np.testing.assert_allclose(thx.data, belt * 1e4, atol=2e-4)  # the file's 16-bit steps, rescaled
    assert abs(recording.signals[EEG_C3].data).max() == pytest.approx(30, rel=0.01)
    streamed = {
        label: Signal(label, sig.data[: int(30 * sig.fs)], sig.fs, sig.unit) for label, sig in recording.signals.items()
    }
    assert epoch_quality(streamed)["THX"] == []  # no range on the wire: judged on ours, and breathing
