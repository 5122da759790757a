"""Per-device channel maps: device channel label -> montage channel, unit and linear scaling.

Amplifiers name and scale channels their own way ("EEG1" in volts, "Chin" in microvolts, "ch7");
everything downstream of the bridge speaks the montage of ``psg.montage`` in its units. A channel map
is a small TOML file, one per device model, that the lab writes once; its format (with an example) is
documented in ``psg.channel_map_format``, shared with the offline commands' ``--channel-map``.

Device channels the map does not name fall back to the recognition table (``psg.channels``: ``C3-M2``,
``Chest``, ``SpO2``... onto montage slots the map leaves free, assumed in montage units); channels it does
not recognise either are not forwarded. Montage channels no device channel maps to are missing downstream
(the epocher flags them). A map that names an unknown montage channel, maps two device channels onto one
montage channel or has a non-numeric scale is rejected with a ``PSGError`` naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from psg.channel_choice import derivation_parts, recognise_labels
from psg.channel_map_format import ChannelMapFile, ChannelMapping, load_map_file, parse_map, read_toml
from psg.errors import PSGError
from psg.montage import CHANNELS

__all__ = [
    "DEFAULT_MAP",
    "MAPS_DIR",
    "AppliedMap",
    "ChannelMap",
    "ChannelMapping",
    "load_channel_map",
    "parse_channel_map",
    "read_toml",
]

#: Channel maps shipped with the package (``default.toml``: identity for devices that send montage labels).
MAPS_DIR = Path(__file__).resolve().parent / "channel_maps"
DEFAULT_MAP = MAPS_DIR / "default.toml"


@dataclass(frozen=True)
class AppliedMap:
    """A channel map resolved against one stream's device labels, ready to apply to sample blocks."""

    indices: np.ndarray  # device channel index of each output channel
    labels: tuple[str, ...]  # montage labels, in output order
    units: tuple[str, ...]
    scale: np.ndarray  # (channels, 1) float32
    offset: np.ndarray  # (channels, 1) float32
    missing: tuple[str, ...]  # device labels the map names that the stream does not have
    references: np.ndarray  # device channel subtracted from each output channel (C3 - M2), -1 for none

    def apply(self, samples: np.ndarray) -> np.ndarray:
        """(samples, device channels) as pulled from LSL -> (montage channels, samples) float32."""
        block = np.asarray(samples, dtype=np.float32)
        picked = block[:, self.indices].T
        derived = self.references >= 0
        picked[derived] -= block[:, self.references[derived]].T
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

    def _recognised(
        self,
        device_labels: tuple[str, ...] | list[str],
        taken: set[str],
    ) -> list[tuple[str, ChannelMapping]]:
        """Labels the map does not name, recognised by ``psg.channels`` onto slots nothing feeds yet.

        The device is assumed to send them in montage units (an LSL stream carries no unit the bridge trusts);
        a lab whose device does not names the channel in its map with a scale. A slot derived from two
        device channels comes back under ``"C3 - M2"``; ``resolve`` splits it (``derivation_parts``).
        """
        unnamed = [label for label in device_labels if label not in self.channels]
        return [
            (label, ChannelMapping(slot, CHANNELS[slot].unit))
            for label, slot in recognise_labels(unnamed, taken).items()
        ]

    def resolve(self, device_labels: tuple[str, ...] | list[str], stream: str = "") -> AppliedMap:
        """Match the map against a stream's channel labels; ``PSGError`` if no mapped channel is present."""
        position = {label: i for i, label in enumerate(device_labels)}
        present = [(label, m) for label, m in self.channels.items() if label in position]
        present += self._recognised(device_labels, {m.montage for _, m in present})
        if not present:
            raise PSGError(
                f"{self.source}: none of the mapped device channels {sorted(self.channels)} is in stream "
                f"{stream!r}, which has {list(device_labels)}"[:500]
            )
        parts = {label: derivation_parts(label, list(device_labels)) for label, _ in present}
        return AppliedMap(
            indices=np.array(
                [position[p[0]] if (p := parts[label]) else position[label] for label, _ in present], dtype=np.intp
            ),
            labels=tuple(m.montage for _, m in present),
            units=tuple(m.unit for _, m in present),
            scale=np.array([[m.scale] for _, m in present], dtype=np.float32),
            offset=np.array([[m.offset] for _, m in present], dtype=np.float32),
            missing=tuple(label for label in self.channels if label not in position),
            references=np.array([position[p[1]] if (p := parts[label]) else -1 for label, _ in present], dtype=np.intp),
        )


def load_channel_map(path: str | Path) -> ChannelMap:
    """Read and validate a channel-map TOML file (format: ``psg.channel_map_format``)."""
    return _bridge_map(load_map_file(path))


def parse_channel_map(raw: dict[str, Any], source: str) -> ChannelMap:
    """Validate a parsed channel map; every error names ``source`` and the offending key."""
    return _bridge_map(parse_map(raw, source))


def _bridge_map(parsed: ChannelMapFile) -> ChannelMap:
    return ChannelMap(parsed.channels, parsed.source, parsed.device)
