"""Model commands: ``stage``, ``describe``, ``query``, ``probe`` on files; ``train``, ``export``, ``eval`` and
``bench model`` for the checkpoint itself.

Thin like the PSG commands: each parses its options, calls one function of ``model_runtime`` (the same
function a notebook calls) and prints its dict, as JSON with ``--json`` or as a short table. Torch and
the model are imported inside the commands so ``sleeplm --help`` and the PSG commands stay fast. Bad
input raises ``PSGError``; ``sleeplm.cli.main`` prints it on one line and exits 2. Progress bars go to
stderr, so ``--json`` output on stdout stays parseable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from psg.errors import PSGError
from sleeplm.channel_options import (
    ChannelMapOpt,
    ChannelOpt,
    ScoringOpt,
    channel_args,
    report_channels,
    report_scoring,
)
from sleeplm.jsonio import dumps

BACKENDS = ("auto", "torch", "onnx")
NightArg = Annotated[
    Path,
    typer.Argument(
        metavar="NIGHT",
        help="A night as EDF/EDF+/BDF (scoring from --scoring, an NSRR XML beside it (<stem>.xml or "
        "<stem>-nsrr.xml), Sleep-EDF's *-Hypnogram.edf beside *-PSG.edf, or its own annotations).",
        show_default=False,
    ),
]
CheckpointOpt = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint", help="SleepLM checkpoint (default: the shipped model_runtime/checkpoints/sleeplm-small.pt)."
    ),
]
BackendOpt = Annotated[
    str,
    typer.Option(
        help="auto: onnxruntime when an export sits beside the checkpoint (CPU), else torch; or torch / onnx."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise PSGError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")


def _needs_torch(command: str) -> None:
    """One line, not a traceback, where the base install (no torch) runs a command of the train extra."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise PSGError(f"`sleeplm {command}` needs torch, which the base install leaves out: "
                       "pip install 'sleeplm[train]' (from a checkout: pip install -e '.[train]')")


def _load(checkpoint: Path | None, backend: str) -> Any:
    _check_backend(backend)
    from model_runtime.sleeplm import SleepLM

    return SleepLM.load(checkpoint, backend=backend)


def _bank(checkpoint: Path | None) -> Any:
    """The reference bank beside ``checkpoint`` (query thresholds), or None with a warning when it is absent."""
    from model_runtime.reference_bank import bank_path_for, load_bank

    try:
        return load_bank(bank_path_for(checkpoint))
    except PSGError as exc:
        typer.echo(f"warning: matches are ranked, not thresholded: {exc}", err=True)
        return None


def _night_input(
    night: Path, channel: list[str] | None, channel_map: Path | None, require_eeg: bool = False,
    scoring: Path | None = None,
) -> Any:
    """``load_night_input`` with the channel and scoring options; the channel and scoring reports go to stderr."""
    from model_runtime.night import load_night_input

    overrides, lab_map = channel_args(channel, channel_map)
    night_input = load_night_input(night, progress=True, overrides=overrides, lab_map=lab_map,
                                   require_eeg=require_eeg, scoring=scoring)
    report_channels(night_input.channels)
    report_scoring(night_input.recording)
    return night_input


