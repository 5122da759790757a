"""Live-path commands: ``up`` (everything on one machine) and its parts ``broker``, ``beds``, ``bridge``,
``worker`` and ``api``, which a scaled-out deployment runs one per container.

Every part reads ``plumbing.settings.Settings``; one precedence everywhere: a flag given on the command
line, else the environment (``SLEEPLM_*``, then a ``.env`` file), else the default. So every flag that
names a setting defaults to None here and ``_settings`` fills in what was not given. Imports are inside the
commands so that the offline commands do not pay for Kafka, Faust and FastAPI.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

_BEDS_HELP = "How many simulated beds to stream over LSL."
_SPEED_HELP = "Device-clock speed: 10 plays 30-s epochs every 3 s of wall time."


def _settings(**overrides: Any) -> Any:
    """The settings of a live command: the flags given (not None) over the environment and ``.env`` over the
    defaults; from here on what the command (and its children) writes is owner-only."""
    from plumbing.settings import Settings, make_private

    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    make_private(settings.data_dir)
    return settings


def _log_to_stderr(lsl: bool = False) -> None:
    """Warnings and errors on stderr, each line with its ISO time (``plumbing.logs``; the launcher sends each
    part's stderr to its log file). ``lsl``: liblsl's own lines too, in the same format (call it before
    liblsl loads)."""
    from plumbing.logs import configure_part_logging, route_native_stderr

    if lsl:
        route_native_stderr()
    configure_part_logging(logging.WARNING)


def _serve_own_metrics(settings: Any) -> None:
    """With SLEEPLM_METRICS_PORT set (compose: each worker its own scrape target), serve this process's
    /metrics; under ``sleeplm up`` the API's /metrics already shows every local process."""
    if settings.metrics_port:
        from plumbing.metrics import serve_metrics

        serve_metrics(settings.metrics_port, settings.metrics_host)


def _stop_event() -> threading.Event:
    """An event set by SIGINT or SIGTERM, for parts that run until stopped."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def up_cmd(
    beds: Annotated[int, typer.Option(min=1, max=1000, help=_BEDS_HELP)] = 4,
    speed: Annotated[float, typer.Option(min=0.1, max=100.0, help=_SPEED_HELP)] = 1.0,
    api_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="API port on 127.0.0.1; default: $SLEEPLM_API_PORT, else 8000.")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="SQLite store, logs, spool and metrics; default: $SLEEPLM_DATA_DIR, else ./sleeplm-data."),
    ] = None,
    broker: Annotated[
        str | None,
        typer.Option(help="Kafka bootstrap servers; default: $SLEEPLM_KAFKA, else an embedded broker on loopback."),
    ] = None,
    hours: Annotated[float, typer.Option(min=0.01, max=24.0, help="Length of each simulated night.")] = 8.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated nights (bed k uses seed + k).")] = 0,
    nights: Annotated[
        int | None,
        typer.Option(
            min=1, help="Nights per bed, then the beds stop streaming (default: a new night whenever one ends)."
        ),
    ] = None,
) -> None:
    """Run the whole live path on this machine: broker, simulated beds, bridge, worker, API.

    Checks first (data dir writable, API port free, broker there) and says in one line what is wrong."""
    from operations.launcher import UpOptions, run_up

    settings = _settings(kafka=broker, api_port=api_port, data_dir=data_dir)
    raise typer.Exit(run_up(settings, UpOptions(beds=beds, speed=speed, hours=hours, seed=seed, nights=nights)))


def broker_cmd(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Loopback port; 0 picks a free one.")] = 9092,
) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, memory only) on 127.0.0.1 and create the topics."""
    from plumbing.broker import start_broker
    from plumbing.topics import ensure_topics

    settings = _settings()
    stop = _stop_event()
    broker = start_broker(port=port or None)
    try:
        created = ensure_topics(
            broker.bootstrap, settings.partitions, samples_retention_hours=settings.samples_retention_hours
        )
        typer.echo(f"broker on {broker.bootstrap} (topics created: {', '.join(created) or 'none'}); Ctrl-C stops it")
        while not stop.wait(1.0):
            if broker.process.poll() is not None:
                raise typer.Exit(1)
    finally:
        broker.stop()


def topics_cmd() -> None:
    """Create the live-path topics on $SLEEPLM_KAFKA with $SLEEPLM_PARTITIONS partitions (existing ones are kept)."""
    from plumbing.topics import ensure_topics

    settings = _settings()
    if not settings.kafka:
        raise typer.BadParameter("set SLEEPLM_KAFKA to the Kafka bootstrap servers")
    created = ensure_topics(
        settings.kafka, settings.partitions, timeout_s=120.0, samples_retention_hours=settings.samples_retention_hours
    )
    typer.echo(f"topics created: {', '.join(created) or 'none (all exist)'}")


def beds_cmd(
    beds: Annotated[int, typer.Option(min=1, max=1000, help=_BEDS_HELP)] = 4,
    speed: Annotated[float, typer.Option(min=0.1, max=100.0, help=_SPEED_HELP)] = 1.0,
    hours: Annotated[float, typer.Option(min=0.01, max=24.0, help="Length of each simulated night.")] = 8.0,
    seed: Annotated[int, typer.Option(help="Seed of the simulated nights (bed k uses seed + k).")] = 0,
    source: Annotated[
        str,
        typer.Option(
            help="'synthetic' (generated nights), a scored timeline file or folder (also looked up under "
            "$SLEEPLM_DATA, e.g. 'ucddb'), or an EDF/EDF+ file to replay."
        ),
    ] = "synthetic",
    nights: Annotated[
        int | None,
        typer.Option(
            min=1, help="Stop after this many nights per bed (default: start a new night when one ends, until stopped)."
        ),
    ] = None,
) -> None:
    """Stream simulated beds (or EDF replays) as LSL outlets until stopped."""
    _log_to_stderr(lsl=True)
    from device_bridges.lsl_config import configure_lsl

    configure_lsl()
    from device_bridges.simulated import run_beds

    run_beds(n=beds, speed=speed, hours=hours, seed=seed, source=source, nights=nights, stop_event=_stop_event())


def bridge_cmd(
    config: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="TOML listing real LSL devices per bed and their channel maps."),
    ] = None,
) -> None:
    """Bridge LSL streams of the beds to Kafka (psg.samples), with reconnect and a bounded spool."""
    _log_to_stderr(lsl=True)
    from device_bridges.lsl_config import configure_lsl

    configure_lsl()
    from device_bridges.bridge import run_bridge

    settings = _settings()
    _serve_own_metrics(settings)
    run_bridge(settings, stop_event=_stop_event(), config_path=config)


