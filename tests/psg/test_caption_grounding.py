"""A generated stage_event caption names the detectors' events only, and its stage sentence states the
record's stage and context (``psg.captions.grounding``): on the real Nox A1 file the decoder wrote an
obstructive apnea, a desaturation and an arousal into epochs where no detector found any."""

from __future__ import annotations

from dataclasses import asdict

from psg.captions.consistency import contradictions
from psg.captions.grounding import grounded_stage_event
from psg.timeline import Event

HALLUCINATED = (
    "Stage: Light sleep (N1), stable. Desaturation on SpO2 from 0.0 to 30.0 s. An obstructive apnea at 0.0-14.0 s."
)


def _record(stage: str, events: list[Event], epoch: int) -> dict:
    """An offline record of the epoch: its stage and the detected events (the checker clips them to it)."""
    return {"start_s": epoch * 30.0, "stage": stage, "events": [asdict(e) for e in events]}


def test_events_the_detectors_did_not_find_are_not_named() -> None:
    text = grounded_stage_event(HALLUCINATED, ["W", "W", "W"], 1, [])
    assert text == "Wake (W), stable. No events."
    assert contradictions(_record("W", [], 1), {"stage_event": text}) == []
    assert contradictions(_record("W", [], 1), {"stage_event": HALLUCINATED})  # as the decoder wrote it


def test_detected_events_are_named_in_the_epoch_and_a_right_stage_sentence_is_kept() -> None:
    apnea = Event("apnea", 70.0, 17.0, channel="AF")
    desaturation = Event("desaturation", 80.0, 12.0, channel="SpO2")
    text = grounded_stage_event("Stage: REM sleep (R), stable. Arousal 2.0-9.0 s.", ["R"] * 4, 2, [apnea, desaturation])
    assert text == "Stage: REM sleep (R), stable. Apnea on AF 10.0-27.0 s. Desaturation on SpO2 20.0-30.0 s."
    assert contradictions(_record("R", [apnea, desaturation], 2), {"stage_event": text}) == []


def test_a_stage_or_context_the_record_does_not_hold_gives_way_to_the_template() -> None:
    # the decoder was told W and wrote N1; and a right stage with the wrong neighbour ("awakening from N1" after R)
    assert grounded_stage_event("Light sleep (N1). No events.", ["W"], 0, []) == "Wake (W). No events."
    assert grounded_stage_event("Wake (W), awakening from N1. No events.", ["R", "W"], 1, []) == (
        "Wake (W), awakening from R. No events."
    )
    assert grounded_stage_event("", ["uncertain"], 0, []) == "Stage uncertain. No events."
