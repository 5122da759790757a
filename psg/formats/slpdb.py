"""MIT-BIH Polysomnographic Database (PhysioNet ``slpdb``): WFDB sleep annotations and real beats.

Each record has a header (``.hea``: sampling rate, length, start time), a ``.st`` annotation file
with one annotation per 30-s epoch whose aux text is ``<stage> [event ...]`` (Ichimaru & Moody 1999;
codes in the database's ``README.st``) and a ``.ecg`` file with every heartbeat.

Stages are R&K: ``W 1 2 3 4 R`` (3 and 4 -> N3) and ``MT``/``M`` movement time (-> UNSCORED plus a
``movement`` event). Event codes: ``H``/``HA`` hypopnea (``A``: with arousal), ``OA``/``X``
obstructive apnea (``X`` with arousal), ``CA``/``CAA`` central apnea (with arousal), ``L``/``LA``
leg movement (with arousal), ``A`` arousal, ``MT`` movement. The database only says "this epoch
contains the event", so every event is emitted with the epoch as its span and
``epoch_resolution=True``; one event per code occurrence (``L L L`` is three leg movements; the
run-together ``LL``/``LLL``/``LLLL`` found in slp16 and slp59 are read the same way).

Annotation times are mapped to epochs from their sample number: the first annotation of most records
sits at sample 1, not 0, and three records (slp14, slp16, slp59) start scoring 6-26 epochs late;
epochs without an annotation stay UNSCORED. Beats are the ``.ecg`` annotations whose symbol is a
beat label in PhysioNet's annotation code table (non-beat marks such as ``x``, blocked P waves, are
dropped).

The ``wfdb`` package that reads them (it requires pandas, ~100 MB) is the optional ``wfdb`` extra, imported
only when a record is read: serving reads EDF/BDF and never needs it (issue 18).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from psg.errors import FormatError
from psg.timeline import EPOCH_S, Event, Stage, Timeline

if TYPE_CHECKING:
    import wfdb

#: Beat annotation symbols of PhysioNet's WFDB annotation codes (physionet.org/physiobank/annotations).
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")

_STAGES: dict[str, Stage] = {
    "W": Stage.W,
    "1": Stage.N1,
    "2": Stage.N2,
    "3": Stage.N3,
    "4": Stage.N3,
    "R": Stage.R,
    "MT": Stage.UNSCORED,
    "M": Stage.UNSCORED,
}
_MOVEMENT_STAGES = frozenset({"MT", "M"})

#: slpdb event code -> canonical event types it stands for (README.st).
_EVENTS: dict[str, tuple[str, ...]] = {
    "H": ("hypopnea",),
    "HA": ("hypopnea", "arousal"),
    "OA": ("obstructive_apnea",),
    "X": ("obstructive_apnea", "arousal"),
    "CA": ("central_apnea",),
    "CAA": ("central_apnea", "arousal"),
    "L": ("limb_movement",),
    "LA": ("limb_movement", "arousal"),
    "A": ("arousal",),
    "MT": ("movement",),
}


def record_stem(path: str | Path) -> Path:
    """``slp01a.st``, ``slp01a.hea``, ``slp01a.ecg`` or ``slp01a`` -> the record path ``.../slp01a``."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".st", ".hea", ".ecg") else path


def read_slpdb(path: str | Path) -> Timeline:
    """Read stages, epoch-resolution events and beat times of one slpdb record."""
    stem = record_stem(path)
    for ext in ("hea", "st", "ecg"):
        if not stem.with_suffix(f".{ext}").is_file():
            raise FormatError(
                stem.with_suffix(f".{ext}"), f"missing: a slpdb record needs {stem.name}.hea, .st and .ecg"
            )
    try:
        import wfdb
    except ImportError as exc:
        raise FormatError(
            stem.with_suffix(".st"), "reading a WFDB record needs the wfdb package: pip install 'sleeplm[wfdb]'"
        ) from exc
    try:
        header = wfdb.rdheader(str(stem))
        st = wfdb.rdann(str(stem), "st")
        ecg = wfdb.rdann(str(stem), "ecg")
    except Exception as exc:  # wfdb raises bare ValueError/IndexError/struct.error on corrupt files
        raise FormatError(stem, f"not a readable WFDB record ({type(exc).__name__}: {exc})") from exc
    fs = float(header.fs)
    samples_per_epoch = fs * EPOCH_S
    epochs = np.round(np.asarray(st.sample) / samples_per_epoch).astype(np.int64)
    n_epochs = max(int(header.sig_len // samples_per_epoch), int(epochs.max(initial=-1)) + 1)
    stages = np.full(n_epochs, Stage.UNSCORED, dtype=np.int8)
    events: list[Event] = []
    for epoch, aux in zip(epochs, st.aux_note, strict=True):
        tokens = aux.replace("\x00", " ").split()
        where = f"{stem.name}.st epoch {epoch} ({aux.strip(chr(0))!r})"
        if not tokens or tokens[0] not in _STAGES:
            raise FormatError(stem.with_suffix(".st"), f"{where}: expected a stage W 1 2 3 4 R MT first")
        stages[epoch] = _STAGES[tokens[0]]
        onset = float(epoch * EPOCH_S)
        if tokens[0] in _MOVEMENT_STAGES:
            events.append(Event("movement", onset, EPOCH_S, epoch_resolution=True))
        for token in tokens[1:]:
            for event_type in _event_types(token, stem, where):
                events.append(Event(event_type, onset, EPOCH_S, epoch_resolution=True))
    beats = np.asarray(ecg.sample)[np.isin(ecg.symbol, list(BEAT_SYMBOLS))] / fs
    return Timeline(
        record_id=stem.name,
        stages=stages,
        events=events,
        beat_times_s=np.unique(beats),
        start_time=_start_time(header),
        source=str(stem.with_suffix(".st")),
    )


def _event_types(token: str, stem: Path, where: str) -> tuple[str, ...]:
    if token in _EVENTS:
        return _EVENTS[token]
    if set(token) == {"L"}:  # 'LLL': leg-movement codes typed without spaces
        return _EVENTS["L"] * len(token)
    raise FormatError(
        stem.with_suffix(".st"), f"{where}: unknown event code {token!r}; expected one of {', '.join(_EVENTS)}"
    )


def _start_time(header: wfdb.Record) -> datetime | None:
    """Wall-clock start from the header; None when the header gives no date (slp67x has a time only)."""
    if header.base_date is None or header.base_time is None:
        return None
    return datetime.combine(header.base_date, header.base_time)
