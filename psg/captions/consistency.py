"""One truth per epoch: read an epoch's captions back into claims and compare them with its record.

A clinician sees an epoch's stage, event chips and quality flags beside its captions; if a caption names
a desaturation the record does not hold, or says "No events." beside an apnea chip, the page contradicts
itself and nothing on it can be trusted. This module is the check, written as code so tests (simulated
nights with artifacts) and the live path (the ``sleeplm_caption_contradictions_total`` counter) run the
same one.

``parse_claims`` reads only the captions: the stage the stage_event level states (its label in
parentheses, or "Stage uncertain"), every event sentence (name, channel, span within the epoch), whether
it says "No events.", and per level the channel groups it says are not recorded or unusable. A
stage_event sentence it cannot read is itself a contradiction: a caption a checker cannot read is one a
clinician may misread. ``contradictions`` compares the claims with the record:

* the stated stage equals the record's stage ('?' reads "Stage uncertain");
* every event the record holds in the epoch is named with its type, subtype and span (0.1 s, the
  captions' precision), and every event named is in the record;
* a group the record lacks (not recorded) or flags bad on every channel is said so by its level, and
  that level makes no other claim about it; a group said to be missing or unusable is so in the record.

Records come in two shapes, both handled: ``psg.captions.night.caption_night``'s (``start_s``, events
with ``subtype``; pass the recording's ``groups``) and the live ``sleep.captions`` record (``epoch`` and
``epoch_s``, detector events with ``reason``, per-channel ``quality`` flags from which the groups come).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psg.captions.availability import (
    CLAIM_WORDS,
    GROUP_NAMES,
    GROUPS,
    LEVEL_GROUPS,
    MISSING_SENTENCES,
    quality_groups,
    sentences,
    streamed_events,
)
from psg.timeline import EPOCH_S, EVENT_TYPES

#: Span tolerance in seconds: captions write spans with one decimal.
SPAN_TOLERANCE_S = 0.051
_STAGE = re.compile(r"\((W|N1|N2|N3|R)\)")
_UNCERTAIN = re.compile(r"^(?:Stage: )?Stage uncertain\b")
_NO_EVENTS = re.compile(r"^No events(?: in this epoch)?\.$")
_GAP = re.compile(r"^No signal was recorded in this epoch")
_NUM = r"(\d+(?:\.\d+)?)"
_EVENT = re.compile(
    rf"^(?:An? )?(?P<name>[A-Za-z][A-Za-z ]*?)(?: on (?P<channel>[A-Za-z0-9][A-Za-z0-9 \-]*?))?"
    rf"(?: \((?P<detail>[a-z ]+)\))? "
    rf"(?:from {_NUM} to {_NUM}|at {_NUM}-{_NUM}|{_NUM}-{_NUM}|at {_NUM}) s\.$"
)
_BAD = re.compile(r"^(?P<name>.+) signal unusable \((?P<flags>[a-z_, ]+)\)\.$")
_CLAIMS = {g: re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE) for g, words in CLAIM_WORDS.items()}
_MISSING_OF = {sentence: group for group, sentence in MISSING_SENTENCES.items()}
_GROUP_OF_NAME = {name: group for group, name in GROUP_NAMES.items()}


@dataclass(frozen=True)
class EventClaim:
    """An event a caption names: type and subtype (None if unnamed), channel, span in epoch seconds."""

    type: str
    subtype: str | None
    channel: str | None
    start: float
    end: float


@dataclass
class Claims:
    """What an epoch's captions state (see the module docstring)."""

    stage: str | None = None
    events: list[EventClaim] = field(default_factory=list)
    no_events: bool = False
    gap: bool = False
    missing: dict[str, set[str]] = field(default_factory=dict)  # level -> groups said not recorded
    bad: dict[str, set[str]] = field(default_factory=dict)  # level -> groups said unusable
    unreadable: list[str] = field(default_factory=list)


