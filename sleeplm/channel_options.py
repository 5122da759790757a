"""``--channel LABEL=SLOT``, ``--channel-map FILE.toml`` and ``--scoring FILE``: the offline commands' input options.

Every offline command reads its EDF through ``psg.channels`` (channel recognition); the channel options let
a lab fix what the table gets wrong, and ``report_channels`` prints which file channel feeds each slot on
stderr, so ``--json`` on stdout stays parseable. ``--scoring`` gives the night's truth from another file
(``psg.formats.scoring``, which also finds an NSRR XML or Sleep-EDF hypnogram beside the EDF);
``report_scoring`` says on stderr which file that was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from psg.channel_map_format import ChannelMapFile, load_map_file
from psg.channels import ChannelReport, parse_overrides
from psg.recording import Recording

ChannelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--channel",
        help="Map a file channel to a montage slot, LABEL=SLOT (repeatable), "
        "e.g. --channel 'EEG2=EEG C4-A1'. Wins over the recognition table and --channel-map.",
    ),
]
ScoringOpt = Annotated[
    Path | None,
    typer.Option(
        "--scoring",
        help="The night's scoring in another file (EDF+/BDF+ hypnogram, NSRR XML, any format "
        "`simulate` reads), used as truth. Default: <stem>.xml or <stem>-nsrr.xml beside the EDF, else "
        "Sleep-EDF's one <SC4001>*-Hypnogram.edf beside <SC4001>E0-PSG.edf, else the EDF's annotations.",
    ),
]
ChannelMapOpt = Annotated[
    Path | None,
    typer.Option(
        "--channel-map",
        help='The lab\'s channel map (TOML, [channels."LABEL"] montage = "SLOT"; '
        "the bridge's format); wins over the recognition table.",
    ),
]


def channel_args(channel: list[str] | None, channel_map: Path | None) -> tuple[dict[str, str], ChannelMapFile | None]:
    """(label -> slot overrides, the lab map or None) from the two options; ``PSGError`` on bad input."""
    return parse_overrides(channel), load_map_file(channel_map) if channel_map else None


def report_channels(report: ChannelReport | None) -> None:
    """The channel report's one-paragraph summary on stderr."""
    if report is not None:
        typer.echo(report.summary(), err=True)


def report_scoring(recording: Recording) -> None:
    """One stderr line naming the separate scoring file the truth comes from (nothing for the EDF's own)."""
    from psg.formats.scoring import SCORING_FROM_KEY, SCORING_KEY

    if SCORING_KEY in recording.metadata:
        typer.echo(f"scoring: {recording.metadata[SCORING_KEY]} ({recording.metadata[SCORING_FROM_KEY]})", err=True)


def read_night_channels(
    night: Path,
    channel: list[str] | None,
    channel_map: Path | None,
    scoring: Path | None = None,
    allow_annotation_only: bool = False,
) -> tuple[Recording, ChannelReport]:
    """The EDF ``night`` on the montage with its scoring (``psg.formats.read_psg``), reports on stderr.

    An annotation-only file and one shorter than an epoch are refused with the one-line rule every command
    shares; ``allow_annotation_only`` lets the former through (``report`` reports the scored night).
    """
    from psg.formats import read_psg

    recording, report = read_psg(
        night, scoring, *channel_args(channel, channel_map), allow_annotation_only=allow_annotation_only
    )
    if recording.signals:
        report_channels(report)
    report_scoring(recording)
    return recording, report
