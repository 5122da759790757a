"""The live runtime stages a recorded bed with the stage head, as ``sleeplm stage`` stages a recorded file."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from model_runtime.model.lab_head import LabHead
from model_runtime.model.shipped import SHIPPED_CHECKPOINT
from model_runtime.serving.caption_records import caption_records
from model_runtime.serving.live_stage_head import tie_reason
from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.night import load_night_input
from model_runtime.serving.sleeplm_runtime import SleepLMRuntime
from plumbing.settings import Settings
from psg.captions.consistency import contradictions
from psg.codecs import EpochMessage, decode_epoch, encode_epoch
from psg.epoching.analysis import analyse, recording_windows
from psg.errors import PSGError
from psg.recording import RECORDED, SIMULATED, Recording
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline

pytestmark = pytest.mark.skipif(not SHIPPED_CHECKPOINT.is_file(), reason="the shipped checkpoint is not built")


@pytest.fixture(scope="module")
def lm() -> SleepLM:
    return SleepLM.load(SHIPPED_CHECKPOINT, backend="torch")


@pytest.fixture(scope="module")
def night() -> Recording:
    return simulate(synthetic_timeline(hours=0.25, seed=5), seed=5)


def epoch_messages(recording: Recording, origin: str | None) -> list[EpochMessage]:
    """The epocher's analysis of every epoch, as it reaches the runtime (encoded and decoded)."""
    return [decode_epoch(encode_epoch(analyse(w))) for w in recording_windows(recording, origin=origin)]


@pytest.fixture(scope="module")
def recorded(night: Recording) -> list[EpochMessage]:
    return epoch_messages(night, RECORDED)


def test_a_recorded_bed_is_staged_by_the_stage_head(lm: SleepLM, recorded: list[EpochMessage]) -> None:
    runtime = SleepLMRuntime.from_model(lm)
    records = caption_records(runtime, recorded)
    assert {r["stage_source"] for r in records} == {"stage head (real-prior)"}
    for record in records:
        assert record["stage"] in ("W", "N1", "N2", "N3", "R", "?")
        assert record["probabilities"] is not None and abs(sum(record["probabilities"]) - 1) < 1e-6
        assert record["embedding"] is not None  # the encoder still embeds the epoch for search and watch rules
        assert contradictions(record) == []
    # staged at once from the history so far, each epoch once: the same verdicts batch by batch
    one_by_one = SleepLMRuntime.from_model(lm)
    assert [one_by_one.infer([m])[0].stage for m in recorded] == [r["stage"] for r in records]


def test_a_simulated_bed_keeps_the_signal_encoder(lm: SleepLM, night: Recording) -> None:
    messages = epoch_messages(night, SIMULATED)[:3]
    assert all(m.stage_measurements is None and m.origin == SIMULATED for m in messages)
    results = SleepLMRuntime.from_model(lm).infer(messages)
    assert {r.stage_source for r in results} == {"model"}


def test_an_epoch_the_head_cannot_vouch_for_is_uncertain_with_its_reason(
    lm: SleepLM, recorded: list[EpochMessage]
) -> None:
    runtime = SleepLMRuntime.from_model(lm)
    runtime.infer(recorded[:4])
    measurements = dict(recorded[4].stage_measurements or {}, eeg_ok=False, yasa=None)
    blind = dataclasses.replace(recorded[4], stage_measurements=measurements)
    (record,) = caption_records(runtime, [blind])
    assert record["stage"] == "?" and record["probabilities"] is not None
    assert record["captions"]["stage_event"].startswith("Stage uncertain: no usable EEG in this epoch.")
    assert contradictions(record) == []


def test_unreadable_measurements_fall_back_to_the_encoder_and_are_counted(
    lm: SleepLM, recorded: list[EpochMessage]
) -> None:
    runtime = SleepLMRuntime.from_model(lm)
    broken = dataclasses.replace(recorded[0], stage_measurements={"spectral": "none"})
    (result,) = runtime.infer([broken])
    assert result.stage_source == "model" and runtime.live_head is not None and runtime.live_head.rejected == 1
    (after,) = runtime.infer([recorded[1]])  # the bed goes on with the stage head
    assert after.stage_source == "stage head (real-prior)"


def test_a_replayed_epoch_gets_its_first_answer(lm: SleepLM, recorded: list[EpochMessage]) -> None:
    runtime = SleepLMRuntime.from_model(lm)
    first = runtime.infer(recorded[:6])
    again = runtime.infer([recorded[3]])[0]
    assert again.stage == first[3].stage
    np.testing.assert_allclose(again.probabilities or [], first[3].probabilities or [])


def test_a_lab_head_stages_the_real_beds_live(lm: SleepLM, recorded: list[EpochMessage], tmp_path) -> None:
    """SLEEPLM_LAB_HEAD reaches the runtime through the settings; a head that favours N2 is what stages."""
    width = lm.stage_classes.shape[1]
    path = LabHead(np.zeros((5, width)), np.array([0.0, 0.0, 4.0, 0.0, 0.0]), shots=3).save(tmp_path / "lab.npz")
    options = Settings(lab_head=path).runtime_options
    assert options["lab_head"] == path
    runtime = SleepLMRuntime.from_model(lm, LabHead.load(options["lab_head"]))
    results = runtime.infer(recorded[:4])
    assert {r.stage_source for r in results} == {"stage head (lab)"}
    assert {r.stage for r in results} <= {"N2", "?"} and "N2" in {r.stage for r in results}


