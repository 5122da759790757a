"""Stage and event captions for one epoch (SleepLM's ``stage_event`` level).

The stage sentence names the stage with a descriptor that depends on the neighbouring epochs, because
a scorer reads an epoch in context: an N2 epoch inside a run of N2 is "Stable Light Sleep (N2)", the
first N2 after N1 is a "Transition into Light Sleep (N2)", a wake epoch after sleep is an awakening.
Each event overlapping the epoch gets one sentence with its span in seconds from the epoch start,
clipped to the epoch, e.g. "The Hypopnea event is documented from 0.0 to 5.6 seconds."
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from psg.captions.phrasing import Phraser
from psg.timeline import EPOCH_S, Event, Stage

STAGE_NAMES: dict[Stage, str] = {
    Stage.W: "Wakefulness (W)",
    Stage.N1: "Light Sleep (N1)",
    Stage.N2: "Light Sleep (N2)",
    Stage.N3: "Deep Sleep (N3)",
    Stage.R: "REM Sleep (R)",
}
_SLEEP = (Stage.N1, Stage.N2, Stage.N3, Stage.R)


@dataclass(frozen=True)
class StageContext:
    """The stages of the epochs just before and after (None where unknown, unscored or outside the night)."""

    previous: Stage | None = None
    next: Stage | None = None

    @classmethod
    def around(cls, stages: list[Stage], i: int) -> StageContext:
        """Context of epoch ``i`` in a hypnogram."""

        def known(j: int) -> Stage | None:
            if 0 <= j < len(stages) and stages[j] != Stage.UNSCORED:
                return Stage(stages[j])
            return None

        return cls(previous=known(i - 1), next=known(i + 1))


def stage_descriptor(stage: Stage, context: StageContext | None = None) -> str:
    """'Stable Light Sleep (N2)', 'Transition into REM Sleep (R) from N2', 'Awakening from N2 into
    Wakefulness (W)', ... or the plain stage name where the context is unknown."""
    if stage == Stage.UNSCORED:
        return "an unscored epoch"
    name = STAGE_NAMES[stage]
    context = context or StageContext()
    prev, nxt = context.previous, context.next
    if prev is not None and prev != stage:
        if stage == Stage.W and prev in _SLEEP:
            return f"Awakening from {prev.label} into {name}"
        return f"Transition into {name} from {prev.label}"
    if prev == stage and nxt == stage:
        return f"Stable {name}"
    if nxt is not None and nxt != stage:
        return f"{name} before a transition to {nxt.label}"
    return name


def stage_sentence(stage: Stage, context: StageContext | None, phraser: Phraser, estimated: bool = False) -> str:
    """The stage sentence; ``estimated`` marks a stage from the rule stager rather than a scorer."""
    descriptor = stage_descriptor(stage, context)
    if estimated:
        return phraser.pick(
            (
                "Rule-based sleep stage estimate shows {d} for this epoch.",
                "An automatic rule-based estimate places this epoch in {d}.",
            ),
            d=descriptor,
        )
    return phraser.pick(
        (
            "Sleep stage analysis shows {d} for this epoch.",
            "This epoch is scored as {d}.",
            "The hypnogram marks {d} during this 30-second window.",
        ),
        d=descriptor,
    )


def event_name(event: Event) -> str:
    """Display name: 'Obstructive Apnea', 'Central Hypopnea', 'Electrode Pop Artifact', 'Position Change
    To Left'."""
    base = event.type.replace("_", " ").title()
    if event.subtype is None:
        return base
    subtype = event.subtype.replace("_", " ").title()
    if event.type == "hypopnea":
        return f"{subtype} Hypopnea"
    if event.type == "position_change":
        return f"{base} To {subtype}"
    return f"{subtype} {base}"


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
    events: Iterable[Event], epoch_start_s: float, phraser: Phraser, epoch_s: float = EPOCH_S
) -> list[str]:
    """One sentence per event overlapping the epoch, in onset order, times relative to the epoch start."""
    out = []
    for event in sorted((e for e in events if in_epoch(e, epoch_start_s, epoch_s)), key=lambda e: e.onset_s):
        start, end = clip_to_epoch(event, epoch_start_s, epoch_s)
        where = f" on {event.channel}" if event.channel else ""
        if event.duration_s == 0:
            out.append(
                phraser.pick(
                    ("The {name} event{where} is documented at {t} seconds.", "{name}{where} at {t} s."),
                    name=event_name(event), where=where, t=f"{start:.1f}",
                )
            )
            continue
        out.append(
            phraser.pick(
                (
                    "The {name} event{where} is documented from {a} to {b} seconds.",
                    "A {name}{where} occurs between {a} and {b} seconds of the epoch.",
                    "{name}{where} recorded from {a} s to {b} s.",
                ),
                name=event_name(event), where=where, a=f"{start:.1f}", b=f"{end:.1f}",
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
        sentences.append(
            phraser.pick(("No events are documented in this epoch.", "No scored events occur in this epoch."))
        )
    return " ".join(sentences)
