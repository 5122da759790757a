"""Captions a clinician can trust (issue 15): monitor voice, grammar, and one truth per epoch.

Every template is rendered in every phrasing (stage x context x estimate, every event type and subtype)
and simulated nights with artifacts (three cohorts) are captioned in both styles; every text must be in
the monitor's voice (no scorer wording), grammatical (articles, plurals, units) and agree with its own
record by ``psg.captions.consistency``. The checker itself is shown to catch each kind of contradiction.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pytest

from psg.captions import caption_epoch, caption_night
from psg.captions.availability import GROUPS, channel_groups, quality_groups
from psg.captions.consistency import contradictions, event_type_of, parse_claims
from psg.captions.phrasing import Phraser, article
from psg.captions.stage_event import StageContext, event_name, stage_event_caption
from psg.montage import AF, SPO2
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline
from psg.timeline import EVENT_TYPES, Event, Stage
from tests.psg.test_captions import FEATURES

#: Words that make the monitor's own inference read like a technologist's scoring.
SCORER = re.compile(r"\b(scored|scoring|scorer|unscored|hypnogram marks|documented)\b", re.IGNORECASE)
#: Initialisms read with a vowel sound after "a" would be wrong ("a EEG"), words after "an" likewise.
_A_BEFORE_VOWEL = re.compile(r"\b[Aa] ([AEIOUaeiou]\w*)")
_AN_BEFORE_CONSONANT = re.compile(r"\b[Aa]n ([^AEIOUaeiou\s]\w*)")
_VOWEL_SOUND = re.compile(r"^(EEG|EOG|EMG|ECG|REM|SpO2|N\d|HR)\b")
_BAD_PLURAL = re.compile(
    r"(?<![\d.])1 (beats|breaths|seconds|epochs|events)\b|\b(?!1\b)\d+ (beat|breath|second|epoch)\b"
)
_UNIT_GLUED = re.compile(r"\d(bpm|ms|Hz|s|min)\b")
SUBTYPES = {
    "hypopnea": ("obstructive", "central", "mixed"),
    "artifact": ("electrode_pop", "lead_off", "clipping"),
    "position_change": ("left", "supine"),
    "signal_loss": ("flat", "lead_off"),
    "arousal": ("respiratory",),
}


def grammar_problems(text: str) -> list[str]:
    """Scorer wording, article, plural, unit and spacing problems of one caption text."""
    problems = [f"scorer wording {m.group(0)!r}" for m in SCORER.finditer(text)]
    problems += [f"'a {m[1]}'" for m in _A_BEFORE_VOWEL.finditer(text) if article(m[1]) != "a"]
    problems += [f"'an {m[1]}'" for m in _AN_BEFORE_CONSONANT.finditer(text) if not _VOWEL_SOUND.match(m[1])]
    problems += [f"plural {m.group(0)!r}" for m in _BAD_PLURAL.finditer(text)]
    problems += [f"unit glued to number {m.group(0)!r}" for m in _UNIT_GLUED.finditer(text)]
    problems += ["double space"] * ("  " in text) + ["space before punctuation"] * bool(re.search(r" [.,;]", text))
    problems += [f"sentence starts lower case: {s[:20]!r}" for s in re.split(r"(?<=\.) ", text) if s[:1].islower()]
    return problems


class _Nth(Phraser):
    """Always phrasing ``i`` (clamped): enumerates every template."""

    def __init__(self, i: int) -> None:
        super().__init__("canonical")
        self.i = i

    def pick(self, options, **values):  # noqa: ANN001 - Phraser.pick's signature
        return options[min(self.i, len(options) - 1)].format(**values)


def _every_event() -> Iterator[Event]:
    for kind in EVENT_TYPES:
        for subtype in (None, *SUBTYPES.get(kind, ())):
            duration = 0.0 if kind == "position_change" else 12.0
            channel = SPO2 if kind in ("desaturation", "signal_loss") else None
            yield Event(kind, 305.0, duration, subtype=subtype, channel=channel)


def _record(stage: Stage, events: list[Event], start: float, captions: dict[str, str]) -> dict:
    return {
        "stage": stage.label,
        "start_s": start,
        "captions": captions,
        "events": [
            {
                "type": e.type,
                "subtype": e.subtype,
                "channel": e.channel,
                "onset_s": e.onset_s,
                "duration_s": e.duration_s,
            }
            for e in events
        ],
    }


def test_every_template_speaks_in_monitor_voice_with_correct_grammar_and_agrees_with_its_record() -> None:
    contexts = [None, StageContext(Stage.N2, Stage.N2), StageContext(Stage.N1, None), StageContext(None, Stage.W)]
    events = list(_every_event())
    rendered = 0
    for stage in Stage:
        for context in contexts:
            for estimated in (False, True):
                for i in range(3):
                    for chosen in ([], *([e] for e in events), events[:4]):
                        text = stage_event_caption(stage, chosen, 300.0, _Nth(i), context, estimated)
                        assert grammar_problems(text) == [], text
                        assert contradictions(_record(stage, chosen, 300.0, {"stage_event": text})) == [], text
                        rendered += 1
    assert rendered > 1000
    for i in range(3):
        for features in (FEATURES, dict.fromkeys(FEATURES), {**FEATURES, "n_beats": 1}):
            levels = caption_epoch(features, Stage.N2, [], 0.0)
            levels.update(caption_epoch(features, Stage.N2, [], 0.0, style="varied", rng=np.random.default_rng(i)))
            for text in levels.values():
                assert grammar_problems(text) == [], text
    assert "over 1 beat)" in caption_epoch({**FEATURES, "n_beats": 1}, Stage.N2, [], 0.0)["cardiac"]


@pytest.mark.parametrize(("ahi", "seed"), [(5.0, 11), (30.0, 12), (60.0, 13)])
def test_simulated_nights_with_artifacts_have_zero_contradictions(ahi: float, seed: int) -> None:
    recording = simulate(synthetic_timeline(hours=1.0, seed=seed, ahi=ahi), seed=seed, artifacts=True)
    groups = channel_groups(recording)
    named = 0
    for style in ("canonical", "varied"):
        records, summary = caption_night(recording, style=style, seed=seed)
        for record in records:
            assert contradictions(record, groups=groups) == [], record["captions"]["stage_event"]
            for text in record["captions"].values():
                assert grammar_problems(text) == [], text
            named += len(parse_claims(record["captions"]).events)
        assert grammar_problems(summary["caption"]) == []
    assert named > 20  # the nights do carry events (and artifacts) for the check to bite on


def test_live_quality_flags_make_a_level_say_its_group_is_unusable() -> None:
    quality = {SPO2: ["flat"], AF: ["missing"], "Thor": [], "Abdo": []}
    groups, bad = quality_groups(quality)
    assert "spo2" in groups and bad == {"spo2": ["flat"]}
    events = [Event("desaturation", 62.0, 8.0, channel=SPO2)]
    captions = caption_epoch(FEATURES, Stage.R, events, 60.0, groups=groups, bad_groups=bad)
    assert "SpO2 signal unusable (flat)." in captions["respiratory"] and "averages" not in captions["respiratory"]
    record = {
        "stage": "R",
        "epoch": 2,
        "epoch_s": 30.0,
        "quality": quality,
        "captions": captions,
        "events": [{"type": "desaturation", "onset_s": 62.0, "duration_s": 8.0, "channel": SPO2}],
    }
    assert contradictions(record) == []
    described = {
        **captions,
        "respiratory": captions["respiratory"].replace(
            "SpO2 signal unusable (flat).", "SpO2 averages 95.1% (lowest 93.0%)."
        ),
    }
    assert any("flagged bad" in c for c in contradictions(record, described))


def test_the_checker_catches_each_kind_of_contradiction() -> None:
    events = [Event("hypopnea", 40.0, 14.0, subtype="obstructive")]
    captions = caption_epoch(FEATURES, Stage.N2, events, 30.0)
    record = _record(Stage.N2, events, 30.0, captions)
    assert contradictions(record) == []
    assert captions["stage_event"] == "Light sleep (N2). Obstructive hypopnea 10.0-24.0 s."

    def broken(**changes: str) -> list[str]:
        return contradictions(record, {**captions, **changes})

    assert any("stage N3" in c for c in broken(stage_event="Deep sleep (N3). Obstructive hypopnea 10.0-24.0 s."))
    assert any("says no events" in c for c in broken(stage_event="Light sleep (N2). No events."))
    assert any("central hypopnea" in c for c in broken(stage_event="Light sleep (N2). Central hypopnea 10.0-24.0 s."))
    assert any(
        "not in the record" in c
        for c in broken(
            stage_event="Light sleep (N2). Obstructive hypopnea 10.0-24.0 s. Desaturation on SpO2 20.0-30.0 s."
        )
    )
    assert any("10.0-24.0" in c for c in broken(stage_event="Light sleep (N2). Obstructive hypopnea 2.0-24.0 s."))
    old_voice = "The hypnogram marks Stable Light Sleep (N2) during this 30-second window. No events are documented."
    assert any("unreadable" in c for c in broken(stage_event=old_voice))
    assert any("not recorded" in c for c in contradictions(record, groups=set(GROUPS) - {"ecg"}))
    assert any("says ecg is not recorded" in c for c in broken(cardiac="No ECG recorded."))


def test_event_names_read_back_to_their_type_and_subtype() -> None:
    for event in _every_event():
        kind = event_type_of(event_name(event))
        subtype = None if event.type == "signal_loss" else event.subtype
        assert kind == (event.type, subtype), event
    assert event_type_of("snoring") is None


def test_a_channel_the_bed_does_not_stream_is_not_named_as_lost() -> None:
    """The detectors report "signal loss (missing)" on every montage channel a window lacks; live, a
    channel the bed does not stream is flagged ``missing`` and is neither lost nor worth a sentence."""
    from psg.captions.availability import streamed_events

    quality = {"ABD": ["missing"], "THX": [], "AF": []}
    events = [
        Event("signal_loss", 120.0, 30.0, subtype="missing", channel="ABD"),
        Event("signal_loss", 125.0, 10.0, subtype="flat", channel="THX"),
    ]
    kept = streamed_events(events, quality)
    assert [e.channel for e in kept] == ["THX"]
    captions = caption_epoch(FEATURES, Stage.N1, kept, 120.0, groups=quality_groups(quality)[0])
    assert captions["stage_event"] == "Light sleep (N1). Signal loss on THX (flat) 5.0-15.0 s."
    record = {
        "stage": "N1",
        "epoch": 4,
        "epoch_s": 30.0,
        "quality": quality,
        "captions": captions,
        "events": [
            {"type": "signal_loss", "onset_s": 120.0, "duration_s": 30.0, "channel": "ABD", "reason": "missing"},
            {"type": "signal_loss", "onset_s": 125.0, "duration_s": 10.0, "channel": "THX", "reason": "flat"},
        ],
    }
    assert contradictions(record) == []


def test_a_question_about_one_body_system_targets_its_caption_level() -> None:
    from psg.captions.targeted import is_question, targeted_level

    asked = {
        "How is her breathing?": "respiratory",
        "any heart rhythm trouble?": "cardiac",
        "what is the EEG doing": "brain",
        "which position is he lying in?": "somatic",
        "obstructive apnea during REM": "respiratory",
        "is she asleep?": None,
        "breathing and heart": None,
    }
    assert {q: targeted_level(q) for q in asked} == asked
    assert is_question("How is her breathing?") and not is_question("obstructive apnea during REM")


def test_the_live_counter_counts_and_logs_each_contradicting_record(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from plumbing.metrics import metrics, render_latest
    from psg.captions.consistency import count_contradictions

    good = {
        "bed_id": "bed-1",
        "epoch": 0,
        "epoch_s": 30.0,
        "stage": "W",
        "quality": {},
        "captions": {"stage_event": "Wake (W). No events."},
        "events": [],
    }
    bad = {
        **good,
        "epoch": 1,
        "captions": {"stage_event": "Wake (W). No events."},
        "events": [{"type": "hypopnea", "onset_s": 35.0, "duration_s": 12.0, "channel": None}],
    }
    log = logging.getLogger("test.contradictions")
    with caplog.at_level(logging.WARNING, logger="test.contradictions"):
        assert count_contradictions([good], log) == 0
        malformed = {**good, "epoch": 2, "events": [{"type": "hypopnea"}]}  # no onset: unreadable, counted once
        assert count_contradictions([good, bad, malformed], log) == 3  # 2 + 1, and it never raises
    assert "bed-1/1" in caplog.text and "hypopnea" in caplog.text
    metrics().caption_contradictions.inc(0)
    assert b"sleeplm_caption_contradictions_total" in render_latest()[0]
