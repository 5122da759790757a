"""Reading what the live path stored, straight from the SQLite file (independent of the API)."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path

from services.settings import Settings


def sqlite_path(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///"))


def stored_epochs(settings: Settings) -> dict[str, list[int]]:
    """bed id -> the stored epoch indices (every row, in insertion order)."""
    path = sqlite_path(settings)
    if not path.exists():
        return {}
    with sqlite3.connect(path, timeout=5) as db:
        try:
            rows = db.execute("SELECT bed_id, epoch FROM epochs ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # the store has not run its migrations yet
            return {}
    out: dict[str, list[int]] = defaultdict(list)
    for bed, epoch in rows:
        out[bed].append(epoch)
    return dict(out)


def stored_rows(settings: Settings) -> list[dict]:
    """Every stored epoch row with its JSON columns decoded."""
    with sqlite3.connect(sqlite_path(settings), timeout=5) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM epochs ORDER BY bed_id, epoch")]
    for row in rows:
        for key in ("captions", "quality", "features"):
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
    return rows


def complete(settings: Settings, beds: int, epochs: int) -> bool:
    """True once ``beds`` beds each have at least ``epochs`` stored epochs."""
    found = stored_epochs(settings)
    return len(found) >= beds and all(len(v) >= epochs for v in found.values())
