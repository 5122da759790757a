"""Anything a user can type gets exit 2 and one line naming the problem, never a traceback (issue 14).

Every command family meets bad paths (missing, empty, a text file, a folder), outputs that cannot be
written (an existing file where a folder is wanted, a folder where a file is wanted), wrong types and
out-of-range values. The real entry point (``sleeplm.cli.main``) runs in-process with ``sys.argv`` set
(a live command that rewires the process's stderr runs as its own process),
so what is checked is exactly what a terminal shows: status 2 and one ``error:`` line (ours) or
click's one ``Error:`` line after its usage hint; no ``Traceback``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from psg.formats import write_edf
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline
from tests.cli_runner import run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad-input")
    night = root / "night.edf"
    write_edf(simulate(synthetic_timeline(hours=0.05, seed=3, ahi=10.0), seed=3), night)
    (root / "empty.edf").write_bytes(b"")
    (root / "notes.edf").write_text("a technician's notes, not an EDF\n" * 20)
    (root / "exists.txt").write_text("already here\n")
    (root / "empty.toml").write_text("")
    (root / "folder").mkdir()
    return {
        "night": night,
        "empty": root / "empty.edf",
        "text": root / "notes.edf",
        "exists": root / "exists.txt",
        "folder": root / "folder",
        "missing": root / "nope.edf",
        "toml": root / "empty.toml",
        "root": root,
    }


#: (case id, argv with {placeholders} for ``files``, a fragment the error line must hold)
CASES: list[tuple[str, list[str], str]] = [
    ("simulate missing timeline", ["simulate", "{missing}", "--out", "{root}/x.edf"], "nope.edf"),
    ("simulate empty timeline", ["simulate", "{empty}", "--out", "{root}/x.edf"], "empty.edf"),
    ("simulate seed type", ["simulate", "{night}", "--out", "{root}/x.edf", "--seed", "abc"], "'--seed'"),
    ("caption missing night", ["caption", "{missing}", "--out", "{root}/c.jsonl"], "nope.edf"),
    ("caption empty night", ["caption", "{empty}", "--out", "{root}/c.jsonl"], "empty file"),
    ("caption text night", ["caption", "{text}", "--out", "{root}/c.jsonl"], "not an EDF or BDF file"),
    ("caption folder night", ["caption", "{folder}", "--out", "{root}/c.jsonl"], "folder"),
    ("caption out is a folder", ["caption", "{night}", "--out", "{folder}"], "folder"),
    ("caption bad style", ["caption", "{night}", "--out", "{root}/c.jsonl", "--style", "poetic"], "canonical"),
    (
        "caption missing channel map",
        ["caption", "{night}", "--out", "{root}/c.jsonl", "--channel-map", "{root}/map.toml"],
        "map.toml",
    ),
    ("caption malformed channel", ["caption", "{night}", "--out", "{root}/c.jsonl", "--channel", "C3"], "LABEL=SLOT"),
    ("detect text night", ["detect", "{text}", "--json"], "notes.edf"),
    ("detect empty channel map", ["detect", "{night}", "--channel-map", "{toml}"], "empty.toml"),
    ("detect missing scoring", ["detect", "{night}", "--scoring", "{missing}"], "nope.edf"),
    ("detect scoring is text", ["detect", "{night}", "--scoring", "{text}"], "notes.edf"),
    ("report out is a file", ["report", "{night}", "--out", "{exists}"], "exists.txt"),
    ("report bad format", ["report", "{night}", "--out", "{root}/r", "--format", "docx"], "docx"),
    ("report no night no bed", ["report", "--out", "{root}/r"], "NIGHT"),
    (
        "report unknown bed",
        ["report", "--bed", "bed-99", "--out", "{root}/r", "--data-dir", "{folder}"],
        "no such database",
    ),
    ("stage missing night", ["stage", "{missing}"], "nope.edf"),
    ("stage text night", ["stage", "{text}", "--json"], "notes.edf"),
    ("stage missing checkpoint", ["stage", "{night}", "--checkpoint", "{root}/none.pt"], "none.pt"),
    ("stage missing lab head", ["stage", "{night}", "--lab-head", "{root}/none.npz"], "none.npz"),
    ("stage bad backend", ["stage", "{night}", "--backend", "gpu"], "gpu"),
    ("describe bad epochs", ["describe", "{night}", "--epochs", "x:y"], "x:y"),
    ("query top type", ["query", "{night}", "apnea", "--top", "many"], "'--top'"),
    ("probe missing night", ["probe", "{missing}"], "nope.edf"),
    ("adapt out is a folder", ["adapt", "{night}", "--out", "{folder}"], "folder"),
    ("export missing checkpoint", ["export", "--checkpoint", "{root}/none.pt"], "none.pt"),
    ("bench model batch type", ["bench", "model", "--batch", "lots"], "'--batch'"),
    ("train-stage nights type", ["train-stage", "--nights", "ten"], "'--nights'"),
    ("up speed out of range", ["up", "--speed", "1000"], "less than or equal to 100"),
    ("token revoke id type", ["token", "revoke", "first"], "TOKEN_ID"),
]


@pytest.mark.parametrize(("argv", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_exit_2_and_one_line(
    files: dict[str, Path],
    argv: list[str],
    fragment: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.lstrip("│ ").lower().startswith("error")]
    assert len(errors) == 1, err
    problem = err[err.lower().index("error") :]
    assert fragment.lower() in " ".join(problem.split()).lower(), err


def test_live_command_bad_input_in_its_own_process(files: dict[str, Path]) -> None:
    """``beds`` routes liblsl's native stderr at start (``plumbing.logs``), so it runs as its own process."""
    result = subprocess.run(
        [sys.executable, "-m", "sleeplm", "beds", "--source", str(files["missing"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(errors) == 1 and "nope.edf" in errors[0]
