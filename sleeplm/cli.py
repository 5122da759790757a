"""The ``sleeplm`` command: one entry point whose subcommands come from each package.

Errors a user can fix (a malformed file, a missing channel, a bad option) are printed as one line
naming the file or field and exit with status 2, as does an operating-system error on a path the user
gave (an existing file as an output folder, no permission); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from importlib import metadata

import typer

from psg.errors import PSGError
from sleeplm import bench_commands, live_commands, model_commands, psg_commands, training_commands

app = typer.Typer(
    name="sleeplm",
    help="SleepLM Monitor: live PSG monitoring (up, broker, beds, bridge, worker, api) and offline tools.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain click help: the rich panels print metavars such as <bool> after flags and {night} for arguments
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"sleeplm {_version()}")
        raise typer.Exit()


def _version() -> str:
    try:
        return metadata.version("sleeplm")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """SleepLM Monitor: live PSG monitoring (up, broker, beds, bridge, worker, api) and offline tools."""


psg_commands.register(app)
live_commands.register(app)
model_commands.register(app)
training_commands.register(app)
bench_commands.register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="sleeplm")  # the same usage line from `python -m sleeplm`
    except PSGError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except OSError as exc:  # a path the user gave: an existing file as --out, a folder with no write access
        typer.secho(f"error: {_os_problem(exc)}", err=True, fg=typer.colors.RED)
        sys.exit(2)


def _os_problem(exc: OSError) -> str:
    """One line naming the path and the operating system's reason ("README.md: File exists")."""
    if exc.filename is None:
        return exc.strerror or str(exc)
    return f"{exc.filename}: {exc.strerror or type(exc).__name__}"