def event_type_of(name: str) -> tuple[str, str | None] | None:
    """'obstructive hypopnea' -> ('hypopnea', 'obstructive'); 'obstructive apnea' -> ('obstructive_apnea',
    None); 'position change to left' -> ('position_change', 'left'); None for no known event name."""
    name = name.strip().lower()
    words = {t: t.replace("_", " ") for t in EVENT_TYPES}
    for kind, text in words.items():
        if name == text:
            return kind, None
    if name.startswith("position change to "):
        return "position_change", name.removeprefix("position change to ").replace(" ", "_")
    for kind, text in sorted(words.items(), key=lambda kv: -len(kv[1])):
        if name.endswith(" " + text):
            return kind, name[: -len(text) - 1].replace(" ", "_")
    return None


def parse_claims(captions: Mapping[str, str]) -> Claims:
    """The claims of one epoch's captions (one text per level)."""
    claims = Claims()
    for level, text in captions.items():
        said = sentences(text or "")
        claims.missing[level] = {_MISSING_OF[s] for s in said if s in _MISSING_OF}
        claims.bad[level] = {
            _GROUP_OF_NAME[m["name"]] for s in said if (m := _BAD.match(s)) and m["name"] in _GROUP_OF_NAME
        }
        if level == "stage_event":
            _parse_stage_event(said, claims)
    return claims


def _parse_stage_event(said: list[str], claims: Claims) -> None:
    for sentence in said:
        if _GAP.match(sentence):
            claims.gap = True
        elif _NO_EVENTS.match(sentence):
            claims.no_events = True
        elif claims.stage is None and (_UNCERTAIN.match(sentence) or _STAGE.search(sentence)):
            stated = _STAGE.search(sentence)
            claims.stage = "?" if _UNCERTAIN.match(sentence) or stated is None else stated.group(1)
        elif (m := _EVENT.match(sentence)) and (kind := event_type_of(m["name"])) is not None:
            nums = [g for g in m.groups()[3:10] if g is not None]
            start = float(nums[0])
            end = float(nums[1]) if len(nums) > 1 else start
            subtype = m["detail"].replace(" ", "_") if m["detail"] and kind[0] == "signal_loss" else kind[1]
            claims.events.append(EventClaim(kind[0], subtype, m["channel"], start, end))
        else:
            claims.unreadable.append(sentence)


def record_events(record: Mapping[str, Any]) -> list[EventClaim]:
    """The record's events inside its epoch as ``EventClaim``s (spans clipped to the epoch); a live record's
    events on what the bed does not stream are left out (``availability.streamed_events``), as its captions
    leave them out."""
    epoch_s = float(record.get("epoch_s") or EPOCH_S)
    start_s = float(record["start_s"]) if "start_s" in record else int(record["epoch"]) * epoch_s
    events = record.get("events") or []
    if isinstance(record.get("quality"), Mapping):
        events = streamed_events(events, record["quality"])
    out = []
    for event in events:
        onset, duration = float(event["onset_s"]), float(event.get("duration_s") or 0.0)
        a = min(max(onset - start_s, 0.0), epoch_s)
        b = min(max(onset + duration - start_s, 0.0), epoch_s)
        subtype = event.get("subtype") if "subtype" in event else event.get("reason")
        out.append(EventClaim(str(event["type"]), subtype, event.get("channel"), a, b))
    return out


def record_groups(
    record: Mapping[str, Any], groups: Iterable[str] | None = None
) -> tuple[set[str], dict[str, list[str]]]:
    """The groups a record has and those flagged bad: from the live record's per-channel ``quality``, else
    ``groups`` (the recording's, offline; None: all) with nothing flagged."""
    quality = record.get("quality")
    if isinstance(quality, Mapping):
        return quality_groups(quality)
    return (set(GROUPS) if groups is None else set(groups)), {}


