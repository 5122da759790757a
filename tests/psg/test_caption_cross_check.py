"""An independent check of "one truth per epoch" (issue 15): the stage_event caption against its record.

``psg.captions.consistency`` parses captions back into claims with the caption code's own vocabulary. This
second checker shares nothing with it or with the caption templates: it is written from the issue's wording
("Light sleep (N2). Obstructive hypopnea 12-26 s") and reads only the record. For every epoch it takes the
stage_event caption apart into sentences and checks:

* the first sentence names the record's stage;
* every other sentence states one event: its type word, and a span ``a-b s`` (or ``at t s`` for an instant)
  equal to the record's event clipped to the epoch; subtype words (obstructive, central, mixed) and the
  channel (artifacts, desaturations, signal loss) as the record has them;
* the events stated and the record's events are the same multiset, and "No events." stands exactly when the
  record has none;
* a recording without SpO2 or airflow gets no sentence or number about that channel at any level.

Over simulated held-out nights with artifacts: three apnea severities, and a night whose SpO2, airflow and
effort channels are removed.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from psg.captions import caption_night
from psg.montage import ABD, AF, SPO2, THX
from psg.recording import Recording
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline

STAGE_NAMES = {
    "W": "Wake (W)",
    "N1": "Light sleep (N1)",
    "N2": "Light sleep (N2)",
    "N3": "Deep sleep (N3)",
    "R": "REM sleep (R)",
}
SPAN = re.compile(r"(\d+\.\d)-(\d+\.\d) s$")
INSTANT = re.compile(r"\bat (\d+\.\d) s$")
RESPIRATORY_SUBTYPES = ("obstructive", "central", "mixed")


def _sentences(text: str) -> list[str]:
    return [s.strip().rstrip(".") for s in re.split(r"(?<=\.)\s+(?=[A-Z])", text.strip()) if s.strip()]


def _type_words(kind: str) -> str:
    return kind.replace("_", " ")


def _event_problems(sentence: str, expected: Counter) -> tuple[str, list[str]]:
    """The (type, start, end) key a sentence states, and what is wrong with it alone."""
    span, instant = SPAN.search(sentence), INSTANT.search(sentence)
    if not (span or instant):
        return "", [f"sentence states no time: {sentence!r}"]
    start, end = (span[1], span[2]) if span else (instant[1], instant[1])  # type: ignore[index]
    kinds = [k for k, _, _, _ in expected if _type_words(k) in sentence.lower()]
    candidates = [key for key in expected if key[0] in kinds and key[1:3] == (start, end)]
    if not candidates:
        return f"{sentence}", [f"sentence names no record event with its type and span: {sentence!r}"]
    kind, _, _, detail = candidates[0]
    problems = []
    if kind in ("apnea", "hypopnea") and detail in RESPIRATORY_SUBTYPES and detail not in sentence.lower():
        problems.append(f"{sentence!r}: the record's {kind} is {detail}")
    if kind in ("artifact", "desaturation", "signal_loss") and detail and detail not in sentence:
        problems.append(f"{sentence!r}: the record's {kind} is on {detail}")
    return candidates[0], problems


def _expected_events(record: dict) -> Counter:
    keys = Counter()
    for event in record["events"]:
        detail = event["channel"] if event["type"] in ("artifact", "desaturation", "signal_loss") else event["subtype"]
        keys[(event["type"], f"{event['start_in_epoch_s']:.1f}", f"{event['end_in_epoch_s']:.1f}", detail)] += 1
    return keys


def cross_check(record: dict) -> list[str]:
    """Every disagreement between one record and its stage_event caption (empty: they agree)."""
    sentences = _sentences(record["captions"]["stage_event"])
    stage = record["stage"]
    name = STAGE_NAMES.get(stage, "Stage uncertain")
    problems = [] if sentences and sentences[0].startswith(name) else [f"stage {stage} but {sentences[:1]}"]
    expected = _expected_events(record)
    stated: Counter = Counter()
    rest = sentences[1:]
    if rest == ["No events"]:
        return problems + ([f"'No events.' beside {sorted(expected)}"] if expected else [])
    for sentence in rest:
        key, wrong = _event_problems(sentence, expected)
        problems += wrong
        if key:
            stated[key] += 1
    if stated != expected:
        problems.append(f"events stated {sorted(stated.elements())} != record {sorted(expected.elements())}")
    return problems


def _night(recording: Recording) -> list[dict]:
    records, _ = caption_night(recording, seed=0)
    return records


@pytest.mark.parametrize(("ahi", "seed"), [(5.0, 21), (35.0, 22), (70.0, 23)])
def test_every_caption_agrees_with_its_record_on_held_out_nights_with_artifacts(ahi: float, seed: int) -> None:
    recording = simulate(synthetic_timeline(hours=1.0, seed=seed, ahi=ahi), seed=seed, artifacts=True)
    records = _night(recording)
    with_events = sum(bool(r["events"]) for r in records)
    assert with_events >= 10, "the night should exercise event sentences"
    problems = {r["epoch"]: p for r in records if (p := cross_check(r))}
    assert problems == {}, problems


def test_a_recording_without_spo2_and_breathing_channels_says_nothing_about_them() -> None:
    recording = simulate(synthetic_timeline(hours=0.5, seed=24, ahi=50), seed=24, artifacts=True)
    recording.signals = {k: v for k, v in recording.signals.items() if k not in (SPO2, AF, THX, ABD)}
    records = _night(recording)
    problems = {r["epoch"]: p for r in records if (p := cross_check(r))}
    assert problems == {}, problems
    for record in records:
        text = " ".join(record["captions"].values())
        assert "SpO2 averages" not in text and "Desaturation" not in text, text
        assert not re.search(r"\b(apnea|hypopnea)\b", record["captions"]["stage_event"], re.I), record["captions"]


def test_the_cross_check_catches_what_it_checks() -> None:
    record = {
        "stage": "N2",
        "captions": {"stage_event": "Light sleep (N2), stable. Obstructive hypopnea 8.4-20.6 s."},
        "events": [
            {
                "type": "hypopnea",
                "subtype": "obstructive",
                "channel": None,
                "start_in_epoch_s": 8.4,
                "end_in_epoch_s": 20.6,
            },
        ],
    }
    assert cross_check(record) == []
    assert cross_check({**record, "stage": "R"})  # wrong stage
    assert cross_check({**record, "events": []})  # an event the record does not hold
    central = [{**record["events"][0], "subtype": "central"}]
    assert cross_check({**record, "events": central})  # wrong subtype
    moved = [{**record["events"][0], "end_in_epoch_s": 22.0}]
    assert cross_check({**record, "events": moved})  # wrong span
    assert cross_check({**record, "captions": {"stage_event": "Light sleep (N2), stable. No events."}})
