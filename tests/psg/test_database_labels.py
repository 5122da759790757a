"""The channel lists of public sleep databases and clinical PSG systems, mapped whole (psg.channels).

Each list is the set of labels a database documents for its EDF files (NSRR's montage pages for MrOS and
CHAT, PhysioNet's headers for slpdb, which are read from ``$SLEEPLM_DATA`` when present), so a lab's file
from one of these systems maps without a lab map: the referenced derivations where the file has them,
else derived from the unreferenced electrodes (MrOS and CHAT record every electrode against Fpz), and no
slot claimed by a channel that is something else (``SUM``, ``Snore``, ``Leg L``, ``STAT``, ``BP``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from psg.channels import map_recording
from psg.montage import ABD, AF, ECG, EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R, HR, POS, SPO2, THX
from psg.recording import Recording, Signal

_VOLTAGE = ("EEG", "EOG", "EMG", "ECG", "EKG", "C3", "C4", "A1", "A2", "M1", "M2", "E1", "E2", "LOC", "ROC")

#: database -> (its labels in file order, the slots they must fill: slot -> file label or derivation)
DATABASES: dict[str, tuple[list[str], dict[str, str]]] = {
    "MrOS visit 1 (NSRR; every electrode against Fpz)": (
        ["Position", "Leg L", "Leg R", "C3", "C4", "A1", "A2", "ROC", "LOC", "ECG L", "ECG R", "L Chin", "R Chin"]
        + ["Airflow", "SUM", "Thoracic", "Abdominal", "STAT", "HR", "SAO2", "Cannula Flow", "DHR"],
        {
            EEG_C3: "C3 - A2",
            EEG_C4: "C4 - A1",
            EOG_L: "LOC",
            EOG_R: "ROC",
            EMG_CHIN: "L Chin - R Chin",
            ECG: "ECG L - ECG R",
            AF: "Cannula Flow",
            THX: "Thoracic",
            ABD: "Abdominal",
            SPO2: "SAO2",
            POS: "Position",
            HR: "HR",
        },
    ),
    "CHAT (NSRR; every electrode against Fpz)": (
        ["E1", "E2", "F3", "F4", "C3", "C4", "T3", "T4", "O1", "O2", "M1", "M2", "Lchin", "Rchin", "Cchin"]
        + ["ECG1", "ECG2", "ECG3", "RLeg1", "Rleg2", "LLeg1", "LLeg2", "Airflow", "Cannula Flow", "Chest", "ABD"]
        + ["SUM", "SpO2", "Pleth", "Position", "Cap", "EtCO2", "Snore"],
        {
            EEG_C3: "C3 - M2",
            EEG_C4: "C4 - M1",
            EOG_L: "E1 - M2",
            EOG_R: "E2 - M1",
            EMG_CHIN: "Lchin - Cchin",
            ECG: "ECG1",
            AF: "Cannula Flow",
            THX: "Chest",
            ABD: "ABD",
            SPO2: "SpO2",
            POS: "Position",
        },
    ),
    "SHHS": (
        ["SaO2", "H.R.", "EEG(sec)", "ECG", "EMG", "EOG(L)", "EOG(R)", "EEG", "SOUND", "AIRFLOW", "THOR RES"]
        + ["ABDO RES", "POSITION", "LIGHT", "NEW AIR", "OX stat"],
        {
            EEG_C3: "EEG(sec)",
            EEG_C4: "EEG",
            EOG_L: "EOG(L)",
            EOG_R: "EOG(R)",
            EMG_CHIN: "EMG",
            ECG: "ECG",
            AF: "AIRFLOW",
            THX: "THOR RES",
            ABD: "ABDO RES",
            SPO2: "SaO2",
            POS: "POSITION",
            HR: "H.R.",
        },
    ),
    "Stanford sleep clinic (Embla / RemLogic export)": (
        ["EEG F3-A2", "EEG F4-A1", "EEG A1-A2", "EEG C3-A2", "EEG C4-A1", "EEG O1-A2", "EEG O2-A1", "EOG LOC-A2"]
        + ["EOG ROC-A2", "EMG Chin", "Leg 1", "Leg 2", "ECG II", "Snore", "Flow Patient", "Effort THO"]
        + ["Effort ABD", "SpO2", "Body", "PulseRate"],
        {
            EEG_C3: "EEG C3-A2",
            EEG_C4: "EEG C4-A1",
            EOG_L: "EOG LOC-A2",
            EOG_R: "EOG ROC-A2",
            EMG_CHIN: "EMG Chin",
            ECG: "ECG II",
            AF: "Flow Patient",
            THX: "Effort THO",
            ABD: "Effort ABD",
            SPO2: "SpO2",
            POS: "Body",
            HR: "PulseRate",
        },
    ),
    "Haaglanden Medisch Centrum (PhysioNet HMC)": (
        ["EEG F4-M1", "EEG C4-M1", "EEG O2-M1", "EEG C3-M2", "EMG chin", "EOG E1-M2", "EOG E2-M2", "ECG"],
        {EEG_C3: "EEG C3-M2", EEG_C4: "EEG C4-M1", EOG_L: "EOG E1-M2", EOG_R: "EOG E2-M2", EMG_CHIN: "EMG chin"}
        | {ECG: "ECG"},
    ),
    "ISRUC-Sleep (its X1-X8 need a lab map)": (
        ["F3-A2", "C3-A2", "O1-A2", "F4-A1", "C4-A1", "O2-A1", "ROC-A1", "LOC-A2", "X1", "X2", "SaO2"],
        {EEG_C3: "C3-A2", EEG_C4: "C4-A1", EOG_L: "LOC-A2", EOG_R: "ROC-A1", SPO2: "SaO2"},
    ),
    "UCD sleep apnea database (PhysioNet ucddb)": (
        ["Lefteye", "RightEye", "C3A2", "C4A1", "EMG", "SpO2", "Sound", "Flow", "Sum", "ribcage", "abdo", "BodyPos"]
        + ["Pulse", "ECG"],
        {
            EEG_C3: "C3A2",
            EEG_C4: "C4A1",
            EOG_L: "Lefteye",
            EOG_R: "RightEye",
            EMG_CHIN: "EMG",
            ECG: "ECG",
            AF: "Flow",
            THX: "ribcage",
            ABD: "abdo",
            SPO2: "SpO2",
            POS: "BodyPos",
            HR: "Pulse",
        },
    ),
    "CAP sleep database (PhysioNet capslpdb, Italian belt labels)": (
        ["Fp2-F4", "F4-C4", "C4-P4", "P4-O2", "C4-A1", "ROC-LOC", "EMG1-EMG2", "ECG1-ECG2", "DX1-DX2", "SX1-SX2"]
        + ["SAO2", "HR", "PLETH", "STAT", "TORACE", "ADDOME", "Flow"],
        {
            EEG_C4: "C4-A1",
            EOG_L: "ROC-LOC",
            EMG_CHIN: "EMG1-EMG2",
            ECG: "ECG1-ECG2",
            AF: "Flow",
            THX: "TORACE",
            ABD: "ADDOME",
            SPO2: "SAO2",
            HR: "HR",
        },
    ),
    # a second derivation of a taken side fills the free EEG slot: F3-M2 before the frontal pole's Fp2-M1
    "Dreem open datasets (DOD-H / DOD-O)": (
        ["C3_M2", "F3_F4", "F3_M2", "F3_O1", "F4_O2", "FP1_F3", "FP1_M2", "FP1_O1", "FP2_F4", "FP2_M1", "FP2_O2"]
        + ["ECG", "EMG", "EOG1", "EOG2"],
        {EEG_C3: "C3_M2", EEG_C4: "F3_M2", EOG_L: "EOG1", EOG_R: "EOG2", EMG_CHIN: "EMG", ECG: "ECG"},
    ),
}


def _recording(labels: list[str], units: dict[str, str] | None = None, fs: float = 128.0) -> Recording:
    """``labels`` as a 60-s recording: noise in uV for the electrodes, zeros (a valid position code) else."""
    rng = np.random.default_rng(0)
    signals = {}
    for label in labels:
        unit = (units or {}).get(label) or ("uV" if label.upper().startswith(_VOLTAGE) else "")
        voltage = unit.lower() in ("uv", "mv") or label.upper().startswith(_VOLTAGE)
        data = rng.normal(scale=20.0, size=int(fs * 60)) if voltage else np.zeros(int(fs * 60))
        signals[label] = Signal(label, data, fs, unit)
    return Recording("database", signals)


@pytest.mark.parametrize("database", list(DATABASES))
def test_a_databases_channel_list_fills_its_slots(database: str) -> None:
    labels, expected = DATABASES[database]
    _, report = map_recording(_recording(labels))
    filled = {slot: m.file_label for slot, m in report.slots.items() if m.used}
    assert filled == expected, report.summary()


def test_unreferenced_electrodes_are_derived_as_differences() -> None:
    rec = _recording(["E1", "M2", "Lchin", "Cchin", "ECG L", "ECG R"])
    mapped, report = map_recording(rec)
    pairs = {EOG_L: ("E1", "M2"), EMG_CHIN: ("Lchin", "Cchin"), ECG: ("ECG L", "ECG R")}
    for slot, (a, b) in pairs.items():
        to_slot_unit = 1e-3 if slot == ECG else 1.0  # ECG is in mV, the electrodes in uV
        np.testing.assert_allclose(
            mapped.signals[slot].data, (rec.signals[a].data - rec.signals[b].data) * to_slot_unit
        )
    # the electrodes went into derivations: none is reported unused, and no slot is missing for want of them
    assert report.unused == [] and EOG_L not in report.missing


def test_a_referenced_channel_wins_over_a_derivation() -> None:
    _, report = map_recording(_recording(["E1-M2", "E1", "M2", "Chin1-Chin2", "Chin1", "Chin2"]))
    assert report.slots[EOG_L].file_label == "E1-M2" and report.slots[EMG_CHIN].file_label == "Chin1-Chin2"


def test_the_real_slpdb_headers_map(shared_data: Path) -> None:
    """PhysioNet's 14 slpdb headers (real files, the labels and units as recorded): every signal but the
    blood pressure, stroke volume and respiratory sum finds its slot."""
    wfdb = pytest.importorskip("wfdb", reason="reading WFDB headers needs the `wfdb` extra")
    folder = shared_data / "slpdb"
    if not folder.is_dir():
        pytest.skip(f"no slpdb headers under {folder}")
    unrecognised: set[str] = set()
    for header in sorted(folder.glob("*.hea")):
        h = wfdb.rdheader(str(header.with_suffix("")))
        _, report = map_recording(_recording(h.sig_name, dict(zip(h.sig_name, h.units, strict=True)), fs=h.fs))
        used = {m.file_label for m in report.slots.values() if m.used}
        assert "ECG" in used and any(name.startswith("EEG") for name in used), (header.name, report.summary())
        unrecognised |= set(h.sig_name) - used
    assert unrecognised == {"BP", "SV", "Resp (sum)"}
