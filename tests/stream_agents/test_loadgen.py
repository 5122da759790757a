"""The load generator sends what a bridge sends: 1-s chunks per stream, keyed by bed, on the device clock,
staggered bed starts, every second exactly once, and decodable by the real epocher into whole epochs."""

from __future__ import annotations

import pytest

from psg.codecs import decode_samples_message
from stream_agents.epocher import Epocher
from stream_agents.loadgen import STREAMS, LoadGenerator, plan_beds, render_nights


@pytest.fixture(scope="module")
def nights():
    return render_nights(2, seconds=70.0, seed=1)


def test_beds_are_staggered_over_one_epoch_and_share_the_nights(nights) -> None:
    beds = plan_beds(6, start=1000.0, nights=len(nights))
    assert [b.recording_start for b in beds] == [1000.0 + 5.0 * k for k in range(6)]
    assert [b.night for b in beds] == [0, 1, 0, 1, 0, 1] and len({b.bed_id for b in beds}) == 6
    assert beds[2].offset_s != beds[0].offset_s  # beds on one night play it from different places


def test_every_second_is_sent_once_when_due_and_the_epocher_makes_whole_epochs(nights) -> None:
    sent: list[tuple[bytes, bytes]] = []
    beds = plan_beds(2, start=1000.0, nights=len(nights))
    generator = LoadGenerator(beds, nights, lambda key, value: sent.append((key, value)))
    assert generator.step(1000.5) == 0  # no second has ended yet
    assert generator.step(1001.0) == len(STREAMS)  # bed 0's first second
    for now in range(1002, 1071):
        generator.step(float(now))
    generator.step(1071.0)  # a repeated tick sends nothing twice
    seconds = {b.bed_id: generator.sent_seconds[b.bed_id] for b in beds}
    assert seconds == {beds[0].bed_id: 71, beds[1].bed_id: 56}
    assert generator.messages == len(sent) == len(STREAMS) * (71 + 56)
    epocher, epochs = Epocher(), []
    for i, (key, value) in enumerate(sent):
        chunk = decode_samples_message(value)
        assert key == chunk.bed_id.encode() and chunk.received_at >= chunk.t0
        epochs += epocher.add(chunk, i).epochs
    by_bed = {b.bed_id: sorted(e.epoch for e in epochs if e.bed_id == b.bed_id) for b in beds}
    assert by_bed == {beds[0].bed_id: [0, 1], beds[1].bed_id: [0]}
    assert [generator.complete_epochs(b) for b in beds] == [2, 1]


def test_run_paces_on_its_clock_and_stops(nights) -> None:
    now = [2000.0]
    beds = plan_beds(1, start=2000.0, nights=1)
    generator = LoadGenerator(
        beds,
        nights[:1],
        lambda k, v: None,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + max(s, 0.05)),
    )
    generator.run(stop_at=2010.0)
    assert generator.sent_seconds[beds[0].bed_id] == 9 and generator.behind_s < 0.1
