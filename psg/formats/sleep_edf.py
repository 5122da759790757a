"""Sleep-EDF Expanded hypnograms exported as text: one R&K stage character per 30-s epoch.

Kemp et al. (2000) scored Sleep-EDF with Rechtschaffen & Kales: ``W``, ``1``-``4``, ``R``, ``?``
(not scored) and ``M`` (movement time). AASM merged R&K stages 3 and 4 into N3 (Iber et al., AASM
Manual 2007). Movement time is not a sleep stage under AASM, so an ``M`` epoch becomes UNSCORED plus
a ``movement`` event spanning the epoch (``epoch_resolution=True``: the scorer only says the epoch
was dominated by movement). The shared ``*.edf.csv`` files put one character per line with CR line
ends; any of CR, LF or CRLF is accepted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from psg.errors import FormatError
from psg.timeline import EPOCH_S, Event, Stage, Timeline

_RK_CODES: dict[str, Stage] = {
    "W": Stage.W,
    "1": Stage.N1,
    "2": Stage.N2,
    "3": Stage.N3,
    "4": Stage.N3,
    "R": Stage.R,
    "?": Stage.UNSCORED,
    "M": Stage.UNSCORED,
}


def read_sleep_edf_hypnogram(path: str | Path) -> Timeline:
    """Read a one-character-per-line R&K hypnogram; ``record_id`` is the PSG name (``SC4032E0-PSG``)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"not a readable text hypnogram ({exc})") from exc
    codes = [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]
    if not codes:
        raise FormatError(path, "empty hypnogram: expected one stage character (W 1 2 3 4 R ? M) per line")
    stages = np.empty(len(codes), dtype=np.int8)
    events: list[Event] = []
    for epoch, (line_no, code) in enumerate(codes):
        stage = _RK_CODES.get(code.upper())
        if stage is None:
            raise FormatError(path, f"line {line_no}: stage code {code!r} is not one of W 1 2 3 4 R ? M")
        stages[epoch] = stage
        if code.upper() == "M":
            events.append(Event("movement", epoch * EPOCH_S, EPOCH_S, epoch_resolution=True))
    record_id = path.name[: -len(".edf.csv")] if path.name.endswith(".edf.csv") else path.stem
    return Timeline(record_id=record_id, stages=stages, events=events, source=str(path))
