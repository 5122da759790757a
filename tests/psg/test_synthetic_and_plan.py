"""Generated nights and the simulator's night plan: architecture, determinism, event placement."""

import numpy as np

from psg.simulate.plan import make_plan
from psg.synthetic import synthetic_timeline
from psg.timeline import RESPIRATORY_EVENT_TYPES, Event, Stage, Timeline


def test_synthetic_night_has_textbook_architecture() -> None:
    tl = synthetic_timeline(hours=8.0, seed=3, ahi=20.0)
    assert tl.n_epochs == 960
    counts = {s: float(np.mean(tl.stages == s)) for s in Stage}
    assert tl.stages[0] == Stage.W and tl.stages[-1] == Stage.W
    assert 0.35 < counts[Stage.N2] < 0.70 and 0.10 < counts[Stage.R] < 0.30 and counts[Stage.N3] > 0.05
    first_third = tl.stages[: tl.n_epochs // 3]
    assert np.mean(first_third == Stage.N3) > counts[Stage.N3]  # N3 concentrated early in the night
    sleep_h = np.isin(tl.stages, (1, 2, 3, 4)).sum() * 30 / 3600
    assert 10 < len(tl.events) / sleep_h < 30  # about the requested AHI
    assert all(e.type in RESPIRATORY_EVENT_TYPES and e.duration_s >= 10 for e in tl.events)


def test_synthetic_night_is_deterministic_per_seed() -> None:
    a, b, c = synthetic_timeline(2, seed=1), synthetic_timeline(2, seed=1), synthetic_timeline(2, seed=2)
    assert np.array_equal(a.stages, b.stages) and a.events == b.events
    assert not np.array_equal(a.stages, c.stages)


def test_plan_places_epoch_resolution_events_inside_their_epoch() -> None:
    stages = np.full(10, Stage.N2, dtype=np.int8)
    tl = Timeline("r", stages, events=[Event("obstructive_apnea", 120.0, 30.0, epoch_resolution=True)])
    plan = make_plan(tl, seed=0)
    (ev,) = plan.respiratory_events
    assert not ev.epoch_resolution
    assert 120.0 <= ev.onset_s and ev.end_s <= 150.0 and 12.0 <= ev.duration_s <= 24.0


def test_plan_is_deterministic_and_tracks_have_one_value_per_second() -> None:
    tl = synthetic_timeline(hours=2.0, seed=5, ahi=30.0)
    p1, p2 = make_plan(tl, seed=9, artifacts=True), make_plan(tl, seed=9, artifacts=True)
    assert p1.subject == p2.subject and p1.truth_events() == p2.truth_events()
    assert p1.stage_per_s.size == p1.position_per_s.size == int(tl.duration_s)
    assert set(np.unique(p1.position_per_s)) <= {0, 1, 2, 3}
    assert p1.artifacts and all(a.channel for a in p1.artifacts)
    assert make_plan(tl, seed=10).subject != p1.subject
    assert p1.rng("eeg").random() == p2.rng("eeg").random() != p1.rng("ecg").random()


def test_envelope_is_one_inside_events_and_ramps_at_edges() -> None:
    tl = Timeline("r", np.full(4, Stage.N2, dtype=np.int8))
    plan = make_plan(tl, seed=0)
    env = plan.envelope([Event("arousal", 10.0, 10.0)], fs=10.0, ramp_s=1.0)
    assert env[:100].max() == 0.0 and np.allclose(env[115:185], 1.0) and env[201:].max() == 0.0
    assert 0.0 < env[102] < 1.0