def contradictions(
    record: Mapping[str, Any], captions: Mapping[str, str] | None = None, groups: Iterable[str] | None = None
) -> list[str]:
    """Every way ``captions`` (default: the record's own) contradict ``record``, one line each; [] when they
    agree. ``groups``: the recording's channel groups for an offline record (see ``record_groups``)."""
    captions = record.get("captions") or {} if captions is None else captions
    claims = parse_claims(captions)
    found = [f"unreadable stage_event sentence {s!r}" for s in claims.unreadable]
    stage = "?" if record.get("stage") in (None, "?", "uncertain") else str(record["stage"])
    if claims.stage is None and not claims.gap:
        found.append("stage_event states no stage")
    elif claims.stage is not None and claims.stage != stage:
        found.append(f"caption states stage {claims.stage}, record shows {stage}")
    found += _event_contradictions(claims, record_events(record))
    present, bad = record_groups(record, groups)
    for level, text in captions.items():
        found += _group_contradictions(level, text or "", claims, present, bad)
    return found


def _event_contradictions(claims: Claims, expected: list[EventClaim]) -> list[str]:
    found = []
    left = list(expected)
    for claim in claims.events:
        match = next((e for e in left if _same(claim, e)), None)
        if match is None:
            found.append(f"caption names {_describe(claim)}, not in the record")
        else:
            left.remove(match)
    found += [f"record holds {_describe(e)}, the caption does not name it" for e in left]
    if claims.no_events and expected:
        found.append(f"caption says no events, record holds {len(expected)}")
    if not claims.no_events and not claims.events and not expected and not claims.gap:
        found.append("stage_event neither names events nor says there are none")
    return found


def _same(claim: EventClaim, event: EventClaim) -> bool:
    return (
        claim.type == event.type
        and (claim.subtype or None) == (event.subtype or None)
        and (claim.channel or None) == (event.channel or None)
        and abs(claim.start - event.start) <= SPAN_TOLERANCE_S
        and abs(claim.end - event.end) <= SPAN_TOLERANCE_S
    )


def _describe(event: EventClaim) -> str:
    name = event.type if event.subtype is None else f"{event.subtype} {event.type}"
    where = f" on {event.channel}" if event.channel else ""
    return f"{name}{where} {event.start:.1f}-{event.end:.1f} s"


def _group_contradictions(
    level: str, text: str, claims: Claims, present: set[str], bad: Mapping[str, list[str]]
) -> list[str]:
    found = []
    said_missing, said_bad = claims.missing.get(level, set()), claims.bad.get(level, set())
    for group in LEVEL_GROUPS.get(level, ()):
        if group not in present and group not in said_missing:
            found.append(f"{level}: {group} is not recorded, the caption does not say so")
        elif group in present and group in said_missing:
            found.append(f"{level}: caption says {group} is not recorded, the record has it")
        elif group in bad and group not in said_bad:
            found.append(f"{level}: {group} is flagged bad ({', '.join(bad[group])}), the caption does not say so")
        elif group in present and group not in bad and group in said_bad:
            found.append(f"{level}: caption says {group} is unusable, the record does not flag it")
        if group not in present or group in bad:
            plain = {MISSING_SENTENCES[group]} | {s for s in sentences(text) if _BAD.match(s)}
            described = [s for s in sentences(text) if s not in plain and _CLAIMS[group].search(s)]
            found += [f"{level}: describes unavailable {group}: {s!r}" for s in described]
    return found


def count_contradictions(records: Sequence[Mapping[str, Any]], log: logging.Logger) -> int:
    """The live path's check: contradictions over ``records`` (``sleep.captions`` records), each record with
    any logged once as a warning naming the bed, epoch and its first contradiction."""
    total = 0
    for record in records:
        try:
            found = contradictions(record)
        except (KeyError, TypeError, ValueError) as exc:  # a malformed record must not stop the live path
            found = [f"record unreadable by the checker: {exc!r}"]
        if found:
            log.warning("caption contradicts its record %s/%s: %s", record.get("bed_id"), record.get("epoch"), found[0])
            total += len(found)
    return total
