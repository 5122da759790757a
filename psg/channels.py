"""Channel recognition: which file or device channel feeds which montage slot, in the slot's unit.

Why: clinical EDF files and amplifiers name channels their own way (``C3-M2``, ``EEG Fpz-Cz``, ``1-2``,
``Nasal Pressure``, ``Saturation``) and scale them their own way (volts, microvolts, 0-1 fractions).
Everything downstream (features, detectors, the model input) looks channels up by ``psg.montage`` label
and expects montage units, so a file whose labels are not recognised looks like an all-missing montage.
This module turns a file's channels into slots (``map_recording``); the choice by label alone lives in
``psg.channel_choice``, which live device streams share (``recognise_labels``, used by
``device_bridges.channel_map`` for labels its TOML map does not name, derivations included).

How a slot is chosen:

* ``LABELS`` lists clinical labels per slot across systems, with a rank (0 = best). Labels are compared
  after ``normalise`` (case, spaces and the separators ``- _ : . / ( )`` forgiven).
* The two EEG slots take one file channel each: central derivations against the contralateral mastoid
  first, then ipsilateral, then Cz, frontal, occipital, then generic ``EEG``. A left-side derivation
  (C3, F3, O1) goes to ``EEG C3-A2``, a right-side one to ``EEG C4-A1``; a midline one (or a second
  one of a side whose slot is taken) fills the free slot.
* Airflow prefers nasal pressure/flow over the ambiguous ``Airflow`` and over a thermistor; a recognised
  channel that loses its slot to a better one is kept under its own label as an *extra* (downstream code
  ignores labels outside the montage), never dropped silently.
* Electrodes recorded against the amplifier's reference (``C3`` with ``M2``, ``E1`` with ``M2``, ``Chin1``
  with ``Chin2``, ``ECG L`` with ``ECG R``: ``channel_labels.DERIVATIONS``) are derived (C3-M2 = C3 - M2)
  when the file has no referenced channel for that slot (and side); rates, lengths and units must match.
* A lab map (``psg.channel_map_format``) and ``--channel LABEL=SLOT`` overrides win over the table.

Units are converted to the slot's unit (``convert_unit``); a wrong kind of unit is refused for that
slot. Rates below what the analysis needs flag the slot ``rate_too_low`` and keep it out of the
returned recording (the features cannot analyse it); EEG/EOG/EMG/ECG under the model's 64 Hz are kept
and flagged ``band_limited`` (upsampled without the high band). The EDF reader decodes header text as
UTF-8 when it can, else Latin-1, so ``Impédance`` arrives as written and is reported as unused.
Labels the table lacks but that start with ``EEG`` (``EEG Channel-1``), and EEG electrodes against a
common reference (``EEG C3-Ref``) or bare (``Fp1``), are EEG of last resort, after every clinical
derivation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from psg.channel_choice import assign_slots, derived_from, derived_label, plan_derivations, without_parts
from psg.channel_labels import EEG_SLOTS, Entry, lookup, normalise
from psg.channel_map_format import ChannelMapFile
from psg.errors import PSGError
from psg.features.eeg_bandwidth import low_pass_slope, low_passed_reason
from psg.montage import (
    ABD,
    AF,
    CHANNELS,
    ECG,
    EEG_C3,
    EEG_C4,
    EMG_CHIN,
    EOG_L,
    EOG_R,
    HR,
    MODEL_FS,
    POS,
    SPO2,
    THX,
)
from psg.recording import Recording, Signal, combined_rails

#: Lowest usable rate per slot (below: ``rate_too_low``, kept out of the recording) and the rate under
#: which the slot is flagged ``band_limited`` (the features' high band or the model's 64 Hz is not there).
#: Breathing (0.1-0.5 Hz) is carried by 1 Hz, as Sleep-EDF records its oro-nasal flow: on the 20 simulated
#: ucddb nights with airflow and belts at 1 Hz the respiratory detector finds 0.968 of the scored events
#: (0.987 at 32 Hz) with at most 0.37 false per 10 min (benchmarks/RESULTS.md, "1-Hz breathing channels").
MIN_FS = {ECG: 50.0, EMG_CHIN: 25.0, EOG_L: 25.0, EOG_R: 25.0, EEG_C3: 25.0, EEG_C4: 25.0, AF: 1.0, THX: 1.0, ABD: 1.0}
FULL_FS = {
    ECG: MODEL_FS,
    EMG_CHIN: MODEL_FS,
    EOG_L: MODEL_FS,
    EOG_R: MODEL_FS,
    EEG_C3: MODEL_FS,
    EEG_C4: MODEL_FS,
    AF: 8.0,
    THX: 8.0,
    ABD: 8.0,
}

_MICRO = {"\u00b5": "u", "\u03bc": "u"}
#: Voltage units -> factor to microvolts.
VOLT_TO_UV = {
    "v": 1e6,
    "volt": 1e6,
    "volts": 1e6,
    "mv": 1e3,
    "uv": 1.0,
    "microv": 1.0,
    "microvolt": 1.0,
    "microvolts": 1.0,
    "nv": 1e-3,
}
#: Units of other kinds, refused on a voltage slot.
OTHER_UNITS = frozenset(
    {
        "degc",
        "\u00b0c",
        "c",
        "degf",
        "%",
        "bpm",
        "ohm",
        "kohm",
        "cmh2o",
        "mmhg",
        "pa",
        "db",
        "lx",
        "g",
        "g/s",
        "s",
        "h",
        "l/s",
        "l/min",
        "ml",
        "/min",
        "1/min",
    }
)


@dataclass
class SlotMapping:
    """How one slot is fed: the file channel, its rate and unit, the conversion and any flags."""

    file_label: str
    fs: float
    unit: str
    file_unit: str
    converted_from: str | None = None
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    used: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "file_label": self.file_label,
            "fs": self.fs,
            "unit": self.unit,
            "file_unit": self.file_unit,
            "converted_from": self.converted_from,
            "flags": self.flags,
            "notes": self.notes,
            "used": self.used,
        }


@dataclass
class ChannelReport:
    """Which file channel feeds each slot, what is missing, extra or unused, and why (for stderr and JSON)."""

    source: str
    slots: dict[str, SlotMapping] = field(default_factory=dict)
    extras: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    #: What the file reader tolerated (``Recording.read_warnings``): a recomputed record count, a dropped
    #: signal, a repeated label, a blanked start date.
    file_warnings: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        """Montage slots (model channels and SpO2/HR) nothing usable feeds."""
        return [slot for slot in CHANNELS if slot not in self.slots or not self.slots[slot].used]

    def to_json(self) -> dict[str, Any]:
        """The ``"channels"`` object of the commands' ``--json`` output."""
        return {
            "slots": {slot: m.to_json() for slot, m in self.slots.items()},
            "missing": self.missing,
            "extras": self.extras,
            "unused": self.unused,
            "notes": self.notes,
            "file_warnings": self.file_warnings,
        }

    def summary(self) -> str:
        """One paragraph for stderr: slot <- file label (rate, unit conversion, flags), then what is missing."""
        parts = [
            f"{slot} <- {m.file_label!r} ({m.fs:g} Hz"
            + (f", {m.converted_from} -> {m.unit or 'codes'}" if m.converted_from else "")
            + (f", {', '.join(m.flags)}" if m.flags else "")
            + ")"
            + ("" if m.used else " not analysed")
            for slot, m in self.slots.items()
        ]
        text = f"channels of {self.source}: " + ("; ".join(parts) or "none recognised")
        text += f". Missing: {', '.join(self.missing) or 'none'}."
        if self.extras:
            text += f" Kept as extras: {', '.join(self.extras)}."
        if self.unused:
            text += f" Unused: {len(self.unused)} label(s)."
        notes = self.notes + [n for m in self.slots.values() for n in m.notes]
        text += " Notes: " + " ".join(notes) if notes else ""
        return text + (" File: " + "; ".join(self.file_warnings) + "." if self.file_warnings else "")


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """``--channel LABEL=SLOT`` pairs -> {label: montage slot}; ``PSGError`` naming a malformed pair."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        label, sep, slot = pair.rpartition("=")
        if not sep or not label.strip():
            raise PSGError(f"--channel {pair!r}: expected LABEL=SLOT, e.g. 'C3-M2=EEG C3-A2'")
        out[label.strip()] = _slot_name(slot.strip(), f"--channel {pair!r}")
    return out


def _slot_name(slot: str, where: str) -> str:
    by_norm = {normalise(s): s for s in CHANNELS}
    if normalise(slot) not in by_norm:
        raise PSGError(f"{where}: {slot!r} is not a montage slot; expected one of {list(CHANNELS)}")
    return by_norm[normalise(slot)]


def map_recording(
    recording: Recording,
    overrides: dict[str, str] | None = None,
    lab_map: ChannelMapFile | None = None,
) -> tuple[Recording, ChannelReport]:
    """``recording`` with its signals under montage slot labels, in slot units, plus the report.

    Recognised channels that lost their slot to a better one stay under their own label (extras).
    A recording already in montage labels and units maps onto itself unchanged.
    """
    report = ChannelReport(recording.record_id, labels=list(recording.signals))
    signals = dict(recording.signals)
    forced = _forced(signals, overrides or {}, lab_map, report)
    candidates = _candidates(signals, forced, report)
    chosen = {**{slot: label for slot, (label, _) in forced.items()}, **assign_slots(candidates, set(forced))}
    out: dict[str, Signal] = {}
    for slot, label in chosen.items():
        mapped = _convert(slot, signals[label], forced.get(slot, (label, None))[1], report)
        if mapped is not None:
            out[slot] = mapped
    for label, _, _ in candidates:
        if label not in chosen.values() and label in recording.signals and label not in CHANNELS:
            out[label] = recording.signals[label]
            report.extras.append(label)
    parts = {part for m in report.slots.values() for part in derived_from(m.file_label) or ()}
    used = set(chosen.values()) | set(report.extras) | parts
    report.unused = [label for label in recording.signals if label not in used]
    report.slots = {slot: report.slots[slot] for slot in CHANNELS if slot in report.slots}
    return replace(recording, signals=out), report


def require_recognised(report: ChannelReport, path: str) -> None:
    """``PSGError`` naming the file and its labels when no channel feeds any slot."""
    if not any(m.used for m in report.slots.values()):
        raise PSGError(f"{path}: no channel recognised; the file has labels {report.labels}"[:600])


def require_eeg(report: ChannelReport, path: str) -> None:
    """``PSGError`` naming the file and its labels when neither EEG slot is fed (staging needs EEG)."""
    if not any(slot in report.slots and report.slots[slot].used for slot in EEG_SLOTS.values()):
        raise PSGError(
            f"{path}: no EEG channel recognised (staging needs one); the file has labels "
            f"{report.labels} (map one with --channel LABEL='EEG C3-A2')"[:600]
        )


def _forced(
    signals: dict[str, Signal],
    overrides: dict[str, str],
    lab_map: ChannelMapFile | None,
    report: ChannelReport,
) -> dict[str, tuple[str, tuple[float, float] | None]]:
    """Slot -> (file label, lab-map (scale, offset) or None) from the lab map, then ``--channel`` overrides."""
    forced: dict[str, tuple[str, tuple[float, float] | None]] = {}
    if lab_map:
        for label, m in lab_map.channels.items():
            if label in signals:
                forced[m.montage] = (label, (m.scale, m.offset))
            else:
                report.notes.append(f"{lab_map.source}: label {label!r} is not in the file.")
    for label, slot in overrides.items():
        if label not in signals:
            raise PSGError(
                f"--channel {label}={slot}: {report.source} has no channel {label!r}; it has {list(signals)}"[:600]
            )
        forced = {s: v for s, v in forced.items() if v[0] != label}
        forced[slot] = (label, None)
    return forced


def _candidates(
    signals: dict[str, Signal],
    forced: dict[str, tuple[str, Any]],
    report: ChannelReport,
) -> list[tuple[str, Entry, int]]:
    """(label, entry, file order) of recognised labels not forced, derivations added, unit-refused dropped."""
    taken = {label for label, _ in forced.values()}
    out = [
        (label, entry, i)
        for i, label in enumerate(signals)
        if label not in taken and (entry := lookup(label)) is not None
    ]
    derived = _derived(signals, out, report)
    out = without_parts(out, derived) + derived
    return [(label, entry, i) for label, entry, i in out if _unit_ok(label, entry, signals[label], report)]


def _derived(
    signals: dict[str, Signal],
    candidates: list[tuple[str, Entry, int]],
    report: ChannelReport,
) -> list[tuple[str, Entry, int]]:
    """Derivations from unreferenced electrodes (C3 - M2, E1 - M2, Chin1 - Chin2) where no referenced one exists."""
    out = []
    for source, ref, entry in plan_derivations(list(signals), candidates):
        a, b = signals[source], signals[ref]
        if a.fs != b.fs or a.data.size != b.data.size or a.unit != b.unit:
            report.notes.append(
                f"cannot derive {source}-{ref}: {source} is {a.fs:g} Hz x {a.data.size} {a.unit!r}, "
                f"{ref} is {b.fs:g} Hz x {b.data.size} {b.unit!r}."
            )
            continue
        label = derived_label(source, ref)
        signals[label] = Signal(label, a.data - b.data, a.fs, a.unit, combined_rails(a, b, -1.0))
        out.append((label, entry, len(signals)))
    return out


def _unit_key(unit: str) -> str:
    key = unit.strip().lower()
    for micro, u in _MICRO.items():
        key = key.replace(micro, u)
    return key


def _unit_ok(label: str, entry: Entry, signal: Signal, report: ChannelReport) -> bool:
    """False (with a note) when ``signal``'s unit is of the wrong kind for the slot ``entry`` names."""
    key = _unit_key(signal.unit)
    slot = entry.slot
    voltage = slot in ("EEG", EOG_L, EOG_R, EMG_CHIN, ECG)
    wrong = (voltage and key in OTHER_UNITS) or (slot in (SPO2, HR) and key in VOLT_TO_UV)
    if wrong:
        report.notes.append(
            f"{label!r} not used for {slot}: unit {signal.unit!r} is not a "
            f"{'voltage' if voltage else CHANNELS[slot].unit} unit."
        )
    return not wrong


