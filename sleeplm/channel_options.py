"""``--channel LABEL=SLOT`` and ``--channel-map FILE.toml``: the offline commands' channel overrides.

Every offline command reads its EDF through ``psg.channels`` (channel recognition); these options let a
lab fix what the table gets wrong, and ``report_channels`` prints which file channel feeds each slot on
stderr, so ``--json`` on stdout stays parseable.
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
    typer.Option("--channel", help="Map a file channel to a montage slot, LABEL=SLOT (repeatable), "
                 "e.g. --channel 'EEG2=EEG C4-A1'. Wins over the recognition table and --channel-map."),
]
ChannelMapOpt = Annotated[
    Path | None,
    typer.Option("--channel-map", help="The lab's channel map (TOML, [channels.\"LABEL\"] montage = \"SLOT\"; "
                 "the bridge's format); wins over the recognition table."),
]


def channel_args(channel: list[str] | None, channel_map: Path | None) -> tuple[dict[str, str], ChannelMapFile | None]:
    """(label -> slot overrides, the lab map or None) from the two options; ``PSGError`` on bad input."""
    return parse_overrides(channel), load_map_file(channel_map) if channel_map else None


def report_channels(report: ChannelReport | None) -> None:
    """The channel report's one-paragraph summary on stderr."""
    if report is not None:
        typer.echo(report.summary(), err=True)


def read_night_channels(
    night: Path, channel: list[str] | None, channel_map: Path | None,
) -> tuple[Recording, ChannelReport]:
    """The EDF ``night`` on the montage (``psg.formats.read_mapped_edf``), its report printed on stderr."""
    from psg.formats import read_mapped_edf

    recording, report = read_mapped_edf(night, *channel_args(channel, channel_map))
    report_channels(report)
    return recording, report
