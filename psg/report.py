"""Night report: the summary a sleep physician reads first, and the picture they would rather see.

``write_report`` captions the night (which also stages it when the file carries no scoring), runs the
rule detectors, and writes ``summary.json`` (indices, counts of scored and detected events, the summary
caption) and ``night.png``: hypnogram, respiratory events (scored above, detected below), SpO2 and
heart rate on one time axis, the standard layout of a PSG overview page. ``fmt="html"`` or ``"pdf"``
adds the whole report as one document (``psg.report_document``). ``write_night_files`` writes the same
files from a ``NightReport`` made elsewhere (a bed of the live store, ``sleeplm.bed_report``).

``scored_night_report`` reports a scoring file with no signals (a Sleep-EDF ``*-Hypnogram.edf``, a scoring
export, a CPAP event file): the scorer's stages and events are the night, as a bed's stored stages and
events are (``sleeplm.bed_report``), so the same ``night_summary`` gives the indices. What the scoring
cannot tell is None with its reason under ``not_recorded``, never a reassuring 0: oximetry (no SpO2
signal), and the AHI or ODI when the scorer scored no respiratory events or desaturations (a hypnogram
says nothing about breathing). A file with events but no stages (CPAP) has no sleep time, so no AHI;
its events per hour of recording are the REI (``rei``), as a home sleep test reports them.
"""

from __future__ import annotations

import io
import json
import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import matplotlib

matplotlib.use("Agg")  # reports are written by servers and CI: never ask for a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from psg.errors import PSGError  # noqa: E402
from psg.montage import HR, SPO2  # noqa: E402
from psg.recording import Recording  # noqa: E402
from psg.report_document import NightReport, shade_gaps, write_html, write_pdf  # noqa: E402
from psg.summary import (  # noqa: E402
    REPORT_DECIMALS,
    SLEEP_STAGES,
    Summary,
    night_summary,
    summary_caption,
    summary_not_recorded,
)
from psg.timeline import EPOCH_S, RESPIRATORY_EVENT_TYPES, Event, Stage  # noqa: E402

if TYPE_CHECKING:  # the captions load scipy.signal, which a report of a bed from the store never needs
    from psg.captions.night import StageEstimate

#: Hypnogram rows top to bottom, as sleep labs draw them (REM just under wake, deep sleep at the bottom).
_HYPNO_ROWS = {Stage.W: 4, Stage.R: 3, Stage.N1: 2, Stage.N2: 1, Stage.N3: 0}
_EVENT_COLOURS = {
    "obstructive_apnea": "#d62728",
    "central_apnea": "#1f77b4",
    "mixed_apnea": "#9467bd",
    "apnea": "#8c564b",
    "hypopnea": "#ff7f0e",
    "desaturation": "#2ca02c",
}
#: What ``--format`` takes: png = summary.json and night.png; html and pdf add report.html / report.pdf.
ReportFormat = Literal["png", "html", "pdf"]
REPORT_FORMATS: tuple[str, ...] = ("png", "html", "pdf")
#: A scoring file's index groups and the event types whose presence shows the scorer scored them.
_SCORED_GROUPS: dict[str, frozenset[str]] = {
    "respiratory": frozenset(RESPIRATORY_EVENT_TYPES),
    "spo2": frozenset({"desaturation"}),
}
#: Why an index of a scoring file is None when its events were not scored (replacing "... not recorded").
_NOT_SCORED: dict[str, str] = {
    **dict.fromkeys(("apnea_count", "hypopnea_count", "ahi"), "no respiratory events in the scoring"),
    **dict.fromkeys(("desaturation_count", "odi"), "no desaturations in the scoring"),
}


def write_report(
    recording: Recording,
    out_dir: str | Path,
    fmt: ReportFormat = "png",
    channels: dict[str, Any] | None = None,
    scoring: str | None = None,
    estimate: StageEstimate | None = None,
) -> dict[str, Path]:
    """Write the report of ``recording`` into ``out_dir`` (see ``write_night_files``); return the paths.

    ``channels``: the channel report's JSON (``psg.channels.ChannelReport.to_json``), kept in summary.json;
    ``scoring``: the separate scoring file the truth came from, if any; ``estimate``: the stages of a night
    without scored stages (``psg.captions.night.StageEstimate``; None: the rule stager's). An
    annotation-only recording is reported as the scored night (``scored_night_report``).
    """
    fmt = check_format(fmt)
    report = scored_night_report(recording) if recording.is_annotation_only else night_report(recording, estimate)
    return write_night_files(report, out_dir, fmt, channels=channels, scoring=scoring)


