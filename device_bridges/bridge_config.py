"""The bridge's TOML configuration: which real LSL devices belong to which bed, and their channel maps.

Simulated beds and EDF replay describe themselves (type ``PSG`` with ``sleeplm_bed`` in the stream
description), so they need no configuration. Real amplifiers are listed per bed::

    simulated = true      # also bridge simulated beds / EDF replay (default true)
    lost_after_s = 5.0    # a stream silent this long (wall clock) is reported lost (default 5)

    [[beds]]
    id = "bed-07"
    channel_map = "channel_maps/openbci_cyton.toml"   # relative to this file, or a shipped map name

    [[beds.streams]]
    stream = "exg"            # the stream's name on psg.samples (default: the LSL stream name)
    name = "obci_eeg1"        # LSL query: name, type and/or source_id; every one given must match
    type = "EEG"
    # channel_map = "..."     # per-stream override of the bed's map

Errors name the file and the key (``beds[0].streams[1].name``) and say what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_bridges.channel_map import DEFAULT_MAP, MAPS_DIR, ChannelMap, load_channel_map, read_toml
from psg.errors import PSGError

_TOP_KEYS = {"simulated", "lost_after_s", "beds"}
_BED_KEYS = {"id", "channel_map", "streams"}
_STREAM_KEYS = {"stream", "name", "type", "source_id", "channel_map"}


@dataclass(frozen=True)
class DeviceStream:
    """One LSL stream of a real device: how to find it and how to map its channels."""

    bed_id: str
    name: str | None
    type: str | None
    source_id: str | None
    stream: str | None
    channel_map: ChannelMap

    def matches(self, name: str, type_: str, source_id: str) -> bool:
        return (
            (self.name is None or self.name == name)
            and (self.type is None or self.type == type_)
            and (self.source_id is None or self.source_id == source_id)
        )


@dataclass(frozen=True)
class BridgeConfig:
    """What the bridge reads: simulated beds (on/off), real device streams, the lost-stream timeout."""

    simulated: bool = True
    lost_after_s: float = 5.0
    devices: list[DeviceStream] = field(default_factory=list)

    def device_for(self, name: str, type_: str, source_id: str) -> DeviceStream | None:
        """The configured device stream an LSL stream (name, type, source id) belongs to, if any."""
        return next((d for d in self.devices if d.matches(name, type_, source_id)), None)


def load_bridge_config(path: str | Path | None) -> BridgeConfig:
    """Read the bridge configuration file; ``None``: simulated beds only, default timeouts."""
    if path is None:
        return BridgeConfig()
    path = Path(path)
    return parse_bridge_config(read_toml(path, "bridge configuration"), path)


def parse_bridge_config(raw: dict[str, Any], path: Path) -> BridgeConfig:
    _no_unknown(raw, _TOP_KEYS, f"{path}")
    simulated = raw.get("simulated", True)
    if not isinstance(simulated, bool):
        raise PSGError(f"{path}: simulated: expected true or false, got {simulated!r}")
    lost = raw.get("lost_after_s", 5.0)
    if isinstance(lost, bool) or not isinstance(lost, (int, float)) or not (math.isfinite(lost) and lost > 0):
        raise PSGError(f"{path}: lost_after_s: expected a number of seconds > 0, got {lost!r}")
    beds = raw.get("beds", [])
    if not isinstance(beds, list):
        raise PSGError(f"{path}: beds: expected an array of tables ([[beds]]), got {beds!r}")
    devices: list[DeviceStream] = []
    seen_beds: set[str] = set()
    for b, bed in enumerate(beds):
        where = f"{path}: beds[{b}]"
        if not isinstance(bed, dict):
            raise PSGError(f"{where}: expected a table, got {bed!r}")
        _no_unknown(bed, _BED_KEYS, where)
        bed_id = _required_text(bed, "id", where)
        if bed_id in seen_beds:
            raise PSGError(f"{where}.id: bed {bed_id!r} is configured twice")
        seen_beds.add(bed_id)
        bed_map = _map(bed.get("channel_map"), path, f"{where}.channel_map")
        streams = bed.get("streams")
        if not isinstance(streams, list) or not streams:
            raise PSGError(f"{where}.streams: expected at least one [[beds.streams]] table")
        for s, stream in enumerate(streams):
            swhere = f"{where}.streams[{s}]"
            if not isinstance(stream, dict):
                raise PSGError(f"{swhere}: expected a table, got {stream!r}")
            _no_unknown(stream, _STREAM_KEYS, swhere)
            query = {k: _text(stream, k, swhere) for k in ("name", "type", "source_id")}
            if not any(query.values()):
                raise PSGError(f"{swhere}: give at least one of name, type, source_id to find the LSL stream")
            stream_map = _map(stream["channel_map"], path, f"{swhere}.channel_map") if "channel_map" in stream else None
            devices.append(
                DeviceStream(
                    bed_id,
                    query["name"],
                    query["type"],
                    query["source_id"],
                    _text(stream, "stream", swhere),
                    stream_map or bed_map,
                )
            )
    return BridgeConfig(simulated, float(lost), devices)


def _map(value: Any, config: Path, where: str) -> ChannelMap:
    """A channel map named relative to the config file, or a shipped one by name; default: identity map."""
    if value is None:
        return load_channel_map(DEFAULT_MAP)
    if not isinstance(value, str) or not value:
        raise PSGError(f"{where}: expected a channel-map file name, got {value!r}")
    for candidate in (config.parent / value, MAPS_DIR / value, MAPS_DIR / f"{value}.toml"):
        if candidate.is_file():
            return load_channel_map(candidate)
    raise PSGError(f"{where}: channel map {value!r} not found next to {config.name} or among {MAPS_DIR}")


def _text(table: dict[str, Any], key: str, where: str) -> str | None:
    """``table[key]``: a non-empty string, or None when absent."""
    return None if table.get(key) is None else _required_text(table, key, where)


def _required_text(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PSGError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return value


def _no_unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise PSGError(f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(allowed)}")
