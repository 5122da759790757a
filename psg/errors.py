"""Exceptions the kernel raises for bad input, each naming the file or field and what was expected."""

from __future__ import annotations

from pathlib import Path


class PSGError(ValueError):
    """Base class for every input problem the ``psg`` kernel reports to users."""


class FormatError(PSGError):
    """A file could not be read: it names the file, the problem and what was expected."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class MessageError(PSGError):
    """A message failed to decode or validate; the text names the field and what was expected."""