def scored_night_report(recording: Recording) -> NightReport:
    """The night an annotation-only file scores: its stages and events, indices from them (module docstring)."""
    timeline = recording.timeline
    if timeline is None:
        raise PSGError(f"{recording.record_id}: no stage or event annotations to report")
    events = list(timeline.events)
    epoch_s = timeline.epoch_s
    # the night ends with its last scored epoch or event: a trailing '?' run (Sleep-EDF's hypnograms end
    # with hours of it, past the PSG's end) is no time in bed
    scored = np.flatnonzero(timeline.stages != Stage.UNSCORED)
    ends = [math.ceil(round(e.end_s / epoch_s, 6)) for e in events]
    n = max(int(scored[-1]) + 1 if scored.size else 0, *ends, 0)
    stages = np.full(n, int(Stage.UNSCORED), dtype=np.int8)
    stages[: min(n, timeline.n_epochs)] = timeline.stages[:n]
    summary = scored_summary(stages, events, epoch_s)
    return NightReport(
        record_id=recording.record_id,
        recording_id=None,
        start_time=recording.start_time or timeline.start_time,
        duration_s=stages.size * epoch_s,
        epoch_s=epoch_s,
        stages=stages,
        summary=summary,
        scored=events,
        detected=[],
        spo2=None,
        hr=None,
        captions=[""] * stages.size,
    )


def scored_summary(stages: np.ndarray, events: list[Event], epoch_s: float) -> Summary:
    """``night_summary`` of a scorer's stages and events with no signal: what they cannot tell is None."""
    types = {e.type for e in events}
    scored_groups = {group for group, needed in _SCORED_GROUPS.items() if types & needed}
    summary = night_summary(
        stages, events, None, epoch_s=epoch_s, arousals_scored="arousal" in types, groups=scored_groups
    )
    gone = dict(summary_not_recorded(summary))
    for key, reason in _NOT_SCORED.items():
        if key in gone:
            gone[key] = reason
    gone.update(dict.fromkeys(("spo2_mean", "spo2_min", "t90_min", "t90_pct_tst"), "no SpO2 signal in a scoring file"))
    summary["not_recorded"] = gone
    caption = summary_caption(summary)
    if not np.any(np.isin(stages, [int(s) for s in SLEEP_STAGES])) and summary["ahi"] is None:
        respiratory = sum(e.type in RESPIRATORY_EVENT_TYPES for e in events)
        hours = stages.size * epoch_s / 3600.0
        summary["rei"] = round(respiratory / hours, REPORT_DECIMALS) if hours > 0 else None
        if summary["rei"] is not None:
            caption += (
                f" No sleep was scored, so no AHI: {respiratory} respiratory events in {hours:.1f} h of "
                f"recording (REI {summary['rei']:.1f}/h)."
            )
    summary.update(caption=caption, stage_source="scored", event_source="annotation")
    return summary


def night_report(recording: Recording, estimate: StageEstimate | None = None) -> NightReport:
    """Caption, detect and summarise a recorded night into the report's plain values (``estimate``: see
    ``write_report``)."""
    # imported here: captions and detectors load scipy.signal (seconds), which a report
    # of a bed from the store (``sleeplm.bed_report``) never needs
    from psg.captions import caption_night
    from psg.captions.availability import recorded_events
    from psg.detectors import detect_events
    from psg.detectors.base import to_events

    detected = detect_events(recording)
    epochs, summary = caption_night(recording, style="canonical", progress=True, detected=detected, estimate=estimate)
    timeline = recording.timeline
    return NightReport(
        record_id=recording.record_id,
        recording_id=None,
        start_time=recording.start_time,
        duration_s=recording.duration_s,
        epoch_s=EPOCH_S,
        stages=np.array([Stage.from_label(e["stage"]) for e in epochs], dtype=np.int8),
        summary=summary,
        # events on channels the file does not carry are left out, scored or detected (psg.captions.availability)
        scored=recorded_events(timeline.events, recording) if timeline is not None else None,
        detected=recorded_events(to_events(detected), recording),
        spo2=recording.get(SPO2),
        hr=recording.get(HR),
        captions=[e["captions"]["stage_event"] for e in epochs],
    )


def check_format(fmt: str) -> ReportFormat:
    """``fmt`` if it is a report format; ``PSGError`` listing them otherwise (callers check before working)."""
    if fmt not in REPORT_FORMATS:
        raise PSGError(f"report format {fmt!r}: expected one of {', '.join(REPORT_FORMATS)}")
    return cast(ReportFormat, fmt)


