"""Settings of every service, from the environment (``SLEEPLM_*``), a ``.env`` file or CLI flags.

One precedence for every command: a flag given on the command line, else the environment variable, else
the ``.env`` file (in the working directory), else the default here. Commands pass only the flags given
(their options default to None) as keyword arguments, which pydantic-settings puts above the environment.

One ``Settings`` class for all parts so that ``sleeplm up`` and a docker-compose deployment configure
the same names: ``SLEEPLM_KAFKA=kafka:9092``, ``SLEEPLM_DB_URL=postgresql+psycopg://...`` and so on.
Defaults are the embedded single-machine setup: loopback only, SQLite under ``./sleeplm-data``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration of the live path; each field is also the env var ``SLEEPLM_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="SLEEPLM_", env_file=".env", extra="ignore")

    kafka: str | None = Field(
        default=None, description="Kafka bootstrap servers (host:port,...); unset: `up` starts a local broker"
    )
    partitions: int = Field(default=4, ge=1, le=1024, description="partitions of each topic (beds are keyed)")
    samples_retention_hours: float = Field(
        default=6.0,
        gt=0,
        le=24 * 30,
        description="how long the broker keeps psg.samples (retention.ms of the topic when it is created)",
    )
    data_dir: Path = Field(default=Path("sleeplm-data"), description="SQLite store, spool, logs, metrics")
    db_url: str | None = Field(default=None, description="SQLAlchemy URL; unset: SQLite file under data_dir")
    api_host: str = Field(default="127.0.0.1", description="API bind address (loopback unless deployed)")
    api_port: int = Field(default=8000, ge=0, le=65535)
    app_id: str = Field(default="sleeplm", description="Faust app id = Kafka consumer group prefix")
    batch_max: int = Field(default=64, ge=1, description="most epochs per inference batch")
    batch_within_s: float = Field(default=0.2, gt=0, description="longest wait to fill an inference batch")
    session_timeout_s: float = Field(default=10.0, gt=0, description="consumer-group session timeout")
    one_record_per_batch: bool = Field(
        default=False,
        description="producers send one record per batch: only for exact end offsets from the embedded Tansu "
        "broker, whose ListOffsets answers the last batch's first offset + 1; costs its CPU (issue 17)",
    )
    spool_memory_chunks: int = Field(default=600, ge=1, description="bridge in-memory spool, chunks")
    spool_disk_mb: float = Field(default=512.0, gt=0, description="bridge on-disk spool bound, MB")
    stale_after_s: float = Field(default=90.0, gt=0, description="a bed with no epoch for this long is stale")
    runtime: str | None = Field(
        default=None,
        description="inference runtime: 'sleeplm' (the model) or 'rules' (measured features only); "
        "unset: sleeplm when the model checkpoint exists, else rules",
    )
    model_backend: Literal["auto", "torch", "onnx"] = Field(
        default="auto", description="SleepLM backend: onnx on CPU when exported, torch otherwise (auto)"
    )
    checkpoint: Path | None = Field(default=None, description="SleepLM checkpoint; unset: the shipped one")
    lab_head: Path | None = Field(
        default=None,
        description="a lab's few-shot stage head (`sleeplm adapt`): stages the live beds with real signals, "
        "as `sleeplm stage --lab-head` stages files; unset: the zero-shot stage head",
    )
    waveform_hz: float = Field(
        default=32.0, ge=0, le=64, description="rate of the last-epoch traces the bed view shows; 0 = none"
    )
    alert_sync_s: float = Field(
        default=2.0, gt=0, le=60, description="how often workers read acknowledgements, rules and thresholds"
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="origins allowed to call the API from a browser (JSON list); empty = same origin only",
    )
    search_preload: bool = Field(
        default=True, description="the API loads the model's text tower at start (the first night search is then quick)"
    )
    max_request_bytes: int = Field(default=64 * 1024, ge=1024, description="largest request body the API accepts")
    feeds_per_token: int = Field(
        default=5, ge=1, le=1000, description="live feeds (/api/stream) one token may hold open"
    )
    feeds_total: int = Field(default=50, ge=1, le=10000, description="live feeds the API serves at once, all tokens")
    api_header_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="the API closes a connection whose request headers take longer"
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="worker and bridge serve their own /metrics here (scaled-out deployments); unset: none",
    )
    metrics_host: str = Field(default="127.0.0.1", description="bind address of that /metrics")

    @field_validator("kafka", "runtime")
    @classmethod
    def _no_blank(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("checkpoint", "lab_head", mode="before")
    @classmethod
    def _no_blank_path(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def runtime_options(self) -> dict[str, object]:
        """Keyword options for ``load_runtime`` (the model runtime takes them, the rules runtime ignores them)."""
        return {"checkpoint": self.checkpoint, "backend": self.model_backend, "lab_head": self.lab_head}

    @property
    def database_url(self) -> str:
        """``db_url`` or the default SQLite file ``<data_dir>/sleeplm.db``."""
        return self.db_url or f"sqlite:///{(self.data_dir / 'sleeplm.db').resolve()}"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def metrics_dir(self) -> Path:
        """Where processes of one machine share Prometheus samples (prometheus-client multiprocess mode)."""
        return self.data_dir / "metrics"


def from_environment(name: str) -> Any:
    """Setting ``name`` as the environment (``SLEEPLM_<NAME>``) or ``.env`` gives it; None when neither does
    (for a command whose default differs from ``Settings``'s, e.g. ``bench stream``: flag > environment >
    its own default)."""
    settings = Settings()
    return getattr(settings, name) if name in settings.model_fields_set else None


#: What the parts keep in the data dir (``make_private`` closes these, and no other file a user put there).
DATA_DIR_ENTRIES = (
    "sleeplm.db",
    "sleeplm.db-wal",
    "sleeplm.db-shm",
    "sleeplm.db-journal",
    "admin.token",
    "logs",
    "spool",
    "metrics",
    "faust",
    "lsl",
)


def make_private(data_dir: Path) -> None:
    """Keep the data dir to its owner: what this process and its children create is owner-only (umask 077:
    files 0600, folders 0700), and a data dir left by an earlier run is closed the same way (the dir 0700,
    its ``DATA_DIR_ENTRIES`` lose their group and other bits). It holds the patient data (SQLite database
    and WAL, spool, logs) and ``admin.token``; the threat model names another user on the same server."""
    os.umask(0o077)
    if not data_dir.is_dir():
        return
    _owner_only(str(data_dir))
    for entry in DATA_DIR_ENTRIES:
        top = os.path.join(data_dir, entry)
        if os.path.isfile(top):
            _owner_only(top)
        for folder, _, files in os.walk(top):
            for path in [folder, *(os.path.join(folder, name) for name in files)]:
                _owner_only(path)


def _owner_only(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
        if mode & 0o077 and not os.path.islink(path):
            os.chmod(path, mode & 0o700)
    except OSError:  # another user's file, or gone meanwhile: leave it
        pass
