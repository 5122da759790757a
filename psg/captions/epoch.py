"""All captions of one epoch: the four modality captions and the stage/event caption."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from psg.captions.availability import event_available
from psg.captions.modality import Features, brain_caption, cardiac_caption, respiratory_caption, somatic_caption
from psg.captions.phrasing import Phraser, Style
from psg.captions.stage_event import StageContext, stage_event_caption
from psg.contracts import CAPTION_LEVELS
from psg.timeline import EPOCH_S, Event, Stage

#: Caption keys, matching the model's modality prefix tokens (DESIGN: brain, cardiac, respiratory,
#: somatic, stage_event).
MODALITIES: tuple[str, ...] = CAPTION_LEVELS


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
    groups: set[str] | frozenset[str] | None = None,
    bad_groups: Mapping[str, list[str]] | None = None,
) -> dict[str, str]:
    """Captions of the epoch starting at ``epoch_start_s`` (seconds from recording start).

    ``features`` is the epoch's dict from ``psg.features.epoch_features``; ``events`` may be the whole
    night's (only those overlapping the epoch are described); ``context`` gives the neighbouring stages
    for the stage descriptor; ``style='varied'`` needs ``rng``; ``estimated`` marks a rule-stager stage.
    ``groups``: the channel groups the recording has (``psg.captions.availability.channel_groups``; None:
    all): a missing group's level says so plainly and its events get no sentence. ``bad_groups``: groups
    whose every channel is flagged bad (``availability.quality_groups``, the live path), with their flags:
    their level says so ("SpO2 signal unusable (flat).") instead of describing them.
    Returns one text per key of ``MODALITIES``.
    """
    if groups is not None:
        events = [e for e in events if event_available(e, groups)]
    phraser = Phraser(style, rng)
    return {
        "stage_event": stage_event_caption(
            Stage(stage), events, epoch_start_s, phraser, context=context, estimated=estimated, epoch_s=epoch_s
        ),
        "brain": brain_caption(features, phraser, groups, bad_groups),
        "cardiac": cardiac_caption(features, phraser, groups, bad_groups),
        "respiratory": respiratory_caption(features, phraser, groups, bad_groups),
        "somatic": somatic_caption(features, phraser, groups, bad_groups),
    }
