"""Commands that make and measure a checkpoint: ``train``, ``train-stage``, ``export``, ``eval``, ``bank``.

They need the ``train`` extra (torch); each imports it inside the command, so ``sleeplm --help`` and the
serving commands stay fast and torch-free. Bad input raises ``PSGError`` (one line, exit 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from psg.errors import PSGError
from sleeplm.jsonio import dumps
from sleeplm.model_options import CheckpointOpt, JsonOpt, check_backend, needs_torch, needs_train_extra


def train_cmd(
    config: Annotated[str, typer.Option(help="Model size: small (CPU serving) or base (GPU).")] = "small",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "--checkpoint",
            help="Checkpoint to write (default: the shipped path, model_runtime/checkpoints/sleeplm-small.pt).",
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Optimiser steps (default: TrainOptions.steps).")] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Shared reference data with the scored timelines (default: $SLEEPLM_DATA or ../shared/data)."
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="Corpus cache, reused across runs (default: <SLEEPLM_DATA_DIR or ./sleeplm-data>/corpus)."),
    ] = None,
    psg: Annotated[
        Path | None,
        typer.Option(help="Folder of real scored EDF/EDF+ nights (annotations or NSRR XML beside them) to add."),
    ] = None,
    decoder_only: Annotated[
        bool,
        typer.Option(
            "--decoder-only",
            help="Retrain only the caption decoder of --init on the corpus captions (after a caption template "
            "change); embeddings, staging, calibration, the bank and the stage head stay valid. Then run "
            "`sleeplm export`. A corpus cached before the template change holds the old captions: give a "
            "fresh --cache.",
        ),
    ] = False,
    init: Annotated[
        Path | None,
        typer.Option("--init", help="With --decoder-only: the checkpoint to start from (default: the shipped one)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train SleepLM (builds or reuses the caption corpus), then write the checkpoint, loss history and plot."""
    needs_torch("train")
    if init is not None and not decoder_only:
        raise PSGError("--init is for --decoder-only (a full training starts from random weights)")
    from model_runtime.model.config import get_config
    from model_runtime.model.shipped import SHIPPED_CHECKPOINT
    from model_runtime.training.train import TrainOptions, train
    from psg.paths import shared_data_dir

    get_config(config)
    if steps is not None and steps < 1:
        raise PSGError(f"--steps must be >= 1, got {steps}")
    out = out or SHIPPED_CHECKPOINT
    data = data or shared_data_dir()
    cache = cache or working_data_dir() / "corpus"
    if psg is not None and not psg.is_dir():
        raise PSGError(f"--psg {psg}: not a folder")
    if decoder_only:
        _train_decoder(init, out, steps, data, cache, psg, as_json)
        return
    options = TrainOptions(
        config=config, psg_dir=str(psg) if psg else None, **({"steps": steps} if steps is not None else {})
    )
    training = train(options, data, cache, out)
    paths = {"checkpoint": out, "history": out.with_suffix(".history.json"), "loss_png": out.with_suffix(".loss.png")}
    if as_json:
        typer.echo(dumps({**{k: str(v) for k, v in paths.items()}, "training": training}))
        return
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")


def _train_decoder(
    init: Path | None, out: Path, steps: int | None, data: Path, cache: Path, psg: Path | None, as_json: bool
) -> None:
    """``train --decoder-only``: see ``model_runtime.training.decoder_training``."""
    from model_runtime.training.decoder_training import DecoderOptions, build_decoder_corpus, train_decoder

    if init is not None and not init.is_file():
        raise PSGError(f"--init {init}: no such checkpoint")
    options = DecoderOptions(psg_dir=str(psg) if psg else None, **({"steps": steps} if steps is not None else {}))
    build_decoder_corpus(options, data, cache)
    report = train_decoder(options, init, cache, out)
    if as_json:
        typer.echo(dumps({"checkpoint": str(out), "decoder_retraining": report}))
        return
    losses = report["validation_caption_loss"]
    typer.echo(f"checkpoint: {out}")
    typer.echo(f"vocabulary: {report['vocab']['before']} -> {report['vocab']['after']} pieces")
    typer.echo(f"validation caption loss: {losses['start']['weighted']:.3f} -> {losses['end']['weighted']:.3f}")
    typer.echo(f"next: sleeplm export --checkpoint {out}")