def convert_unit(slot: str, signal: Signal) -> tuple[float, str | None, str | None]:
    """(factor to the slot's unit, the unit converted from or None, a note or None) for ``signal``."""
    key = _unit_key(signal.unit)
    target = CHANNELS[slot].unit
    if target in ("uV", "mV"):
        to_uv = VOLT_TO_UV.get(key)
        if to_uv is None:
            return 1.0, None, f"{slot}: unit {signal.unit!r} unknown, assumed {target}."
        factor = to_uv / (1e3 if target == "mV" else 1.0)
        return factor, (signal.unit if factor != 1.0 else None), None
    if slot == SPO2 and key != "%" and signal.data.size and 0 < np.nanmax(signal.data) <= 1.0:
        return 100.0, signal.unit or "fraction", f"{slot}: 0-1 fraction converted to %."
    return 1.0, None, None


def _convert(
    slot: str,
    signal: Signal,
    scaling: tuple[float, float] | None,
    report: ChannelReport,
) -> Signal | None:
    """``signal`` as slot ``slot`` (unit, position code); None (slot flagged, not used) when unusable."""
    mapping = SlotMapping(signal.label, signal.fs, CHANNELS[slot].unit, signal.unit)
    report.slots[slot] = mapping
    data: np.ndarray | None
    if scaling is not None:
        factor, offset = scaling
        data = signal.data * factor + offset
        mapping.notes.append(f"{slot}: scaled by the lab map (x{factor:g} + {offset:g}).")
    else:
        factor, mapping.converted_from, note = convert_unit(slot, signal)
        offset = 0.0
        mapping.notes += [note] if note else []
        data = signal.data * factor if factor != 1.0 else signal.data
        if slot == POS:
            data = _position_codes(signal, mapping)
    _rate_flags(slot, signal.fs, mapping)
    if slot in EEG_SLOTS.values() and mapping.used:
        _bandwidth_flags(slot, signal, mapping)
    if data is None or not mapping.used:
        mapping.used = False
        return None
    if signal.label == slot and data is signal.data and signal.unit == mapping.unit:
        return signal
    return Signal(slot, data, signal.fs, mapping.unit, _slot_rails(slot, signal, factor, offset))


