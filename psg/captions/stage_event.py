"""Stage and event captions for one epoch (SleepLM's ``stage_event`` level), in the monitor's own voice.

The monitor states its own inference, so the caption reads like a bedside display, never like a
technologist's scoring ("scored", "hypnogram marks", "documented" would make a clinician take it for a
human's): "Light sleep (N2), stable. Obstructive apnea 10.0-30.0 s." The stage comes first, always with
its label in parentheses (the one the tile shows beside it); a descriptor from the neighbouring epochs
follows it (stable, a transition, an awakening). Each event overlapping the epoch gets one sentence with
its span in seconds from the epoch start, clipped to the epoch (the measured numbers, such as the SpO2
nadir, are the respiratory level's). ``psg.captions.consistency`` reads these sentences back into claims.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from psg.captions.phrasing import Phraser, capitalise, with_article
from psg.timeline import EPOCH_S, Event, Stage

STAGE_NAMES: dict[Stage, str] = {
    Stage.W: "Wake (W)",
    Stage.N1: "Light sleep (N1)",
    Stage.N2: "Light sleep (N2)",
    Stage.N3: "Deep sleep (N3)",
    Stage.R: "REM sleep (R)",
}
#: What an epoch without a stage says (the tile shows '?': staging was not possible or not trusted).
UNCERTAIN_STAGE = "Stage uncertain"
_SLEEP = (Stage.N1, Stage.N2, Stage.N3, Stage.R)


@dataclass(frozen=True)
class StageContext:
    """The stages of the epochs just before and after (None where unknown, unscored or outside the night)."""

    previous: Stage | None = None
    next: Stage | None = None

    @classmethod
    def around(cls, stages: Sequence[Stage], i: int) -> StageContext:
        """Context of epoch ``i`` in a hypnogram."""

        def known(j: int) -> Stage | None:
            if 0 <= j < len(stages) and stages[j] != Stage.UNSCORED:
                return Stage(stages[j])
            return None

        return cls(previous=known(i - 1), next=known(i + 1))


def stage_descriptor(stage: Stage, context: StageContext | None = None) -> str:
    """'Light sleep (N2), stable', 'REM sleep (R), transition from N2', 'Wake (W), awakening from N2', ...
    or the plain stage name where the context is unknown; 'Stage uncertain' for an epoch without a stage."""
    if stage == Stage.UNSCORED:
        return UNCERTAIN_STAGE
    name = STAGE_NAMES[stage]
    context = context or StageContext()
    prev, nxt = context.previous, context.next
    if prev is not None and prev != stage:
        if stage == Stage.W and prev in _SLEEP:
            return f"{name}, awakening from {prev.label}"
        return f"{name}, transition from {prev.label}"
    if prev == stage and nxt == stage:
        return f"{name}, stable"
    if nxt is not None and nxt != stage:
        return f"{name}, before a change to {nxt.label}"
    return name


def stage_sentence(stage: Stage, context: StageContext | None, phraser: Phraser, estimated: bool = False) -> str:
    """The stage sentence; ``estimated`` marks a stage from the rule stager rather than the model or a file."""
    descriptor = stage_descriptor(stage, context)
    if stage == Stage.UNSCORED:
        return f"{descriptor}."
    if estimated:
        return phraser.pick(("{d} (rule-based estimate).", "Rule-based stage estimate: {d}."), d=descriptor)
    return phraser.pick(("{d}.", "Stage: {d}.", "{d} in this epoch."), d=descriptor)


def event_name(event: Event) -> str:
    """Display name in lower case: 'obstructive apnea', 'central hypopnea', 'electrode pop artifact',
    'position change to left'."""
    base = event.type.replace("_", " ")
    if event.subtype is None or event.type == "signal_loss":
        return base
    subtype = event.subtype.replace("_", " ")
    if event.type == "position_change":
        return f"{base} to {subtype}"
    return f"{subtype} {base}"


def signal_loss_detail(event: Event) -> str:
    """' (flat)' for a signal loss with a reason, else ''."""
    return f" ({event.subtype.replace('_', ' ')})" if event.type == "signal_loss" and event.subtype else ""


def clip_to_epoch(event: Event, epoch_start_s: float, epoch_s: float = EPOCH_S) -> tuple[float, float]:
    """The event's (start, end) in seconds from the epoch start, clipped to [0, epoch_s]."""
    start = min(max(event.onset_s - epoch_start_s, 0.0), epoch_s)
    end = min(max(event.end_s - epoch_start_s, 0.0), epoch_s)
    return start, end


def in_epoch(event: Event, epoch_start_s: float, epoch_s: float = EPOCH_S) -> bool:
    """True if the event overlaps the epoch; zero-length events (position changes) count at their instant."""
    if event.duration_s == 0:
        return epoch_start_s <= event.onset_s < epoch_start_s + epoch_s
    return event.overlaps(epoch_start_s, epoch_start_s + epoch_s)


def event_sentences(
    events: Iterable[Event],
    epoch_start_s: float,
    phraser: Phraser,
    epoch_s: float = EPOCH_S,
) -> list[str]:
    """One sentence per event overlapping the epoch, in onset order, times relative to the epoch start
    ("Hypopnea 0.0-5.6 s.", "Desaturation on SpO2 20.0-30.0 s.")."""
    out = []
    for event in sorted((e for e in events if in_epoch(e, epoch_start_s, epoch_s)), key=lambda e: e.onset_s):
        start, end = clip_to_epoch(event, epoch_start_s, epoch_s)
        name = event_name(event)
        where = f" on {event.channel}" if event.channel else ""
        detail = signal_loss_detail(event)
        if event.duration_s == 0:
            out.append(
                phraser.pick(
                    ("{Name}{where} at {t} s.", "{An}{where} at {t} s."),
                    Name=capitalise(name),
                    An=capitalise(with_article(name)),
                    where=where,
                    t=f"{start:.1f}",
                )
            )
            continue
        out.append(
            phraser.pick(
                (
                    "{Name}{where}{detail} {a}-{b} s.",
                    "{Name}{where}{detail} from {a} to {b} s.",
                    "{An}{where}{detail} at {a}-{b} s.",
                ),
                Name=capitalise(name),
                An=capitalise(with_article(name)),
                where=where,
                detail=detail,
                a=f"{start:.1f}",
                b=f"{end:.1f}",
            )
        )
    return out


def stage_event_caption(
    stage: Stage,
    events: Iterable[Event],
    epoch_start_s: float,
    phraser: Phraser,
    context: StageContext | None = None,
    estimated: bool = False,
    epoch_s: float = EPOCH_S,
) -> str:
    """Stage sentence followed by the event sentences (or a note that the epoch has no events)."""
    sentences = [stage_sentence(stage, context, phraser, estimated)]
    events_text = event_sentences(events, epoch_start_s, phraser, epoch_s)
    if events_text:
        sentences += events_text
    else:
        sentences.append(phraser.pick(("No events.", "No events in this epoch.")))
    return " ".join(sentences)
