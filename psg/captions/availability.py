"""Which channel groups a recording has, and captions that claim nothing about the groups it lacks.

A caption, an event sentence or a report index about a channel the recording does not carry is an
invention (a 1-Hz respiration trace treated as missing, a file exported without oximetry). The rule
captions (``psg.captions.epoch``) take the recording's groups and write one plain sentence per missing
group instead of describing it; generated captions (``model_runtime``) pass through ``restrict_caption``,
which drops every sentence naming an event or a measurement of a missing group and puts the same plain
sentence in its place. The live path can call the same functions with the groups of a bed's streams.

Groups (``GROUPS``) and the montage slots that make one present:

* ``eeg``: either EEG slot; ``eog``: either EOG slot; ``emg``: chin EMG;
* ``ecg``: ECG or a device heart rate (heart rate is measurable from either);
* ``respiratory``: airflow or either effort belt (AASM scores apneas from either);
* ``spo2``: SpO2; ``position``: body position.

A recording's groups are read from its signals after channel recognition (``psg.channels``), so a slot
that was too slow to analyse (``rate_too_low``) counts as not recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

from psg.montage import ABD, AF, ECG, EEG_C3, EEG_C4, EMG_CHIN, EOG_L, EOG_R, HR, POS, SPO2, THX
from psg.recording import Recording
from psg.timeline import RESPIRATORY_EVENT_TYPES, Event

#: An event as a timeline ``Event`` or as a record's dict (``type``, ``channel``, ...).
EventLike = TypeVar("EventLike", bound=Event | Mapping[str, object])

#: Group -> the montage slots any one of which makes it present.
GROUP_SLOTS: dict[str, tuple[str, ...]] = {
    "eeg": (EEG_C3, EEG_C4),
    "eog": (EOG_L, EOG_R),
    "emg": (EMG_CHIN,),
    "ecg": (ECG, HR),
    "respiratory": (AF, THX, ABD),
    "spo2": (SPO2,),
    "position": (POS,),
}
GROUPS: frozenset[str] = frozenset(GROUP_SLOTS)

#: The plain sentence a caption level writes for a group the recording does not have.
MISSING_SENTENCES: dict[str, str] = {
    "eeg": "No EEG recorded.",
    "eog": "No EOG recorded.",
    "emg": "No chin EMG recorded.",
    "ecg": "No ECG recorded.",
    "respiratory": "Respiratory channels not recorded.",
    "spo2": "No SpO2 recorded.",
    "position": "Body position not recorded.",
}

#: Words whose sentence makes a claim about the group (lower case; matched anywhere, also inside a word,
#: because a generated sentence may glue words together: dropping too much is safe, a stray claim is not).
CLAIM_WORDS: dict[str, tuple[str, ...]] = {
    "eeg": (
        "eeg",
        "delta",
        "theta",
        "alpha",
        "sigma",
        "beta",
        "slow wave",
        "slow-wave",
        "spindle",
        "k-complex",
        "arousal",
    ),
    "eog": ("eog", "eye movement", "eye-movement", "e1-e2"),
    "emg": ("emg", "chin", "muscle", "submental"),
    "ecg": (
        "ecg",
        "electrocardiogram",
        "heart",
        "bpm",
        "rmssd",
        "hrv",
        "beat",
        "bradycardia",
        "tachycardia",
        "asystole",
        "pulse",
    ),
    "respiratory": (
        "apnea",
        "apnoea",
        "hypopnea",
        "hypopnoea",
        "respirat",
        "breath",
        "airflow",
        "flow",
        "effort",
        "abdom",
        "thora",
    ),
    "spo2": ("spo2", "sao2", "desaturation", "oxygen", "saturation", "oximetry"),
    "position": ("position",),
}
_CLAIMS = {
    group: re.compile("(?:" + "|".join(re.escape(w) for w in words) + ")", re.IGNORECASE)
    for group, words in CLAIM_WORDS.items()
}
#: Which levels of a caption speak for which groups (their plain sentences go there, in this order).
LEVEL_GROUPS: dict[str, tuple[str, ...]] = {
    "brain": ("eeg", "eog"),
    "cardiac": ("ecg",),
    "respiratory": ("respiratory", "spo2"),
    "somatic": ("emg", "position"),
    "stage_event": (),
}
#: Event type -> the group it is scored on (events of other types need no particular channel).
EVENT_GROUPS: dict[str, str] = {
    **dict.fromkeys(RESPIRATORY_EVENT_TYPES, "respiratory"),
    "desaturation": "spo2",
    "position_change": "position",
    "bradycardia": "ecg",
    "tachycardia": "ecg",
    "asystole": "ecg",
    "arousal": "eeg",
}
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
#: Quality flags (``psg.codecs.QUALITY_FLAGS``) that leave a live channel without usable physiology, as the
#: alert engine reads them ("clipped"/"noisy" traces still carry the rhythm and the oximeter number).
BAD_FLAGS = frozenset({"flat", "missing", "gap"})
#: How a level names a group whose channels are all flagged bad.
GROUP_NAMES: dict[str, str] = {
    "eeg": "EEG",
    "eog": "EOG",
    "emg": "Chin EMG",
    "ecg": "ECG",
    "respiratory": "Respiratory",
    "spo2": "SpO2",
    "position": "Body position",
}


def bad_group_sentence(group: str, flags: Iterable[str]) -> str:
    """The plain sentence for a group whose every channel is flagged bad: "SpO2 signal unusable (flat)."."""
    return f"{GROUP_NAMES[group]} signal unusable ({', '.join(sorted(set(flags)))})."


def quality_groups(quality: Mapping[str, Iterable[str]]) -> tuple[set[str], dict[str, list[str]]]:
    """From a live epoch's per-channel quality flags: the groups the bed streams (a group whose every slot
    is ``missing`` is not recorded) and, among them, those whose every streamed slot is flagged bad
    (``BAD_FLAGS``), with their flags. A group none of whose slots is in ``quality`` counts as present."""
    present: set[str] = set()
    bad: dict[str, list[str]] = {}
    for group, slots in GROUP_SLOTS.items():
        known = {slot: list(quality[slot] or ()) for slot in slots if slot in quality}
        streamed = {slot: flags for slot, flags in known.items() if "missing" not in flags}
        if known and not streamed:
            continue
        present.add(group)
        if streamed and all(BAD_FLAGS.intersection(flags) for flags in streamed.values()):
            bad[group] = sorted({f for flags in streamed.values() for f in flags if f in BAD_FLAGS})
    return present, bad


def groups_of_labels(labels: Iterable[str]) -> set[str]:
    """The groups fed by any of the montage slot ``labels``."""
    present = set(labels)
    return {group for group, slots in GROUP_SLOTS.items() if present.intersection(slots)}


def channel_groups(recording: Recording) -> set[str]:
    """The groups ``recording`` carries (after channel recognition: its signals under montage labels)."""
    return groups_of_labels(recording.signals)


def missing_group_sentence(group: str) -> str:
    """The plain sentence for a group the recording does not have ("No SpO2 recorded.")."""
    return MISSING_SENTENCES[group]


#: Montage slot -> its group.
SLOT_GROUPS: dict[str, str] = {slot: group for group, slots in GROUP_SLOTS.items() for slot in slots}


def event_available(event: Event | Mapping[str, object], groups: set[str] | frozenset[str]) -> bool:
    """False when ``event`` (an ``Event`` or a dict with ``type`` and ``channel``) is scored on a group not
    in ``groups``, by its type (an apnea, a desaturation) or by its channel (signal loss on SpO2)."""
    if isinstance(event, Mapping):
        kind, channel = event.get("type"), event.get("channel")
    else:
        kind, channel = event.type, event.channel
    needed = {EVENT_GROUPS.get(str(kind)), SLOT_GROUPS.get(str(channel))} - {None}
    return needed <= set(groups)


def recorded_events(events: Iterable[Event], recording: Recording) -> list[Event]:
    """``events`` without those scored on a group ``recording`` lacks (``event_available``) and without
    "signal loss" on a channel the recording never had (that channel is not recorded, not lost)."""
    groups, present = channel_groups(recording), set(recording.signals)
    return [
        e
        for e in events
        if event_available(e, groups)
        and not (e.type == "signal_loss" and e.channel in SLOT_GROUPS and e.channel not in present)
    ]


def streamed_events(events: Iterable[EventLike], quality: Mapping[str, Iterable[str]]) -> list[EventLike]:
    """The live twin of ``recorded_events``: ``events`` without those on a group the bed does not stream
    (``quality_groups``) and without "signal loss" on a channel flagged ``missing`` (not streamed, not lost).
    The kept events are the ones given, so ``Event``s in give ``Event``s out (what ``caption_epoch`` takes)."""
    groups, _ = quality_groups(quality)
    unstreamed = {label for label, flags in quality.items() if "missing" in (flags or ())}
    out: list[EventLike] = []
    for event in events:
        kind, channel = (
            (event.get("type"), event.get("channel")) if isinstance(event, Mapping) else (event.type, event.channel)
        )
        if event_available(event, groups) and not (kind == "signal_loss" and channel in unstreamed):
            out.append(event)
    return out


def sentences(text: str) -> list[str]:
    """``text`` split after each '.', '!' or '?' followed by a space."""
    return [s for s in _SENTENCE.split(text.strip()) if s]


def drop_claims(text: str, groups: set[str] | frozenset[str]) -> str:
    """``text`` without the sentences that name an event or a measurement of a group not in ``groups``."""
    missing = [_CLAIMS[g] for g in GROUPS - set(groups)]
    if not missing:
        return text
    return " ".join(s for s in sentences(text) if not any(p.search(s) for p in missing))


def restrict_caption(text: str, level: str, groups: set[str] | frozenset[str]) -> str:
    """One caption level with no claim about a missing group: its sentences naming a missing group are
    dropped (``drop_claims``) and the level's own missing groups say so plainly, first."""
    missing = [g for g in LEVEL_GROUPS.get(level, ()) if g not in groups]
    kept = drop_claims(text, groups)
    return " ".join([*(MISSING_SENTENCES[g] for g in missing), *([kept] if kept else [])])
