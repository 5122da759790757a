"""The clinical label table: which labels, across systems and labs, name which montage slot, and how well.

``psg.channels`` maps a recording's channels with it (and derives unreferenced electrodes with
``DERIVATIONS``); kept apart because it is data a lab's engineer reads and extends, while the mapping
rules around it rarely change. Labels are compared after ``normalise`` (case, spaces and the separators
``- _ : . / ( )`` forgiven); rank 0 is the best label for a slot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from psg.montage import (
    ABD,
    AF,
    ECG,
    EEG_C3,
    EEG_C4,
    EMG_CHIN,
    EOG_L,
    EOG_R,
    HR,
    POS,
    SPO2,
    THX,
)

#: Slots the EEG table fills, by side (L: C3-side, R: C4-side).
EEG_SLOTS = {"L": EEG_C3, "R": EEG_C4}

_SEPARATORS = re.compile(r"[\s\-_:./()]+")


def normalise(label: str) -> str:
    """``label`` compared the forgiving way: lower case, without spaces and ``- _ : . / ( )``."""
    return _SEPARATORS.sub("", label.strip().lower())


@dataclass(frozen=True)
class Entry:
    """What a recognised label is: its slot (``"EEG"`` for either EEG slot), rank (0 best) and side."""

    slot: str
    rank: float
    side: str = ""  # EEG only: "L", "R" or "" (midline / unknown)


def _eeg(electrodes: str, refs: str, rank: float, side: str) -> dict[str, Entry]:
    """Every ``[EEG ]E-R`` spelling of electrodes x references (and the bare ``EEG E`` when refs is empty)."""
    out = {}
    for e in electrodes.split():
        for r in refs.split() or [""]:
            for prefix in ("", "eeg"):
                out[normalise(f"{prefix}{e}{r}")] = Entry("EEG", rank, side)
    return out


def _plain(slot: str, rank: float, *labels: str) -> dict[str, Entry]:
    return {normalise(label): Entry(slot, rank) for label in labels}


#: 10-20 electrodes by side: EEG of last resort against a common reference or bare.
_LEFT_10_20 = "Fp1 F3 F7 T3 T7 T5 P7 P3 O1"
_RIGHT_10_20 = "Fp2 F4 F8 T4 T8 T6 P8 P4 O2"
_MIDLINE_10_20 = "Fpz Fz Pz Oz"
_COMMON_REFS = "Ref Avg AV LE A1A2 M1M2"

#: Rank of a label the table lacks that says it is EEG (``EEG Channel-1``, ``EEG F1-Ref``): the last resort.
GENERIC_EEG_RANK = 7.0

#: Normalised clinical label -> slot, rank, side. Montage labels map onto themselves (rank 0).
LABELS: dict[str, Entry] = {
    **_eeg("C3", "M2 A2", 0, "L"),
    **_eeg("C4", "M1 A1", 0, "R"),
    **_eeg("C3", "M1 A1", 1, "L"),
    **_eeg("C4", "M2 A2", 1, "R"),
    normalise("EEG C3"): Entry("EEG", 1, "L"),
    normalise("EEG C4"): Entry("EEG", 1, "R"),
    **_eeg("Cz", "M1 M2 A1 A2", 2, ""),
    **_plain("EEG", 2.5, "Cz", "EEG Cz"),
    **_eeg("Fpz", "Cz", 3, ""),
    **_eeg("F3", "M2 A2", 3, "L"),
    **_eeg("F4", "M1 A1", 3, "R"),
    **_eeg("Pz", "Oz", 4, ""),
    **_eeg("O1", "M2 A2", 4, "L"),
    **_eeg("O2", "M1 A1", 4, "R"),
    **_plain("EEG", 5, "EEG", "EEG(sec)", "EEG2", "EEG1", "EEG 2"),
    # against the amplifier's common reference, average or linked ears (EEG systems, Nihon Kohden, MNE):
    # central first, then the rest of 10-20; bare electrodes with no reference last
    **_eeg("C3", _COMMON_REFS, 5.2, "L"),
    **_eeg("C4", _COMMON_REFS, 5.2, "R"),
    **_eeg("Cz", _COMMON_REFS, 5.3, ""),
    **_eeg(_LEFT_10_20, _COMMON_REFS, 5.5, "L"),
    **_eeg(_RIGHT_10_20, _COMMON_REFS, 5.5, "R"),
    **_eeg(_MIDLINE_10_20, _COMMON_REFS, 5.6, ""),
    **_eeg(f"C3 {_LEFT_10_20}", "", 6, "L"),
    **_eeg(f"C4 {_RIGHT_10_20}", "", 6, "R"),
    **_eeg(_MIDLINE_10_20, "", 6.1, ""),
    **_plain(
        EOG_L,
        0,
        "EOG-L",
        "E1-M2",
        "E1-A2",
        "LOC",
        "LOC-A2",
        "LOC-M2",
        "EOG1-A1",
        "EOG1-A2",
        "EOG(L)",
        "EOG horizontal",
        "EOG Left",
        "EOG E1",
        "EOG E1-M2",
        "EOG1",
    ),
    **_plain(EOG_L, 1, "E1"),
    **_plain(
        EOG_R,
        0,
        "EOG-R",
        "E2-M1",
        "E2-A1",
        "ROC",
        "ROC-A1",
        "ROC-M1",
        "EOG2-A2",
        "EOG2-A1",
        "EOG(R)",
        "EOG Right",
        "EOG E2",
        "EOG E2-M1",
        "EOG2",
    ),
    **_plain(EOG_R, 1, "E2"),
    **_plain(
        EMG_CHIN,
        0,
        "EMG Chin",
        "Chin1-Chin2",
        "Chin1-Chin3",
        "Chin2-Chin3",
        "1-2",
        "Chin",
        "Chin EMG",
        "EMG1",
        "EMG submental",
        "EMG chin1-chin2",
    ),
    **_plain(EMG_CHIN, 1, "EMG"),
    **_plain(ECG, 0, "ECG", "ECG II", "EKG", "ECG1", "ECG L-R", "EKG II"),
    **_plain(ECG, 1, "ECG2", "EKG2"),
    **_plain(
        AF, 0, "AF", "Nasal Pressure", "NAF1", "Pressure", "Cannula", "Flow", "Nasal Flow", "PFlow", "Cannula Flow"
    ),
    **_plain(AF, 1, "Airflow"),
    **_plain(AF, 2, "Thermistor", "Resp oro-nasal", "Oral Thermistor", "Oronasal Thermistor", "Therm"),
    **_plain(THX, 0, "THX", "Chest", "Thor", "Thorax", "Thoracic", "VTH", "THOR RES", "RIP Thora", "Effort THO", "THO"),
    **_plain(ABD, 0, "ABD", "Abdomen", "Abdo", "Abdominal", "VAB", "ABDO RES", "RIP Abdom", "Effort ABD"),
    **_plain(SPO2, 0, "SpO2", "SaO2", "Saturation", "SpO2.1s", "OSAT", "Sat"),
    **_plain(POS, 0, "POS", "Position", "Body position", "Body"),
    **_plain(POS, 1, "PosAngle"),
    **_plain(HR, 0, "HR", "Heart Rate", "Pulse Rate", "PR"),
    **_plain(HR, 1, "Pulse"),
}

#: Derivations built from unreferenced electrodes: (electrode, references, label, entry).
DERIVATIONS: tuple[tuple[str, tuple[str, ...], Entry], ...] = (
    ("C3", ("M2", "A2"), Entry("EEG", 0.5, "L")),
    ("C4", ("M1", "A1"), Entry("EEG", 0.5, "R")),
)


def lookup(label: str) -> Entry | None:
    """The table's entry for ``label`` (forgiving case and separators), None when not recognised.

    A label the table lacks that starts with ``EEG`` is still EEG (an EEG system's ``EEG Channel-1``),
    ranked after every known derivation.
    """
    key = normalise(label)
    if key in LABELS:
        return LABELS[key]
    return Entry("EEG", GENERIC_EEG_RANK) if key.startswith("eeg") and len(key) > 3 else None
