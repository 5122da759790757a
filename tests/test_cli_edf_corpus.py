"""Every offline command on every file of ``$SLEEPLM_DATA/edf-corpus``: exit 0 with its channels, or one line.

What a lab's engineer sees when pointing ``sleeplm`` at the files other writers produce: ``detect``,
``caption`` and ``report`` on each file either succeed (and say which channels they used) or refuse
with a ``PSGError`` whose message is one line starting with the file's path (the CLI prints it and
exits 2); never another exception, never internal exception text. ``stage`` (the model) runs on the
files that matter for it: a BDF PSG, the annotation-only hypnogram and the GDF.
In-process (typer's runner) so the suite does not pay a Python start per file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from psg.errors import PSGError
from sleeplm.cli import app

_INTERNALS = ("Traceback", "UnboundLocalError", "invalid literal", "IndexError", "KeyError", "edfio")


def _files() -> list[str]:
    from tests.psg.test_edf_corpus import OUTCOMES

    return sorted(OUTCOMES)


def _invoke(*args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.exception


def _assert_refusal(path: Path, exc: BaseException | None) -> str:
    assert isinstance(exc, PSGError), f"{path.name}: {type(exc).__name__}: {exc}"
    message = str(exc)
    assert message.startswith(str(path)) and "\n" not in message
    problem = message[len(str(path)) :]
    assert not any(word in problem for word in _INTERNALS), message
    return message


@pytest.mark.parametrize("name", _files())
@pytest.mark.parametrize("command", ["detect", "caption", "report"])
def test_command_on_corpus_file(edf_corpus: Path, tmp_path: Path, name: str, command: str) -> None:
    path = edf_corpus / name
    extra = {
        "detect": ["--json"],
        "caption": ["--out", str(tmp_path / "c.jsonl")],
        "report": ["--out", str(tmp_path / "report")],
    }[command]
    code, stdout, exc = _invoke(command, str(path), *extra)
    if code != 0:
        _assert_refusal(path, exc)
        return
    if command == "detect":
        assert "slots" in json.loads(stdout)["channels"]
    elif command == "caption":
        last = json.loads((tmp_path / "c.jsonl").read_text().splitlines()[-1])
        assert "channels" in last
    else:
        summary = json.loads((tmp_path / "report" / "summary.json").read_text())
        assert "summary" in summary


def test_stage_reads_a_bdf_psg(edf_corpus: Path) -> None:
    """edfio's BDF copy of Sleep-EDF SC4001's first 5 min: staged (10 epochs), its channels reported."""
    code, stdout, exc = _invoke("stage", str(edf_corpus / "edfio__short_psg.bdf"), "--json")
    assert code == 0, exc
    result = json.loads(stdout)
    assert len(result["stages"]) == 10 and result["channels"]["slots"]["EEG C3-A2"]["file_label"] == "EEG Fpz-Cz"


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("edfio__SC4001EC-Hypnogram.bdf", "annotation-only file: no signals to analyse"),
        ("mnetd__test_1ch.gdf", "GDF file: not supported"),
        ("mne__test.edf", "recording lasts 6.0 s, shorter than one 30-s epoch"),
    ],
)
def test_stage_refusals(edf_corpus: Path, name: str, fragment: str) -> None:
    path = edf_corpus / name
    code, _, exc = _invoke("stage", str(path), "--json")
    assert code != 0 and fragment in _assert_refusal(path, exc)
