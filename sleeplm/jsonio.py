"""JSON output for CLI commands: NumPy scalars and arrays become plain JSON, NaN becomes null."""

from __future__ import annotations

import json
from typing import Any

from psg.json_codec import to_jsonable


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON (``allow_nan=False``) of ``value`` after ``to_jsonable``."""
    return json.dumps(to_jsonable(value), allow_nan=False, **kwargs)
