"""Channel recognition (psg.channels): the label table, derivation, units, overrides, Latin-1, real files,
and the commands' exit 2 on a file whose channels are all unknown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from psg.channel_choice import recognise_labels
from psg.channel_map_format import load_map_file
from psg.channels import lookup, map_recording, parse_overrides, position_from_angle
from psg.errors import PSGError
from psg.formats import read_mapped_edf, write_edf
from psg.montage import ABD, AF, ECG, EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R, POS, SPO2, THX
from psg.recording import Recording, Signal
from tests.conftest import real_file

REPO = Path(__file__).resolve().parents[2]
TABLE = {
    "EEG": [
        "C3-M2",
        "C3-A2",
        "C3-A1",
        "EEG C3",
        "C4-M1",
        "CZ-A1",
        "Cz",
        "Fpz-Cz",
        "EEG Fpz-Cz",
        "Pz-Oz",
        "Fz-Cz",
        "Cz-Oz",
        "F4-M1",
        "F3-M2",
        "O2-M1",
        "O1-M2",
        "EEG(sec)",
        "EEG",
    ],
    EOG_L: ["E1-M2", "E1", "LOC", "EOG1-A1", "EOG(L)", "EOG horizontal", "EOG G"],
    EOG_R: ["E2-M1", "ROC", "EOG(R)", "EOG2-A2", "EOG D"],
    EMG_CHIN: ["Chin1-Chin2", "1-2", "Chin", "EMG1", "EMG submental", "EMG", "Chin EMG"],
    ECG: ["ECG", "ECG II", "EKG", "ECG1"],
    AF: ["Airflow", "Flow", "Nasal Pressure", "NAF1", "Resp oro-nasal", "AIRFLOW", "Thermistor", "Pressure", "Cannula"]
    + ["PTAF", "NAF", "TERMISTORE", "Oronasal", "Flow Th"],
    THX: ["Chest", "Thor", "Thorax", "VTH", "THOR RES", "RIP Thora"],
    ABD: ["Abdomen", "Abdo", "ABD", "VAB", "ABDO RES", "RIP Abdom"],
    SPO2: ["SpO2", "SaO2", "SAO2", "Saturation", "SpO2.1s", "OSAT"],
    POS: ["POS", "Position", "PosAngle", "Body position"],
}


def _rec(*signals: tuple[str, float, str], n_s: float = 60.0, values: np.ndarray | None = None) -> Recording:
    rng = np.random.default_rng(0)
    return Recording(
        "test",
        {
            label: Signal(label, values if values is not None else rng.normal(size=int(fs * n_s)), fs, unit)
            for label, fs, unit in signals
        },
    )


@pytest.mark.parametrize(("slot", "label"), [(slot, label) for slot, labels in TABLE.items() for label in labels])
def test_every_listed_label_goes_to_its_slot(slot: str, label: str) -> None:
    for variant in (label, label.lower(), label.upper(), label.replace("-", "_").replace(" ", ":")):
        entry = lookup(variant)
        assert entry is not None and entry.slot == slot, variant


@pytest.mark.parametrize(
    "label",
    [
        "1-F",
        "2-F",
        "RIP Sum",
        "C3 Impédance",
        "Left Leg",
        "Snoring",
        "Event marker",
        "Temp rectal",
        "foo",
        "C3 Imp\ufffd\ufffddance",
        "EEG A1-A2",
        "EEG1_Off",
        "EEG C3 Impedance",
        "SUM",
        "Leg 1",
        "STAT",
        "Pleth",
    ],
)
def test_non_montage_labels_are_not_recognised(label: str) -> None:
    assert lookup(label) is None


def test_eeg_preference_and_sides() -> None:
    assert recognise_labels(["F3-M2", "O2-M1", "C4-M1", "C3-A1", "C3-M2"]) == {"C3-M2": EEG_C3, "C4-M1": EEG_C4}
    assert recognise_labels(["C3-A1", "CZ-A1"]) == {"C3-A1": EEG_C3, "CZ-A1": EEG_C4}
    assert recognise_labels(["Pz-Oz", "Fpz-Cz"]) == {"Fpz-Cz": EEG_C3, "Pz-Oz": EEG_C4}
    assert recognise_labels(["C4-M1", "Cz", "O1-M2"]) == {"C4-M1": EEG_C4, "Cz": EEG_C3}


def test_nasal_pressure_wins_airflow_and_the_other_is_kept_as_extra() -> None:
    mapped, report = map_recording(_rec(("Thermistor", 32, ""), ("Nasal Pressure", 32, "cmH2O")))
    assert report.slots[AF].file_label == "Nasal Pressure" and report.extras == ["Thermistor"]
    assert set(mapped.signals) == {AF, "Thermistor"}


def test_identity_for_montage_labelled_recordings() -> None:
    from psg.simulate import simulate
    from psg.synthetic import synthetic_timeline

    night = simulate(synthetic_timeline(hours=0.05, seed=1), seed=1)
    mapped, report = map_recording(night)
    assert list(mapped.signals) == list(night.signals)
    assert all(mapped.signals[k] is night.signals[k] for k in night.signals)
    assert report.missing == [] and report.unused == [] and report.extras == []


def test_referential_derivation_and_rate_mismatch() -> None:
    values = np.arange(6400.0)
    rec = _rec(("C3", 128, "uV"), ("M2", 128, "uV"), n_s=50, values=values)
    rec.signals["M2"] = Signal("M2", values * 0.25, 128, "uV")
    mapped, report = map_recording(rec)
    assert report.slots[EEG_C3].file_label == "C3 - M2"
    np.testing.assert_allclose(mapped.signals[EEG_C3].data, values * 0.75)
    assert report.unused == []
    rec.signals["M2"] = Signal("M2", values[:3200], 64, "uV")
    mapped, report = map_recording(rec)
    assert any("cannot derive C3-M2" in n for n in report.notes)
    # the bare electrode (against the amplifier's reference) is then the last-resort EEG, never a mix
    assert report.slots[EEG_C3].file_label == "C3"


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        ("V", 1e6),
        ("mV", 1e3),
        ("uV", 1.0),
        ("\u00b5V", 1.0),
        ("\u03bcV", 1.0),
        ("uv", 1.0),
        ("microV", 1.0),
        ("nV", 1e-3),
    ],
)
def test_voltage_units_convert_to_microvolts(unit: str, factor: float) -> None:
    rec = _rec(("C3-M2", 128, unit), ("ECG", 256, unit))
    mapped, report = map_recording(rec)
    np.testing.assert_allclose(mapped.signals[EEG_C3].data, rec.signals["C3-M2"].data * factor)
    np.testing.assert_allclose(mapped.signals[ECG].data, rec.signals["ECG"].data * factor / 1e3)
    assert mapped.signals[EEG_C3].unit == "uV" and mapped.signals[ECG].unit == "mV"
    assert report.slots[EEG_C3].converted_from == (unit if factor != 1.0 else None)


def test_the_file_s_ranges_follow_its_channels_into_their_slots(tmp_path: Path) -> None:
    """An EDF's physical ranges come through the reader, the unit conversion (V -> uV), a lab map's scale and a
    derivation (C3 - M2 can span the difference of both ranges); samples and ranges scale alike."""
    import edfio

    rng = np.random.default_rng(3)
    signals = [
        edfio.EdfSignal(rng.normal(0, 1e-5, 128 * 30), 128, label=label, physical_dimension="V", physical_range=rails)
        for label, rails in (("C3", (-3.2e-3, 3.2e-3)), ("M2", (-3.2e-3, 3.2e-3)), ("Chest", (-5e-4, 5e-4)))
    ]
    path = tmp_path / "lab.edf"
    edfio.Edf(signals).write(path)
    mapped, _ = read_mapped_edf(path)
    assert mapped.signals[EEG_C3].rails == pytest.approx((-6400.0, 6400.0))  # uV, derived
    assert mapped.signals[THX].rails == pytest.approx((-5e-4, 5e-4))  # a.u.: the file's own scale
    lab = tmp_path / "lab.toml"
    lab.write_text('[channels."Chest"]\nmontage = "THX"\nscale = 1000.0\n')
    mapped, _ = read_mapped_edf(path, lab_map=load_map_file(lab))
    assert mapped.signals[THX].rails == pytest.approx((-0.5, 0.5))


def test_unknown_unit_assumed_wrong_kind_refused_and_spo2_fraction() -> None:
    mapped, report = map_recording(_rec(("C3-M2", 128, ""), ("C4-M1", 128, "degC")))
    assert report.slots[EEG_C3].notes == ["EEG C3-A2: unit '' unknown, assumed uV."]
    assert EEG_C4 not in report.slots and any("'degC' is not a voltage unit" in n for n in report.notes)
    sat = _rec(("SaO2", 1, ""), n_s=60, values=np.full(60, 0.95))
    mapped, report = map_recording(sat)
    np.testing.assert_allclose(mapped.signals[SPO2].data, 95.0)
    assert mapped.signals[SPO2].unit == "%"


def test_position_angle_to_codes() -> None:
    np.testing.assert_array_equal(
        position_from_angle(np.array([0.0, 80.0, -80.0, 170.0, -179.0, np.nan])), [2, 1, 0, 3, 3, -1]
    )


def test_overrides_and_lab_map_win(tmp_path: Path) -> None:
    rec = _rec(("EEG2", 128, "uV"), ("C4-M1", 128, "uV"), ("chan7", 256, "V"))
    path = tmp_path / "lab.toml"
    path.write_text('[channels."chan7"]\nmontage = "ECG"\nscale = 1000.0\n')
    mapped, report = map_recording(rec, parse_overrides(["EEG2=eeg c4-a1"]), load_map_file(path))
    assert report.slots[EEG_C4].file_label == "EEG2" and report.slots[EEG_C3].file_label == "C4-M1"
    np.testing.assert_allclose(mapped.signals[ECG].data, rec.signals["chan7"].data * 1000)
    with pytest.raises(PSGError, match="'XX' is not a montage slot"):
        parse_overrides(["EEG2=XX"])
    with pytest.raises(PSGError, match="has no channel 'nope'"):
        map_recording(rec, {"nope": ECG})


def test_bridge_map_falls_back_to_the_table() -> None:
    from device_bridges.channel_map import MAPS_DIR, load_channel_map

    applied = load_channel_map(MAPS_DIR / "openbci_cyton.toml").resolve(["ch1", "ch2", "SpO2", "C4-M1"])
    assert applied.labels == ("EEG C3-A2", "EEG C4-A1", "SpO2")


def test_sleep_edf_short(real_signals: Path) -> None:
    mapped, report = read_mapped_edf(real_file(real_signals, "sleep-edf-short/short_psg.edf"))
    files = {slot: m.file_label for slot, m in report.slots.items()}
    assert files == {
        EEG_C3: "EEG Fpz-Cz",
        EEG_C4: "EEG Pz-Oz",
        EOG_L: "EOG horizontal",
        EMG_CHIN: "EMG submental",
        AF: "Resp oro-nasal",
    }
    assert "rate_too_low" in report.slots[EMG_CHIN].flags and EMG_CHIN not in mapped.signals
    assert report.slots[AF].flags == ["band_limited"] and mapped.signals[AF].fs == 1.0  # breathing fits in 1 Hz
    assert set(report.unused) == {"Temp rectal", "Event marker"}
    assert report.to_json()["missing"][:3] == [ECG, ABD, THX]


def test_nox_a1(real_signals: Path) -> None:
    mapped, report = read_mapped_edf(real_file(real_signals, "nox-a1-2min/subject1.edf"))
    files = {slot: m.file_label for slot, m in report.slots.items()}
    assert files == {
        ECG: "ECG",
        ABD: "Abdomen",
        THX: "Chest",
        AF: "Nasal Pressure",
        EOG_L: "E1-M2",
        EOG_R: "E2-M1",
        EEG_C3: "C3-M2",
        EEG_C4: "C4-M1",
        EMG_CHIN: "1-2",
        POS: "PosAngle",
        SPO2: "Saturation",
        "HR": "Heart Rate",
    }
    assert "Airflow" in report.extras and "1-F" in report.unused and "RIP Sum" in report.unused
    assert mapped.signals[EEG_C3].unit == "uV" and report.slots[EEG_C3].converted_from == "V"
    assert report.missing == [] and "C3 Impédance" in report.unused  # Latin-1 header text decoded as such
    assert "EEG C3-A2 <- 'C3-M2'" in report.summary()


@pytest.mark.parametrize("command", ["stage", "detect"])
def test_unknown_labels_exit_2_naming_them(tmp_path: Path, command: str) -> None:
    path = tmp_path / "unknown.edf"
    write_edf(_rec(("foo", 100, "uV"), ("bar", 100, "uV"), n_s=60), path)
    done = subprocess.run(
        [sys.executable, "-m", "sleeplm", command, str(path)], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert done.returncode == 2, done.stderr
    assert "no channel recognised" in done.stderr and "'foo'" in done.stderr and "'bar'" in done.stderr
