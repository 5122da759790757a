"""The house rules, enforced by the suite that CI runs: layer contracts, lint, format, types, module size,
file size.

Each check runs the real tool on the whole tree (the same commands as ``.pre-commit-config.yaml``), so a
rule broken on a branch fails here with the tool's own report. Why each rule exists:
``docs/architecture.md`` ("Layer rules, and why").
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Top-level packages of the product (what the layer contract and mypy cover).
PACKAGES = (
    "psg",
    "plumbing",
    "store",
    "model_runtime",
    "device_bridges",
    "stream_agents",
    "dashboards",
    "operations",
    "sleeplm",
)
#: No product module grows past this: beyond it a module holds more than one job.
MAX_MODULE_LINES = 500
#: No file in the repository is larger: the shipped model files are split to stay under it (the text tower's
#: weights are two ONNX external-data files), and anything bigger belongs outside git.
MAX_FILE_BYTES = 25_000_000


def _tool(name: str) -> str:
    """The console script ``name`` of this interpreter's environment (the dev extra installs them)."""
    found = Path(sys.executable).with_name(name)
    if found.is_file():
        return str(found)
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return path


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_layer_contracts_hold() -> None:
    done = _run(_tool("lint-imports"), "--no-cache")
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_finds_nothing() -> None:
    done = _run(_tool("ruff"), "check", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_code_is_formatted() -> None:
    done = _run(_tool("ruff"), "format", "--check", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_no_type_error() -> None:
    done = _run(_tool("mypy"), *PACKAGES)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr


def test_no_module_is_over_the_size_limit() -> None:
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    too_long = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them by job): {too_long}"


def test_no_tracked_file_is_over_the_file_size_limit() -> None:
    listed = _run("git", "ls-files", "-z")
    if listed.returncode != 0:
        pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
    paths = [ROOT / name for name in listed.stdout.split("\0") if name]
    too_big = {p.relative_to(ROOT).as_posix(): p.stat().st_size for p in paths if p.is_file()}
    too_big = {name: size for name, size in too_big.items() if size > MAX_FILE_BYTES}
    assert not too_big, f"files over {MAX_FILE_BYTES / 1e6:g} MB (split them or keep them out of git): {too_big}"