def worker_cmd(
    runtime: Annotated[
        str | None,
        typer.Option(
            help="sleeplm or rules; default SLEEPLM_RUNTIME, else sleeplm when the model checkpoint exists, else rules."
        ),
    ] = None,
    loglevel: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
) -> None:
    """Run the stream agents (epocher, inference, sink) as one Faust worker of the consumer group."""
    from stream_agents.worker import run_worker

    settings = _settings(runtime=runtime)
    _serve_own_metrics(settings)
    run_worker(settings, loglevel=loglevel)


def api_cmd(
    host: Annotated[str | None, typer.Option(help="Bind address; default: $SLEEPLM_API_HOST, else 127.0.0.1.")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port; default: $SLEEPLM_API_PORT, else 8000.")
    ] = None,
) -> None:
    """Serve the REST API, the live feed and /metrics with uvicorn."""
    from dashboards.api import run_api

    run_api(_settings(api_host=host, api_port=port))


token_app = typer.Typer(help="API tokens: create (shown once), list, revoke.", no_args_is_help=True)
_DATA_DIR_HELP = (
    "Data folder of the SQLite store; default: $SLEEPLM_DATA_DIR, else ./sleeplm-data (ignored when "
    "SLEEPLM_DB_URL is set)."
)


def _store(data_dir: Path | None) -> Any:
    from store import Store

    return Store(_settings(data_dir=data_dir).database_url)


@token_app.command("create")
def token_create_cmd(
    role: Annotated[
        str,
        typer.Option(
            help="viewer (reads), nurse (also acknowledges alerts) or admin (also manages rules, thresholds, tokens)."
        ),
    ],
    name: Annotated[str, typer.Option(help="Who holds the token (recorded in the audit log), e.g. night-nurse-3.")],
    data_dir: Annotated[Path | None, typer.Option(help=_DATA_DIR_HELP)] = None,
) -> None:
    """Create an API token. It is printed once, alone on the last line; only its hash is stored."""
    with _store(data_dir) as store:
        token, record = store.create_token(name, role, created_by="cli")
    typer.echo(
        f"token {record['id']} for {record['name']!r} ({record['role']}); keep it secret, it is not shown again:"
    )
    typer.echo(token)


@token_app.command("list")
def token_list_cmd(data_dir: Annotated[Path | None, typer.Option(help=_DATA_DIR_HELP)] = None) -> None:
    """List tokens (id, role, name, created, revoked, last used); the secrets themselves are not stored."""
    import datetime as dt

    def when(ts: float | None) -> str:
        return "-" if ts is None else dt.datetime.fromtimestamp(ts).isoformat(timespec="seconds")

    with _store(data_dir) as store:
        for t in store.tokens():
            typer.echo(
                f"{t['id']:>4}  {t['role']:<7} {t['name']:<32} created {when(t['created_at'])}  "
                f"revoked {when(t['revoked_at'])}  last used {when(t['last_used_at'])}"
            )


@token_app.command("revoke")
def token_revoke_cmd(
    token_id: Annotated[int, typer.Argument(metavar="TOKEN_ID", help="The id `sleeplm token list` shows.")],
    data_dir: Annotated[Path | None, typer.Option(help=_DATA_DIR_HELP)] = None,
) -> None:
    """Revoke a token: the API refuses it from now on (within 5 s in a running API)."""
    from psg.errors import PSGError
    from store.access_store import UnknownToken

    with _store(data_dir) as store:
        try:
            record = store.revoke_token(token_id, by="cli")
        except UnknownToken as exc:
            raise PSGError(str(exc)) from None
    typer.echo(f"token {record['id']} ({record['name']!r}) revoked")


def register(app: typer.Typer) -> None:
    app.command("up")(up_cmd)
    app.command("broker")(broker_cmd)
    app.command("topics")(topics_cmd)
    app.command("beds")(beds_cmd)
    app.command("bridge")(bridge_cmd)
    app.command("worker")(worker_cmd)
    app.command("api")(api_cmd)
    app.add_typer(token_app, name="token")
