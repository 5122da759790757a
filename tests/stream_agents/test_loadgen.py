"""The load generator sends what a bridge sends: one bundle per bed and second holding a 1-s chunk per
stream, keyed by bed, on the device clock, staggered bed starts, every second exactly once, and decodable
by the real epocher into whole epochs, every record's token released once its epochs are out."""

from __future__ import annotations

import pytest

from operations.loadgen import STREAMS, LoadGenerator, plan_beds, render_nights
from psg.codecs import ChunkBundle, decode_samples_message
from psg.epoching.epocher import Epocher


@pytest.fixture(scope="module")
def nights():
    return render_nights(2, seconds=70.0, seed=1)


def test_beds_are_staggered_over_one_epoch_and_share_the_nights(nights) -> None:
    beds = plan_beds(6, start=1000.0, nights=len(nights))
    assert [b.recording_start for b in beds] == [1000.0 + 5.0 * k for k in range(6)]
    assert [b.night for b in beds] == [0, 1, 0, 1, 0, 1] and len({b.bed_id for b in beds}) == 6
    assert beds[2].offset_s != beds[0].offset_s  # beds on one night play it from different places


def test_beds_can_start_later_in_their_night(nights) -> None:
    """The soak in pieces: a piece from hour H plays the same night's samples from H on."""
    from operations.loadgen import bed_chunk

    early, late = plan_beds(2, 1000.0, len(nights)), plan_beds(2, 1000.0, len(nights), first_second=40)
    assert [b.offset_s - a.offset_s for a, b in zip(early, late, strict=True)] == [40, 40]
    stream = nights[late[0].night][0]
    fs = int(stream.fs)
    assert (bed_chunk(late[0], stream, 3, 0.0).data == stream.data[:, 43 * fs : 44 * fs]).all()


def test_every_second_is_sent_once_when_due_and_the_epocher_makes_whole_epochs(nights) -> None:
    sent: list[tuple[bytes, bytes]] = []
    beds = plan_beds(2, start=1000.0, nights=len(nights))
    generator = LoadGenerator(beds, nights, lambda key, value: sent.append((key, value)))
    assert generator.step(1000.5) == 0  # no second has ended yet
    assert generator.step(1001.0) == 1  # bed 0's first second: one record
    for now in range(1002, 1071):
        generator.step(float(now))
    generator.step(1071.0)  # a repeated tick sends nothing twice
    seconds = {b.bed_id: generator.sent_seconds[b.bed_id] for b in beds}
    assert seconds == {beds[0].bed_id: 71, beds[1].bed_id: 56}
    assert generator.messages == len(sent) == 71 + 56
    assert generator.chunks == len(STREAMS) * (71 + 56)
    epocher, epochs, released = Epocher(context_epochs=0, norm_epochs=1), [], []
    for i, (key, value) in enumerate(sent):
        bundle = decode_samples_message(value)
        assert isinstance(bundle, ChunkBundle) and [c.stream for c in bundle.chunks] == list(STREAMS)
        assert key == bundle.bed_id.encode() and all(c.received_at >= c.t0 for c in bundle.chunks)
        out = epocher.add_bundle(bundle, i)
        epochs += out.epochs
        released += out.released
    # with no hold window, every record of an emitted epoch is released, once, after its last chunk
    emitted = {b.bed_id: generator.complete_epochs(b) * 30 for b in beds}
    assert len(released) == len(set(released))
    bed_of = [key.decode() for key, _ in sent]
    second_of = [decode_samples_message(v).chunks[0].seq for _, v in sent]
    assert sorted(released) == [i for i in range(len(sent)) if second_of[i] < emitted[bed_of[i]]]
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
