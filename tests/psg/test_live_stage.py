"""The stage head's live measurements: one epoch at a time, they rebuild the offline input row by row."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from psg.epoching.analysis import recording_windows
from psg.errors import PSGError
from psg.features.live_stage import MeasurementHistory, epoch_measurements
from psg.features.stage_spectra import PRIOR_COLUMNS, stage_feature_matrix
from psg.json_codec import strict_json
from psg.montage import EEG_C3, EEG_C4
from psg.recording import Recording, Signal
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline


@pytest.fixture(scope="module")
def night() -> Recording:
    return simulate(synthetic_timeline(hours=0.25, seed=3), seed=3)


def measurements(recording: Recording) -> list[dict]:
    return [
        epoch_measurements({k: w.current(k) for k in w.signals}, w.signals, w.epoch - w.first_epoch)
        for w in recording_windows(recording)
    ]


@pytest.fixture(scope="module")
def measured(night: Recording) -> list[dict]:
    return measurements(night)


def test_measurements_are_strict_json_with_every_eeg_derivation(measured: list[dict]) -> None:
    import json

    first = measured[0]
    assert strict_json(json.dumps(first).encode(), "measurements") == first
    assert first["eeg_ok"] is True and first["available"] == [1.0, 1.0]
    assert first["yasa"]["channels"] == "eeg+eog+emg"
    assert set(first["yasa"]["derivations"]) == {"EEG C3-A2", "EEG C4-A1"}


def test_the_newest_row_on_the_whole_history_is_the_offline_row_of_the_last_epoch(
    night: Recording, measured: list[dict]
) -> None:
    """At the last epoch the live history is the whole recording: the row equals the offline one, up to the
    window-wise resampling and band-pass (epoch edges) and YASA's per-epoch past means."""
    history = MeasurementHistory("rec")
    rows = [history.row(e, m)[0] for e, m in enumerate(measured)]
    offline = stage_feature_matrix(night).model_input()
    spectral = slice(0, PRIOR_COLUMNS.start)
    np.testing.assert_allclose(rows[-1][spectral], offline[-1][spectral], atol=0.15)
    np.testing.assert_allclose(rows[-1][PRIOR_COLUMNS], offline[-1][PRIOR_COLUMNS], atol=0.1)
    # and every epoch was staged by YASA live, as offline
    assert all(row[PRIOR_COLUMNS][-1] == 1.0 for row in rows)


def test_a_replay_is_answered_as_the_first_time_and_not_kept(measured: list[dict]) -> None:
    history = MeasurementHistory("rec")
    first = [history.row(e, m)[0] for e, m in enumerate(measured[:8])]
    kept = list(history.epochs)
    again = history.row(4, measured[4]).x
    np.testing.assert_array_equal(again, first[4])
    assert history.epochs == kept


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (lambda m: m.pop("spectral"), "spectral"),
        (lambda m: m["available"].append(1.0), "available"),
        (lambda m: m.update(eeg_ok="yes"), "eeg_ok"),
        (lambda m: m["yasa"].update(channels="eeg+ecg"), "yasa.channels"),
        (lambda m: m["yasa"]["derivations"]["EEG C3-A2"]["features"].pop(), "EEG C3-A2.features"),
        (lambda m: m["yasa"]["derivations"]["EEG C3-A2"]["features"].__setitem__(0, "x"), "EEG C3-A2.features"),
        (lambda m: m["yasa"]["derivations"].update(Fz={"ok": True}), "derivations.Fz"),
    ],
)
def test_bad_measurements_are_named_and_leave_the_history_alone(measured: list[dict], damage, field: str) -> None:
    history = MeasurementHistory("rec")
    history.row(0, measured[0])
    bad = copy.deepcopy(measured[1])
    damage(bad)
    with pytest.raises(PSGError, match=field):
        history.row(1, bad)
    assert history.epochs == [0]
    history.row(1, measured[1])  # the good message after it is staged as usual
    assert history.epochs == [0, 1]


def test_an_epoch_without_eeg_has_no_yasa_block_and_no_prior(night: Recording) -> None:
    eegless = Recording("no-eeg", {k: s for k, s in night.signals.items() if not k.startswith("EEG")})
    m = measurements(eegless)[0]
    assert m["yasa"] is None and m["eeg_ok"] is False
    x, eeg_ok, _ = MeasurementHistory("rec").row(0, m)
    assert not eeg_ok and not x[PRIOR_COLUMNS].any()


def _low_passed(recording: Recording, labels: tuple[str, ...]) -> Recording:
    """``recording`` with the EEG derivations ``labels`` low-passed at 15 Hz, as a device filter would."""
    from scipy import signal as sps

    signals = dict(recording.signals)
    for label in labels:
        sig = signals[label]
        data = sps.sosfiltfilt(sps.butter(4, 15.0, fs=sig.fs, output="sos"), sig.data)
        signals[label] = Signal(label, data, sig.fs, sig.unit)
    return Recording(recording.record_id, signals)


def test_a_low_passed_derivation_beside_a_full_band_one_is_left_out_live(night: Recording) -> None:
    """As offline (``eeg_bandwidth.full_band``): YASA's prior is the full-band derivation's alone."""
    mixed = measurements(_low_passed(night, (EEG_C4,)))[:6]
    alone = copy.deepcopy(mixed)
    for m in alone:
        del m["yasa"]["derivations"][EEG_C4]
    history, reference = MeasurementHistory("rec"), MeasurementHistory("ref")
    for e, (m, a) in enumerate(zip(mixed, alone, strict=True)):
        row = history.row(e, m)
        assert row.reason == ""
        np.testing.assert_allclose(row.x[PRIOR_COLUMNS], reference.row(e, a).x[PRIOR_COLUMNS])


def test_a_bed_whose_every_eeg_is_low_passed_is_uncertain_from_its_first_epoch(night: Recording) -> None:
    history = MeasurementHistory("rec")
    reasons = [history.row(e, m).reason for e, m in enumerate(measurements(_low_passed(night, (EEG_C3, EEG_C4)))[:4])]
    assert all("low-passed below YASA's band" in r for r in reasons), reasons


def test_measurements_stored_before_the_beta_slope_are_read_as_unmeasured(measured: list[dict]) -> None:
    old = copy.deepcopy(measured[:3])
    for m in old:
        for derivation in m["yasa"]["derivations"].values():
            del derivation["beta_slope"]
    history = MeasurementHistory("rec")
    assert [history.row(e, m).reason for e, m in enumerate(old)] == ["", "", ""]
    bad = copy.deepcopy(measured[3])
    bad["yasa"]["derivations"][EEG_C3]["beta_slope"] = "steep"
    with pytest.raises(PSGError, match="beta_slope"):
        history.row(3, bad)
