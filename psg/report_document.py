"""The night report as a document: one self-contained HTML file or a PDF, from plain data.

A report is made from two places: a recorded night (``psg.report``, from an EDF file) and a bed of the
live store (``sleeplm.bed_report``). Both fill a ``NightReport`` with plain values (stages, events,
SpO2 and heart-rate traces, the ``psg.summary`` indices, per-epoch captions, alerts), so the kernel
renders both without knowing where the night came from. The sections, in reading order:

* header: record or bed, recording, start, duration, where stages and events came from, generated at;
* the overview figure (made by the caller, ``psg.report.night_figure``);
* the indices ``psg.summary.night_summary`` computes, and event counts by type;
* the summary caption, then one line per hour: the most frequent stage, the respiratory events, mean
  SpO2 and heart rate, and one epoch's caption (the hour's first respiratory event, the moment a
  reader most wants to see, else an epoch of the dominant stage);
* the bed's alerts (time, type, priority, state, acknowledged by).

Recording gaps (EDF+D: the summary's ``gaps`` and ``gap_min``) show in the header's duration, as an index
row, in the hour rows they fall in and, through ``shade_gaps``, as hatched spans on the overview figure.

The HTML embeds its figure as a base64 PNG and its CSS inline: it is mailed and archived, and must open
on a ward PC with no network. The PDF is drawn with matplotlib's ``PdfPages`` (no extra dependency).
"""

from __future__ import annotations

import base64
import html
import textwrap
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # reports are written by servers and CI: never ask for a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from psg.recording import Signal  # noqa: E402
from psg.summary import SPO2_VALID, ahi_severity  # noqa: E402
from psg.timeline import RESPIRATORY_EVENT_TYPES, Event, Stage  # noqa: E402

#: Heart rates outside this range are no reading (a monitor reports 0 until it has beats).
HR_VALID = (20.0, 250.0)
#: A4 portrait in inches, and the page margin as a fraction of the page.
A4 = (8.27, 11.69)
_MARGIN = 0.06
_MISSING = "n/a"