def test_a_missing_lab_head_stops_the_runtime_naming_the_file(tmp_path) -> None:
    with pytest.raises(PSGError, match="nowhere.npz"):
        SleepLMRuntime(SHIPPED_CHECKPOINT, backend="torch", lab_head=tmp_path / "nowhere.npz")


def test_a_bed_taken_over_mid_night_is_uncertain_until_its_history_has_grown(
    lm: SleepLM, recorded: list[EpochMessage]
) -> None:
    """A worker restart or a rebalance starts a bed's history again mid-night: its epochs say so."""
    taken_over = caption_records(SleepLMRuntime.from_model(lm), recorded[10:14])
    assert {r["stage"] for r in taken_over} == {"?"}
    first = taken_over[0]["captions"]["stage_event"]
    assert first.startswith("Stage uncertain: the monitor took this bed over mid-night (a restart) and has 0.5 of")
    assert all(r["probabilities"] is not None and contradictions(r) == [] for r in taken_over)
    # a history that began with the recording is the start of a night, not a takeover
    from_start = SleepLMRuntime.from_model(lm).infer(recorded[:14])
    assert not any(r.captions["stage_event"].startswith("Stage uncertain: the monitor took") for r in from_start)


def test_a_worker_taking_a_bed_over_resumes_its_history_from_the_stored_measurements(
    lm: SleepLM, recorded: list[EpochMessage]
) -> None:
    """What the sink stored (each record's ``stage_measurements``) rebuilds the history: the new worker's
    verdicts are the uninterrupted worker's, and none is 'taken over' uncertain."""
    first = caption_records(SleepLMRuntime.from_model(lm), recorded[:14])
    taker = SleepLMRuntime.from_model(lm)
    recording = recorded[0].recording_id
    assert taker.histories_wanted(recorded[10:14]) == [("bed-1", recording, 10)]
    stored = [(r["epoch"], r["stage_measurements"]) for r in first[:10]]
    assert taker.resume_history("bed-1", recording, stored) == 10
    assert taker.histories_wanted(recorded[10:14]) == []
    resumed = taker.infer(recorded[10:14])
    assert [r.stage for r in resumed] == [r["stage"] for r in first[10:14]]
    expected = [r["probabilities"] for r in first[10:14]]
    np.testing.assert_allclose([r.probabilities for r in resumed], expected, atol=1e-9)


def test_an_unreadable_stored_epoch_is_skipped_when_a_history_resumes(
    lm: SleepLM, recorded: list[EpochMessage]
) -> None:
    taker = SleepLMRuntime.from_model(lm)
    stored = [(e, m.stage_measurements or {}) for e, m in enumerate(recorded[:6])]
    stored[2] = (2, {"spectral": "damaged"})
    assert taker.resume_history("bed-1", recorded[0].recording_id, stored) == 5
    assert taker.live_head is not None and taker.live_head.rejected == 1


def test_a_coin_toss_between_two_stages_is_uncertain_live() -> None:
    assert tie_reason(np.array([0.45, 0.01, 0.01, 0.46, 0.07])) == ("N3 and W are about equally likely (0.46 and 0.45)")
    assert tie_reason(np.array([0.60, 0.30, 0.05, 0.03, 0.02])) == ""


def test_the_real_sleep_edf_wake_played_live_is_never_called_n3(lm: SleepLM, real_signals: Path) -> None:
    """Read against only the epochs so far, its 4th and 5th epochs were W/N3 ties (YASA scaling five epochs to
    themselves) and then shown as ties; with the night reference (``psg.features.night_reference``) all 10
    are W, as offline. Any tie left must still be shown as one."""
    night = load_night_input(real_signals / "sleep-edf-short" / "short_psg.edf")
    results = SleepLMRuntime.from_model(lm).infer(epoch_messages(night.recording, RECORDED))
    assert {r.stage_source for r in results} == {"stage head (real-prior)"}
    stages = [r.stage for r in results]
    assert "N3" not in stages and stages.count("W") >= 9, stages
    for r in results:
        if r.stage == "?":
            assert re.match(r"Stage uncertain: (W and N3|N3 and W) are about equally likely", r.captions["stage_event"])


def test_a_real_bed_whose_eeg_was_low_passed_at_15_hz_is_uncertain_live(lm: SleepLM, real_signals: Path) -> None:
    """As offline: the bed's beta slope so far tells a device low-pass and every epoch is '?' with the reason.
    Before, live went on staging such beds: the real awake EEG so filtered came out W 3, N3 4, N2 1 and 4
    ties, this Sleep-EDF wake W 10 (``benchmarks/low_passed_eeg.py``); offline both were already uncertain."""
    from scipy import signal as sps

    night = load_night_input(real_signals / "sleep-edf-short" / "short_psg.edf")
    signals = dict(night.recording.signals)
    for label in ("EEG C3-A2", "EEG C4-A1"):
        sig = signals[label]
        data = sps.sosfiltfilt(sps.butter(4, 15.0, fs=sig.fs, output="sos"), sig.data)
        signals[label] = dataclasses.replace(sig, data=data)
    filtered = Recording("lp15", signals)
    results = SleepLMRuntime.from_model(lm).infer(epoch_messages(filtered, RECORDED))
    assert [r.stage for r in results] == ["?"] * len(results)
    assert all("low-passed below YASA's band" in r.captions["stage_event"] for r in results)
