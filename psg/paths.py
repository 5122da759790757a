"""Where the shared, read-only reference data lives.

The real annotated sleep data is never copied into the repository; code and tests read it through
``SLEEPLM_DATA`` (default ``../shared/data`` relative to the working directory, then relative to the
repository checkout), so a lab can point the same commands at its own copy.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path:
    """Return the configured shared-data folder (it may not exist: callers decide whether to skip)."""
    configured = os.environ.get("SLEEPLM_DATA")
    if configured:
        return Path(configured).expanduser()
    for candidate in (Path.cwd() / ".." / "shared" / "data", _REPO_ROOT / ".." / "shared" / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    return (Path.cwd() / ".." / "shared" / "data").resolve()
