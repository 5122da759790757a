"""The night report of one bed of the live store: what the night shift hands to the sleep physician.

The store keeps, per epoch, the stage, the captions, the measured features and the detectors' events,
and per bed its alerts; it keeps no raw samples. This adapter reads those for the bed's latest (or
the given) recording and fills a ``psg.report_document.NightReport``, so the kernel renders a live
night exactly like a recorded one (``psg.report.write_night_files``). It lives here, not in ``psg``
or ``store``, because the kernel imports nothing of ours and the store must not pull in matplotlib.

Indices are ``psg.summary.night_summary`` on the stored stages ('?' = unscored) and detector events;
arousals are not scored live, so the arousal index is None rather than a reassuring 0. Oximetry is
``epoch_oximetry`` below, because ``night_summary`` wants SpO2 samples and the store has per-epoch
features.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from plumbing.settings import Settings
from psg.errors import PSGError
from psg.montage import HR, SPO2
from psg.recording import Signal
from psg.report import ReportFormat, write_night_files
from psg.report_document import NightReport
from psg.summary import REPORT_DECIMALS, SLEEP_STAGES, SPO2_VALID, T90_THRESHOLD, night_summary, summary_caption
from psg.timeline import EVENT_TYPES, Event, Stage
from store import Store, UnknownBed

#: ``Store.epochs`` page size (its most per call).
EPOCH_PAGE = 1000
#: Most alerts read for one bed: far above a night's worth, low enough to bound a runaway alert source.
MAX_ALERTS = 10_000


def write_bed_report(
    bed_id: str,
    out_dir: str | Path,
    fmt: ReportFormat = "html",
    recording_id: str | None = None,
    data_dir: Path | None = None,
) -> dict[str, Path]:
    """Write the report of ``bed_id`` from the store ``Settings`` names (``data_dir`` overrides
    ``SLEEPLM_DATA_DIR``); ``PSGError`` naming the bed and the store if either is not there."""
    settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    with open_store(settings.database_url) as store:
        report = bed_night_report(store, bed_id, recording_id, settings.stale_after_s)
    return write_night_files(report, out_dir, fmt)


def open_store(url: str) -> Store:
    """The store at ``url``, never created by a report: ``PSGError`` for a missing SQLite file or a
    database that does not answer (password hidden)."""
    shown = _shown(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).is_file():
            raise PSGError(f"store {shown}: no such database (set SLEEPLM_DB_URL or --data-dir)")
    try:
        return Store(url)
    except SQLAlchemyError as exc:
        raise PSGError(f"store {shown}: cannot open it ({type(exc).__name__})") from None


def bed_night_report(
    store: Store, bed_id: str, recording_id: str | None = None, stale_after_s: float = 90.0
) -> NightReport:
    """The bed's night as plain report values; ``PSGError`` naming the bed, the store and its beds."""
    try:
        hypnogram = store.hypnogram(bed_id, recording_id)
    except UnknownBed as exc:
        beds = ", ".join(b["bed_id"] for b in store.beds(stale_after_s)) or "none"
        raise PSGError(f"{exc} in store {_shown(store.url)} (beds there: {beds})") from None
    recording, epoch_s = hypnogram["recording_id"], float(hypnogram["epoch_s"])
    stages = np.array([Stage.from_label(s) for s in hypnogram["stages"]], dtype=np.int8)
    n = stages.size
    spo2_mean, spo2_min, hr = (np.full(n, np.nan) for _ in range(3))
    captions = [""] * n
    sources: Counter[str] = Counter()
    for row in _stored_epochs(store, bed_id, recording):
        i = row["epoch"]
        if i >= n:  # stored after the hypnogram was read: the report is of the night up to then
            continue
        features = row["features"] or {}
        spo2_mean[i], spo2_min[i], hr[i] = (_value(features.get(k)) for k in ("spo2_mean", "spo2_min", "hr_bpm"))
        captions[i] = (row["captions"] or {}).get("stage_event") or ""
        sources[row["stage_source"] or "unknown"] += 1
    events = [e for e in map(_event, store.night_events(bed_id, recording)) if e is not None]
    summary = night_summary(stages, events, None, epoch_s=epoch_s, arousals_scored=False)
    summary.update(epoch_oximetry(spo2_mean, spo2_min, stages, epoch_s))
    summary.update(
        caption=summary_caption(summary),
        stage_source=sources.most_common(1)[0][0] if sources else None,
        event_source="detectors",
    )
    alerts = [a for a in store.alerts(state="all", bed_id=bed_id, limit=MAX_ALERTS) if a["recording_id"] == recording]
    return NightReport(
        record_id=bed_id,
        recording_id=recording,
        start_time=datetime.fromtimestamp(hypnogram["start_time"]).astimezone(),
        duration_s=n * epoch_s,
        epoch_s=epoch_s,
        stages=stages,
        summary=summary,
        scored=None,
        detected=events,
        spo2=Signal(SPO2, spo2_mean, 1.0 / epoch_s, "%"),  # one value per epoch, NaN where none was stored
        hr=Signal(HR, hr, 1.0 / epoch_s, "bpm"),
        captions=captions,
        alerts=alerts,
        id_label="Bed",
    )