def stage_cmd(
    night: NightArg,
    smooth: Annotated[bool, typer.Option("--smooth/--no-smooth", help="Causal smoothing over epochs.")] = True,
    checkpoint: CheckpointOpt = None,
    backend: BackendOpt = "auto",
    as_json: JsonOpt = False,
    channel: ChannelOpt = None,
    channel_map: ChannelMapOpt = None,
    lab_head: Annotated[
        Path | None,
        typer.Option(envvar="SLEEPLM_LAB_HEAD", help="A lab's few-shot head from `sleeplm adapt` (default: none)."),
    ] = None,
    scoring: ScoringOpt = None,
) -> None:
    """Zero-shot sleep stages of every epoch with W/N1/N2/N3/R probabilities, or 'uncertain' with the reason.

    With scoring (``--scoring``, a file beside the EDF or its own annotations) the JSON also carries the
    scored ``truth`` per epoch and the ``accuracy`` over scored epochs (null without scoring).
    """
    from model_runtime.lab_head import LabHead
    from model_runtime.night import stage_night
    from model_runtime.prompts import STAGE_LABELS

    lm = _load(checkpoint, backend)
    if lab_head is not None:
        if lm.stage_head is None:
            raise PSGError("--lab-head needs a checkpoint with a stage head beside it (`sleeplm train-stage`)")
        lm.lab_head = LabHead.load(lab_head)
    night_input = _night_input(night, channel, channel_map, require_eeg=True, scoring=scoring)
    result = {**stage_night(lm, night_input, smooth=smooth, progress=True), "channels": night_input.channels.to_json()}
    result.update(truth=night_input.truth, accuracy=night_input.accuracy(result["stages"]),
                  scoring=night_input.scoring)
    if as_json:
        typer.echo(dumps(result))
        return
    typer.echo(f"{'epoch':>5} {'start_s':>8}  stage  {'  '.join(f'{s:>5}' for s in STAGE_LABELS)}")
    for i, (stage, probs) in enumerate(zip(result["stages"], result["probabilities"], strict=True)):
        typer.echo(f"{i:>5} {i * 30.0:>8.0f}  {stage:<5}  {'  '.join(f'{p:>5.2f}' for p in probs)}")
    if result["accuracy"] is not None:
        typer.echo(f"accuracy vs {night_input.scoring or 'the file annotations'}: {result['accuracy']:.3f} "
                   f"over {sum(t != '?' for t in result['truth'])} scored epochs")
    counts = {s: result["stages"].count(s) for s in (*STAGE_LABELS, "uncertain", "gap")}
    typer.echo(f"{len(result['stages'])} epochs: " + ", ".join(f"{s} {n}" for s, n in counts.items()))
    for item in result["uncertain"][:5]:
        typer.echo(f"epoch {item['epoch']} uncertain: {item['reason']}")


def describe_cmd(
    night: NightArg,
    epochs: Annotated[str | None, typer.Option(help="Epoch range A:B (0-based, B exclusive), A:, :B or A.")] = None,
    modality: Annotated[
        str, typer.Option(help="stage_event, brain, cardiac, respiratory, somatic, or all.")
    ] = "stage_event",
    checkpoint: CheckpointOpt = None,
    backend: BackendOpt = "auto",
    as_json: JsonOpt = False,
    channel: ChannelOpt = None,
    channel_map: ChannelMapOpt = None,
    scoring: ScoringOpt = None,
) -> None:
    """Generated captions of epochs; every number in them is a measured feature of that epoch.

    The JSON's ``truth`` lists the scored stage of each described epoch where the night has scoring
    (``--scoring``, a file beside the EDF or its own annotations), else it is null.
    """
    from model_runtime.night import check_modality, describe_night, parse_epochs

    check_modality(modality)
    window = parse_epochs(epochs)
    lm = _load(checkpoint, backend)
    night_input = _night_input(night, channel, channel_map, scoring=scoring)
    result = {**describe_night(lm, night_input, window, modality, progress=True),
              "channels": night_input.channels.to_json()}
    truth = night_input.truth
    described = sorted({c["epoch"] for c in result["captions"]})
    result["truth"] = None if truth is None else [{"epoch": i, "stage": truth[i]} for i in described]
    if as_json:
        typer.echo(dumps(result))
        return
    for c in result["captions"]:
        typer.echo(f"[{c['epoch']} @ {c['start_s']:.0f} s, {c['modality']}] {c['text']}")


