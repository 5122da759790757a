"""Every file of ``$SLEEPLM_DATA/edf-corpus`` (EDF/EDF+/BDF/GDF written by other projects): the outcome we decided.

Per file: read with these montage slots fed (slot -> file label) and this duration, read as scoring
(annotation-only, epochs in its hypnogram), or refused with this message. The outcome is pinned so a
change in the reader or the channel table that changes what a lab's file gives shows up here. Reading
must never raise anything but ``PSGError`` and never emit a Python warning (tolerated faults go to
``Recording.read_warnings``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from psg.errors import PSGError
from psg.formats.edf import read_mapped_edf
from psg.timeline import Stage

_EEG = ("EEG C3-A2", "EEG C4-A1")


def _eeg(first: str, second: str | None = None) -> dict[str, str]:
    return dict(zip(_EEG, (first, second) if second else (first,), strict=False))


#: file -> (fed slots, duration s) | ("scoring", hypnogram epochs) | refusal fragment
OUTCOMES: dict[str, tuple[dict[str, str], float] | tuple[str, int] | str] = {
    "edfio__SC4001EC-Hypnogram.bdf": ("scoring", 2880),
    "edfio__mne_test.bdf": ({"EOG-L": "E1 - A2", "EOG-R": "E2 - A1", **_eeg("C3 - A2", "C4 - A1")}, 6),
    "edfio__short_psg.bdf": (
        {"EOG-L": "EOG horizontal", "AF": "Resp oro-nasal", **_eeg("EEG Fpz-Cz", "EEG Pz-Oz")},
        300,
    ),
    "edfio__test_subsecond.bdf": (_eeg("Fp1"), 698),
    "edfio__test_subsecond.edf": (_eeg("Fp1"), 698),
    "edfjl__bdf_test.bdf": (_eeg("EEG Channel-1", "EEG Channel-2"), 73),
    "edfjl__bdf_test.edf": (_eeg("EEG Channel-1", "EEG Channel-2"), 73),
    "edfjl__evt.bdf": "no channel recognised; the file has labels ['Empty Event Data']",
    "mne__duplicate_channel_labels.edf": (_eeg("EEG F1-Ref", "EEG F2-Ref"), 10),
    "mne__test.edf": ({"EOG-L": "E1 - A2", "EOG-R": "E2 - A1", **_eeg("C3 - A2", "C4 - A1")}, 6),
    "mne__test_edf_stim_channel.edf": ({"ECG": "ECG ECG1", **_eeg("EEG Cz", "EEG Fp1")}, 9.59375),
    "mne__test_stim_channel.edf": "no channel recognised; the file has labels ['stAtUs', 'tRigGer', 'sine 1 Hz']",
    "mne__test_uneven_samp.edf": "no channel recognised; the file has labels ['3Hz +5/-5 V', '0.2Hz Blk 1/0uV']",
    "mnetd__NihonKohden_MB0400FU.EDF": (_eeg("EEG C3-Ref", "EEG C4-Ref"), 29),
    "mnetd__chtypes_edf.edf": ({"ECG": "ECG ECG1", **_eeg("EEG C3-Ref", "EEG C4-Ref")}, 5),
    "mnetd__multiple_annotation_chans.bdf": (
        {"ECG": "ECG", "EMG Chin": "EMG", "EOG-L": "EOG", **_eeg("C3 - A2", "C4 - A1")},
        247,
    ),
    "mnetd__subsecond_starttime.edf": (_eeg("Fp1", "F7"), 5),
    "mnetd__test_1ch.gdf": "GDF file: not supported; export the recording as EDF, EDF+ or BDF",
    "mnetd__test_bdf_stim_channel.bdf": (_eeg("Cz", "C3"), 10),
    "mnetd__test_edf_overlapping_annotations.edf": (_eeg("Cz..", "C3.."), 124),
    "mnetd__test_generator_2.edf": ({"ECG": "ECG"}, 600),
    "mnetd__test_reduced.edf": ({"EOG-L": "E1", "EOG-R": "E2", **_eeg("C3", "C4")}, 6),
    "mnetd__test_utf8_annotations.edf": ({"ECG": "ECG"}, 10),
    "pyedflib__test_generator.bdf": "no channel recognised; the file has labels ['sine 5Hz'",
    "pyedflib__test_generator.edf": "no channel recognised; the file has labels ['squarewave'",
    "pyedflib__test_generator_datarec_0_5.bdf": "no channel recognised; the file has labels ['sine 10Hz'",
    "pyedflib__test_generator_datarec_2.bdf": "no channel recognised; the file has labels ['sine 2.5Hz'",
    "pyedflib__test_legacy.edf": "no channel recognised; the file has labels ['squarewave'",
    "pyedflib__test_utf8.edf": (_eeg("Fp1"), 698),
    "wfdb__test_edfann.edf": ("scoring", 854),
}


def test_every_corpus_file_has_a_decided_outcome(edf_corpus: Path) -> None:
    files = {p.name for p in edf_corpus.iterdir() if p.suffix.lower() in (".edf", ".bdf", ".gdf")}
    assert files == set(OUTCOMES), "a corpus file was added or removed: decide its outcome here"


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_corpus_file_outcome(edf_corpus: Path, name: str) -> None:
    expected = OUTCOMES[name]
    path = edf_corpus / name
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a tolerated fault is a read warning, never a Python warning
        if isinstance(expected, str):
            with pytest.raises(PSGError) as info:
                read_mapped_edf(path)
            message = str(info.value)
            assert message.startswith(f"{path}: ") and expected in message and "\n" not in message
            return
        recording, report = read_mapped_edf(path)
    if expected[0] == "scoring":
        assert recording.is_annotation_only and recording.timeline is not None
        assert recording.timeline.n_epochs == expected[1]
        return
    slots, duration = expected
    assert {slot: m.file_label for slot, m in report.slots.items() if m.used} == slots
    assert recording.duration_s == pytest.approx(duration)
    assert report.to_json()["file_warnings"] == recording.read_warnings


def test_corpus_bdf_matches_its_edf_twin(edf_corpus: Path) -> None:
    """The same recording written as BDF (24-bit) and EDF (16-bit) reads the same, within EDF's quantisation
    (its writer's physical range is wider than the data: one count is ~0.01 uV there)."""
    edf, _ = read_mapped_edf(edf_corpus / "edfjl__bdf_test.edf")
    bdf, _ = read_mapped_edf(edf_corpus / "edfjl__bdf_test.bdf")
    for label, signal in edf.signals.items():
        other = bdf.signals[label]
        assert other.fs == signal.fs and other.data.size == signal.data.size
        assert signal.unit == other.unit == "uV"
        assert abs(other.data - signal.data).max() < 0.05


def test_corpus_duplicate_labels_both_kept(edf_corpus: Path) -> None:
    recording, report = read_mapped_edf(edf_corpus / "mne__duplicate_channel_labels.edf")
    assert "EEG F1-Ref (2)" in report.labels
    assert any("'EEG F1-Ref' repeats" in w for w in recording.read_warnings)


def test_corpus_sleep_edf_hypnogram_as_scoring(edf_corpus: Path) -> None:
    """The BDF+ copy of Sleep-EDF SC4001's hypnogram: an annotation-only file with a whole night of stages."""
    recording, _ = read_mapped_edf(edf_corpus / "edfio__SC4001EC-Hypnogram.bdf")
    timeline = recording.timeline
    assert timeline is not None and not recording.signals
    assert {Stage.W, Stage.N1, Stage.N2, Stage.N3, Stage.R} <= set(timeline.stages.tolist())
    assert recording.start_time is not None and recording.start_time.year == 1989
