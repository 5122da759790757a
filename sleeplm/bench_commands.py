"""``sleeplm bench``: ``bench model`` measures SleepLM inference, ``bench stream`` the whole live path."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from psg.errors import PSGError
from sleeplm.jsonio import dumps
from sleeplm.model_options import BackendOpt, CheckpointOpt, JsonOpt, check_backend, needs_torch


def bench_model_cmd(
    batch: Annotated[int, typer.Option(help="Epochs per inference call.")] = 256,
    seconds: Annotated[float, typer.Option(help="How long to measure.")] = 10.0,
    checkpoint: CheckpointOpt = None,
    backend: BackendOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Measure model throughput (embedding + zero-shot stage + caption, epochs/s) on this machine."""
    check_backend(backend)
    if batch < 1 or seconds <= 0:
        raise PSGError(f"--batch must be >= 1 and --seconds > 0, got {batch} and {seconds}")
    needs_torch("bench model")
    from model_runtime.evaluation.bench import bench_model

    result = bench_model(checkpoint=checkpoint, backend=backend, batch=batch, seconds=seconds, progress=True)
    if as_json:
        typer.echo(dumps(result))
        return
    for key, value in result.items():
        typer.echo(f"{key}: {value}")


def bench_stream_cmd(
    beds: Annotated[int, typer.Option(min=1, max=5000, help="Beds in all (most generated, some over LSL).")] = 100,
    seconds: Annotated[float, typer.Option(min=30, help="How long the beds stream (device = wall time).")] = 180.0,
    workers: Annotated[int, typer.Option(min=1, max=32, help="Worker processes sharing the partitions.")] = 2,
    partitions: Annotated[
        int | None, typer.Option(min=1, max=256, help="Partitions per topic; default: $SLEEPLM_PARTITIONS, else 8.")
    ] = None,
    lsl_beds: Annotated[int, typer.Option(min=0, help="Beds streamed through real LSL and the bridge.")] = 2,
    runtime: Annotated[
        str | None, typer.Option(help="sleeplm or rules; default: $SLEEPLM_RUNTIME, else as the workers resolve it.")
    ] = None,
    speed: Annotated[
        float,
        typer.Option(
            min=1.0,
            max=100.0,
            help="Device-clock speed (the soak: 20 plays 8 h in "
            "24 min); latency is then measured from each epoch's arrival.",
        ),
    ] = 1.0,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Keep the run's store and logs here; default: $SLEEPLM_DATA_DIR, else a new temporary folder."
        ),
    ] = None,
    night_hours: Annotated[
        float | None,
        typer.Option(min=0.1, max=24.0, help="Hours of night rendered per generated bed; default: what the run needs."),
    ] = None,
    from_hour: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Hour of the night the generated beds start at (the soak in pieces: --night-hours 8 "
            "--from-hour 3.3); the LSL beds start at 0.",
        ),
    ] = 0.0,
    as_json: JsonOpt = False,
) -> None:
    """Run the real stack under N beds at device rates; latency, lost/duplicate epochs, CPU, memory (RSS growth
    after warm-up: the soak)."""
    from operations.bench_stream import BenchOptions, main_json, run_bench
    from plumbing.settings import from_environment

    # flag > environment / .env > this benchmark's own defaults (8 partitions, a fresh temporary data dir)
    partitions = partitions or from_environment("partitions") or 8
    runtime = runtime or from_environment("runtime")
    data_dir = data_dir or from_environment("data_dir")
    result = run_bench(
        BenchOptions(
            beds=beds,
            seconds=seconds,
            workers=workers,
            partitions=partitions,
            lsl_beds=lsl_beds,
            runtime=runtime,
            data_dir=data_dir,
            speed=speed,
            night_hours=night_hours,
            from_hour=from_hour,
        )
    )
    if as_json:
        typer.echo(main_json(result))
        return
    for key, value in result.to_dict().items():
        typer.echo(f"{key:>18}: {value}")


def register(app: typer.Typer) -> None:
    """Attach the ``bench`` group to the ``sleeplm`` app."""
    bench = typer.Typer(
        help="Benchmarks: `bench model` measures SleepLM inference, `bench stream` the whole live path.",
        no_args_is_help=True,
    )
    bench.command("model")(bench_model_cmd)
    bench.command("stream")(bench_stream_cmd)
    app.add_typer(bench, name="bench")
