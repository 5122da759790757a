"""The schema comes from the packaged Alembic migrations, matches the models, and upgrading is idempotent."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from store import Store, upgrade
from store.engine import make_engine
from store.migrate import current_revision, head_revision
from store.models import Base


def test_upgrade_creates_the_schema_of_the_models(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision() == "0002"
        tables = set(inspect(engine).get_table_names())
        assert {"recordings", "epochs", "device_events", "alerts", "alert_events", "audit_log", "api_tokens",
                "watch_rules", "bed_thresholds", "waveforms", "embeddings", "alembic_version"} <= tables
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        uniques = inspect(engine).get_unique_constraints("epochs")
        assert [u["column_names"] for u in uniques] == [["bed_id", "recording_id", "epoch"]]
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_no_op_and_keeps_data(db_url: str, record) -> None:
    with Store(db_url) as store:
        store.insert_epochs([record(0), record(1)])
    upgrade(db_url)
    with Store(db_url) as store:
        assert store.count_epochs() == 2
        assert current_revision(store.engine) == "0002"


def test_processes_opening_a_fresh_database_at_once_migrate_it_once(db_url: str) -> None:
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            Store(db_url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_the_shipped_alembic_ini_works_with_the_alembic_cli(tmp_path: Path) -> None:
    ini = Path(__file__).resolve().parents[2] / "store" / "alembic.ini"
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), "-x", f"url={url}", "upgrade", "head"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    engine = make_engine(url)
    try:
        assert current_revision(engine) == "0002"
    finally:
        engine.dispose()


def test_the_migration_renders_for_postgresql() -> None:
    """PostgreSQL by URL: the same migration as DDL (offline mode needs no server), ids as BIGSERIAL."""
    ini = Path(__file__).resolve().parents[2] / "store" / "alembic.ini"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(ini),
            "-x",
            "url=postgresql://u@localhost/sleeplm",
            "upgrade",
            "head",
            "--sql",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "id BIGSERIAL NOT NULL" in done.stdout
    assert "CONSTRAINT uq_epochs_bed_recording_epoch UNIQUE (bed_id, recording_id, epoch)" in done.stdout
    assert "captions JSON NOT NULL" in done.stdout and "start_time DOUBLE PRECISION NOT NULL" in done.stdout
