"""All captions of one epoch: the four modality captions and the stage/event caption."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from psg.captions.modality import Features, brain_caption, cardiac_caption, respiratory_caption, somatic_caption
from psg.captions.phrasing import Phraser, Style
from psg.captions.stage_event import StageContext, stage_event_caption
from psg.timeline import EPOCH_S, Event, Stage

#: Caption keys, matching the model's modality prefix tokens (DESIGN: brain, cardiac, respiratory,
#: somatic, stage_event).
MODALITIES: tuple[str, ...] = ("stage_event", "brain", "cardiac", "respiratory", "somatic")


def caption_epoch(
    features: Features,
    stage: Stage,
    events: Iterable[Event],
    epoch_start_s: float,
    *,
    context: StageContext | None = None,
    style: Style = "canonical",
    rng: np.random.Generator | None = None,
    estimated: bool = False,
    epoch_s: float = EPOCH_S,
) -> dict[str, str]:
    """Captions of the epoch starting at ``epoch_start_s`` (seconds from recording start).

    ``features`` is the epoch's dict from ``psg.features.epoch_features``; ``events`` may be the whole
    night's (only those overlapping the epoch are described); ``context`` gives the neighbouring stages
    for the stage descriptor; ``style='varied'`` needs ``rng``; ``estimated`` marks a rule-stager stage.
    Returns one text per key of ``MODALITIES``.
    """
    phraser = Phraser(style, rng)
    return {
        "stage_event": stage_event_caption(
            Stage(stage), events, epoch_start_s, phraser, context=context, estimated=estimated, epoch_s=epoch_s
        ),
        "brain": brain_caption(features, phraser),
        "cardiac": cardiac_caption(features, phraser),
        "respiratory": respiratory_caption(features, phraser),
        "somatic": somatic_caption(features, phraser),
    }
