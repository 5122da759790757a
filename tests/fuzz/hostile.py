"""Hostile values shared by the fuzz tests: what a broken or malicious producer can put in a message.

Two kinds:

* Python values (``hostile_values``): wrong types, NaN/Inf, huge and negative numbers, empty, huge and
  un-encodable strings, nested containers. They go into dicts handed to validators directly, or into
  JSON written with ``allow_nan=True`` (so NaN/Inf appear as the non-standard tokens ``NaN``,
  ``Infinity``, ``-Infinity`` that Python's JSON parser accepts by default).
* Raw JSON tokens (``RAW_TOKENS``): text no ``json.dumps`` writes but a parser meets on a topic: numbers
  that overflow a float (``1e999``), integers longer than Python's 4300-digit conversion limit, nesting
  deeper than the recursion limit. ``field_values`` sometimes draws a placeholder string, and
  ``render_json`` swaps it for its token in the serialised text.

The settings are fixed here (``FUZZ``): derandomized (which also turns the example database off), so CI
and every local run try the same examples and a failure reproduces anywhere (``print_blob`` prints the
``@reproduce_failure`` line); no deadline (a shared 2-core runner has slow moments that are not bugs).
``SLEEPLM_FUZZ_SCALE`` scales every example budget for a deeper run by hand.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from psg.errors import MessageError

#: ``SLEEPLM_FUZZ_SCALE=10`` multiplies every example budget for a deeper local run (CI runs at 1).
SCALE = float(os.environ.get("SLEEPLM_FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    """``n`` examples, scaled by ``SLEEPLM_FUZZ_SCALE``."""
    return max(1, int(n * SCALE))


FUZZ = settings(deadline=None, derandomize=True, print_blob=True, max_examples=examples(100))

#: Non-standard or oversized JSON text, keyed by the placeholder that stands for it before rendering.
RAW_TOKENS: dict[str, str] = {
    "@@nan@@": "NaN",
    "@@inf@@": "Infinity",
    "@@-inf@@": "-Infinity",
    "@@1e999@@": "1e999",
    "@@-1e999@@": "-1e999",
    "@@int400@@": "9" * 400,  # parses to an int no float holds: float(...) raises OverflowError
    "@@int5000@@": "9" * 5000,  # past sys.get_int_max_str_digits(): json.loads raises a plain ValueError
    "@@deep-list@@": "[" * 20_000 + "]" * 20_000,  # deeper than the recursion limit: RecursionError
    "@@deep-object@@": '{"a":' * 20_000 + "1" + "}" * 20_000,
}

_TEXTS = st.one_of(
    st.just(""),
    st.just(" "),
    st.just("\x00"),
    st.just("\ud800"),  # a lone surrogate: valid JSON escape, not encodable as UTF-8
    st.just("x" * 5_000),  # past every length limit (ids 128-200, types 32-160)
    st.text(max_size=20),
)
_NUMBERS = st.one_of(
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**30, 10**400, -(10**400)]),
    st.sampled_from([0.0, -0.0, -1.0, 1e308, -1e308, 5e-324, math.nan, math.inf, -math.inf]),
    st.integers(),
    st.floats(),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _NUMBERS, _TEXTS)

#: Any value a JSON field might hold, sane or not (containers nested a few levels).
hostile_values: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=8,
)

#: A field value: mostly a hostile Python value, sometimes a raw token placeholder.
field_values: st.SearchStrategy[Any] = st.one_of(hostile_values, hostile_values, st.sampled_from(sorted(RAW_TOKENS)))


def render_json(value: Any) -> bytes:
    """``value`` as JSON text, NaN/Inf as their non-standard tokens and placeholders as raw tokens."""
    text = json.dumps(value, allow_nan=True)
    for placeholder, token in RAW_TOKENS.items():
        text = text.replace(json.dumps(placeholder), token)
    return text.encode("utf-8", "surrogatepass")


def expect_value_or_message_error(decode: Any, *args: Any) -> Any:
    """The decoder contract: a value, or ``MessageError`` with a reason. Returns the value (None if refused).

    Any other exception propagates and fails the test with its traceback: in a stream agent it would
    kill the agent instead of dead-lettering the message."""
    try:
        return decode(*args)
    except MessageError as exc:
        assert str(exc).strip(), f"{getattr(decode, '__name__', decode)!r} raised MessageError without a reason"
        return None


def set_path(record: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``record`` with the field at ``path`` (keys into nested objects) set to ``value``."""
    out = json.loads(json.dumps(record))
    target = out
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value
    return out


def delete_path(record: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``record`` without the field at ``path`` (unchanged if it is not there)."""
    out = json.loads(json.dumps(record))
    target = out
    for key in path[:-1]:
        target = target.get(key)
        if not isinstance(target, dict):
            return out
    target.pop(path[-1], None)
    return out