def _slot_rails(slot: str, signal: Signal, factor: float, offset: float) -> tuple[float, float] | None:
    """``signal``'s rails in the slot's unit (scaled as its samples were); None for position codes."""
    if signal.rails is None or slot == POS:
        return None
    low, high = (r * factor + offset for r in signal.rails)
    return low, high


def _position_codes(signal: Signal, mapping: SlotMapping) -> np.ndarray | None:
    """Montage position codes: angles (``PosAngle``) converted, codes kept, anything else refused."""
    if normalise(signal.label) == "posangle":
        mapping.converted_from = "angle"
        mapping.notes.append(
            "POS: angle converted to codes assuming 0 deg supine, +90 left, -90 right, beyond +-135 prone."
        )
        return position_from_angle(signal.data)
    finite = signal.data[np.isfinite(signal.data)]
    if finite.size and (finite.min() < -1 or finite.max() > 4):
        mapping.notes.append(
            f"POS: values {finite.min():g}..{finite.max():g} are not montage position codes (-1..4); not used."
        )
        return None
    return signal.data


def position_from_angle(angle_deg: np.ndarray) -> np.ndarray:
    """Body angle in degrees (0 supine, +90 left side, -90 right side, +-180 prone) -> montage codes."""
    a = (np.asarray(angle_deg, dtype=np.float64) + 180.0) % 360.0 - 180.0
    codes = np.select([np.abs(a) <= 45, (a > 45) & (a <= 135), (a < -45) & (a >= -135)], [2.0, 1.0, 0.0], 3.0)
    return np.where(np.isfinite(angle_deg), codes, -1.0)


def _rate_flags(slot: str, fs: float, mapping: SlotMapping) -> None:
    if fs < MIN_FS.get(slot, 0.0):
        mapping.flags.append("rate_too_low")
        mapping.used = False
        mapping.notes.append(
            f"{slot}: {fs:g} Hz is below the {MIN_FS[slot]:g} Hz its analysis needs; not analysed (treated as missing)."
        )
    elif fs < FULL_FS.get(slot, 0.0):
        mapping.flags.append("band_limited")
        mapping.notes.append(f"{slot}: {fs:g} Hz, under {FULL_FS[slot]:g} Hz; upsampled without its high band.")


def _bandwidth_flags(slot: str, signal: Signal, mapping: SlotMapping) -> None:
    """Flag ``low_passed`` an EEG whose beta band a device filter removed (``psg.features.eeg_bandwidth``)."""
    slope = low_pass_slope(signal)
    if slope is not None:
        mapping.flags.append("low_passed")
        mapping.notes.append(
            f"{slot}: {low_passed_reason(slope)}; staging reads a full-band EEG if there is one, else says uncertain."
        )
