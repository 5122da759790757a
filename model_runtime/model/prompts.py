"""Text prompts for zero-shot staging and event recognition (CLIP-style prompt ensembles).

Zero-shot means no supervised head: a stage is the text whose embedding is nearest to the epoch's.
Each class is an *ensemble* of phrasings (the stage sentences the caption pipeline writes, plus plain
clinical wordings), averaged in the shared space, so no single template decides.
"""

from __future__ import annotations

from psg.timeline import Event, Stage

#: Class order of every probability vector the model returns.
STAGES: tuple[Stage, ...] = (Stage.W, Stage.N1, Stage.N2, Stage.N3, Stage.R)
STAGE_LABELS: tuple[str, ...] = tuple(s.label for s in STAGES)

_PLAIN = {
    Stage.W: ("Wakefulness, the patient is awake.", "Stage W: awake with alpha rhythm and eye movements."),
    Stage.N1: ("Stage N1: light sleep, drowsy.", "Light Sleep (N1) with slow eye movements and theta."),
    Stage.N2: ("Stage N2 sleep with spindles and K-complexes.", "Light Sleep (N2)."),
    Stage.N3: ("Stage N3: deep slow-wave sleep.", "Deep Sleep (N3) with high-amplitude slow waves."),
    Stage.R: ("REM sleep with rapid eye movements and muscle atonia.", "REM Sleep (R)."),
}

#: Event classes the model recognises (advisory detections and ``query`` localisation).
EVENT_CLASSES: dict[str, Event] = {
    "obstructive_apnea": Event("obstructive_apnea", 0.0, 20.0),
    "central_apnea": Event("central_apnea", 0.0, 20.0),
    "mixed_apnea": Event("mixed_apnea", 0.0, 20.0),
    "hypopnea": Event("hypopnea", 0.0, 20.0, subtype="obstructive"),
    "arousal": Event("arousal", 0.0, 5.0, subtype="respiratory"),
    "desaturation": Event("desaturation", 0.0, 20.0, channel="SpO2"),
}


def stage_prompts() -> dict[str, list[str]]:
    """Per stage label, the prompt ensemble: stable-context stage sentences in every phrasing, plus plain ones."""
    from psg.captions.stage_event import StageContext, stage_sentence

    first_of = _first_of()
    out: dict[str, list[str]] = {}
    for stage in STAGES:
        context = StageContext(previous=stage, next=stage)
        sentences = {stage_sentence(stage, context, first_of(i)) for i in range(3)}
        sentences |= {stage_sentence(stage, None, first_of(i)) for i in range(3)}
        out[stage.label] = sorted(sentences) + list(_PLAIN[stage])
    return out


#: The contrast class of event scoring: an event's score is its similarity minus this one's, so an
#: epoch is judged by "this event rather than nothing", not by how much its stage resembles the words.
NO_EVENT = "none"
NO_EVENT_PROMPTS = ("No events are documented in this epoch.", "No scored events occur in this epoch.")


def event_prompts() -> dict[str, list[str]]:
    """Per event class, phrasings of 'this epoch contains a <name>' in the caption pipeline's words,
    plus the ``NO_EVENT`` contrast class."""
    from psg.captions.stage_event import event_name

    out = {NO_EVENT: list(NO_EVENT_PROMPTS)}
    for key, event in EVENT_CLASSES.items():
        name = event_name(event)
        out[key] = [
            f"The {name} event is documented from # to # seconds.",
            f"A {name} occurs between # and # seconds of the epoch.",
            f"{name} recorded from # s to # s.",
            f"{name}.",
        ]
    return out


def _first_of():  # noqa: ANN202 - returns a Phraser subclass
    """A phraser class that always takes phrasing ``i`` (clamped), to enumerate every template once. Built on
    first use: psg.captions loads the whole caption pipeline, which serving processes that only need
    ``STAGE_LABELS`` (the API's search) should not import."""
    from psg.captions.phrasing import Phraser

    class FirstOf(Phraser):
        def __init__(self, i: int) -> None:
            super().__init__("canonical")
            self.i = i

        def pick(self, options, **values):  # noqa: ANN001 - same signature as Phraser.pick
            return options[min(self.i, len(options) - 1)].format(**values)

    return FirstOf
