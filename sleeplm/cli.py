"""The ``sleeplm`` command: one entry point whose subcommands come from each package.

Errors a user can fix (a malformed file, a missing channel, a bad option) are printed as one line
naming the file or field and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer

from psg.errors import PSGError
from sleeplm import live_commands, model_commands, psg_commands

app = typer.Typer(
    name="sleeplm",
    help="SleepLM Monitor: live PSG monitoring (up, broker, beds, bridge, worker, api) and offline tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
psg_commands.register(app)
live_commands.register(app)
model_commands.register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except PSGError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
