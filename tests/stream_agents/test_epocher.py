"""Epocher: epoch assembly by sample time, out-of-order/duplicate chunks, lag, recordings, ack tokens."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from psg.codecs import ChunkBundle, DeviceEvent, EpochMessage, SampleChunk, decode_epoch, encode_epoch
from psg.epoching.analysis import analyse
from psg.epoching.epocher import Epocher
from psg.errors import MessageError
from psg.montage import AUX_CHANNELS, MODEL_CHANNELS, MODEL_EPOCH_SAMPLES
from psg.recording import Recording
from tests.stream_agents.chunking import START, chunk_recording


def feed(epocher: Epocher, items: list[tuple[SampleChunk, object]]) -> tuple[list[EpochMessage], list[object]]:
    epochs: list[EpochMessage] = []
    released: list[object] = []
    for chunk, token in items:
        out = epocher.add(chunk, token)
        epochs += out.epochs
        released += out.released
    return epochs, released


def until(chunks: list[SampleChunk], t_s: float) -> list[SampleChunk]:
    """Chunks starting before ``t_s`` seconds into the recording."""
    return [c for c in chunks if c.t0 < START + t_s]


def assert_same_epoch(a: EpochMessage, b: EpochMessage) -> None:
    assert (a.bed_id, a.recording_id, a.epoch, a.start_time) == (b.bed_id, b.recording_id, b.epoch, b.start_time)
    np.testing.assert_array_equal(a.signals, b.signals)
    np.testing.assert_array_equal(a.aux, b.aux)
    assert a.quality == b.quality
    assert a.features == b.features
    assert a.events == b.events


def test_in_order_night_gives_every_epoch_once(night: Recording, baseline: list[EpochMessage]) -> None:
    assert [m.epoch for m in baseline] == list(range(night.n_epochs))
    for m in baseline:
        assert m.signals.shape == (len(MODEL_CHANNELS), MODEL_EPOCH_SAMPLES) and m.signals.dtype == np.float32
        assert m.aux.shape == (len(AUX_CHANNELS), 30) and m.aux.dtype == np.float32
        assert m.start_time == START + 30.0 * m.epoch
        assert set(m.quality) == set(MODEL_CHANNELS + AUX_CHANNELS)
        decoded = decode_epoch(encode_epoch(m))  # the header (features, events, quality) is strict JSON
        assert decoded.features == m.features and decoded.events == m.events
        assert m.features["hr_bpm"] is not None and m.features["resp_rate_bpm"] is not None
    # A clean simulated night: no flag on any channel of any epoch, SpO2/HR present every second, except
    # the monitor's first two seconds (it reports HR 0 until it has beats: an invalid reading, a gap).
    assert baseline[0].quality["HR"] == ["gap"] and np.isnan(baseline[0].aux[1, :2]).all()
    assert all(flags == [] for m in baseline for label, flags in m.quality.items() if (m.epoch, label) != (0, "HR"))
    assert np.isfinite(baseline[0].aux[:, 2:]).all() and all(np.isfinite(m.aux).all() for m in baseline[1:])
    # The completing chunk is the last one of the epoch (its arrival starts the latency clock).
    assert all(START + 30.0 * (m.epoch + 1) <= m.end_received_at < START + 30.0 * (m.epoch + 1) + 2 for m in baseline)
    # Events are relative to the recording start and overlap their epoch.
    for m in baseline:
        for event in m.events:
            assert event["onset_s"] < 30.0 * (m.epoch + 1) and event["onset_s"] + event["duration_s"] > 30.0 * m.epoch


def test_out_of_order_and_duplicates_change_nothing(chunks: list[SampleChunk], baseline: list[EpochMessage]) -> None:
    """Chunks shuffled within ~3 s across streams, and every 7th chunk sent again later: the same epochs."""
    rng = random.Random(7)
    items = list(enumerate(until(chunks, 8 * 30 + 5)))
    shuffled: list[tuple[int, SampleChunk]] = []
    for i in range(0, len(items), 9):
        block = items[i : i + 9]
        rng.shuffle(block)
        shuffled += block
    duplicates = [(f"dup{i}", c) for i, c in items[::7]]
    for n, dup in enumerate(duplicates):
        shuffled.insert(min(len(shuffled), 10 * n + 25), dup)  # a little after the original
    epocher = Epocher()
    epochs, released = [], []
    for token, chunk in shuffled:
        out = epocher.add(chunk, token)
        epochs += out.epochs
        released += out.released
        if isinstance(token, str):
            assert token in out.released  # a duplicate is acked at once
    assert [m.epoch for m in epochs] == list(range(8))
    for got, want in zip(epochs, baseline[:8], strict=True):
        assert_same_epoch(got, want)
    assert len(released) == len(set(released))


def test_a_lagging_stream_is_flagged_gap_after_max_lag(chunks: list[SampleChunk]) -> None:
    """resp stops at 75 s: epoch 2 (60-90 s) waits until exg is 10 s past 90 s, then its resp channels are 'gap'."""
    items = [(c, i) for i, c in enumerate(until(chunks, 135)) if not (c.stream == "resp" and c.t0 >= START + 75)]
    epocher = Epocher(max_lag_s=10.0)
    emitted_at: dict[int, float] = {}
    epochs = []
    for chunk, token in items:
        for m in epocher.add(chunk, token).epochs:
            emitted_at[m.epoch] = chunk.t_end - START
            epochs.append(m)
    assert [m.epoch for m in epochs] == [0, 1, 2, 3]
    assert 100.0 < emitted_at[2] <= 101.0 + 1e-6  # not before exg is > 10 s past the epoch end
    epoch2 = epochs[2]
    for label in ("ABD", "THX", "AF"):
        assert "gap" in epoch2.quality[label] and "gap" in epochs[3].quality[label]
        assert epochs[1].quality[label] == []
    assert epoch2.quality["EEG C3-A2"] == [] and epoch2.quality["SpO2"] == []
    assert epochs[3].features["resp_rate_af_bpm"] is None  # nothing of AF in 90-120 s: no number invented


def test_a_stream_that_caught_up_is_waited_for_again(chunks: list[SampleChunk]) -> None:
    """resp falls 135 s behind (its 75-210 s arrive after exg reached 210 s): epochs 2-5 come out 'gap' by
    the lag rule. Once resp's late chunks are in, epoch 6 is complete and comes out without gap, and so does
    every later epoch as soon as it is complete, the night's last one included, which no stream runs ahead
    of. (Late chunks older than the context used to be released without extending resp's unbroken run:
    the lag rule for the rest of the night, and the last epoch never.)"""
    night_end = max(c.t_end for c in chunks) - START
    late = [c for c in chunks if c.stream == "resp" and START + 75 <= c.t0 < START + 210]
    early = [c for c in chunks if c not in late and c.t0 < START + 210]
    rest = [c for c in chunks if c.t0 >= START + 210]
    epocher = Epocher(max_lag_s=10.0)
    epochs, _ = feed(epocher, [(c, i) for i, c in enumerate(early)])
    assert [m.epoch for m in epochs] == [0, 1, 2, 3, 4, 5] and all("gap" in m.quality["AF"] for m in epochs[2:])
    epochs, _ = feed(epocher, [(c, f"late-{i}") for i, c in enumerate(late)])
    assert [m.epoch for m in epochs] == [6] and epochs[0].quality["AF"] == []
    emitted_at: dict[int, float] = {}
    for i, chunk in enumerate(rest):
        for m in epocher.add(chunk, f"rest-{i}").epochs:
            emitted_at[m.epoch] = chunk.t_end - START
            assert m.quality["AF"] == [], f"epoch {m.epoch}: resp caught up, no gap expected"
    n_epochs = int(night_end // 30)
    assert sorted(emitted_at) == list(range(7, n_epochs))
    assert emitted_at[7] < 240.0 + 10.0  # complete at 240 s, not held back by the lag rule
    assert emitted_at[n_epochs - 1] == pytest.approx(night_end, abs=1.0)


def test_a_lost_stream_stops_the_wait_at_once(chunks: list[SampleChunk]) -> None:
    items = [c for c in until(chunks, 95) if not (c.stream == "resp" and c.t0 >= START + 75)]
    epocher = Epocher(max_lag_s=10.0)
    epochs, _ = feed(epocher, [(c, i) for i, c in enumerate(items)])
    assert [m.epoch for m in epochs] == [0, 1]  # epoch 2 waits for resp (exg is only 5 s past 90 s)
    lost = DeviceEvent("bed-1", "rec-1", "resp", "stream_lost", START + 80, "no samples for 5 s")
    out = epocher.device_event(lost, "event-token")
    assert [m.epoch for m in out.epochs] == [2] and "gap" in out.epochs[0].quality["AF"]
    assert out.device_events == [lost] and "event-token" in out.released


def test_quality_flags_of_broken_channels(night: Recording) -> None:
    """Flat EEG C4, no chin EMG, a 3-s hole in the ECG, clipped THX, mains on EEG C3, each in its own epoch."""
    signals = {label: dataclasses.replace(sig, data=sig.data.copy()) for label, sig in night.signals.items()}
    del signals["EMG Chin"]

    def span(label: str, epoch: int, a: float = 0.0, b: float = 30.0) -> slice:
        fs = signals[label].fs
        return slice(int((30 * epoch + a) * fs), int((30 * epoch + b) * fs))

    signals["EEG C4-A1"].data[span("EEG C4-A1", 1)] = 7.0
    signals["ECG"].data[span("ECG", 2, 10, 13)] = np.nan
    thx = signals["THX"].data
    part = thx[span("THX", 3)]
    thx[span("THX", 3)] = np.clip(part, None, np.percentile(part, 80))
    t = np.arange(int(30 * 256)) / 256
    signals["EEG C3-A2"].data[span("EEG C3-A2", 4)] += 300.0 * np.sin(2 * np.pi * 50.0 * t)
    broken = Recording("broken", signals)
    epochs, _ = feed(Epocher(), [(c, i) for i, c in enumerate(until(chunk_recording(broken), 6 * 30 + 2))])
    assert [m.epoch for m in epochs] == [0, 1, 2, 3, 4, 5]
    assert all(m.quality["EMG Chin"] == ["missing"] for m in epochs)
    assert all(not m.signals[MODEL_CHANNELS.index("EMG Chin")].any() for m in epochs)  # missing -> zeros
    assert epochs[1].quality["EEG C4-A1"] == ["flat"] and epochs[1].features["c4_alpha"] is None
    assert epochs[2].quality["ECG"] == ["gap"] and epochs[2].features["hr_bpm"] is not None
    assert epochs[3].quality["THX"] == ["clipped"]
    assert epochs[4].quality["EEG C3-A2"] == ["noisy"]
    for m in (epochs[0], epochs[5]):  # (HR: the monitor's start-up zeros, see the in-order test)
        assert all(flags == [] for label, flags in m.quality.items() if label not in ("EMG Chin", "HR"))


def test_tokens_are_held_until_the_epoch_leaves_the_hold_window(chunks: list[SampleChunk]) -> None:
    epocher = Epocher(context_epochs=2, norm_epochs=3)  # hold 2 epochs
    assert epocher.hold_epochs == 2
    items = until(chunks, 7 * 30 + 15)
    last_epoch_of = {i: int((c.t_end - START - 1e-6) // 30) for i, c in enumerate(items)}
    emitted = -1
    released: list[int] = []
    for i, chunk in enumerate(items):
        out = epocher.add(chunk, i)
        emitted = max([emitted] + [m.epoch for m in out.epochs])
        for token in out.released:
            assert last_epoch_of[token] <= emitted - 2, "released while its epoch is still held"
        released += out.released
    assert emitted == 6  # epoch 7 is still waiting for its end
    assert set(released) == {i for i, e in last_epoch_of.items() if e <= 4}
    # The recording moves on: everything left is released, each token exactly once.
    start2 = START + 1000.0
    second = [
        dataclasses.replace(c, recording_id="rec-2", t0=c.t0 + 1000.0, recording_start=start2)
        for c in until(chunks, 35)
    ]
    out = epocher.add(second[0], "new")
    assert sorted(released + out.released) == list(range(len(items)))
    assert out.epochs == [] and epocher.held_tokens("bed-1") == 1
    # A late chunk of the finished recording is released at once and changes nothing.
    late = epocher.add(items[-1], "late")
    assert late.released == ["late"] and late.epochs == []
    # The new recording counts its epochs from its own start.
    epochs, _ = feed(epocher, [(c, f"r2-{i}") for i, c in enumerate(second[1:])])
    assert [(m.recording_id, m.epoch, m.start_time) for m in epochs] == [("rec-2", 0, start2)]


def test_replay_from_the_oldest_unreleased_chunk_rebuilds_identical_epochs(chunks: list[SampleChunk]) -> None:
    """Crash recovery: a fresh Epocher fed from the oldest un-acked chunk re-emits the later epochs bit for bit."""
    items = until(chunks, 16 * 30 + 2)
    crash_at = next(i for i, c in enumerate(items) if c.t0 >= START + 10 * 30 + 12.4)  # mid epoch 10
    original = Epocher(norm_epochs=4)
    before, released = feed(original, [(c, i) for i, c in enumerate(items[:crash_at])])
    assert before[-1].epoch == 9
    oldest = min(set(range(crash_at)) - set(released))
    # Kafka replays everything from the oldest un-acked offset (acked chunks after it included).
    assert items[oldest].t0 == START + 7 * 30  # the hold window: the 3 epochs before epoch 10 are replayed
    after, _ = feed(original, [(c, i) for i, c in enumerate(items[crash_at:], crash_at)])
    replayed, _ = feed(Epocher(norm_epochs=4), [(c, i) for i, c in enumerate(items[oldest:], oldest)])
    assert [m.epoch for m in after] == list(range(10, 16))
    fresh = [m for m in replayed if m.epoch >= 10]
    assert [m.epoch for m in fresh] == list(range(10, 16))
    for got, want in zip(fresh, after, strict=True):
        assert_same_epoch(got, want)
    # The held epochs come out again (duplicates the store ignores), never an epoch twice in one run.
    assert [m.epoch for m in replayed][0] <= 7 and len({m.epoch for m in replayed}) == len(replayed)


def test_drop_beds_forgets_without_releasing(chunks: list[SampleChunk]) -> None:
    epocher = Epocher()
    _, released = feed(epocher, [(c, i) for i, c in enumerate(until(chunks, 45))])
    assert released == [] and epocher.held_tokens("bed-1") > 0
    epocher.drop_beds(["bed-1"])
    assert epocher.held_tokens("bed-1") == 0
    epochs, released = feed(epocher, [(c, i) for i, c in enumerate(until(chunks, 65))])
    assert [m.epoch for m in epochs] == [0, 1] and released == []  # starts afresh


def test_beds_are_independent(night: Recording) -> None:
    a = chunk_recording(night, bed_id="bed-a")
    b = chunk_recording(night, bed_id="bed-b", start=START + 7.3)  # another clock, another phase
    items = sorted(until(a, 70) + [c for c in b if c.t0 < START + 7.3 + 70], key=lambda c: c.received_at)
    epochs, _ = feed(Epocher(), [(c, i) for i, c in enumerate(items)])
    by_bed = {bed: [m.epoch for m in epochs if m.bed_id == bed] for bed in ("bed-a", "bed-b")}
    assert by_bed == {"bed-a": [0, 1], "bed-b": [0, 1]}
    ma, mb = (next(m for m in epochs if m.bed_id == bed and m.epoch == 1) for bed in ("bed-a", "bed-b"))
    assert mb.start_time == START + 7.3 + 30 and ma.features == mb.features


def test_contradicting_chunks_are_message_errors(chunks: list[SampleChunk]) -> None:
    epocher = Epocher()
    feed(epocher, [(c, i) for i, c in enumerate(until(chunks, 5))])
    held = epocher.held_tokens("bed-1")
    exg = next(c for c in chunks if c.stream == "exg" and c.seq == 5)
    with pytest.raises(MessageError, match="fs 200.0"):
        epocher.add(dataclasses.replace(exg, fs=200.0), "bad")
    with pytest.raises(MessageError, match="recording_start"):
        epocher.add(dataclasses.replace(exg, recording_start=START - 60), "bad")
    with pytest.raises(MessageError, match="t0"):
        epocher.add(dataclasses.replace(exg, t0=START + 3 * 86400), "bad")
    assert epocher.held_tokens("bed-1") == held


def test_a_restarted_bridge_a_few_ms_off_continues_the_recording(chunks: list[SampleChunk]) -> None:
    """A restarted bridge estimates the LSL clock offset again: the same recording's start and its chunks'
    times come a few ms off (8 ms seen in CI); they continue the recording instead of being refused."""
    shift = 0.008
    before, after = until(chunks, 90), [c for c in chunks if START + 90 <= c.t0 < START + 150]
    shifted = [dataclasses.replace(c, recording_start=c.recording_start + shift, t0=c.t0 + shift) for c in after]
    epocher = Epocher()
    epochs, _ = feed(epocher, [(c, i) for i, c in enumerate(before + shifted)])
    assert [m.epoch for m in epochs] == [0, 1, 2, 3, 4]
    for m in epochs[3:]:  # wholly from the restarted bridge
        assert all(flags == [] for flags in m.quality.values()), m.quality


def bundles_by_second(chunks: list[SampleChunk]) -> list[ChunkBundle]:
    """The chunks regrouped as a bridge bundles them: one bundle per bed and second, streams by name."""
    by_second: dict[int, list[SampleChunk]] = {}
    for chunk in chunks:
        by_second.setdefault(int(chunk.t0 - START), []).append(chunk)
    return [
        ChunkBundle("bed-1", tuple(sorted(group, key=lambda c: c.stream))) for _, group in sorted(by_second.items())
    ]


def test_bundles_give_the_epochs_of_their_chunks_and_release_each_token_once(chunks: list[SampleChunk]) -> None:
    items = until(chunks, 8 * 30 + 5)
    bundles = bundles_by_second(items)
    assert all(len(b.chunks) >= 2 for b in bundles)
    epocher = Epocher(context_epochs=2, norm_epochs=3)  # hold 2 epochs
    epochs, released = [], []
    for i, bundle in enumerate(bundles):
        out = epocher.add_bundle(bundle, i)
        epochs += out.epochs
        released += out.released
        assert out.refused == []
        emitted = max([-1] + [m.epoch for m in epochs])
        for token in out.released:  # a bundle is released only when its last chunk's epoch has left the hold
            last = max(int((c.t_end - START - 1e-6) // 30) for c in bundles[token].chunks)
            assert last <= emitted - 2
    one_by_one, _ = feed(Epocher(context_epochs=2, norm_epochs=3), [(c, i) for i, c in enumerate(items)])
    assert [m.epoch for m in epochs] == [m.epoch for m in one_by_one] == list(range(8))
    for got, want in zip(epochs, one_by_one, strict=True):  # bundling changes nothing in any epoch
        assert_same_epoch(got, want)
    assert len(released) == len(set(released)) and released == sorted(released)
    # what is held are chunks of the unreleased bundles, counted one by one
    held = [b for i, b in enumerate(bundles) if i not in set(released)]
    assert epocher.held_tokens("bed-1") == sum(len(b.chunks) for b in held)


def test_a_bad_chunk_in_a_bundle_is_refused_and_the_others_are_taken(chunks: list[SampleChunk]) -> None:
    epocher = Epocher(context_epochs=0, norm_epochs=1)
    bundles = bundles_by_second(until(chunks, 45))  # the refused chunk is a hole: epoch 0 waits out the lag
    for i, bundle in enumerate(bundles[:5]):
        epocher.add_bundle(bundle, i)
    good = bundles[5]
    bad_stream = good.chunks[0].stream
    broken = ChunkBundle("bed-1", (dataclasses.replace(good.chunks[0], fs=200.0), *good.chunks[1:]))
    out = epocher.add_bundle(broken, "broken")
    assert [(c.stream, "fs 200.0" in str(e)) for c, e in out.refused] == [(bad_stream, True)]
    # the good chunks were placed: a resend of them is a duplicate, released at once
    again = epocher.add_bundle(ChunkBundle("bed-1", good.chunks[1:]), "again")
    assert again.released == ["again"] and again.refused == []
    # the broken bundle's token waits for its placed chunks' epoch, then comes out once
    released = []
    for i, bundle in enumerate(bundles[6:], 6):
        released += epocher.add_bundle(bundle, i).released
    assert released.count("broken") == 1


def test_without_analyse_the_windows_come_out_for_the_caller_to_analyse(chunks: list[SampleChunk]) -> None:
    """``analyse=None`` (the live agent): windows instead of epochs; analysed in order they give the same epochs."""
    items = [(c, i) for i, c in enumerate(until(chunks, 4 * 30 + 5))]
    deferred, windows = Epocher(analyse=None), []
    for chunk, token in items:
        out = deferred.add(chunk, token)
        assert out.epochs == []
        windows += out.windows
    direct, _ = feed(Epocher(), items)
    assert [w.epoch for w in windows] == [m.epoch for m in direct] == [0, 1, 2, 3]
    for window, want in zip(windows, direct, strict=True):
        assert_same_epoch(analyse(window), want)


def test_the_window_carries_the_origin_of_the_beds_recording(night: Recording, chunks: list[SampleChunk]) -> None:
    """The first origin a recording's chunks carry goes on every window of it; a new recording starts unknown."""
    first = until(chunks, 2 * 30 + 5)
    said = [
        dataclasses.replace(c, origin=None if i < 3 else "recorded" if i < 40 else "simulated")
        for i, c in enumerate(first)
    ]
    epocher, windows = Epocher(analyse=None), []
    for i, chunk in enumerate(said):
        windows += epocher.add(chunk, i).windows
    assert [(w.epoch, w.origin) for w in windows] == [(0, "recorded"), (1, "recorded")]
    later = [c for c in chunk_recording(night, recording_id="rec-2", start=START + 7200) if c.t0 < START + 7265]
    windows = []
    for i, chunk in enumerate(later):  # an older producer's chunks: no origin
        windows += epocher.add(chunk, f"r2-{i}").windows
    assert [(w.recording_id, w.epoch, w.origin) for w in windows] == [("rec-2", 0, None), ("rec-2", 1, None)]
