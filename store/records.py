"""Validation of what the store is asked to keep: caption records and device events.

The sink hands over decoded ``sleep.captions`` / ``sleep.alerts`` JSON. A record the store cannot keep
raises ``MessageError`` naming the record, the field and what was expected, so the sink can dead-letter
exactly that message (call ``caption_row``/``device_event_row`` per message before batching). Keys the
store does not know (``schema``, ``kind``) are ignored: newer producers may add fields.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

from psg.codecs import MAX_EPOCH, MAX_EPOCH_S
from psg.contracts import CAPTION_LEVELS
from psg.errors import MessageError

#: Longest bed / recording id the schema holds.
MAX_ID_CHARS = 128


def _fail(what: str, name: str, expected: str, value: Any) -> MessageError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return MessageError(f"{what} field {name!r}: expected {expected}, got {shown}")


def _encodable(value: str) -> bool:
    """Whether the database driver can write ``value``: JSON may carry lone surrogates (``"\\ud800"``), which
    no UTF-8 column holds (the driver raises UnicodeEncodeError mid-transaction), and NUL characters, which
    PostgreSQL text columns refuse."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _ident(record: dict[str, Any], name: str, what: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_ID_CHARS:
        raise _fail(what, name, f"a non-empty string of at most {MAX_ID_CHARS} characters", value)
    if not _encodable(value):
        raise _fail(what, name, "valid Unicode text (no NUL and no lone surrogate escapes such as \\ud800)", value)
    return value


