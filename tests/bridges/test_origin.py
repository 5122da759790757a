"""A bed's origin from the bed to the chunks: what the simulated beds and EDF replay announce (``origin`` in
the LSL description) and what the bridge puts on the chunks (the description's origin for our beds,
recorded for a configured device, None for a value it does not know). No LSL network: stream infos are
built locally and the bridge's attach and chunking are called directly."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from device_bridges.bed_nights import SimulatedNight
from device_bridges.bridge import Bridge
from device_bridges.bridge_config import BridgeConfig, load_bridge_config
from device_bridges.lsl_config import import_pylsl
from device_bridges.simulated import EdfReplay, SimulatedBed
from psg.codecs import SampleChunk
from psg.formats import write_edf
from psg.recording import ORIGIN, RECORDED, SIMULATED
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline


def _recording(origin: str | None) -> Any:
    recording = simulate(synthetic_timeline(hours=60 / 3600, seed=4), seed=4)
    recording.metadata.pop(ORIGIN, None)
    if origin is not None:
        recording.metadata[ORIGIN] = origin
    return recording


def test_a_simulated_bed_announces_simulated_unless_its_recording_says() -> None:
    night = SimulatedNight(synthetic_timeline(hours=60 / 3600, seed=3), seed=3, piece_s=30)
    assert SimulatedBed("bed-o1", night).origin == SIMULATED
    assert SimulatedBed("bed-o2", simulate(synthetic_timeline(hours=60 / 3600, seed=4), seed=4)).origin == SIMULATED
    assert SimulatedBed("bed-o3", _recording(None)).origin == SIMULATED
    assert SimulatedBed("bed-o4", _recording(RECORDED)).origin == RECORDED


def test_an_edf_replay_of_a_real_recording_announces_recorded(tmp_path: Path) -> None:
    path = tmp_path / "real.edf"
    write_edf(_recording(RECORDED), path)
    assert EdfReplay("bed-o5", path).origin == RECORDED


def test_an_edf_replay_of_a_file_our_simulator_wrote_announces_simulated(tmp_path: Path) -> None:
    path = tmp_path / "simulated.edf"
    write_edf(_recording(SIMULATED), path)
    assert EdfReplay("bed-o6", path).origin == SIMULATED


def _info(name: str, labels: tuple[str, ...], fs: float, source_id: str, **desc: str) -> Any:
    pylsl = import_pylsl()
    info = pylsl.StreamInfo(name, "PSG", len(labels), fs, pylsl.cf_float32, source_id)
    channels = info.desc().append_child("channels")
    for label in labels:
        channels.append_child("channel").append_child_value("label", label)
    for key, value in desc.items():
        info.desc().append_child_value(key, value)
    return info


def _bed_info(bed_id: str, group: str, bridge: Bridge, **extra: str) -> Any:
    return _info(
        f"sleeplm-{bed_id}-{group}",
        ("SpO2", "HR"),
        4.0,
        f"{bed_id}:{group}",
        sleeplm_bed=bed_id,
        group=group,
        recording_id=f"{bed_id}-r1",
        recording_start=repr(1000.0 - bridge.offset),
        **extra,
    )


def _chunk_of(bridge: Bridge, bed_id: str, stream: str) -> SampleChunk:
    state = bridge.streams[(bed_id, stream)]
    stamps = 1000.0 - bridge.offset + np.arange(4) / 4.0
    bridge._received(state, np.full((4, len(state.mapping.labels)), 95.0, np.float32), stamps)
    bridge._flush(state)
    (chunk,) = [c for c in bridge._outbox.pop(bed_id) if c.stream == stream]
    return chunk


@pytest.mark.parametrize(
    ("said", "expected"), [({"origin": "simulated"}, SIMULATED), ({"origin": "recorded"}, RECORDED), ({}, None)]
)
def test_the_bridge_puts_the_descriptions_origin_on_the_chunks(said: dict[str, str], expected: str | None) -> None:
    bridge = Bridge(BridgeConfig(), sink=None)  # type: ignore[arg-type]
    bridge._attach_simulated(None, _bed_info("bed-d", "aux", bridge, **said))
    assert _chunk_of(bridge, "bed-d", "aux").origin == expected


def test_an_unknown_origin_is_warned_about_once_and_sent_as_none(caplog: pytest.LogCaptureFixture) -> None:
    bridge = Bridge(BridgeConfig(), sink=None)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="device_bridges.bridge"):
        for group in ("aux", "resp"):
            bridge._attach_simulated(None, _bed_info("bed-u", group, bridge, origin="live"))
    assert [c.origin for c in (_chunk_of(bridge, "bed-u", "aux"), _chunk_of(bridge, "bed-u", "resp"))] == [None, None]
    warned = [r.getMessage() for r in caplog.records if "origin" in r.getMessage()]
    assert len(warned) == 1 and "'live'" in warned[0], warned


def test_a_configured_device_is_recorded(tmp_path: Path) -> None:
    config_path = tmp_path / "bridge.toml"
    config_path.write_text(
        'simulated = false\n[[beds]]\nid = "bed-cyton"\nchannel_map = "openbci_cyton"\n'
        '[[beds.streams]]\nstream = "exg"\nname = "obci_eeg1"\nsource_id = "cyton-origin"\n'
    )
    bridge = Bridge(load_bridge_config(config_path), sink=None)  # type: ignore[arg-type]
    info = _info("obci_eeg1", tuple(f"ch{i}" for i in range(1, 9)), 250.0, "cyton-origin", origin="simulated")
    device = bridge.config.device_for(info.name(), info.type(), info.source_id())
    assert device is not None
    bridge._attach_device(None, info, device)
    state = bridge.streams[("bed-cyton", "exg")]
    bridge._received(state, np.zeros((250, 8), np.float32), 1000.0 - bridge.offset + np.arange(250) / 250.0)
    bridge._flush(state)
    (chunk,) = bridge._outbox["bed-cyton"]
    assert chunk.origin == RECORDED and chunk.recording_id.startswith("bed-cyton-")
