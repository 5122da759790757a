"""``sleeplm ARGS`` through the real entry point, in-process: what a terminal would show, without a Python start."""

from __future__ import annotations

import sys

import pytest

from sleeplm.cli import main


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr (progress bars' carriage returns as line breaks) of ``sleeplm ARGS``."""
    monkeypatch.setattr(sys, "argv", ["sleeplm", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err.replace("\r", "\n")
