"""The schema comes from the packaged Alembic migrations, matches the models, and upgrading is idempotent: on
SQLite and on PostgreSQL (``db_url`` is either; see ``tests.store.backends``), from empty and from the
previous revision with data in it."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select

from store import Store, upgrade
from store.engine import make_engine, write_connection
from store.migrate import alembic_config, current_revision, head_revision
from store.models import Base, EpochRow, RecordingRow
from store.records import caption_row


def test_upgrade_creates_the_schema_of_the_models(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == head_revision() == "0003"
        tables = set(inspect(engine).get_table_names())
        assert {
            "recordings",
            "epochs",
            "device_events",
            "alerts",
            "alert_events",
            "audit_log",
            "api_tokens",
            "watch_rules",
            "bed_thresholds",
            "waveforms",
            "embeddings",
            "stage_measurements",
            "alembic_version",
        } <= tables
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        uniques = inspect(engine).get_unique_constraints("epochs")
        assert [u["column_names"] for u in uniques] == [["bed_id", "recording_id", "epoch"]]
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            else:  # ids are 64-bit there; the tables are in the test's own schema
                assert inspect(engine).get_columns("epochs")[0]["type"].python_type is int
                assert (
                    connection.exec_driver_sql(
                        "SELECT data_type FROM information_schema.columns WHERE "
                        "table_schema = current_schema() AND table_name = 'epochs' "
                        "AND column_name = 'id'"
                    ).scalar()
                    == "bigint"
                )
    finally:
        engine.dispose()


def _migrate(engine, action, revision: str) -> None:  # noqa: ANN001 - alembic's command.upgrade / downgrade
    config = alembic_config()
    with write_connection(engine) as connection:
        config.attributes["connection"] = connection
        action(config, revision)


def test_upgrade_from_the_previous_revision_keeps_its_data(db_url: str, record) -> None:
    """A database made by the previous release (0001: epochs, no nurse workflow) gains the new tables and
    keeps every epoch; downgrading and upgrading again round-trips."""
    upgrade(db_url, "0001")
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == "0001"
        assert "alerts" not in inspect(engine).get_table_names()
        rows = [caption_row(record(e)) for e in range(3)]
        with write_connection(engine) as connection:  # written the way 0001's store wrote them
            connection.execute(
                RecordingRow.__table__.insert(),
                [{"bed_id": "bed-1", "recording_id": "rec-1", "started_at": 1_700_000_000.0, "first_seen_at": 1.0}],
            )
            connection.execute(
                EpochRow.__table__.insert(), [{**row, "stored_at": 2.0, "latency_s": 0.5} for row in rows]
            )
    finally:
        engine.dispose()
    with Store(db_url) as store:  # opening migrates to head
        assert current_revision(store.engine) == head_revision()
        assert store.count_epochs("bed-1") == 3
        assert store.hypnogram("bed-1")["stages"] == ["N2", "N2", "N2"]
        assert [row["epoch"] for row in store.insert_epochs([record(2), record(3)])] == [3]
        store.apply_alert_events([])  # the new tables answer
        assert store.alerts() == []
        with store.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        _migrate(store.engine, command.downgrade, "0001")
        assert current_revision(store.engine) == "0001"
        assert "alerts" not in inspect(store.engine).get_table_names()
        _migrate(store.engine, command.upgrade, "head")
        assert current_revision(store.engine) == head_revision()
        with store.engine.connect() as connection:  # ids keep growing (PostgreSQL's may skip: a conflict uses one)
            ids = connection.scalars(select(EpochRow.id).order_by(EpochRow.epoch)).all()
        assert len(ids) == 4 and ids == sorted(set(ids))


def test_upgrade_twice_is_a_no_op_and_keeps_data(db_url: str, record) -> None:
    with Store(db_url) as store:
        store.insert_epochs([record(0), record(1)])
    upgrade(db_url)
    with Store(db_url) as store:
        assert store.count_epochs() == 2
        assert current_revision(store.engine) == "0003"


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


def test_the_shipped_alembic_ini_works_with_the_alembic_cli(db_url: str) -> None:
    ini = Path(__file__).resolve().parents[2] / "store" / "alembic.ini"
    url = db_url
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ini), "-x", f"url={url}", "upgrade", "head"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    engine = make_engine(url)
    try:
        assert current_revision(engine) == "0003"
        assert "epochs" in inspect(engine).get_table_names()
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
