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
The other levels' numbers are the measured features (the decoder writes feature slots), but their few
qualitative words are the decoder's own: on the Nox file it wrote "left-right correlation 0.02 (conjugate
eye movements)". ``consistent_words`` rewrites each such word as the template derives it from the number the
same sentence states (the dominant band from its band powers, the eye-movement coupling from the E1-E2
correlation, the airflow level from its amplitude), and the body position from the epoch's measured one
(it wrote "left" where the sensor read right). ``benchmarks/describe_grounding.py`` measures both on real
and simulated recordings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from psg.captions.availability import sentences
from psg.captions.modality import CONJUGATE_CORRELATION, FLOW_ABSENT, FLOW_REDUCED
from psg.captions.phrasing import Phraser
from psg.captions.stage_event import StageContext, event_sentences, stage_descriptor, stage_sentence
from psg.errors import PSGError
from psg.features.neuro import BANDS
from psg.montage import POSITIONS
from psg.timeline import EPOCH_S, Event, Stage

_CANONICAL = Phraser()
_NUMBER = r"(-?\d+(?:\.\d+)?)"
_BAND = "|".join(BANDS)
_BAND_POWER = re.compile(rf"{_NUMBER}% ({_BAND})\b|\b({_BAND}) {_NUMBER}%")
_DOMINANT = re.compile(rf"(?:dominated by |is |; )(?P<word>{_BAND})(?: activity|-dominant| leads)")
_COUPLINGS = (
    "conjugate eye movements",
    "no clear conjugate eye movement",
    "in-phase deflections, likely frontal brain activity",
)
_VALUE = r"(?P<number>-?\d+(?:\.\d+)?)"
_COUPLING = re.compile(
    rf"(?:correlation|correlate at|correlation of) {_VALUE} \((?P<word>{'|'.join(map(re.escape, _COUPLINGS))})\)"
)
_POSITION = re.compile(
    rf"(?:Body position: |Position sensor reads |Recorded body position is )(?P<word>{'|'.join(POSITIONS.values())})\."
)
_FLOW = re.compile(
    rf"{_VALUE} (?:of the night baseline|times its baseline amplitude) \((?P<word>absent|reduced|normal)\)"
)


def grounded_stage_event(
    text: str, hypnogram: Sequence[Stage], i: int, events: Iterable[Event], epoch_s: float = EPOCH_S
) -> str:
    """``text`` (a generated stage_event caption of epoch ``i`` of a night staged ``hypnogram``, see
    ``stage_of``) with its stage sentence kept where it states the stage and its neighbours' context as
    the template does ("REM sleep (R), transition from N2"; else the template's sentence), and its other
    sentences replaced by one per detected event overlapping the epoch, or "No events."."""
    stage, context = hypnogram[i], StageContext.around(hypnogram, i)
    said = sentences(text)
    descriptor = stage_descriptor(stage, context)
    if said and re.search(rf"(?:^|: ){re.escape(descriptor)}(?: in this epoch)?\.$", said[0]):
        opening = said[0]
    else:
        opening = stage_sentence(stage, context, _CANONICAL)
    named = event_sentences(events, i * epoch_s, _CANONICAL, epoch_s)
    return " ".join([opening, *(named or ["No events."])])


def stage_of(verdict: str) -> Stage:
    """A staging verdict ('W'..'R', 'uncertain', 'gap', '?') as a ``Stage``: anything but a stage is unscored."""
    try:
        return Stage.from_label(verdict)
    except PSGError:  # 'uncertain', 'gap': no stage to state
        return Stage.UNSCORED


def consistent_words(text: str, features: Mapping[str, object] | None = None) -> tuple[str, int]:
    """``text`` (a generated modality caption) with each qualitative word the template derives from a number
    rewritten from the number its sentence states, and the body position from the epoch's measured
    ``position_name`` (``features``, when given: the decoder picks the name; on the Nox file "left" for an
    epoch measured right); and how many words changed."""
    position = (features or {}).get("position_name")
    out, changed = [], 0
    for sentence in sentences(text):
        for fix in (_fix_dominant, _fix_coupling, _fix_flow):
            sentence, n = fix(sentence)
            changed += n
        if isinstance(position, str):
            sentence, n = _replaced(_POSITION, sentence, lambda _: position)
            changed += n
        out.append(sentence)
    return " ".join(out), changed


def _fix_dominant(sentence: str) -> tuple[str, int]:
    powers = {}
    for m in _BAND_POWER.finditer(sentence):
        value, band = (m[1], m[2]) if m[1] is not None else (m[4], m[3])
        powers[band] = float(value)
    if set(powers) != set(BANDS):
        return sentence, 0
    dominant = max(BANDS, key=lambda band: powers[band])
    return _replaced(_DOMINANT, sentence, lambda _: dominant)


def _fix_coupling(sentence: str) -> tuple[str, int]:
    def coupling(number: float) -> str:
        if number <= CONJUGATE_CORRELATION:
            return _COUPLINGS[0]
        return _COUPLINGS[2] if number >= -CONJUGATE_CORRELATION else _COUPLINGS[1]

    return _replaced(_COUPLING, sentence, coupling)


def _fix_flow(sentence: str) -> tuple[str, int]:
    return _replaced(
        _FLOW, sentence, lambda a: "absent" if a < FLOW_ABSENT else "reduced" if a < FLOW_REDUCED else "normal"
    )


def _replaced(pattern: re.Pattern[str], sentence: str, word_for: Callable[[float], str]) -> tuple[str, int]:
    """``sentence`` with the word group ``word`` of each ``pattern`` match set to ``word_for(number)`` (the
    match's ``number`` group; the dominant band passes none) and how many changed."""
    changed = 0

    def one(m: re.Match[str]) -> str:
        nonlocal changed
        number = float(m["number"]) if "number" in m.groupdict() and m["number"] is not None else float("nan")
        word = word_for(number)
        changed += word != m["word"]
        return m[0][: m.start("word") - m.start()] + word + m[0][m.end("word") - m.start() :]

    return pattern.sub(one, sentence), changed
