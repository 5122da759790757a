"""Dreem Open Datasets (DOD-H, DOD-O) hypnograms: one JSON list of ints per scorer and night.

Guillot et al. (2020) publish each night scored by five experts as ``scorer_N/<night>.json``, a list
with one AASM stage per 30-s epoch coded -1 unscored, 0 W, 1 N1, 2 N2, 3 N3, 4 REM. These codes are
exactly ``psg.timeline.Stage`` values, so reading is validation, not translation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from psg.errors import FormatError
from psg.timeline import Stage, Timeline

_CODES = frozenset(int(s) for s in Stage)


def read_dreem_json(path: str | Path) -> Timeline:
    """Read one scorer's hypnogram; ``record_id`` is the night (file stem), shared by its five scorers."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(path, f"not a readable JSON file ({exc})") from exc
    if not isinstance(data, list) or not data:
        raise FormatError(path, "expected a non-empty JSON list with one stage code per 30-s epoch")
    for i, code in enumerate(data):
        if isinstance(code, bool) or not isinstance(code, int) or code not in _CODES:
            raise FormatError(
                path,
                f"epoch {i}: stage code {code!r} is not one of -1 (unscored), 0 W, 1 N1, 2 N2, 3 N3, 4 REM",
            )
    return Timeline(record_id=path.stem, stages=np.asarray(data, dtype=np.int8), source=str(path))
