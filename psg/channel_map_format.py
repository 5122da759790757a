"""The lab's channel-map TOML format: device or file label -> montage channel, unit and linear scaling.

Amplifiers and EDF exports name and scale channels their own way ("EEG1" in volts, "Chin" in microvolts,
"ch7"); a channel map is a small TOML file, one per device model or lab, written once::

    device = "OpenBCI Cyton, PSG layout of our lab"   # optional description

    [channels."ch1"]
    montage = "EEG C3-A2"   # a psg.montage label
    unit = "uV"             # optional; must be the montage channel's unit (what scale converts to)
    scale = 1.0             # montage value = device value * scale + offset
    offset = 0.0            # optional

The format lives in ``psg`` because two layers read it: the live bridge (``device_bridges.channel_map``)
and the offline channel recognition of files (``psg.channels``); ``psg`` imports neither. A map that
names an unknown montage channel, maps two labels onto one montage channel or has a non-numeric scale is
rejected with a ``PSGError`` naming the file and the key.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psg.errors import PSGError
from psg.montage import CHANNELS

_ENTRY_KEYS = {"montage", "unit", "scale", "offset"}


@dataclass(frozen=True)
class ChannelMapping:
    """How one device (or file) channel becomes one montage channel."""

    montage: str
    unit: str
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class ChannelMapFile:
    """A parsed channel map: label -> ``ChannelMapping``; ``source`` names where it came from."""

    channels: dict[str, ChannelMapping]
    source: str
    device: str = ""


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """The TOML file at ``path`` as a dict; ``PSGError`` naming the file and ``what`` it should be."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PSGError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PSGError(f"{path}: cannot read {what} ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PSGError(f"{path}: not valid TOML ({exc})") from None


def load_map_file(path: str | Path) -> ChannelMapFile:
    """Read and validate a channel-map TOML file (see the module docstring for the format)."""
    path = Path(path)
    return parse_map(read_toml(path, "channel map"), str(path))


def parse_map(raw: dict[str, Any], source: str) -> ChannelMapFile:
    """Validate a parsed channel map; every error names ``source`` and the offending key."""
    unknown = set(raw) - {"channels", "device"}
    if unknown:
        raise PSGError(f"{source}: unknown top-level key(s) {sorted(unknown)}; expected 'channels' and 'device'")
    device = raw.get("device", "")
    if not isinstance(device, str):
        raise PSGError(f"{source}: key 'device' must be a string, got {device!r}")
    table = raw.get("channels")
    if not isinstance(table, dict) or not table:
        raise PSGError(f"{source}: expected a non-empty [channels] table of device label -> montage channel")
    channels: dict[str, ChannelMapping] = {}
    targets: dict[str, str] = {}
    for label, entry in table.items():
        mapping = _entry(entry, f"{source}: channels.{_quote(label)}")
        if mapping.montage in targets:
            raise PSGError(
                f"{source}: channels.{_quote(label)}.montage: montage channel {mapping.montage!r} is already "
                f"the target of channels.{_quote(targets[mapping.montage])}; each montage channel takes one "
                "device channel"
            )
        targets[mapping.montage] = label
        channels[label] = mapping
    return ChannelMapFile(channels, source, device)


def _entry(entry: Any, where: str) -> ChannelMapping:
    if not isinstance(entry, dict):
        raise PSGError(f"{where}: expected a table with 'montage' (and optional unit, scale, offset), got {entry!r}")
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise PSGError(f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(_ENTRY_KEYS)}")
    montage = entry.get("montage")
    if montage not in CHANNELS:
        raise PSGError(f"{where}.montage: {montage!r} is not a montage channel; expected one of {list(CHANNELS)}")
    expected_unit = CHANNELS[montage].unit
    unit = entry.get("unit", expected_unit)
    if unit != expected_unit:
        raise PSGError(
            f"{where}.unit: {unit!r} does not match the montage unit {expected_unit!r} of {montage!r}; "
            "set scale (and offset) so that the device values become montage units"
        )
    return ChannelMapping(montage, unit, _number(entry, "scale", 1.0, where), _number(entry, "offset", 0.0, where))


def _number(entry: dict[str, Any], key: str, default: float, where: str) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PSGError(f"{where}.{key}: expected a finite number, got {value!r}")
    if key == "scale" and value == 0:
        raise PSGError(f"{where}.scale: must not be 0 (it would flatten the channel)")
    return float(value)


def _quote(label: str) -> str:
    return label if label.replace("_", "").replace("-", "").isalnum() else f'"{label}"'