def write_night_files(
    report: NightReport,
    out_dir: str | Path,
    fmt: ReportFormat = "png",
    channels: dict[str, Any] | None = None,
    scoring: str | None = None,
) -> dict[str, Path]:
    """``summary.json`` and ``night.png`` always, plus ``report.html`` or ``report.pdf`` for those formats.

    ``summary.json`` carries ``channels`` (which file channel feeds each slot; null when unknown, e.g. a bed
    of the store), ``scoring`` (the separate scoring file used as truth, or null) and the summary's
    ``not_recorded`` (indices left None because their channels are missing).
    """
    fmt = check_format(fmt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "record_id": report.record_id,
        "recording_id": report.recording_id,
        "duration_h": round(report.duration_s / 3600.0, 3),
        "stage_source": report.summary.get("stage_source"),
        "summary": report.summary,
        "scored_events": dict(Counter(e.type for e in report.scored or [])),
        "detected_events": dict(Counter(e.type for e in report.detected)),
        "channels": channels,
        "scoring": scoring,
    }
    paths = {"summary": out / "summary.json", "figure": out / "night.png"}
    paths["summary"].write_text(json.dumps(document, indent=2, default=_json_default) + "\n", encoding="utf-8")
    figure = night_figure(report)
    try:
        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=120, metadata={"Software": None})
        paths["figure"].write_bytes(png.getvalue())
        if fmt == "html":
            paths["report"] = write_html(report, png.getvalue(), out / "report.html")
        elif fmt == "pdf":
            paths["report"] = write_pdf(report, figure, out / "report.pdf")
    finally:
        plt.close(figure)
    return paths


def _blank_gaps(data: np.ndarray, t_s: np.ndarray, gaps: list[tuple[float, float]]) -> np.ndarray:
    """``data`` with NaN inside the recording's gaps: the zeros a gap holds are no reading, not a drop to 0."""
    if not gaps:
        return data
    out = data.astype(float, copy=True)
    for start, end in gaps:
        out[(t_s >= start) & (t_s < end)] = np.nan
    return out


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to the report JSON")


def night_figure(report: NightReport) -> Figure:
    """The overview page: hypnogram, respiratory events (scored, detected, desaturations), SpO2 and HR."""
    stages = report.stages
    scored, detected = report.scored or [], report.detected
    fig, axes = plt.subplots(4, 1, figsize=(15, 8), sharex=True, gridspec_kw={"height_ratios": [2.2, 1.2, 1.3, 1.3]})
    hypno_ax, event_ax, spo2_ax, hr_ax = axes
    hours = np.arange(stages.size + 1) * report.epoch_s / 3600.0
    rows = np.array([_HYPNO_ROWS.get(Stage(int(s)), np.nan) for s in stages], dtype=float)
    hypno_ax.step(hours[:-1], rows, where="post", color="black", linewidth=0.9)
    rem = np.where(stages == Stage.R, rows, np.nan)
    hypno_ax.step(hours[:-1], rem, where="post", color="#d62728", linewidth=2.5)
    hypno_ax.set_yticks(list(_HYPNO_ROWS.values()), [s.label for s in _HYPNO_ROWS])
    hypno_ax.set_ylim(-0.5, 4.5)
    hypno_ax.set_title(f"{report.record_id}: hypnogram, respiratory events, SpO2, heart rate")

    for row, events in (
        (2, [e for e in scored if e.type in RESPIRATORY_EVENT_TYPES]),
        (1, [e for e in detected if e.type in RESPIRATORY_EVENT_TYPES]),
        (0, [e for e in detected if e.type == "desaturation"]),
    ):
        for e in events:
            event_ax.broken_barh(
                [(e.onset_s / 3600.0, max(e.duration_s, 10.0) / 3600.0)],
                (row - 0.35, 0.7),
                color=_EVENT_COLOURS.get(e.type, "grey"),
            )
    event_ax.set_yticks([2, 1, 0], ["scored", "detected", "desaturation"])
    event_ax.set_ylim(-0.6, 2.6)
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in _EVENT_COLOURS.values()]
    event_ax.legend(
        handles,
        [k.replace("_", " ") for k in _EVENT_COLOURS],
        loc="upper left",
        bbox_to_anchor=(1.005, 1.0),
        fontsize=8,
        frameon=False,
    )

    for ax, label, signal, unit in ((spo2_ax, SPO2, report.spo2, "%"), (hr_ax, HR, report.hr, "bpm")):
        if signal is None:
            ax.text(0.5, 0.5, f"no {label} channel", transform=ax.transAxes, ha="center")
        else:
            t = np.arange(signal.data.size) / signal.fs / 3600.0
            ax.plot(t, _blank_gaps(signal.data, t * 3600.0, report.gaps), linewidth=0.5, color="#1f77b4")
            valid = signal.data[np.isfinite(signal.data) & (signal.data > 0)]
            if valid.size:  # zoom on the physiological range, not on lead-off zeros
                ax.set_ylim(valid.min() - 2, valid.max() + 2)
        ax.set_ylabel(f"{label} ({unit})")
    shade_gaps(axes, report)
    hr_ax.set_xlabel("hours from recording start")
    hr_ax.set_xlim(0, max(hours[-1], 1e-3))
    fig.tight_layout()
    return fig
