"""A recording shorter than a night: YASA's shape features scaled partly to a reference night.

Why: YASA scales its smoothed features to the recording's own 5-95 % range, learnt on whole nights; a 30-min
excerpt from mid-sleep or a single real N3 epoch scaled to itself looks like the middle of a night
(``psg.features.night_reference``). These tests pin what the blend does and does not touch: a night is
scaled as YASA scales it, amplitude features always to the recording itself, shape features of a short
recording towards the shipped reference, and only recorded files and live beds get it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import psg.features.yasa_prior as yp
from psg.features.night_reference import (
    OWN_SCALE_EPOCHS,
    WINDOWS,
    build_night_reference,
    has_reference,
    load_night_reference,
    night_statistics,
)
from psg.features.yasa_features import epoch_base_features, feature_table
from psg.formats import read_mapped_edf
from psg.montage import EEG_C4, EMG_CHIN, EOG_L
from psg.recording import ORIGIN, RECORDED, SIMULATED, Recording
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline
from tests.conftest import real_file


@pytest.fixture(scope="module")
def night() -> Recording:
    """20 simulated minutes (40 epochs): EEG, EOG and chin EMG."""
    recording = simulate(synthetic_timeline(hours=20 / 60, seed=11, ahi=5), seed=11)
    return Recording("short", {k: recording.signals[k] for k in (EEG_C4, EOG_L, EMG_CHIN)})


@pytest.fixture(scope="module")
def base(night: Recording) -> tuple[list[str], np.ndarray]:
    signals = {
        g: yp.at_yasa_rate(night.signals[c], night.n_epochs)
        for g, c in (("eeg", EEG_C4), ("eog", EOG_L), ("emg", EMG_CHIN))
    }
    return epoch_base_features(signals)


def _columns(names: list[str], suffix: str, referenced: bool) -> list[str]:
    return [f"{n}_{suffix}_norm" for n in names if has_reference(n) == referenced]


def test_shipped_reference_covers_every_eeg_and_eog_shape_feature(base: tuple[list[str], np.ndarray]) -> None:
    reference = load_night_reference()
    names = base[0]
    assert reference.entries >= 16
    for window in WINDOWS:
        assert set(reference.stats[window]) == {n for n in names if has_reference(n)}, window
        assert not any(n.startswith("emg_") or n.endswith("_std") for n in reference.stats[window]), window
        for name, (median, low, high) in reference.stats[window].items():
            assert low <= median <= high and high > low, (window, name)


def test_two_hours_and_more_are_scaled_as_yasa_scales_them(base: tuple[list[str], np.ndarray]) -> None:
    names, features = base
    long = np.tile(features, (OWN_SCALE_EPOCHS // len(features) + 1, 1))[:OWN_SCALE_EPOCHS]
    ours, theirs = feature_table(names, long, reference=load_night_reference()), feature_table(names, long)
    assert ours[0] == theirs[0]
    np.testing.assert_array_equal(ours[1], theirs[1])


def test_a_short_recording_scales_shape_towards_the_reference_and_amplitude_and_emg_to_itself(
    base: tuple[list[str], np.ndarray],
) -> None:
    names, features = base
    reference = load_night_reference()
    table_names, blended = feature_table(names, features, reference=reference)
    _, own = feature_table(names, features)
    col = {n: j for j, n in enumerate(table_names)}
    for suffix in ("c7min", "p2min"):
        for name in _columns(names, suffix, referenced=False):
            np.testing.assert_array_equal(blended[:, col[name]], own[:, col[name]], err_msg=name)
        shape = [col[n] for n in _columns(names, suffix, referenced=True)]
        assert not np.allclose(blended[:, shape], own[:, shape])
    raw = [col[n] for n in names]  # the unsmoothed features are YASA's, untouched
    np.testing.assert_array_equal(blended[:, raw], own[:, raw])


def test_one_epoch_is_placed_on_the_reference_night(base: tuple[list[str], np.ndarray]) -> None:
    """Scaled to itself, one epoch's smoothed columns are all 0 (it is its own median); now they say where
    the epoch lies in the reference night, with 1/OWN_SCALE_EPOCHS of its own statistics."""
    names, features = base
    reference = load_night_reference()
    table_names, table = feature_table(names, features[:1], reference=reference)
    weight = 1 / OWN_SCALE_EPOCHS
    for name in ("eeg_sdelta", "eog_perm", "eeg_higuchi"):
        median, low, high = reference.stats["c7min"][name]
        x = features[0, names.index(name)]
        center = weight * x + (1 - weight) * median
        expected = (x - center) / ((1 - weight) * (high - low))  # the epoch's own 5-95 range is 0
        assert table[0, table_names.index(f"{name}_c7min_norm")] == pytest.approx(expected, rel=1e-5)


def test_only_recorded_files_get_the_reference(night: Recording) -> None:
    priors = {
        origin: yp.yasa_prior(Recording("r", night.signals, metadata={} if origin is None else {ORIGIN: origin}))
        for origin in (None, SIMULATED, RECORDED)
    }
    np.testing.assert_array_equal(priors[None], priors[SIMULATED])
    assert priors[RECORDED][:, -1].all()
    assert np.abs(priors[RECORDED][:, :5] - priors[None][:, :5]).max() > 0.01


def test_build_takes_each_statistic_s_median_over_nights_and_skips_amplitude() -> None:
    names = ["eeg_beta", "eeg_std"]
    nights = []
    for k in range(3):
        rolled = np.column_stack([np.linspace(0, 1, 101) + k, np.linspace(0, 10, 101)])
        nights.append((names, {w: night_statistics(rolled) for w in WINDOWS}))
    reference = build_night_reference(nights)
    assert reference.entries == 3 and set(reference.stats["c7min"]) == {"eeg_beta"}
    assert reference.stats["p2min"]["eeg_beta"] == pytest.approx((1.5, 1.05, 1.95))
    with pytest.raises(ValueError, match="at least one night"):
        build_night_reference([])


def test_a_broken_reference_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "ref.json"
    bad.write_text(json.dumps({"format": "something-else", "stats": {}}))
    with pytest.raises(ValueError, match=r"ref\.json.*sleeplm-night-reference/1"):
        load_night_reference(bad)
    (tmp_path / "torn.json").write_text("{")
    with pytest.raises(ValueError, match=r"torn\.json: cannot read"):
        load_night_reference(tmp_path / "torn.json")


def test_a_feature_the_recording_cannot_measure_takes_the_reference() -> None:
    """A flat stretch gives YASA NaN features; with no statistic of its own, the reference's stand."""
    reference = load_night_reference()
    names = ["eeg_beta", "eeg_std"]
    own = np.array([[np.nan, 2.0], [np.nan, 1.0], [np.nan, 3.0]])
    stats = reference.blend("c7min", names, own, n_epochs=10)
    assert tuple(stats[:, 0]) == reference.stats["c7min"]["eeg_beta"]
    np.testing.assert_array_equal(stats[:, 1], own[:, 1])  # amplitude: the recording's own, always


def test_a_real_chin_emg_keeps_its_own_scale(real_signals: Path) -> None:
    """The Nox A1 file's chin EMG (``1-2``, 200 Hz, real): scaled towards a reference built from our
    simulated EMG, its zero crossings and Higuchi dimension sat near -40 robust units, where YASA's training
    nights span about -0.5..0.6 (``benchmarks/yasa_training_quantiles.py``). Its own scale keeps them there."""
    recording, _ = read_mapped_edf(real_file(real_signals, "nox-a1-2min/subject1.edf"))
    n = recording.n_epochs
    signals = {
        g: yp.at_yasa_rate(recording.signals[c], n) for g, c in (("eeg", EEG_C4), ("eog", EOG_L), ("emg", EMG_CHIN))
    }
    names, table = feature_table(*epoch_base_features(signals), reference=load_night_reference())
    for feature in ("emg_nzc", "emg_higuchi", "emg_hmob", "emg_perm"):
        for suffix in WINDOWS:
            values = table[:, names.index(f"{feature}_{suffix}_norm")]
            assert np.all(np.abs(values) <= 1.5), (feature, suffix, values)