Row = tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A titled table of text cells: what both the HTML and the PDF writer lay out."""

    title: str
    header: Row
    rows: list[Row]


@dataclass(frozen=True)
class NightReport:
    """Everything a night report shows, as plain values.

    ``stages`` holds one ``Stage`` code per ``epoch_s`` epoch; ``summary`` is ``night_summary`` plus
    ``caption``, ``stage_source`` and ``event_source``. ``scored`` are a scorer's events (None when the
    night has no annotations), ``detected`` the rule detectors'; times are seconds from recording
    start. ``spo2``/``hr`` may be full-rate channels or one value per epoch (NaN where missing).
    ``captions`` is the stage_event caption of each epoch ('' where none). ``alerts`` are store alert
    dicts (``raised_at`` in Unix seconds, ``type``, ``priority``, ``state``, ``acknowledged_by``), or
    None where the night has no alerting (a file): the section is then left out, not shown empty.
    ``id_label`` says what ``record_id`` is: "Record" (a file's record id) or "Bed" (a store bed id).
    """

    record_id: str
    recording_id: str | None
    start_time: datetime | None
    duration_s: float
    epoch_s: float
    stages: np.ndarray
    summary: dict[str, Any]
    scored: list[Event] | None
    detected: list[Event]
    spo2: Signal | None
    hr: Signal | None
    captions: list[str]
    alerts: list[dict[str, Any]] | None = None
    id_label: str = "Record"
    generated_at: datetime = field(default_factory=lambda: datetime.now().astimezone())

    @property
    def gaps(self) -> list[tuple[float, float]]:
        """The recording's gaps (seconds from its start, ``psg.summary``), empty for a continuous night."""
        return [(float(a), float(b)) for a, b in self.summary.get("gaps") or []]

    @property
    def indexed_events(self) -> list[Event]:
        """The events the indices counted: the scorer's when the summary says so, else the detectors'."""
        if self.summary.get("event_source") == "annotation" and self.scored is not None:
            return self.scored
        return self.detected


# --- sections -------------------------------------------------------------------------------------


def header_table(report: NightReport) -> Table:
    hours = report.duration_s / 3600.0
    return Table(
        "Recording",
        ("field", "value"),
        [
            (report.id_label, report.record_id),
            ("Recording", report.recording_id or _MISSING),
            ("Start", _when(report.start_time)),
            ("Duration", f"{hours:.2f} h ({report.stages.size} epochs of {report.epoch_s:g} s)" + _gap_note(report)),
            ("Stages from", str(report.summary.get("stage_source") or _MISSING)),
            ("Events from", str(report.summary.get("event_source") or _MISSING)),
            ("Generated", _when(report.generated_at)),
        ],
    )


def index_table(summary: dict[str, Any]) -> Table:
    """The ``psg.summary`` indices with units; the arousal rows only where arousals were scored."""
    s = summary
    rows: list[Row] = [
        ("Time in bed", _num(s["tib_min"], "{:.1f} min")),
        ("Total sleep time (TST)", _num(s["tst_min"], "{:.1f} min")),
        ("Sleep efficiency", _num(s["sleep_efficiency_pct"], "{:.1f}%")),
        ("Sleep onset latency", _num(s["sleep_onset_latency_min"], "{:.1f} min")),
        ("REM latency", _num(s["rem_latency_min"], "{:.1f} min")),
        ("Wake after sleep onset (WASO)", _num(s["waso_min"], "{:.1f} min")),
        ("Wake", _num(s["w_min"], "{:.1f} min")),
        ("Unscored / missing", _num(s["unscored_min"], "{:.1f} min")),
    ]
    if s.get("gap_min"):
        rows.append(
            (
                "Not recorded (gaps)",
                f"{s['gap_min']:.1f} min in {len(s.get('gaps') or [])} gaps, not counted as time in bed",
            )
        )
    for label in ("N1", "N2", "N3", "R"):
        key = label.lower()
        rows.append((f"Stage {label}", f"{s[f'{key}_min']:.1f} min ({_num(s[f'{key}_pct_tst'], '{:.1f}%')} of TST)"))
    ahi = s["ahi"]
    gone = s.get("not_recorded") or {}

    def value(key: str, fmt: str, missing: str = _MISSING) -> str:
        return f"not recorded ({gone[key]})" if key in gone else _num(s[key], fmt, missing)

    rows += [
        ("AHI", value("ahi", "") if ahi is None else f"{ahi:.1f}/h ({ahi_severity(ahi)})"),
        (
            "Apneas / hypopneas",
            value("apnea_count", "") if "apnea_count" in gone else f"{s['apnea_count']} / {s['hypopnea_count']}",
        ),
        ("ODI (>= 3% desaturations)", value("odi", "{:.1f}/h")),
        ("Desaturations", value("desaturation_count", "{}")),
        ("SpO2 mean (sleep)", value("spo2_mean", "{:.1f}%")),
        ("SpO2 minimum (sleep)", value("spo2_min", "{:.1f}%")),
        (
            "Time below 90% (T90)",
            value("t90_min", "{:.1f} min")
            + ("" if "t90_min" in gone else _num(s["t90_pct_tst"], " ({:.1f}% of sleep)", "")),
        ),
    ]
    if s.get("arousal_index") is not None:
        rows += [("Arousals", str(s["arousal_count"])), ("Arousal index", f"{s['arousal_index']:.1f}/h")]
    return Table("Indices", ("index", "value"), rows)


def event_table(report: NightReport) -> Table:
    """Every event type of the night, counted per source (a scorer's column only when there is one)."""
    detected = Counter(e.type for e in report.detected)
    if report.scored is None:
        return Table(
            "Events by type (whole recording)",
            ("type", "detected"),
            [(t.replace("_", " "), str(n)) for t, n in sorted(detected.items())],
        )
    scored = Counter(e.type for e in report.scored)
    types = sorted(set(scored) | set(detected))
    return Table(
        "Events by type (whole recording)",
        ("type", "scored", "detected"),
        [(t.replace("_", " "), str(scored[t]), str(detected[t])) for t in types],
    )


def hourly_table(report: NightReport) -> Table:
    """One row per hour of recording (see the module docstring); events are all those with onset in the
    hour, wake included, so the rows show what happened rather than re-deriving the per-sleep-hour AHI."""
    per_hour = max(1, int(round(3600.0 / report.epoch_s)))
    n = report.stages.size
    rows: list[Row] = []
    for hour, first in enumerate(range(0, n, per_hour)):
        last = min(first + per_hour, n)
        t0, t1 = first * report.epoch_s, last * report.epoch_s
        stages = report.stages[first:last]
        events = [e for e in report.indexed_events if t0 <= e.onset_s < t1]
        respiratory = [e for e in events if e.type in RESPIRATORY_EVENT_TYPES]
        counts = Counter(e.type.replace("_", " ") for e in respiratory)
        rows.append(
            (
                _hour_label(report, hour, t0, t1),
                _dominant_stage(stages) + _gap_in(report.gaps, t0, t1),
                ", ".join(f"{k} {v}" for k, v in counts.most_common()) or "none",
                str(sum(e.type == "desaturation" for e in events)),
                _num(_window_mean(report.spo2, t0, t1, SPO2_VALID), "{:.1f}%"),
                _num(_window_mean(report.hr, t0, t1, HR_VALID), "{:.0f} bpm"),
                _example_caption(report, first, last, respiratory),
            )
        )
    header = ("hour", "mostly", "respiratory events", "desats", "SpO2 mean", "HR mean", "caption")
    return Table("Hour by hour", header, rows)


def alert_table(alerts: list[dict[str, Any]]) -> Table:
    rows: list[Row] = [
        (
            _when(datetime.fromtimestamp(a["raised_at"]).astimezone()),
            str(a["type"]),
            str(a["priority"]),
            str(a["state"]),
            str(a.get("acknowledged_by") or "-"),
        )
        for a in sorted(alerts, key=lambda a: a["raised_at"])
    ]
    return Table("Alerts", ("time", "type", "priority", "state", "acknowledged by"), rows)


def shade_gaps(axes: Any, report: NightReport) -> None:
    """Hatch the recording's gaps on every axis of the overview figure (x in hours), labelled on the first."""
    axes = list(np.atleast_1d(axes))
    for i, (start, end) in enumerate(report.gaps):
        for ax in axes:
            ax.axvspan(
                start / 3600.0,
                end / 3600.0,
                facecolor="#d9d9d9",
                edgecolor="#999999",
                hatch="//",
                linewidth=0.0,
                zorder=0,
            )
        axes[0].text(
            (start + end) / 7200.0,
            0.97,
            "gap" if i else "recording gap",
            ha="center",
            va="top",
            transform=axes[0].get_xaxis_transform(),
            fontsize=7,
            color="#555555",
        )


def _gap_note(report: NightReport) -> str:
    gap_min = report.summary.get("gap_min")
    return f"; {gap_min:.1f} min not recorded (gaps)" if gap_min else ""


def _gap_in(gaps: list[tuple[float, float]], t0: float, t1: float) -> str:
    """'; gap 12 min' for the part of [t0, t1) in ``gaps`` ('' when none)."""
    seconds = sum(max(0.0, min(b, t1) - max(a, t0)) for a, b in gaps)
    return f"; gap {seconds / 60.0:.0f} min" if seconds > 0 else ""


def _dominant_stage(stages: np.ndarray) -> str:
    scored = [int(s) for s in stages if s != Stage.UNSCORED]
    if not scored:
        return "no stages"
    stage, count = Counter(scored).most_common(1)[0]
    return f"{Stage(stage).label} ({100.0 * count / stages.size:.0f}%)"


def _example_caption(report: NightReport, first: int, last: int, respiratory: list[Event]) -> str:
    """The hour's first respiratory-event epoch's caption, else its first dominant-stage epoch's."""
    candidates = [int(e.onset_s // report.epoch_s) for e in respiratory]
    stages = report.stages[first:last]
    scored = stages[stages != Stage.UNSCORED]
    if scored.size:
        dominant = Counter(scored.tolist()).most_common(1)[0][0]
        candidates.append(first + int(np.argmax(stages == dominant)))
    for i in candidates:
        if first <= i < min(last, len(report.captions)) and report.captions[i]:
            return report.captions[i]
    return ""


def _window_mean(signal: Signal | None, t0: float, t1: float, valid: tuple[float, float]) -> float | None:
    if signal is None:
        return None
    values = signal.window(t0, t1)
    values = values[np.isfinite(values) & (values >= valid[0]) & (values <= valid[1])]
    return float(values.mean()) if values.size else None


def _hour_label(report: NightReport, hour: int, t0: float, t1: float) -> str:
    label = f"{hour}-{round(t1 / 3600.0, 2):g} h"  # the last hour of a night may be partial
    if report.start_time is None:
        return label
    return f"{label} ({report.start_time + timedelta(seconds=t0):%H:%M})"


def _num(value: float | None, fmt: str, missing: str = _MISSING) -> str:
    return missing if value is None else fmt.format(value)


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "unknown"
    return f"{moment:%Y-%m-%d %H:%M:%S} {moment.tzname() or ''}".rstrip()


def _tables(report: NightReport) -> tuple[Table, Table, Table, Table, Table | None]:
    alerts = None if report.alerts is None else alert_table(report.alerts)
    return (header_table(report), index_table(report.summary), event_table(report), hourly_table(report), alerts)


def _title(report: NightReport) -> str:
    return f"Night report: {report.id_label.lower()} {report.record_id}"


# --- HTML -----------------------------------------------------------------------------------------

_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1200px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } img { max-width: 100%; } p.caption { max-width: 60em; line-height: 1.4; }
"""


def write_html(report: NightReport, figure_png: bytes, path: Path) -> Path:
    """``path`` as one HTML file with everything inside it (no external CSS, JS or images)."""
    header, indices, events, hourly, alerts = _tables(report)
    image = base64.b64encode(figure_png).decode("ascii")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(_title(report))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(_title(report))}</h1>",
        _html_table(header, with_header=False),
        "<h2>Overview</h2>",
        f'<img alt="hypnogram, respiratory events, SpO2 and heart rate" src="data:image/png;base64,{image}">',
        "<h2>Summary</h2>",
        f'<p class="caption">{html.escape(str(report.summary.get("caption", "")))}</p>',
        _html_section(indices),
        _html_section(events),
        _html_section(hourly),
    ]
    if alerts is not None:
        parts.append(_html_section(alerts) if alerts.rows else "<h2>Alerts</h2><p>No alerts for this bed.</p>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def _html_section(table: Table) -> str:
    return f"<h2>{html.escape(table.title)}</h2>\n{_html_table(table)}"


def _html_table(table: Table, with_header: bool = True) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in table.header) + "</tr>" if with_header else ""
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    return f"<table>{head}{body}</table>"


# --- PDF ------------------------------------------------------------------------------------------


class _PdfFlow:
    """Lines of text laid out down A4 pages, a new page whenever one is full (PdfPages has no layout)."""

    def __init__(self, pdf: PdfPages) -> None:
        self.pdf = pdf
        self.figure: Figure | None = None
        self.y = 0.0

    def line(self, text: str, size: float = 8.0, bold: bool = False, mono: bool = False) -> None:
        step = size * 1.45 / 72.0 / A4[1]
        if self.figure is None or self.y - step < _MARGIN:
            self.end_page()
            self.figure = plt.figure(figsize=A4)
            self.y = 1.0 - _MARGIN
        self.y -= step
        self.figure.text(
            _MARGIN,
            self.y,
            text,
            fontsize=size,
            weight="bold" if bold else "normal",
            family="monospace" if mono else "sans-serif",
            parse_math=False,
        )

    def paragraph(self, text: str, size: float = 8.5) -> None:
        for piece in textwrap.wrap(text, width=_chars_per_line(size, 0.55)) or [""]:
            self.line(piece, size)

    def table(self, table: Table, size: float = 7.0) -> None:
        self.line(table.title, 10.0, bold=True)
        for text in _text_table(table, _chars_per_line(size, 0.602)):
            self.line(text, size, mono=True)
        self.line("")

    def end_page(self) -> None:
        if self.figure is not None:
            self.pdf.savefig(self.figure)  # type: ignore[no-untyped-call]  # matplotlib's PdfPages.savefig is unannotated
            plt.close(self.figure)
            self.figure = None


def _chars_per_line(size: float, em_per_char: float) -> int:
    """Characters of a font of ``size`` points that fit between the margins (average glyph width)."""
    return int(A4[0] * 72.0 * (1.0 - 2 * _MARGIN) / (size * em_per_char))


def _text_table(table: Table, width: int) -> list[str]:
    """A table as aligned monospace lines; the last column (the long text) wraps in what width is left."""
    cells = [table.header, *table.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.header) - 1)]
    last = max(20, width - sum(widths) - 2 * len(widths))
    lines = []
    for index, row in enumerate(cells):
        wrapped = textwrap.wrap(row[-1], width=last) or [""]
        prefix = "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True))
        lines.append(f"{prefix}  {wrapped[0]}" if widths else wrapped[0])
        lines += [" " * (len(prefix) + 2) + more for more in wrapped[1:]]
        if index == 0:
            lines.append("-" * min(width, sum(widths) + 2 * len(widths) + last))
    return lines


def write_pdf(report: NightReport, figure: Figure, path: Path) -> Path:
    """``path`` as a PDF: header, indices and summary; the overview figure; hours and alerts."""
    header, indices, events, hourly, alerts = _tables(report)
    with PdfPages(path, metadata={"Title": _title(report), "Creator": "SleepLM Monitor"}) as pdf:
        flow = _PdfFlow(pdf)
        flow.line(_title(report), 14.0, bold=True)
        flow.line("")
        for table in (header, indices, events):
            flow.table(table)
        flow.line("Summary", 10.0, bold=True)
        flow.paragraph(str(report.summary.get("caption", "")))
        flow.end_page()
        pdf.savefig(figure)
        flow.table(hourly)
        if alerts is not None and alerts.rows:
            flow.table(alerts)
        elif alerts is not None:
            flow.paragraph("Alerts: none for this bed.")
        flow.end_page()
    return path
