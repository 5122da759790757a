"""Per-device channel maps: device channel label -> montage channel, unit and linear scaling.

Amplifiers name and scale channels their own way ("EEG1" in volts, "Chin" in microvolts, "ch7");
everything downstream of the bridge speaks the montage of ``psg.montage`` in its units. A channel map
is a small TOML file, one per device model, that the lab writes once::

    device = "OpenBCI Cyton, PSG layout of our lab"   # optional description

    [channels."ch1"]
    montage = "EEG C3-A2"   # a psg.montage label
    unit = "uV"             # optional; must be the montage channel's unit (what scale converts to)
    scale = 1.0             # montage value = device value * scale + offset
    offset = 0.0            # optional

Device channels the map does not name are not forwarded; montage channels no device channel maps to
are missing downstream (the epocher flags them). A map that names an unknown montage channel, maps two
device channels onto one montage channel or has a non-numeric scale is rejected with a ``PSGError``
naming the file and the key.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from psg.errors import PSGError
from psg.montage import CHANNELS

#: Channel maps shipped with the package (``default.toml``: identity for devices that send montage labels).
MAPS_DIR = Path(__file__).resolve().parent / "channel_maps"
DEFAULT_MAP = MAPS_DIR / "default.toml"
_ENTRY_KEYS = {"montage", "unit", "scale", "offset"}


@dataclass(frozen=True)
class ChannelMapping:
    """How one device channel becomes one montage channel."""

    montage: str
    unit: str
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class AppliedMap:
    """A channel map resolved against one stream's device labels, ready to apply to sample blocks."""

    indices: np.ndarray  # device channel index of each output channel
    labels: tuple[str, ...]  # montage labels, in output order
    units: tuple[str, ...]
    scale: np.ndarray  # (channels, 1) float32
    offset: np.ndarray  # (channels, 1) float32
    missing: tuple[str, ...]  # device labels the map names that the stream does not have

    def apply(self, samples: np.ndarray) -> np.ndarray:
        """(samples, device channels) as pulled from LSL -> (montage channels, samples) float32."""
        picked = np.asarray(samples, dtype=np.float32)[:, self.indices].T
        return picked * self.scale + self.offset


@dataclass(frozen=True)
class ChannelMap:
    """Device label -> ``ChannelMapping``; ``source`` names where it came from (for error messages)."""

    channels: dict[str, ChannelMapping]
    source: str
    device: str = ""

    @classmethod
    def identity(cls, labels: tuple[str, ...] | list[str], source: str = "identity") -> ChannelMap:
        """Map montage labels onto themselves (simulated beds, EDF replay of our own files)."""
        known = [label for label in labels if label in CHANNELS]
        return cls({label: ChannelMapping(label, CHANNELS[label].unit) for label in known}, source)

    def resolve(self, device_labels: tuple[str, ...] | list[str], stream: str = "") -> AppliedMap:
        """Match the map against a stream's channel labels; ``PSGError`` if no mapped channel is present."""
        position = {label: i for i, label in enumerate(device_labels)}
        present = [(label, m) for label, m in self.channels.items() if label in position]
        if not present:
            raise PSGError(
                f"{self.source}: none of the mapped device channels {sorted(self.channels)} is in stream "
                f"{stream!r}, which has {list(device_labels)}"[:500]
            )
        return AppliedMap(
            indices=np.array([position[label] for label, _ in present], dtype=np.intp),
            labels=tuple(m.montage for _, m in present),
            units=tuple(m.unit for _, m in present),
            scale=np.array([[m.scale] for _, m in present], dtype=np.float32),
            offset=np.array([[m.offset] for _, m in present], dtype=np.float32),
            missing=tuple(label for label in self.channels if label not in position),
        )


def read_toml(path: Path, what: str) -> dict:
    """The TOML file at ``path`` as a dict; ``PSGError`` naming the file and ``what`` it should be."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PSGError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PSGError(f"{path}: cannot read {what} ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PSGError(f"{path}: not valid TOML ({exc})") from None


def load_channel_map(path: str | Path) -> ChannelMap:
    """Read and validate a channel-map TOML file (see the module docstring for the format)."""
    path = Path(path)
    return parse_channel_map(read_toml(path, "channel map"), str(path))


def parse_channel_map(raw: dict[str, Any], source: str) -> ChannelMap:
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
    return ChannelMap(channels, source, device)


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
