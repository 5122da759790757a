"""A generated stage_event caption names the events the rule detectors found, never others.

Why: on the real Nox A1 recording we hold (2 min of awake breathing, in which no detector finds a
respiratory event, a desaturation or an arousal) ``sleeplm describe`` wrote "An obstructive apnea at
0.0-14.0 s.", a desaturation and an arousal into every epoch. The caption decoder learnt from simulated
nights only; on real signals it is out of its distribution, and its evidence prefix (the detectors'
respiratory event, "none" there) did not hold it back. The live path already shows the measured-feature
captions of ``psg.captions`` (one record, one truth); offline, the decoder's words are kept where they are
the model's (the stage sentence, where it states the stage it was given and the context of its
neighbours; on the Nox file it also wrote "Light sleep (N1)" for an epoch staged W) and every event
sentence is the detectors' (``stage_event.event_sentences``, the training captions' wording), or "No events.".
``benchmarks/describe_grounding.py`` measures the decoder's event claims against the detectors' on real
and simulated recordings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from psg.captions.availability import sentences
from psg.captions.phrasing import Phraser
from psg.captions.stage_event import StageContext, event_sentences, stage_descriptor, stage_sentence
from psg.errors import PSGError
from psg.timeline import EPOCH_S, Event, Stage

_CANONICAL = Phraser()


def grounded_stage_event(
    text: str, stages: Sequence[str], i: int, events: Iterable[Event], epoch_s: float = EPOCH_S
) -> str:
    """``text`` (a generated stage_event caption of epoch ``i`` of a night staged ``stages``: 'W'..'R', anything
    else unscored) with its stage sentence kept where it states the stage and its neighbours' context as
    the template does ("REM sleep (R), transition from N2"; else the template's sentence), and its other
    sentences replaced by one per detected event overlapping the epoch, or "No events."."""
    hypnogram = [_stage(label) for label in stages]
    stage, context = hypnogram[i], StageContext.around(hypnogram, i)
    said = sentences(text)
    descriptor = stage_descriptor(stage, context)
    if said and re.search(rf"(?:^|: ){re.escape(descriptor)}(?: in this epoch)?\.$", said[0]):
        opening = said[0]
    else:
        opening = stage_sentence(stage, context, _CANONICAL)
    named = event_sentences(events, i * epoch_s, _CANONICAL, epoch_s)
    return " ".join([opening, *(named or ["No events."])])


def _stage(label: str) -> Stage:
    try:
        return Stage.from_label(label)
    except PSGError:  # 'uncertain', 'gap': no stage to state
        return Stage.UNSCORED
