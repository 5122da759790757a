"""One annotation vocabulary for EDF+ texts and NSRR XML concepts, used by readers and writers alike.

Why one table: a simulated night written to EDF+ and read back, or a timeline written to NSRR XML and
read back, must give the same events; and real files from other labs use a handful of spellings for
the same thing ("Obstructive apnea|Obstructive Apnea", "Obstructive Apnea", "OA"). Writers always
emit the canonical spelling; readers accept the canonical spelling and the known aliases.

Canonical event text (EDF+ annotation text and the label half of an NSRR ``EventConcept``)::

    <Base>[ (<subtype>)][ [per epoch]][@@<channel>]

e.g. ``Obstructive Apnea``, ``Hypopnea (central)``, ``Artifact (lead_off)@@EEG C3-A2``,
``Position change (supine)``, ``Limb Movement [per epoch]``. The ``@@channel`` suffix is the
convention real EDF+ files use for channel-linked annotations (the shared wfdb sample file has
``Lights off@@EEG F4-A1``). ``[per epoch]`` marks ``Event.epoch_resolution`` (slpdb-style events
whose onset/duration are the epoch, not a measured span). NSRR concepts for the standard events are
those of the NSRR cohorts (SHHS, MESA, ...): ``Obstructive apnea|Obstructive Apnea``,
``Arousal|Arousal ()``, ``SpO2 desaturation|SpO2 desaturation``, ``Limb movement|Limb Movement``.

Stage annotations are ``Sleep stage W|N1|N2|N3|R|?`` in EDF+ (as in the shared EDF+ sample and
Sleep-EDF) and ``Wake|0``, ``Stage 1 sleep|1`` .. ``REM sleep|5``, ``Unscored|9`` in NSRR XML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from psg.timeline import Event, Stage


@dataclass(frozen=True)
class EventTerm:
    """How one canonical event type is spelled.

    ``text`` is the readable EDF+ text and the label half of the NSRR concept; ``nsrr_name`` the
    name half; ``nsrr_event_type`` the NSRR ``EventType`` group; ``nsrr_label_unqualified`` the NSRR
    label used when the event has no subtype, where NSRR spells it differently (``Arousal ()``).
    """

    type: str
    text: str
    nsrr_name: str
    nsrr_event_type: str
    nsrr_label_unqualified: str | None = None


TERMS: dict[str, EventTerm] = {
    term.type: term
    for term in (
        EventTerm("obstructive_apnea", "Obstructive Apnea", "Obstructive apnea", "Respiratory|Respiratory"),
        EventTerm("central_apnea", "Central Apnea", "Central apnea", "Respiratory|Respiratory"),
        EventTerm("mixed_apnea", "Mixed Apnea", "Mixed apnea", "Respiratory|Respiratory"),
        EventTerm("apnea", "Apnea", "Apnea", "Respiratory|Respiratory"),
        EventTerm("hypopnea", "Hypopnea", "Hypopnea", "Respiratory|Respiratory"),
        EventTerm("desaturation", "SpO2 desaturation", "SpO2 desaturation", "Respiratory|Respiratory"),
        EventTerm("arousal", "Arousal", "Arousal", "Arousals|Arousals", "Arousal ()"),
        EventTerm("limb_movement", "Limb Movement", "Limb movement", "Limb Movement|Limb Movement"),
        EventTerm("movement", "Movement", "Movement", "Movement|Movement"),
        EventTerm("bradycardia", "Bradycardia", "Bradycardia", "Cardiac|Cardiac"),
        EventTerm("tachycardia", "Tachycardia", "Tachycardia", "Cardiac|Cardiac"),
        EventTerm("asystole", "Asystole", "Asystole", "Cardiac|Cardiac"),
        EventTerm("signal_loss", "Signal loss", "Signal loss", "Technical|Technical"),
        EventTerm("artifact", "Artifact", "Signal artifact", "Technical|Technical"),
        EventTerm("position_change", "Position change", "Body position change", "Position|Position"),
    )
}

MOVEMENT_TIME = "movement time"

#: Other spellings of a base text seen in real files: lower-case base -> (type, subtype, channel).
_BASE_ALIASES: dict[str, tuple[str, str | None, str | None]] = {
    "apnea obstructive": ("obstructive_apnea", None, None),
    "obstructive apnea": ("obstructive_apnea", None, None),
    "apnea central": ("central_apnea", None, None),
    "apnea mixed": ("mixed_apnea", None, None),
    "obstructive hypopnea": ("hypopnea", "obstructive", None),
    "central hypopnea": ("hypopnea", "central", None),
    "mixed hypopnea": ("hypopnea", "mixed", None),
    "desaturation": ("desaturation", None, None),
    "oxygen desaturation": ("desaturation", None, None),
    "rera": ("arousal", "RERA", None),
    "leg movement": ("limb_movement", None, None),
    "plm": ("limb_movement", "periodic", None),
    MOVEMENT_TIME: ("movement", None, None),  # R&K stage "MT" (Sleep-EDF EDF+ hypnograms)
    "spo2 artifact": ("artifact", None, "SpO2"),
    "respiratory artifact": ("artifact", "respiratory", None),
    **{
        f"body position change to {pos}": ("position_change", pos, None)
        for pos in ("left", "right", "supine", "prone", "upright")
    },
}

#: Texts that mean "this event type, no subtype", case-insensitively.
_BASES: dict[str, tuple[str, str | None, str | None]] = {
    **{term.text.lower(): (term.type, None, None) for term in TERMS.values()},
    **{term.nsrr_name.lower(): (term.type, None, None) for term in TERMS.values()},
    **_BASE_ALIASES,
}

CHANNEL_SEPARATOR = "@@"
EPOCH_MARK = "[per epoch]"
_QUALIFIED = re.compile(r"^(?P<base>.*?)\s*\((?P<subtype>[^()]*)\)$")

STAGE_TEXT_PREFIX = "Sleep stage "

#: NSRR stage concepts (R&K numbering: 3 and 4 both mean N3, 6 movement, 9 unscored).
NSRR_STAGE_CONCEPTS: dict[Stage, str] = {
    Stage.W: "Wake|0",
    Stage.N1: "Stage 1 sleep|1",
    Stage.N2: "Stage 2 sleep|2",
    Stage.N3: "Stage 3 sleep|3",
    Stage.R: "REM sleep|5",
    Stage.UNSCORED: "Unscored|9",
}
_NSRR_STAGE_CODES: dict[str, Stage] = {
    "0": Stage.W,
    "1": Stage.N1,
    "2": Stage.N2,
    "3": Stage.N3,
    "4": Stage.N3,
    "5": Stage.R,
    "6": Stage.UNSCORED,
    "9": Stage.UNSCORED,
}
NSRR_MOVEMENT_STAGE_CODE = "6"


@dataclass(frozen=True)
class ParsedText:
    """What an annotation text says: event type, subtype, channel and the per-epoch mark."""

    type: str
    subtype: str | None
    channel: str | None
    epoch_resolution: bool

    def event(self, onset_s: float, duration_s: float) -> Event:
        return Event(self.type, onset_s, duration_s, self.subtype, self.channel, self.epoch_resolution)


def event_label(event: Event) -> str:
    """Canonical text without the channel: ``Hypopnea (central)``, ``Arousal [per epoch]``."""
    text = TERMS[event.type].text
    if event.subtype:
        text += f" ({event.subtype})"
    if event.epoch_resolution:
        text += f" {EPOCH_MARK}"
    return text


def event_text(event: Event) -> str:
    """Canonical EDF+ annotation text of ``event`` (see the module docstring)."""
    text = event_label(event)
    return f"{text}{CHANNEL_SEPARATOR}{event.channel}" if event.channel else text


def parse_event_text(text: str) -> ParsedText | None:
    """Parse a canonical or alias event text; None if it is not an event this vocabulary knows."""
    body, _, channel = text.strip().partition(CHANNEL_SEPARATOR)
    body = body.strip()
    epoch_resolution = body.endswith(EPOCH_MARK)
    if epoch_resolution:
        body = body[: -len(EPOCH_MARK)].strip()
    known = _BASES.get(body.lower())
    subtype: str | None = None
    if known is None:
        match = _QUALIFIED.match(body)
        if match is None or match["base"].lower() not in _BASES:
            return None
        known = _BASES[match["base"].lower()]
        subtype = match["subtype"].strip() or None
    event_type, alias_subtype, alias_channel = known
    return ParsedText(
        type=event_type,
        subtype=subtype or alias_subtype,
        channel=channel.strip() or alias_channel,
        epoch_resolution=epoch_resolution,
    )


def is_movement_time(text: str) -> bool:
    """R&K "movement time": an epoch scored as movement instead of a stage (Sleep-EDF)."""
    return text.strip().lower() == MOVEMENT_TIME


def stage_text(stage: Stage) -> str:
    """EDF+ stage annotation text, ``Sleep stage N2``."""
    return STAGE_TEXT_PREFIX + Stage(stage).label


def is_stage_text(text: str) -> bool:
    return text.strip().lower().startswith(STAGE_TEXT_PREFIX.strip().lower())


def parse_stage_text(text: str) -> Stage:
    """``Sleep stage W|N1|N2|N3|R|?`` (also R&K ``1``..``4``); raises PSGError for anything else."""
    return Stage.from_label(text.strip()[len(STAGE_TEXT_PREFIX) :])


def nsrr_event_concept(event: Event) -> tuple[str, str]:
    """(EventType, EventConcept) for ``event`` in NSRR XML; the channel goes to ``SignalLocation``."""
    term = TERMS[event.type]
    label = event_label(event)
    if term.nsrr_label_unqualified and not event.subtype:
        label = label.replace(term.text, term.nsrr_label_unqualified, 1)
    return term.nsrr_event_type, f"{term.nsrr_name}|{label}"


def parse_nsrr_concept(concept: str) -> ParsedText | None:
    """Parse an NSRR ``EventConcept`` (``Name|Label``): the label first, then the name, then the whole."""
    name, _, label = concept.partition("|")
    for candidate in (label, name, concept):
        if candidate.strip():
            parsed = parse_event_text(candidate)
            if parsed is not None:
                return parsed
    return None


def nsrr_stage_code(concept: str) -> str | None:
    """The R&K code of an NSRR stage concept (``Stage 2 sleep|2`` -> ``2``), None if there is none."""
    _, _, code = concept.rpartition("|")
    code = code.strip()
    return code if code in _NSRR_STAGE_CODES else None


def nsrr_stage(code: str) -> Stage:
    return _NSRR_STAGE_CODES[code]
