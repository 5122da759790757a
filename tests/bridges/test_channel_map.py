"""Channel maps: shipped maps load, scaling is applied, bad maps fail naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_bridges.channel_map import DEFAULT_MAP, MAPS_DIR, ChannelMap, ChannelMapping, load_channel_map
from psg.errors import PSGError
from psg.montage import CHANNELS


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "device.toml"
    path.write_text(text)
    return path


def test_shipped_maps_load() -> None:
    default = load_channel_map(DEFAULT_MAP)
    assert {m.montage for m in default.channels.values()} == set(CHANNELS)
    assert all(label == m.montage and m.scale == 1.0 for label, m in default.channels.items())
    for path in MAPS_DIR.glob("*.toml"):
        assert load_channel_map(path).channels


def test_map_selects_renames_and_scales() -> None:
    cyton = load_channel_map(MAPS_DIR / "openbci_cyton.toml")
    applied = cyton.resolve([f"ch{i}" for i in range(1, 9)], stream="obci_eeg1")
    samples = np.array([[10, 20, 30, 40, 50, 60, 70, 800], [1, 2, 3, 4, 5, 6, 7, 1000]], dtype=np.float32)
    out = applied.apply(samples)
    assert applied.labels == ("EEG C3-A2", "EEG C4-A1", "EOG-L", "EOG-R", "EMG Chin", "ECG")
    assert applied.units[-1] == "mV"
    assert out.shape == (6, 2)  # (montage channels, samples); ch5/ch6 are not forwarded
    np.testing.assert_allclose(out[0], [10, 1])
    np.testing.assert_allclose(out[-1], [0.8, 1.0], rtol=1e-6)  # uV -> mV


def test_offset_and_missing_device_channels(tmp_path: Path) -> None:
    path = _write(
        tmp_path, '[channels.Sat]\nmontage = "SpO2"\nscale = 100.0\noffset = -1.5\n[channels.Pulse]\nmontage = "HR"\n'
    )
    applied = load_channel_map(path).resolve(["Sat"])
    assert applied.labels == ("SpO2",) and applied.missing == ("Pulse",)
    np.testing.assert_allclose(applied.apply(np.array([[0.95]])), [[93.5]], rtol=1e-6)


def test_identity_keeps_only_montage_labels() -> None:
    identity = ChannelMap.identity(["ECG", "Snore", "SpO2"])
    assert sorted(identity.channels) == ["ECG", "SpO2"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[channels.EEG1]\nmontage = "C3"\n', "channels.EEG1.montage: 'C3' is not a montage channel"),
        ('[channels.a]\nmontage = "ECG"\n[channels.b]\nmontage = "ECG"\n', "channels.b.montage: montage channel 'ECG'"),
        ('[channels.a]\nmontage = "ECG"\nscale = "1e-3"\n', "channels.a.scale: expected a finite number"),
        ('[channels.a]\nmontage = "ECG"\nscale = true\n', "channels.a.scale: expected a finite number"),
        ('[channels.a]\nmontage = "ECG"\nscale = 0\n', "channels.a.scale: must not be 0"),
        ('[channels.a]\nmontage = "ECG"\noffset = nan\n', "channels.a.offset: expected a finite number"),
        ('[channels.a]\nmontage = "ECG"\nunit = "uV"\n', "channels.a.unit: 'uV' does not match the montage unit 'mV'"),
        ('[channels.a]\nmontage = "ECG"\ngain = 2\n', "channels.a: unknown key(s) ['gain']"),
        ('[channels]\na = "ECG"\n', "channels.a: expected a table"),
        ('[channels."EEG 1"]\nmontage = "XX"\n', 'channels."EEG 1".montage'),
        ("device = 1\n[channels.a]\nmontage = 'ECG'\n", "key 'device' must be a string"),
        ("[chanels.a]\nmontage = 'ECG'\n", "unknown top-level key(s) ['chanels']"),
        ("", "expected a non-empty [channels] table"),
        ("[channels\n", "not valid TOML"),
    ],
)
def test_bad_maps_name_file_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(PSGError) as error:
        load_channel_map(path)
    assert str(path) in str(error.value) and fragment in str(error.value)


def test_missing_file_and_no_matching_channel(tmp_path: Path) -> None:
    with pytest.raises(PSGError, match="channel map file not found"):
        load_channel_map(tmp_path / "nope.toml")
    cyton = load_channel_map(MAPS_DIR / "openbci_cyton.toml")
    with pytest.raises(PSGError, match=r"openbci_cyton.toml: none of the mapped device channels .* stream 'eeg'"):
        cyton.resolve(["AUX1", "AUX2"], stream="eeg")
    # 10-20 electrodes the map does not name still reach an EEG slot through the table (last resort)
    assert cyton.resolve(["Fp1", "Fp2"], stream="eeg")


def test_an_amplifier_streaming_electrodes_gets_the_derivations_a_file_would() -> None:
    """A device streaming every electrode against its own reference (as the NSRR cohorts record them) is
    derived as a file with the same labels is (``psg.channel_choice``): C3-M2, E1-M2, chin and ECG pairs; a
    mapped channel keeps its map, and the electrodes fed into a derivation feed no other slot."""
    device = ["C3", "C4", "M1", "M2", "E1", "E2", "Chin1", "Chin2", "ECG L", "ECG R", "SpO2"]
    lab = ChannelMap({"SpO2": ChannelMapping("SpO2", "%", scale=100.0)}, "lab.toml")
    applied = lab.resolve(device, stream="amp")
    samples = np.arange(2 * len(device), dtype=np.float32).reshape(2, -1) ** 2  # every channel different
    out = dict(zip(applied.labels, applied.apply(samples), strict=True))
    col = {label: samples[:, i] for i, label in enumerate(device)}
    expected = {
        "EEG C3-A2": col["C3"] - col["M2"],
        "EEG C4-A1": col["C4"] - col["M1"],
        "EOG-L": col["E1"] - col["M2"],
        "EOG-R": col["E2"] - col["M1"],
        "EMG Chin": col["Chin1"] - col["Chin2"],
        "ECG": (col["ECG L"] - col["ECG R"]),
        "SpO2": col["SpO2"] * 100.0,
    }
    assert set(out) == set(expected)
    for slot, values in expected.items():
        np.testing.assert_allclose(out[slot], values, err_msg=slot)