def query_cmd(
    night: NightArg,
    text: Annotated[str, typer.Argument(metavar="TEXT", help="What to look for, e.g. 'obstructive apnea during REM'.")],
    top: Annotated[int, typer.Option(help="How many epochs to return, best first.")] = 10,
    checkpoint: CheckpointOpt = None,
    backend: BackendOpt = "auto",
    as_json: JsonOpt = False,
    channel: ChannelOpt = None,
    channel_map: ChannelMapOpt = None,
) -> None:
    """Find the epochs that best match a sentence, with the seconds inside each where it happens."""
    from model_runtime.night import query_night

    if not text.strip():
        raise PSGError("query text is empty; write what to look for, e.g. 'obstructive apnea during REM'")
    if top < 1:
        raise PSGError(f"--top must be >= 1, got {top}")
    lm = _load(checkpoint, backend)
    night_input = _night_input(night, channel, channel_map)
    result = {**query_night(lm, night_input, text, top=top, progress=True, bank=_bank(checkpoint)),
              "channels": night_input.channels.to_json()}
    if as_json:
        typer.echo(dumps(result))
        return
    if not result["matches"]:
        typer.echo(f"no epoch matches {text!r} (score threshold {result['threshold']:.3f}, {result['method']})")
        return
    typer.echo(f"{'epoch':>5} {'start_s':>8} {'score':>6}  spans (s)")
    for m in result["matches"]:
        spans = ", ".join(f"{a:.0f}-{b:.0f}" for a, b in m["spans"])
        typer.echo(f"{m['epoch']:>5} {m['start_s']:>8.0f} {m['score']:>6.3f}  {spans}")


def _scored_embeddings(
    nights: list[Path], channel: list[str] | None, channel_map: Path | None, embed: Callable[[Any], Any]
) -> tuple[Any, Any]:
    """``embed(night)`` of every epoch of scored ``nights`` and their stage indices, concatenated."""
    import numpy as np

    embeddings, labels = [], []
    for path in nights:
        night = _night_input(path, channel, channel_map)
        truth = night.truth_indices()
        if truth is None:
            raise PSGError(f"{path}: no scored stages (needs EDF+ stage annotations, or an NSRR XML or a "
                           "Sleep-EDF hypnogram beside it)")
        embeddings.append(embed(night))
        labels.append(truth[: len(embeddings[-1])])
    return np.concatenate(embeddings), np.concatenate(labels)