def epoch_oximetry(
    spo2_mean: np.ndarray, spo2_min: np.ndarray, stages: np.ndarray, epoch_s: float
) -> dict[str, float | None]:
    """SpO2 mean, minimum and T90 during sleep from per-epoch features, the keys ``night_summary`` gives.

    ``psg.summary`` counts samples; the store has one mean and one minimum per epoch, so here: mean =
    mean of the sleep epochs' means (epochs are equally long); minimum = lowest per-epoch minimum (lowest
    mean where no minimum was stored); T90 =
    sleep epochs whose mean is below 90 % times the epoch length, as minutes and % of the sleep epochs
    with a reading. T90 is thus at epoch resolution and misses dips too short to pull an epoch's mean
    under 90 %. Values outside ``SPO2_VALID`` (probe off) count as missing, as in ``psg.summary``.
    """
    asleep = np.isin(stages, [int(s) for s in SLEEP_STAGES])
    means = spo2_mean[asleep & _valid_spo2(spo2_mean)]
    minima = spo2_min[asleep & _valid_spo2(spo2_min)]
    if means.size == 0:
        return {"spo2_mean": None, "spo2_min": None, "t90_min": None, "t90_pct_tst": None}
    below = int(np.sum(means < T90_THRESHOLD))
    return {
        "spo2_mean": round(float(means.mean()), REPORT_DECIMALS),
        "spo2_min": round(float(minima.min() if minima.size else means.min()), REPORT_DECIMALS),
        "t90_min": round(below * epoch_s / 60.0, REPORT_DECIMALS),
        "t90_pct_tst": round(100.0 * below / means.size, REPORT_DECIMALS),
    }


def _valid_spo2(values: np.ndarray) -> np.ndarray:
    return np.isfinite(values) & (values >= SPO2_VALID[0]) & (values <= SPO2_VALID[1])


def _stored_epochs(store: Store, bed_id: str, recording_id: str) -> Iterator[dict[str, Any]]:
    """Every stored epoch of the recording, page by page (a night is ~1000 epochs: never one query)."""
    since = 0
    while True:
        page = store.epochs(bed_id, since=since, limit=EPOCH_PAGE, recording_id=recording_id)
        yield from page
        if len(page) < EPOCH_PAGE:
            return
        since = page[-1]["epoch"] + 1


def _event(stored: dict[str, Any]) -> Event | None:
    """A stored detector event as a timeline event; a type outside ``EVENT_TYPES`` (a newer producer's) is
    left out of the report rather than failing it."""
    if stored.get("type") not in EVENT_TYPES:
        return None
    return Event(
        stored["type"],
        max(0.0, float(stored.get("onset_s") or 0.0)),
        max(0.0, float(stored.get("duration_s") or 0.0)),
        subtype=stored.get("reason"),
        channel=stored.get("channel"),
    )


def _value(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else np.nan


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
