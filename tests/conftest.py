"""Shared fixtures: the shared-data folder (tests that need it skip with a reason when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from psg.paths import shared_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = shared_data_dir()
    if not (root / "README.md").is_file():
        pytest.skip(f"shared data not found at {root} (set SLEEPLM_DATA to the folder with the real timelines)")
    return root


def _shared_folder(shared_data: Path, name: str, what: str) -> Path:
    folder = shared_data / name
    if not folder.is_dir():
        pytest.skip(f"{folder} not found ({what})")
    return folder


@pytest.fixture(scope="session")
def real_signals(shared_data: Path) -> Path:
    """``$SLEEPLM_DATA/real-signals``: the only real raw recordings we have."""
    return _shared_folder(shared_data, "real-signals", "the real raw recordings")


@pytest.fixture(scope="session")
def edf_corpus(shared_data: Path) -> Path:
    """``$SLEEPLM_DATA/edf-corpus``: EDF/BDF/GDF files other writers produce."""
    return _shared_folder(shared_data, "edf-corpus", "the EDF/BDF files other writers produce")


def real_file(real_signals: Path, relative: str) -> Path:
    """One file under ``real-signals``; the test skips with its path when it is not there."""
    path = real_signals / relative
    if not path.is_file():
        pytest.skip(f"{path} not in the shared data")
    return path


def pytest_configure(config: pytest.Config) -> None:
    """Keep LSL discovery on this machine for every test (before any test imports pylsl)."""
    import os

    cfg = Path(__file__).resolve().parents[1] / "device_bridges" / "lsl_api.cfg"
    os.environ.setdefault("LSLAPICFG", str(cfg))
