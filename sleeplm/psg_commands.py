"""Offline PSG commands: ``simulate``, ``caption``, ``detect``, ``report`` and the ``demo`` pipeline.

These are thin: each reads its input with ``psg.formats``, calls one kernel function and writes the
output, so the same behaviour is available from Python without the CLI.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from tqdm import tqdm

from psg.errors import PSGError
from psg.paths import shared_data_dir
from psg.recording import Recording
from sleeplm.channel_options import ChannelMapOpt, ChannelOpt, ScoringOpt, read_night_channels
from sleeplm.jsonio import dumps
from sleeplm.model_options import LabHeadOpt

if TYPE_CHECKING:  # psg.captions loads the caption pipeline (seconds): only the commands that caption import it
    from psg.captions.phrasing import Style

ExistingFile = Annotated[
    Path,
    typer.Argument(
        exists=True,
        dir_okay=False,
        readable=True,
        resolve_path=True,
        metavar="NIGHT",
        help="The night: EDF, EDF+ or BDF.",
    ),
]
_STYLE_HELP = "canonical: fixed phrasing for display; varied: seeded paraphrases (training diversity)"


def simulate_cmd(
    timeline: Annotated[
        Path,
        typer.Argument(
            exists=True,
            metavar="TIMELINE",
            help="A scored night in any supported format "
            "(Dreem JSON, ucddb *_stage.txt, Sleep-EDF hypnogram, slpdb .st/.hea, "
            "Apnea-ECG .npz, EDF+, NSRR XML).",
            resolve_path=True,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="EDF+ file to write.")],
    seed: Annotated[int, typer.Option(help="Per-night seed: subject physiology and all noise.")] = 0,
    artifacts: Annotated[
        bool,
        typer.Option("--artifacts/--no-artifacts", help="Add electrode pops, lead-off, clipping, movement, mains hum."),
    ] = False,
) -> None:
    """Render a scored night into multichannel PSG (EDF+ with the truth as annotations)."""
    from psg.formats import read_timeline, write_edf
    from psg.simulate import simulate

    started = time.perf_counter()
    truth = read_timeline(timeline)
    with tqdm(total=2, desc="simulate", unit="step", leave=False) as bar:
        recording = simulate(truth, seed=seed, artifacts=artifacts)
        bar.update()
        out.parent.mkdir(parents=True, exist_ok=True)
        write_edf(recording, out)
        bar.update()
    assert recording.timeline is not None
    typer.echo(
        f"wrote {out}: {len(recording.signals)} channels, {recording.duration_s / 3600:.2f} h, "
        f"{recording.timeline.n_epochs} epochs, {len(recording.timeline.events)} truth events "
        f"(seed {seed}) in {time.perf_counter() - started:.1f} s"
    )


def caption_cmd(
    night: ExistingFile,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help='JSON-lines file: one line per epoch, then {"summary": ..., "channels": ...}.'
        ),
    ],
    style: Annotated[str, typer.Option(help=_STYLE_HELP)] = "canonical",
    seed: Annotated[int, typer.Option(help="Seed for the varied style.")] = 0,
    channel: ChannelOpt = None,
    channel_map: ChannelMapOpt = None,
    lab_head: LabHeadOpt = None,
    scoring: ScoringOpt = None,
) -> None:
    """Caption every 30-s epoch of a night (features, stage, five captions) and summarise the night.

    The last line holds the summary and the channel report (which file channel feeds each slot); a
    channel group the file does not have is captioned "not recorded", never described. Stages and events
    are the scoring's where the night has one (``--scoring``, or a file beside it); else the stages are the
    shipped model's (through ``--lab-head`` where given), as ``sleeplm stage`` gives them
    (``sleeplm.stage_estimate``), and the events the detectors'.
    """
    from psg.captions import caption_night
    from sleeplm.stage_estimate import model_stage_estimate

    checked_style = _check_style(style)
    recording, report = read_night_channels(night, channel, channel_map, scoring)
    estimate = model_stage_estimate(recording, lab_head)
    records, summary = caption_night(recording, style=checked_style, seed=seed, progress=True, estimate=estimate)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(dumps(record) + "\n")
        fh.write(dumps({"summary": summary, "channels": report.to_json()}) + "\n")
    typer.echo(f"wrote {out}: {len(records)} epochs + summary")


def detect_cmd(
    night: ExistingFile,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"events": [...], "channels": {...}, "agreement": ...} as JSON.')
    ] = False,
    channel: ChannelOpt = None,
    channel_map: ChannelMapOpt = None,
    scoring: ScoringOpt = None,
) -> None:
    """Run the AASM rule detectors (respiratory, oximetry, cardiac, signal quality) on a recording.

    With a separate scoring (``--scoring``, or a file beside the EDF) the detected respiratory events are
    matched against the scored ones (``agreement``; null without one).
    """
    from psg.detectors import detect_events

    recording, report = read_night_channels(night, channel, channel_map, scoring)
    events = detect_events(recording)
    agreement = _respiratory_agreement(events, recording)
    if as_json:
        typer.echo(
            dumps({"events": [e.to_dict() for e in events], "channels": report.to_json(), "agreement": agreement})
        )
        return
    typer.echo(f"{'type':<18} {'onset_s':>9} {'duration_s':>10}  channel")
    for e in events:
        typer.echo(f"{e.type:<18} {e.onset_s:>9.1f} {e.duration_s:>10.1f}  {e.channel or ''}")
    typer.echo(f"{len(events)} events")
    if agreement is not None:
        typer.echo(
            f"respiratory events vs {agreement['scoring']}: {agreement['scored']} scored, "
            f"{agreement['matched']} matched, F1 {agreement['f1']:.3f}"
        )


def _respiratory_agreement(detected: list, recording: Recording) -> dict | None:
    """Detected vs scored respiratory events (``psg.detectors.agreement``) when a separate scoring was given."""
    from psg.detectors.agreement import match_events
    from psg.detectors.base import to_events
    from psg.formats.scoring import SCORING_KEY
    from psg.timeline import RESPIRATORY_EVENT_TYPES

    if SCORING_KEY not in recording.metadata or recording.timeline is None:
        return None
    found = [e for e in to_events(detected) if e.type in RESPIRATORY_EVENT_TYPES]
    truth = [e for e in recording.timeline.events if e.type in RESPIRATORY_EVENT_TYPES]
    match = match_events(found, truth)
    return {
        "scoring": recording.metadata[SCORING_KEY],
        "scored": len(truth),
        "detected": len(found),
        "matched": match.tp,
        "precision": match.precision,
        "recall": match.recall,
        "f1": match.f1,
    }


def report_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for summary.json, night.png and the report.")],
    night: Annotated[
        Path | None,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            resolve_path=True,
            metavar="NIGHT",
            help="EDF/EDF+ night to report (or give --bed).",
        ),
    ] = None,
    bed: Annotated[str | None, typer.Option(help="Report this bed's night from the live store instead.")] = None,
    recording: Annotated[str | None, typer.Option(help="With --bed: this recording (default: the latest).")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="With --bed: the SQLite store's folder when SLEEPLM_DB_URL is unset "
            "(default: SLEEPLM_DATA_DIR, else sleeplm-data)."
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option("--format", help="png: summary.json + night.png; html or pdf: also report.html or report.pdf."),
    ] = "png",
    channel: ChannelOpt = None,
    channel_map: ChannelMapOpt = None,
    lab_head: LabHeadOpt = None,
    scoring: ScoringOpt = None,
) -> None:
    """Write a night report of a file or of a bed of the live store: summary JSON, overview PNG, HTML or PDF.

    NIGHT may be an annotation-only file (a Sleep-EDF hypnogram, a scoring export): the report is then the
    scored night, its indices from the scored stages and events.
    """
    if (night is None) == (bed is None):
        raise PSGError("report: give exactly one of NIGHT (an EDF file) or --bed BED_ID")
    if bed is None and (recording is not None or data_dir is not None):
        raise PSGError("report: --recording and --data-dir apply only with --bed")
    if bed is not None and scoring is not None:
        raise PSGError("report: --scoring applies to a NIGHT file, not to --bed")
    from psg.report import check_format

    report_format = check_format(fmt)  # before any work: a night takes a while to caption
    if out.exists() and not out.is_dir():
        raise PSGError(f"{out}: exists and is not a folder; --out expects a folder for the report's files")
    if bed is not None:
        from sleeplm.bed_report import write_bed_report

        paths = write_bed_report(bed, out, report_format, recording_id=recording, data_dir=data_dir)
    elif night is not None:  # always, by the exactly-one check above
        from psg.formats.scoring import SCORING_KEY
        from psg.report import write_report

        mapped, channels = read_night_channels(night, channel, channel_map, scoring, allow_annotation_only=True)
        if mapped.is_annotation_only:  # the file is the scoring; no channels were read
            typer.echo(f"{night}: annotation-only file: reporting the scored night", err=True)
            paths = write_report(mapped, out, report_format, scoring=str(night))
        else:
            from sleeplm.stage_estimate import model_stage_estimate

            paths = write_report(
                mapped,
                out,
                report_format,
                channels=channels.to_json(),
                scoring=mapped.metadata.get(SCORING_KEY),
                estimate=model_stage_estimate(mapped, lab_head),
            )
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")


def demo_cmd(
    timeline: Annotated[
        Path | None,
        typer.Option(
            help="Scored night to render (default: a shared ucddb night, "
            "or a generated night when the shared data is absent)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo's files.")] = Path("demo"),
    seed: Annotated[int, typer.Option(help="Simulation seed.")] = 0,
) -> None:
    """Simulate -> caption -> detect -> report on one night, end to end, and say where the results are."""
    from psg.formats import write_nsrr_xml

    out.mkdir(parents=True, exist_ok=True)
    if timeline is None:
        timeline = _default_timeline(out, write_nsrr_xml)
    night = out / "night.edf"
    simulate_cmd(timeline, out=night, seed=seed, artifacts=False)
    caption_cmd(night, out=out / "captions.jsonl")
    report_cmd(out=out / "report", night=night)
    typer.echo(f"demo done: open {out / 'report' / 'night.png'} and {out / 'captions.jsonl'}")


def _default_timeline(out: Path, write_nsrr_xml) -> Path:  # noqa: ANN001 - the formats writer
    shared = shared_data_dir() / "ucddb" / "ucddb002_stage.txt"
    if shared.is_file():
        return shared
    from psg.synthetic import synthetic_timeline

    path = out / "synthetic-night.xml"
    write_nsrr_xml(synthetic_timeline(hours=8.0, seed=0, ahi=15.0), path)
    typer.echo(f"shared data not found at {shared_data_dir()}; using a generated night ({path})")
    return path


def _check_style(style: str) -> Style:
    if style == "canonical":
        return "canonical"
    if style == "varied":
        return "varied"
    raise typer.BadParameter(f"--style must be 'canonical' or 'varied', got {style!r}")


def register(app: typer.Typer) -> None:
    """Attach the offline PSG commands to the top-level ``sleeplm`` app."""
    app.command("simulate")(simulate_cmd)
    app.command("caption")(caption_cmd)
    app.command("detect")(detect_cmd)
    app.command("report")(report_cmd)
    app.command("demo")(demo_cmd)
