"""The clinical label table: which labels, across systems and labs, name which montage slot, and how well.

``psg.channels`` maps a recording's channels with it (and derives unreferenced electrodes with
``DERIVATIONS``); kept apart because it is data a lab's engineer reads and extends, while the mapping
rules around it rarely change. Labels are compared after ``normalise`` (case, spaces and the separators
``- _ : . / ( ) %`` forgiven); rank 0 is the best label for a slot.
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

_SEPARATORS = re.compile(r"[\s\-_:./()%]+")


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
_MASTOIDS = "M1 M2 A1 A2"
#: An amplifier's common reference, average, linked ears or mastoids (``CLE``/``LER``: MASS's linked ears).
_COMMON_REFS = "Ref Avg AV LE A1A2 M1M2 LM CLE LER"

#: Labels that start with ``EEG`` but carry no EEG: ear to ear, lead-off flags, impedances.
_NOT_EEG = re.compile(r"^eeg(a1a2|a2a1|m1m2|m2m1)$|off$|imp")

#: Rank of a label the table lacks that says it is EEG (``EEG Channel-1``, ``EEG F1-Ref``): the last resort.
GENERIC_EEG_RANK = 7.0


def _decorated(slot: str, rank: float, names: str, patterns: tuple[str, ...]) -> dict[str, Entry]:
    """Each of ``names`` (space-separated) in each pattern (``"Effort {}"``): how systems dress one sensor."""
    return {normalise(p.format(n)): Entry(slot, rank) for n in names.split() for p in patterns}


def _prefixed(prefixes: str, table: dict[str, Entry]) -> dict[str, Entry]:
    """``table`` again under each modality prefix (``EOG LOC-A2``, ``EMG Chin``): systems prepend the type."""
    return {normalise(p) + key: entry for p in prefixes.split() for key, entry in table.items()}


_EOG: dict[str, Entry] = {
    # contralateral or ipsilateral mastoid, or Fpz (the NSRR cohorts' reference): all show the eyes
    **{normalise(f"{e}-{r}"): Entry(EOG_L, 0) for e in ("E1", "LOC", "EOG1") for r in _MASTOIDS.split() + ["Fpz"]},
    **{normalise(f"{e}-{r}"): Entry(EOG_R, 0) for e in ("E2", "ROC", "EOG2") for r in _MASTOIDS.split() + ["Fpz"]},
    **_plain(EOG_L, 0, "EOG-L", "LOC", "EOG1", "EOG(L)", "EOG horizontal", "EOG Left", "Left Horiz", "L-EOG"),
    **_plain(EOG_L, 0, "LEOG", "Left Eye"),
    **_plain(EOG_R, 0, "EOG-R", "ROC", "EOG2", "EOG(R)", "EOG Right", "Right Horiz", "R-EOG", "REOG"),
    **_plain(EOG_R, 0, "Right Eye", "EOG (right)"),
    # French systems: EOG gauche / droit
    **_plain(EOG_L, 0, "EOG G"),
    **_plain(EOG_R, 0, "EOG D"),
    # one bipolar horizontal EOG (Sleep-EDF's ``EOG horizontal``, CAP's ``ROC-LOC``) reads like the left eye
    **_plain(EOG_L, 0.5, "ROC-LOC", "LOC-ROC", "E2-E1", "E1-E2"),
    # an electrode against the amplifier's reference, or one EOG of unknown side
    **_plain(EOG_L, 1, "E1", "EOG"),
    **_plain(EOG_R, 1, "E2"),
}

_CHIN: dict[str, Entry] = {
    **_plain(EMG_CHIN, 0, "EMG Chin", "Chin1-Chin2", "Chin1-Chin3", "Chin2-Chin3", "1-2", "Chin", "Chin EMG"),
    **_plain(EMG_CHIN, 0, "EMG1", "EMG submental", "Submental", "EMG chin1-chin2", "LChin-CChin", "EMG1-EMG2"),
    **_plain(EMG_CHIN, 0, "Chin L-R", "L Chin-R Chin", "Ment", "Mentalis"),
    **_plain(EMG_CHIN, 1, "EMG"),
    # one chin electrode against the amplifier's reference: derived into a pair when its partner is there
    **_plain(EMG_CHIN, 2, "Chin1", "Chin2", "Chin3", "L Chin", "R Chin", "C Chin", "Chin L", "Chin R"),
}

_HEART: dict[str, Entry] = {
    **_plain(ECG, 0, "ECG", "ECG II", "EKG", "ECG1", "ECG L-R", "EKG II", "ECG I", "EKG I", "Lead I", "Lead II"),
    **_plain(ECG, 0, "ECG1-ECG2", "ECG1-ECG3", "ECG2-ECG1", "ECG3-ECG1", "EKG1", "ECG LA-RA", "ECGI", "ECGII"),
    **_plain(ECG, 1, "ECG2", "EKG2", "ECG3"),
    # one limb electrode against the amplifier's reference (MrOS's ``ECG L`` / ``ECG R``): derived when paired
    **_plain(ECG, 2, "ECG L", "ECG R", "ECG LA", "ECG RA"),
}

_BREATHING: dict[str, Entry] = {
    **_plain(AF, 0, "AF", "Nasal Pressure", "NAF1", "Pressure", "Cannula", "Flow", "Nasal Flow", "PFlow", "Pres"),
    **_plain(AF, 0, "Cannula Flow", "Nasal Pres", "NasalP", "Nasal Cannula", "Nasal", "CFlow", "Flow Patient"),
    # PTAF: a pressure-transducer airflow (Pro-Tech's, common in US labs); NAF: nasal airflow
    **_plain(AF, 0, "PTAF", "NAF", "NAF2", "Nasal Airflow"),
    **_plain(AF, 1, "Airflow", "New Air", "Resp (nasal)"),
    **_plain(AF, 2, "Thermistor", "Resp oro-nasal", "Oral Thermistor", "Oronasal Thermistor", "Therm", "Thermocouple"),
    # CAP's Italian ``TERMISTORE``, and thermal sensors named by their flow
    **_plain(AF, 2, "Termistore", "Oronasal", "Oro-nasal Flow", "Flow Th", "Therm Flow", "Nasal Therm", "Thermal Flow"),
    **_decorated(
        THX,
        0,
        "Chest Thor Thorax Thoracic THO THX Ribcage Torace VTH",
        ("{}", "Effort {}", "{} Effort", "RIP {}", "Resp {}", "{} RES", "{} Belt", "Resp Belt {}"),
    ),
    **_plain(THX, 0, "RIP Thora"),
    **_decorated(
        ABD,
        0,
        "Abdomen Abdo Abdominal ABD Addome VAB",
        ("{}", "Effort {}", "{} Effort", "RIP {}", "Resp {}", "{} RES", "{} Belt", "Resp Belt {}"),
    ),
    **_plain(ABD, 0, "RIP Abdom"),
}

_OXIMETRY_AND_POSITION: dict[str, Entry] = {
    **_plain(SPO2, 0, "SpO2", "SaO2", "Saturation", "SpO2.1s", "OSAT", "Sat", "SO2", "Oxygen Saturation", "Sp02"),
    **_plain(POS, 0, "POS", "Position", "Body position", "Body", "BodyPos", "BPos", "Pos Sensor", "Position Sensor"),
    **_plain(POS, 1, "PosAngle"),
    **_plain(HR, 0, "HR", "Heart Rate", "Pulse Rate", "PR"),
    **_plain(HR, 1, "Pulse", "DHR"),
}

#: Normalised clinical label -> slot, rank, side. Montage labels map onto themselves (rank 0). Later
#: entries win over earlier ones, so the generic 10-20 ranks come first and the clinical ones after them.
LABELS: dict[str, Entry] = {
    # any 10-20 electrode against a mastoid, ear or another electrode of its side: after the sleep derivations
    **_eeg(_LEFT_10_20, _MASTOIDS, 4.5, "L"),
    **_eeg(_RIGHT_10_20, _MASTOIDS, 4.5, "R"),
    **_eeg(_MIDLINE_10_20, _MASTOIDS, 4.6, ""),
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
    **_eeg("Fz", "Cz", 4, ""),  # bipolar midline derivations beside Sleep-EDF's Fpz-Cz and Pz-Oz
    **_eeg("Cz", "Oz Pz", 4, ""),
    **_eeg("O1", "M2 A2", 4, "L"),
    **_eeg("O2", "M1 A1", 4, "R"),
    **_eeg("C3", "O1", 4, "L"),  # slpdb's long bipolar derivation
    **_eeg("C4", "O2", 4, "R"),
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
    **_EOG,
    **_prefixed("EOG", _EOG),
    **_plain(EOG_L, 0, "EOG E1"),  # a system that says EOG of E1 has referenced it
    **_plain(EOG_R, 0, "EOG E2"),
    **_CHIN,
    **_prefixed("EMG", _CHIN),
    **_HEART,
    **_prefixed("ECG EKG", _HEART),
    **_BREATHING,
    **_OXIMETRY_AND_POSITION,
}


@dataclass(frozen=True)
class Derivation:
    """A slot built from two electrodes recorded against the amplifier's reference (C3 and M2 -> C3-M2).

    ``electrodes`` and ``refs`` are the spellings systems use (compared after ``normalise``, so ``L Chin``
    is also ``LChin``), preferred first; the derivation is skipped
    when the file already has a candidate for the slot (and EEG side) ranked ``unless_rank`` or better.
    """

    electrodes: tuple[str, ...]
    refs: tuple[str, ...]
    entry: Entry
    unless_rank: float


#: Derivations built from unreferenced electrodes, in the order they are tried.
DERIVATIONS: tuple[Derivation, ...] = (
    Derivation(("C3",), ("M2", "A2"), Entry("EEG", 0.5, "L"), unless_rank=1),
    Derivation(("C4",), ("M1", "A1"), Entry("EEG", 0.5, "R"), unless_rank=1),
    Derivation(("E1",), ("M2", "A2", "M1", "A1"), Entry(EOG_L, 0.5), unless_rank=0),
    Derivation(("E2",), ("M1", "A1", "M2", "A2"), Entry(EOG_R, 0.5), unless_rank=0),
    Derivation(
        ("Chin1", "L Chin", "Chin L", "EMG Chin1"),
        ("Chin2", "C Chin", "R Chin", "Chin R", "Chin3", "EMG Chin2"),
        Entry(EMG_CHIN, 0.5),
        unless_rank=0,
    ),
    Derivation(("ECG L", "ECG LA"), ("ECG R", "ECG RA"), Entry(ECG, 0.5), unless_rank=0),
)


def lookup(label: str) -> Entry | None:
    """The table's entry for ``label`` (forgiving case and separators), None when not recognised.

    A label the table lacks that starts with ``EEG`` is still EEG (an EEG system's ``EEG Channel-1``),
    ranked after every known derivation; one between the two ears or mastoids (Stanford's ``EEG A1-A2``)
    or a lead-off or impedance flag (MESA's ``EEG1_Off``) is not.
    """
    key = normalise(label)
    if key in LABELS:
        return LABELS[key]
    generic = key.startswith("eeg") and len(key) > 3 and not _NOT_EEG.search(key)
    return Entry("EEG", GENERIC_EEG_RANK) if generic else None
