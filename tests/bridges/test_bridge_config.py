"""The bridge's TOML configuration: real device streams per bed, channel maps, errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_bridges.bridge_config import load_bridge_config
from psg.errors import PSGError

VALID = """
simulated = false
lost_after_s = 8

[[beds]]
id = "bed-07"
channel_map = "openbci_cyton"

[[beds.streams]]
stream = "exg"
name = "obci_eeg1"
type = "EEG"

[[beds.streams]]
source_id = "oximeter-7"
channel_map = "oxi.toml"
"""

OXI_MAP = '[channels.Sat]\nmontage = "SpO2"\n[channels.Pulse]\nmontage = "HR"\n'


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "oxi.toml").write_text(OXI_MAP)
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    return path


def test_no_file_bridges_simulated_beds_only() -> None:
    config = load_bridge_config(None)
    assert config.simulated and config.devices == [] and config.lost_after_s == 5.0


def test_devices_match_by_the_given_fields_and_carry_their_maps(tmp_path: Path) -> None:
    config = load_bridge_config(_write(tmp_path, VALID))
    assert not config.simulated and config.lost_after_s == 8.0
    exg = config.device_for("obci_eeg1", "EEG", "whatever")
    assert exg is not None and exg.bed_id == "bed-07" and exg.stream == "exg"
    assert exg.channel_map.channels["ch8"].montage == "ECG"  # the shipped map, found by name
    assert config.device_for("obci_eeg1", "EMG", "x") is None  # type must match too
    oxi = config.device_for("Nonin", "SpO2", "oximeter-7")
    assert oxi is not None and oxi.stream is None  # named after the LSL stream at attach time
    assert sorted(oxi.channel_map.channels) == ["Pulse", "Sat"]  # map next to the config file
    assert config.device_for("other", "EEG", "y") is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("simulated = 1\n", "simulated: expected true or false"),
        ("lost_after_s = 0\n", "lost_after_s: expected a number of seconds > 0"),
        ("bed = []\n", "unknown key(s) ['bed']"),
        ("[[beds]]\nid = 'b'\n", "beds[0].streams: expected at least one"),
        ("[[beds]]\nid = ''\n[[beds.streams]]\nname = 'x'\n", "beds[0].id: expected a non-empty string"),
        ("[[beds]]\nid = 'b'\n[[beds.streams]]\nstream = 'exg'\n", "beds[0].streams[0]: give at least one of name"),
        ("[[beds]]\nid = 'b'\n[[beds.streams]]\nname = 3\n", "beds[0].streams[0].name: expected a non-empty string"),
        ("[[beds]]\nid = 'b'\n[[beds.streams]]\nname = 'x'\nrate = 1\n", "beds[0].streams[0]: unknown key(s) ['rate']"),
        (
            "[[beds]]\nid = 'b'\nchannel_map = 'nope.toml'\n[[beds.streams]]\nname = 'x'\n",
            "beds[0].channel_map: channel map 'nope.toml' not found",
        ),
        (
            "[[beds]]\nid = 'b'\n[[beds.streams]]\nname = 'x'\n[[beds]]\nid = 'b'\n[[beds.streams]]\nname = 'y'\n",
            "beds[1].id: bed 'b' is configured twice",
        ),
        ("[beds\n", "not valid TOML"),
    ],
)
def test_bad_configs_name_file_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PSGError) as error:
        load_bridge_config(path)
    assert str(path) in str(error.value) and fragment in str(error.value)


def test_bad_channel_map_named_by_the_config_is_reported_with_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('[channels.a]\nmontage = "C3"\n')
    path = tmp_path / "bridge.toml"
    path.write_text("[[beds]]\nid = 'b'\nchannel_map = 'bad.toml'\n[[beds.streams]]\nname = 'x'\n")
    with pytest.raises(PSGError, match=r"bad.toml: channels.a.montage: 'C3' is not a montage channel"):
        load_bridge_config(path)
    with pytest.raises(PSGError, match="bridge configuration file not found"):
        load_bridge_config(tmp_path / "missing.toml")
