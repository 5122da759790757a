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


def pytest_configure(config: pytest.Config) -> None:
    """Keep LSL discovery on this machine for every test (before any test imports pylsl)."""
    import os

    cfg = Path(__file__).resolve().parents[1] / "device_bridges" / "lsl_api.cfg"
    os.environ.setdefault("LSLAPICFG", str(cfg))