def _finite(value: Any) -> TypeGuard[int | float]:
    """A JSON number that is a finite float (ints beyond a float's range are not: float() overflows)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _number(
    record: dict[str, Any],
    name: str,
    what: str,
    optional: bool = False,
    positive: bool = False,
    maximum: float | None = None,
) -> Any:
    value = record.get(name)
    if value is None and optional:
        return None
    if not _finite(value):
        raise _fail(what, name, "a finite number" + (" or null" if optional else ""), value)
    if positive and value <= 0:
        raise _fail(what, name, "a positive number", value)
    if maximum is not None and value > maximum:
        raise _fail(what, name, f"a number of at most {maximum:g}", value)
    return float(value)


def _text(
    record: dict[str, Any],
    name: str,
    what: str,
    optional: bool = False,
    default: str | None = None,
    max_chars: int | None = None,
) -> Any:
    value = record.get(name, default)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _fail(what, name, "a string" + (" or null" if optional else ""), value)
    if max_chars is not None and len(value) > max_chars:  # PostgreSQL refuses it (VARCHAR(n)); SQLite would not
        raise _fail(what, name, f"a string of at most {max_chars} characters" + (" or null" if optional else ""), value)
    if not _encodable(value):
        raise _fail(what, name, "valid Unicode text (no NUL and no lone surrogate escapes such as \\ud800)", value)
    return value


def _events(record: dict[str, Any], what: str) -> list[dict[str, Any]]:
    """Detector events as ``DetectedEvent.to_dict`` writes them: the night timeline (``NightEvent``) and the
    alert engine read ``type``, ``onset_s`` and ``duration_s`` of every one."""
    events = _typed(record, "events", list, what, default=[])
    for i, event in enumerate(events):
        name = f"events[{i}]"
        if not isinstance(event, dict):
            raise _fail(what, name, "an object with type, onset_s and duration_s", event)
        if not isinstance(event.get("type"), str):
            raise _fail(what, f"{name}.type", "a string", event.get("type"))
        _number(event, "onset_s", what=f"{what} {name}")
        if _number(event, "duration_s", what=f"{what} {name}") < 0:
            raise _fail(what, f"{name}.duration_s", "a number >= 0", event["duration_s"])
        if event.get("channel") is not None and not isinstance(event["channel"], str):
            raise _fail(what, f"{name}.channel", "a channel label or null", event["channel"])
    return events


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
    if epoch > MAX_EPOCH:  # the column is a 32-bit INTEGER on PostgreSQL (48 h of 30-s epochs is 5760)
        raise _fail(what, "epoch", f"an integer of at most {MAX_EPOCH}", epoch)
    captions = _typed(record, "captions", dict, what)
    for key in CAPTION_LEVELS:
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
        "epoch_s": _number(record, "epoch_s", what, positive=True, maximum=MAX_EPOCH_S),
        "stage": stage,
        "stage_source": _text(record, "stage_source", what, optional=True, max_chars=32),
        "probabilities": probabilities,
        "captions": captions,
        "features": _typed(record, "features", dict, what, default={}),
        "quality": quality,
        "events": _events(record, what),
        "advisories": _typed(record, "advisories", list, what, default=[]),
        "runtime": _text(record, "runtime", what, optional=True, max_chars=64),
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


#: Alert priorities and states as the alert engine writes them (``psg.alerts.catalog``).
ALERT_PRIORITIES: tuple[str, ...] = ("high", "medium", "low", "advisory")
ALERT_STATES: tuple[str, ...] = ("raised", "acknowledged", "resolved")
ALERT_EVENT_KINDS: tuple[str, ...] = ("raised", "updated", "acknowledged", "escalated", "resolved")
MAX_ALERT_ID_CHARS = 256


def alert_event_row(event: Any, what: str = "alert event") -> dict[str, Any]:
    """The ``alerts`` row values and the transition of one ``sleep.alerts`` record of kind "alert":
    ``{"kind": "alert", "event": <transition>, "alert": <AlertEvent.alert.to_dict()>}``.

    Returns ``{"kind": <transition>, "at": <time of the transition>, "alert": <row values>}``; the time
    is the alert's own time of that transition (``raised_at``, ``acknowledged_at``, ...), so a replayed
    transition has the same key and is stored once.
    """
    if not isinstance(event, dict):
        raise MessageError(f"{what}: expected a JSON object, got {type(event).__name__}")
    kind = event.get("event")
    if kind not in ALERT_EVENT_KINDS:
        raise _fail(what, "event", f"one of {', '.join(ALERT_EVENT_KINDS)}", kind)
    alert = _typed(event, "alert", dict, what)
    inner = f"{what} alert"
    alert_id = alert.get("id")
    if not isinstance(alert_id, str) or not alert_id or len(alert_id) > MAX_ALERT_ID_CHARS:
        raise _fail(inner, "id", f"a non-empty string of at most {MAX_ALERT_ID_CHARS} characters", alert_id)
    if not _encodable(alert_id):
        raise _fail(inner, "id", "valid Unicode text (no NUL and no lone surrogate escapes such as \\ud800)", alert_id)
    priority, state = alert.get("priority"), alert.get("state")
    if priority not in ALERT_PRIORITIES:
        raise _fail(inner, "priority", f"one of {', '.join(ALERT_PRIORITIES)}", priority)
    if state not in ALERT_STATES:
        raise _fail(inner, "state", f"one of {', '.join(ALERT_STATES)}", state)
    alert_type = _text(alert, "type", inner)
    if not alert_type or len(alert_type) > 160:
        raise _fail(inner, "type", "an alert type of at most 160 characters", alert_type)
    acknowledged_by = _text(alert, "acknowledged_by", inner, optional=True)
    if acknowledged_by is not None and len(acknowledged_by) > 128:
        raise _fail(inner, "acknowledged_by", "a name of at most 128 characters", acknowledged_by)
    row = {
        "id": alert_id,
        "bed_id": _ident(alert, "bed_id", inner),
        "recording_id": _ident(alert, "recording_id", inner),
        "type": alert_type,
        "priority": priority,
        "state": state,
        "raised_at": _number(alert, "raised_at", inner),
        "updated_at": _number(alert, "updated_at", inner),
        "evidence": _typed(alert, "evidence", dict, inner, default={}),
        "escalated": bool(alert.get("escalated", False)),
        "escalated_at": _number(alert, "escalated_at", inner, optional=True),
        "acknowledged_by": acknowledged_by,
        "acknowledged_at": _number(alert, "acknowledged_at", inner, optional=True),
        "resolved_at": _number(alert, "resolved_at", inner, optional=True),
    }
    at = {
        "raised": row["raised_at"],
        "acknowledged": row["acknowledged_at"],
        "escalated": row["escalated_at"],
        "resolved": row["resolved_at"],
    }.get(kind, row["updated_at"])
    if at is None:
        raise _fail(inner, f"{kind}_at", f"the time of the {kind!r} transition", None)
    return {"kind": kind, "at": at, "alert": row}