def train_stage_cmd(
    checkpoint: CheckpointOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Stage head to write (default: <checkpoint stem>.stage.npz beside it).")
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Shared data with the scored timelines (default: $SLEEPLM_DATA or ../shared/data)."),
    ] = None,
    nights: Annotated[int, typer.Option(help="Timelines per database to render.")] = 10,
    excerpts: Annotated[int, typer.Option(help="Perturbed excerpts drawn from each rendered night.")] = 10,
    epochs: Annotated[int, typer.Option(help="Passes over the training excerpts.")] = 25,
    seed: Annotated[int, typer.Option(help="Seed of the perturbations and of the training.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Train the stage head on perturbed simulated nights, calibrate it, and write it beside the checkpoint."""
    needs_torch("train-stage")
    from model_runtime.model.shipped import head_path_for
    from model_runtime.training.stage_head_training import train_stage_head
    from psg.paths import shared_data_dir

    for name, value in (("--nights", nights), ("--excerpts", excerpts), ("--epochs", epochs)):
        if value < 1:
            raise PSGError(f"{name} must be >= 1, got {value}")
    out = out or head_path_for(checkpoint)
    report = train_stage_head(data or shared_data_dir(), checkpoint, out, nights, excerpts, epochs, seed)
    typer.echo(dumps({"stage_head": str(out), **report}) if as_json else f"stage head: {out}\n{dumps(report)}")


def export_cmd(
    onnx: Annotated[
        Path | None,
        typer.Option(
            "--onnx",
            help="Folder for the ONNX graphs (default: beside the checkpoint, <name>.onnx/, "
            "where --backend auto finds it).",
        ),
    ] = None,
    checkpoint: CheckpointOpt = None,
    text_tower: Annotated[
        bool,
        typer.Option(
            "--text-tower",
            help="Instead: rebuild the shipped ONNX text tower (all-MiniLM-L6-v2) from the packaged weights.",
        ),
    ] = False,
) -> None:
    """Export the checkpoint to ONNX (encoder, decoder step, serving data), verified against torch, for CPU
    serving without torch (train extra)."""
    if text_tower:
        from model_runtime.model.text_onnx import build_text_tower

        typer.echo(f"built the ONNX text tower in {build_text_tower()}")
        return
    needs_torch("export")
    from model_runtime.training.onnx_export import export_onnx

    folder = export_onnx(checkpoint, onnx)
    typer.echo(f"exported ONNX to {folder}")


def eval_cmd(
    out: Annotated[Path | None, typer.Option("--out", help="Folder for model_eval.json and the plots.")] = None,
    checkpoint: CheckpointOpt = None,
    backend: Annotated[str, typer.Option(help="torch (default, as the evaluation reports), auto or onnx.")] = "torch",
    data: Annotated[Path | None, typer.Option(help="Shared reference data (default: $SLEEPLM_DATA).")] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="Rendered validation nights, reused across runs (default: <SLEEPLM_DATA_DIR or ./sleeplm-data>/eval)."
        ),
    ] = None,
    nights: Annotated[int | None, typer.Option(help="Evaluate only the first N validation nights.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate the checkpoint on the held-out validation nights (staging, captions, retrieval, few-shot)."""
    check_backend(backend)
    needs_train_extra("eval", "sklearn", "yasa")  # the metrics, and YASA as the reference stager
    if backend == "torch":
        needs_torch("eval --backend torch")
    if nights is not None and nights < 1:
        raise PSGError(f"--nights must be >= 1, got {nights}")
    from model_runtime.evaluation.evaluate import evaluate

    result = evaluate(
        checkpoint=checkpoint,
        data_dir=data,
        cache_dir=cache or working_data_dir() / "eval",
        out_dir=out,
        progress=True,
        nights=nights,
        backend=backend,
    )
    if as_json:
        typer.echo(dumps(result))
        return
    for key, value in result.items():
        typer.echo(f"{key}: {dumps(value) if isinstance(value, (dict, list)) else value}")


def bank_cmd(
    checkpoint: CheckpointOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Bank file (default: beside the checkpoint).")] = None,
    nights: Annotated[int, typer.Option(min=1, help="Validation nights to sample from (25 = all of them).")] = 25,
    cache: Annotated[Path | None, typer.Option(help="Rendered validation nights, reused across runs.")] = None,
) -> None:
    """Build the reference bank watch rules are calibrated on: embeddings + truth of held-out epochs."""
    from model_runtime.evaluation.bank_building import build_bank_command

    typer.echo(f"bank written: {build_bank_command(checkpoint, out, nights, cache)}")


def working_data_dir() -> Path:
    """The live path's data folder (``SLEEPLM_DATA_DIR``, default ``./sleeplm-data``): generated working data
    (corpus, rendered nights) lives with the store and spool, never in the read-only shared data."""
    from plumbing.settings import Settings

    return Path(Settings().data_dir)


def register(app: typer.Typer) -> None:
    """Attach the checkpoint commands to the ``sleeplm`` app."""
    app.command("train")(train_cmd)
    app.command("train-stage")(train_stage_cmd)
    app.command("export")(export_cmd)
    app.command("eval")(eval_cmd)
    app.command("bank")(bank_cmd)
