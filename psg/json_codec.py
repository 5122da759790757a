"""Strict, versioned JSON for the live path's records (``sleep.captions``, ``sleep.alerts``, ``psg.deadletter``)
and for the headers of the binary messages (``psg.codecs``).

Every record carries ``schema`` (``JSON_SCHEMA``); decoding refuses what our encoders never write (NaN and
Infinity tokens, numbers that overflow, integers beyond 64 bits, nesting Python cannot parse) with a
``MessageError`` naming the field, so a stream agent dead-letters the message and goes on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from psg.errors import MessageError

JSON_SCHEMA = 1

#: Largest integer a header or record may hold: every count, index and id fits 64 bits, and a larger one
#: would overflow the float conversions and database columns behind the decoders.
MAX_JSON_INT = 2**63 - 1


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"non-standard token {token} (strict JSON: write missing values as null)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} overflows a float")
    return value


def _bounded_int(text: str) -> int:
    value = int(text) if len(text.lstrip("-")) <= 19 else None  # no conversion of a 5000-digit string
    if value is None or abs(value) > MAX_JSON_INT:
        raise ValueError(f"integer {text[:40]}{'...' if len(text) > 40 else ''} is out of range (at most 64 bits)")
    return value


def strict_json(raw: Any, what: str) -> Any:
    """``raw`` parsed as the strict JSON our encoders write; ``MessageError`` naming ``what`` otherwise.

    Python's parser accepts more: NaN/Infinity tokens, numbers that overflow to inf, integers of any
    size (beyond 4300 digits it raises a plain ValueError) and nesting until it raises RecursionError.
    None of those may reach a stream agent as anything but a ``MessageError``."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int)
    except RecursionError:
        raise MessageError(f"{what}: not valid JSON (nested too deeply)") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MessageError(f"{what}: not valid JSON ({exc})"[:300]) from None


def to_jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars/arrays as plain Python and NaN/inf as None, so strict JSON can write it."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def encode_json(record: Mapping[str, object]) -> bytes:
    """A JSON record with ``schema`` set (strict JSON: NaN is written as null by the caller)."""
    return json.dumps({"schema": JSON_SCHEMA, **record}, separators=(",", ":"), allow_nan=False).encode()


def decode_json(raw: bytes, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Bytes -> JSON object with a supported ``schema`` and the ``required`` fields; ``MessageError`` if not."""
    record = strict_json(raw, "message")
    if not isinstance(record, dict):
        raise MessageError("message: expected a JSON object")
    if record.get("schema") != JSON_SCHEMA:
        raise MessageError(f"message field 'schema': expected {JSON_SCHEMA}, got {record.get('schema')!r}")
    missing = [name for name in required if name not in record]
    if missing:
        raise MessageError(f"message: missing field(s) {', '.join(missing)}")
    return record