def probe_cmd(
    nights: Annotated[list[Path], typer.Argument(
        metavar="NIGHTS...", help="Scored nights (EDF+ annotations or NSRR XML beside).")],
    shots: Annotated[int, typer.Option(help="Labelled epochs per stage to fit on (K).")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the draw of training epochs.")] = 0,
    checkpoint: CheckpointOpt = None,
    backend: BackendOpt = "auto",
    as_json: JsonOpt = False,
    channel: ChannelOpt = None,
    channel_map: ChannelMapOpt = None,
) -> None:
    """Few-shot staging: a linear probe on SleepLM embeddings, K scored epochs per stage, tested on the rest."""
    from model_runtime.night import embed_night
    from model_runtime.probe import run_probe

    if shots < 1:
        raise PSGError(f"--shots must be >= 1, got {shots}")
    lm = _load(checkpoint, backend)
    x, y = _scored_embeddings(nights, channel, channel_map, lambda night: embed_night(lm, night, progress=True))
    result = run_probe(x, y, shots=shots, seed=seed)
    if as_json:
        typer.echo(dumps(result))
        return
    typer.echo(
        f"linear probe, {result['shots']} shots per stage: {result['train_epochs']} train epochs, "
        f"{result['test_epochs']} test epochs"
    )
    typer.echo(f"accuracy {result['accuracy']:.3f}  macro-F1 {result['macro_f1']:.3f}  kappa {result['kappa']:.3f}")
    typer.echo("per-stage F1: " + ", ".join(f"{k} {v:.3f}" for k, v in result["per_class_f1"].items()))


def adapt_cmd(
    nights: Annotated[list[Path], typer.Argument(
        metavar="NIGHTS...", help="A lab's scored nights (EDF+ annotations or NSRR XML beside).")],
    out: Annotated[Path, typer.Option("--out", help="Lab head file to write (.npz).")],
    shots: Annotated[int, typer.Option(help="Scored epochs per stage to fit on (K).")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the draw of the K epochs.")] = 0,
    checkpoint: CheckpointOpt = None,
    as_json: JsonOpt = False,
    channel: ChannelOpt = None,
    channel_map: ChannelMapOpt = None,
) -> None:
    """A lab's few-shot stage head: K scored epochs per stage; `stage --lab-head FILE` and SLEEPLM_LAB_HEAD use it."""
    import numpy as np

    from model_runtime.lab_head import fit_lab_head, pick_shots
    from model_runtime.night import stage_head_embeddings
    from model_runtime.prompts import STAGE_LABELS

    if out.is_dir():
        raise PSGError(f"{out}: is a folder; --out expects the lab head's file (.npz)")
    if shots < 1:
        raise PSGError(f"--shots must be >= 1, got {shots}")
    lm = _load(checkpoint, "auto")
    x, y = _scored_embeddings(nights, channel, channel_map, lambda night: stage_head_embeddings(lm, night))
    picked = pick_shots(y, shots, np.random.default_rng(seed))
    head = fit_lab_head(x[picked], y[picked], shots)
    head.save(out)
    rest = np.setdiff1d(np.flatnonzero(y >= 0), picked)
    held_out = float((head.probabilities(x[rest]).argmax(axis=1) == y[rest]).mean()) if rest.size else None
    counts = {STAGE_LABELS[k]: int((y[picked] == k).sum()) for k in range(len(STAGE_LABELS))}
    result = {"lab_head": str(out), "shots": shots, "fit_epochs": counts, "held_out_epochs": int(rest.size),
              "held_out_accuracy": held_out}
    typer.echo(dumps(result) if as_json else f"lab head: {out}\n{dumps(result)}")


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
    as_json: JsonOpt = False,
) -> None:
    """Train SleepLM (builds or reuses the caption corpus), then write the checkpoint, loss history and plot."""
    _needs_torch("train")
    from model_runtime.config import get_config
    from model_runtime.onnx_backend import SHIPPED_CHECKPOINT
    from model_runtime.train import TrainOptions, train
    from psg.paths import shared_data_dir

    get_config(config)
    if steps is not None and steps < 1:
        raise PSGError(f"--steps must be >= 1, got {steps}")
    out = out or SHIPPED_CHECKPOINT
    data = data or shared_data_dir()
    cache = cache or working_data_dir() / "corpus"
    if psg is not None and not psg.is_dir():
        raise PSGError(f"--psg {psg}: not a folder")
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
    _needs_torch("train-stage")
    from model_runtime.onnx_backend import SHIPPED_CHECKPOINT
    from model_runtime.stage_head import head_path_for
    from model_runtime.stage_head_training import train_stage_head
    from psg.paths import shared_data_dir

    for name, value in (("--nights", nights), ("--excerpts", excerpts), ("--epochs", epochs)):
        if value < 1:
            raise PSGError(f"{name} must be >= 1, got {value}")
    out = out or head_path_for(checkpoint or SHIPPED_CHECKPOINT)
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
        from model_runtime.text_onnx import build_text_tower

        typer.echo(f"built the ONNX text tower in {build_text_tower()}")
        return
    _needs_torch("export")
    from model_runtime.onnx_export import export_onnx

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
    _check_backend(backend)
    if backend == "torch":
        _needs_torch("eval --backend torch")
    if nights is not None and nights < 1:
        raise PSGError(f"--nights must be >= 1, got {nights}")
    from model_runtime.evaluate import evaluate

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


def bench_model_cmd(
    batch: Annotated[int, typer.Option(help="Epochs per inference call.")] = 256,
    seconds: Annotated[float, typer.Option(help="How long to measure.")] = 10.0,
    checkpoint: CheckpointOpt = None,
    backend: BackendOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Measure model throughput (embedding + zero-shot stage + caption, epochs/s) on this machine."""
    _check_backend(backend)
    if batch < 1 or seconds <= 0:
        raise PSGError(f"--batch must be >= 1 and --seconds > 0, got {batch} and {seconds}")
    _needs_torch("bench model")
    from model_runtime.bench import bench_model

    result = bench_model(checkpoint=checkpoint, backend=backend, batch=batch, seconds=seconds, progress=True)
    if as_json:
        typer.echo(dumps(result))
        return
    for key, value in result.items():
        typer.echo(f"{key}: {value}")


def working_data_dir() -> Path:
    """The live path's data folder (``SLEEPLM_DATA_DIR``, default ``./sleeplm-data``): generated working data
    (corpus, rendered nights) lives with the store and spool, never in the read-only shared data."""
    from services.settings import Settings

    return Path(Settings().data_dir)


def bank_cmd(
    checkpoint: CheckpointOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Bank file (default: beside the checkpoint).")] = None,
    nights: Annotated[int, typer.Option(min=1, help="Validation nights to sample from (25 = all of them).")] = 25,
    cache: Annotated[Path | None, typer.Option(help="Rendered validation nights, reused across runs.")] = None,
) -> None:
    """Build the reference bank watch rules are calibrated on: embeddings + truth of held-out epochs."""
    from model_runtime.reference_bank import build_bank_command

    typer.echo(f"bank written: {build_bank_command(checkpoint, out, nights, cache)}")


def bench_stream_cmd(
    beds: Annotated[int, typer.Option(min=1, max=5000, help="Beds in all (most generated, some over LSL).")] = 100,
    seconds: Annotated[float, typer.Option(min=30, help="How long the beds stream (device = wall time).")] = 180.0,
    workers: Annotated[int, typer.Option(min=1, max=32, help="Worker processes sharing the partitions.")] = 2,
    partitions: Annotated[int | None, typer.Option(
        min=1, max=256, help="Partitions per topic; default: $SLEEPLM_PARTITIONS, else 8.")] = None,
    lsl_beds: Annotated[int, typer.Option(min=0, help="Beds streamed through real LSL and the bridge.")] = 2,
    runtime: Annotated[str | None, typer.Option(
        help="sleeplm or rules; default: $SLEEPLM_RUNTIME, else as the workers resolve it.")] = None,
    speed: Annotated[float, typer.Option(min=1.0, max=100.0, help="Device-clock speed (the soak: 20 plays 8 h in "
                                         "24 min); latency is then measured from each epoch's arrival.")] = 1.0,
    data_dir: Annotated[Path | None, typer.Option(
        help="Keep the run's store and logs here; default: $SLEEPLM_DATA_DIR, else a new temporary folder.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the real stack under N beds at device rates; latency, lost/duplicate epochs, CPU, memory (RSS growth
    after warm-up: the soak)."""
    from services.settings import from_environment
    from stream_agents.bench_stream import BenchOptions, main_json, run_bench

    # flag > environment / .env > this benchmark's own defaults (8 partitions, a fresh temporary data dir)
    partitions = partitions or from_environment("partitions") or 8
    runtime = runtime or from_environment("runtime")
    data_dir = data_dir or from_environment("data_dir")
    result = run_bench(BenchOptions(beds=beds, seconds=seconds, workers=workers, partitions=partitions,
                                    lsl_beds=lsl_beds, runtime=runtime, data_dir=data_dir, speed=speed))
    if as_json:
        typer.echo(main_json(result))
        return
    for key, value in result.to_dict().items():
        typer.echo(f"{key:>18}: {value}")


def register(app: typer.Typer) -> None:
    """Attach the model commands (and the ``bench`` group with ``bench model``) to the ``sleeplm`` app."""
    app.command("stage")(stage_cmd)
    app.command("describe")(describe_cmd)
    app.command("query")(query_cmd)
    app.command("probe")(probe_cmd)
    app.command("adapt")(adapt_cmd)
    app.command("train")(train_cmd)
    app.command("train-stage")(train_stage_cmd)
    app.command("export")(export_cmd)
    app.command("eval")(eval_cmd)
    app.command("bank")(bank_cmd)
    bench = typer.Typer(
        help="Benchmarks: `bench model` measures SleepLM inference, `bench stream` the whole live path.",
        no_args_is_help=True,
    )
    bench.command("model")(bench_model_cmd)
    bench.command("stream")(bench_stream_cmd)
    app.add_typer(bench, name="bench")
