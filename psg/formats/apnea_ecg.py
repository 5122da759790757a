"""Apnea-ECG Database (Penzel et al., 2000), as the derived ``.npz`` files in the shared data.

Each file holds ``t`` (beat times in minutes), ``hr`` (instantaneous heart rate, beats/s, derived
from the same beats, so not kept) and ``apn`` (one expert apnea flag per minute). The database was
scored from the ECG alone and has no hypnogram: every 30-s epoch is UNSCORED, for as many epochs as
cover the longer of the labelled minutes and the last beat. The apnea minutes stay as
``minute_labels["apnea"]``; they are not turned into events because a minute flag gives neither the
onset nor the type of the apneas in it.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from psg.errors import FormatError
from psg.timeline import EPOCH_S, Stage, Timeline

_KEYS = ("t", "apn")


def read_apnea_ecg(path: str | Path) -> Timeline:
    """Read beats (seconds) and per-minute apnea labels; stages are all UNSCORED (see module doc)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _KEYS if k not in npz.files]
            if missing:
                raise FormatError(
                    path,
                    f"missing array(s) {', '.join(missing)}; expected t (beat minutes) and apn (apnea flag per minute)",
                )
            beat_min = np.asarray(npz["t"], dtype=np.float64)
            apnea = np.asarray(npz["apn"]).astype(bool)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(path, f"not a readable .npz archive ({exc})") from exc
    if beat_min.ndim != 1 or apnea.ndim != 1:
        raise FormatError(path, "t and apn must be 1-D arrays")
    beats_s = beat_min * 60.0
    if beats_s.size > 1 and np.any(np.diff(beats_s) <= 0):
        raise FormatError(path, "beat times t must be strictly increasing")
    duration_s = max(apnea.size * 60.0, float(beats_s[-1]) if beats_s.size else 0.0)
    if duration_s <= 0:
        raise FormatError(path, "no beats and no apnea minutes: nothing to read")
    n_epochs = math.ceil(duration_s / EPOCH_S)
    return Timeline(
        record_id=path.stem,
        stages=np.full(n_epochs, Stage.UNSCORED, dtype=np.int8),
        beat_times_s=beats_s,
        minute_labels={"apnea": apnea},
        source=str(path),
    )
