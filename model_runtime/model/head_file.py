"""The small ``.npz`` files of the model's heads (stage head, a lab's few-shot head): open one or say why not.

Both heads are plain arrays with a ``format`` string, loaded without pickle; a missing file, another
format or a damaged file is one ``PSGError`` naming the file, what it should have been and how to make it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from psg.errors import PSGError

T = TypeVar("T")


def load_head_file(
    path: Path,
    what: str,
    how_to_make: str,
    formats: tuple[str, ...],
    build: Callable[[np.lib.npyio.NpzFile], T],
) -> T:
    """``build`` applied to the arrays of ``path`` when its ``format`` is one of ``formats``.

    ``what``: "stage head", "lab head"; ``how_to_make``: the command that writes one. A missing array
    (``KeyError``) or unreadable value (``ValueError``) in ``build`` is reported as a damaged file.
    """
    if not path.is_file():
        raise PSGError(f"{what} {path} not found; {how_to_make}")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if str(arrays["format"]) not in formats:
                raise ValueError(f"format {str(arrays['format'])!r}")
            return build(arrays)
    except (OSError, KeyError, ValueError) as exc:
        raise PSGError(f"{path}: not a SleepLM {what} ({exc}; expected {formats[-1]!r})") from None
