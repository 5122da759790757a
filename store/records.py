"""Validation of what the store is asked to keep: caption records and device events.

The sink hands over decoded ``sleep.captions`` / ``sleep.alerts`` JSON. A record the store cannot keep
raises ``MessageError`` naming the record, the field and what was expected, so the sink can dead-letter
exactly that message (call ``caption_row``/``device_event_row`` per message before batching). Keys the
store does not know (``schema``, ``kind``) are ignored: newer producers may add fields.
"""

from __future__ import annotations

import math
from typing import Any

from psg.codecs import MessageError

#: Longest bed / recording id the schema holds.
MAX_ID_CHARS = 128
#: Caption keys every record carries: ``psg.captions.MODALITIES`` (spelled out here because importing
#: ``psg.captions`` loads the detectors and their dependencies, seconds for an API that needs none).
CAPTION_MODALITIES: tuple[str, ...] = ("stage_event", "brain", "cardiac", "respiratory", "somatic")


def _fail(what: str, name: str, expected: str, value: Any) -> MessageError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return MessageError(f"{what} field {name!r}: expected {expected}, got {shown}")


def _ident(record: dict[str, Any], name: str, what: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        raise _fail(what, name, f"a non-empty string of at most {MAX_ID_CHARS} characters", value)
    return value


def _number(record: dict[str, Any], name: str, what: str, optional: bool = False, positive: bool = False) -> Any:
    value = record.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(what, name, "a finite number" + (" or null" if optional else ""), value)
    if positive and value <= 0:
        raise _fail(what, name, "a positive number", value)
    return float(value)


def _text(record: dict[str, Any], name: str, what: str, optional: bool = False, default: str | None = None) -> Any:
    value = record.get(name, default)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _fail(what, name, "a string" + (" or null" if optional else ""), value)
    return value


def _typed(record: dict[str, Any], name: str, kind: type, what: str, default: Any = None) -> Any:
    value = record.get(name, default)
    if not isinstance(value, kind):
        raise _fail(what, name, f"a JSON {'object' if kind is dict else 'array'}", value)
    return value


def caption_row(record: Any, what: str = "caption record") -> dict[str, Any]:
    """The ``epochs`` row values of one caption record (without ``stored_at``/``latency_s``)."""
    if not isinstance(record, dict):
        raise MessageError(f"{what}: expected a JSON object, got {type(record).__name__}")
    epoch = record.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise _fail(what, "epoch", "an integer >= 0", epoch)
    captions = _typed(record, "captions", dict, what)
    for key in CAPTION_MODALITIES:
        if not isinstance(captions.get(key), str):
            raise _fail(what, f"captions.{key}", "a string", captions.get(key))
    quality = _typed(record, "quality", dict, what, default={})
    for channel, flags in quality.items():
        if not isinstance(flags, list) or not all(isinstance(flag, str) for flag in flags):
            raise _fail(what, f"quality.{channel}", "a list of flag strings", flags)
    probabilities = record.get("probabilities")
    if probabilities is not None and (
        not isinstance(probabilities, list)
        or not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in probabilities)
    ):
        raise _fail(what, "probabilities", "a list of numbers or null", probabilities)
    stage = _text(record, "stage", what)
    if not stage or len(stage) > 8:
        raise _fail(what, "stage", "a stage label (W, N1, N2, N3, R or ?)", stage)
    return {
        "bed_id": _ident(record, "bed_id", what),
        "recording_id": _ident(record, "recording_id", what),
        "epoch": epoch,
        "start_time": _number(record, "start_time", what),
        "epoch_s": _number(record, "epoch_s", what, positive=True),
        "stage": stage,
        "stage_source": _text(record, "stage_source", what, optional=True),
        "probabilities": probabilities,
        "captions": captions,
        "features": _typed(record, "features", dict, what, default={}),
        "quality": quality,
        "events": _typed(record, "events", list, what, default=[]),
        "advisories": _typed(record, "advisories", list, what, default=[]),
        "runtime": _text(record, "runtime", what, optional=True),
        "end_received_at": _number(record, "end_received_at", what, optional=True),
    }


def device_event_row(event: Any, what: str = "device event") -> dict[str, Any]:
    """The ``device_events`` row values of one technical event (``sleep.alerts`` kind "technical")."""
    if not isinstance(event, dict):
        raise MessageError(f"{what}: expected a JSON object, got {type(event).__name__}")
    kind = _text(event, "type", what)
    if not kind or len(kind) > 32:
        raise _fail(what, "type", "an event type such as stream_lost", kind)
    stream = _text(event, "stream", what)
    if len(stream) > 64:
        raise _fail(what, "stream", "a stream name of at most 64 characters", stream)
    return {
        "bed_id": _ident(event, "bed_id", what),
        "recording_id": _ident(event, "recording_id", what),
        "stream": stream,
        "type": kind,
        "at": _number(event, "at", what),
        "detail": _text(event, "detail", what, default=""),
    }
