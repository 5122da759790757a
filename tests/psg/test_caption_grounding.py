"""A generated stage_event caption names the detectors' events only, and its stage sentence states the
record's stage and context (``psg.captions.grounding``): on the real Nox A1 file the decoder wrote an
obstructive apnea, a desaturation and an arousal into epochs where no detector found any."""

from __future__ import annotations

from dataclasses import asdict

from psg.captions.consistency import contradictions
from psg.captions.grounding import consistent_words, grounded_stage_event, stage_of
from psg.timeline import Event, Stage

HALLUCINATED = (
    "Stage: Light sleep (N1), stable. Desaturation on SpO2 from 0.0 to 30.0 s. An obstructive apnea at 0.0-14.0 s."
)


def _record(stage: str, events: list[Event], epoch: int) -> dict:
    """An offline record of the epoch: its stage and the detected events (the checker clips them to it)."""
    return {"start_s": epoch * 30.0, "stage": stage, "events": [asdict(e) for e in events]}


def test_events_the_detectors_did_not_find_are_not_named() -> None:
    text = grounded_stage_event(HALLUCINATED, [Stage.W] * 3, 1, [])
    assert text == "Wake (W), stable. No events."
    assert contradictions(_record("W", [], 1), {"stage_event": text}) == []
    assert contradictions(_record("W", [], 1), {"stage_event": HALLUCINATED})  # as the decoder wrote it


def test_detected_events_are_named_in_the_epoch_and_a_right_stage_sentence_is_kept() -> None:
    apnea = Event("apnea", 70.0, 17.0, channel="AF")
    desaturation = Event("desaturation", 80.0, 12.0, channel="SpO2")
    generated = "Stage: REM sleep (R), stable. Arousal 2.0-9.0 s."
    text = grounded_stage_event(generated, [Stage.R] * 4, 2, [apnea, desaturation])
    assert text == "Stage: REM sleep (R), stable. Apnea on AF 10.0-27.0 s. Desaturation on SpO2 20.0-30.0 s."
    assert contradictions(_record("R", [apnea, desaturation], 2), {"stage_event": text}) == []


def test_a_stage_or_context_the_record_does_not_hold_gives_way_to_the_template() -> None:
    # the decoder was told W and wrote N1; and a right stage with the wrong neighbour ("awakening from N1" after R)
    assert grounded_stage_event("Light sleep (N1). No events.", [Stage.W], 0, []) == "Wake (W). No events."
    assert grounded_stage_event("Wake (W), awakening from N1. No events.", [Stage.R, Stage.W], 1, []) == (
        "Wake (W), awakening from R. No events."
    )
    assert grounded_stage_event("", [stage_of("uncertain")], 0, []) == "Stage uncertain. No events."


def test_qualitative_words_follow_the_numbers_of_their_sentence() -> None:
    """The decoder writes the numbers from the measured features but picks the words itself: on the Nox file
    "left-right correlation 0.02 (conjugate eye movements)"."""
    generated = (
        "C3-A2 band powers: 81.7% delta, 8.0% theta, 6.1% alpha, 1.8% sigma and 2.5% beta; theta leads, and slow "
        "waves fill 0.0% of the 30 seconds. EOG: slow eye-movement power 2540.5 µV², rapid eye-movement power "
        "412.4 µV², left-right correlation 0.02 (conjugate eye movements)."
    )
    fixed, changed = consistent_words(generated)
    assert changed == 2
    assert "; delta leads," in fixed and "correlation 0.02 (no clear conjugate eye movement)." in fixed
    flow = "Airflow runs at 0.05 times its baseline amplitude (reduced), flattening index 0.52."
    assert consistent_words(flow) == (flow.replace("(reduced)", "(absent)"), 1)
    right = "On C4-A1 the EEG is alpha-dominant (delta 5.2%, theta 16.0%, alpha 54.2%, sigma 6.4%, beta 8.2%), with x."
    assert consistent_words(right) == (right, 0)


def test_the_body_position_is_the_measured_one() -> None:
    generated = "Chin EMG: tone 1.20 µV RMS with median frequency 20.0 Hz. Recorded body position is left."
    assert consistent_words(generated, {"position_name": "right"}) == (generated.replace("left.", "right."), 1)
    assert consistent_words(generated) == (generated, 0)  # no features: nothing to compare with
