"""Model commands on files: ``stage``, ``describe``, ``query``, ``probe``, ``adapt`` (the checkpoint's own
commands are ``sleeplm.training_commands``, the benchmarks ``sleeplm.bench_commands``).

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
from sleeplm.model_options import (
    BackendOpt,
    CheckpointOpt,
    JsonOpt,
    LabHeadOpt,
    NightArg,
    check_backend,
    needs_train_extra,
)


def _load(checkpoint: Path | None, backend: str, lab_head: Path | None = None) -> Any:
    """The checkpoint on ``backend``, staging with ``lab_head`` (``sleeplm adapt``) where one is given."""
    check_backend(backend)
    from model_runtime.serving.model_api import SleepLM

    lm = SleepLM.load(checkpoint, backend=backend)
    if lab_head is not None:
        lm.use_lab_head(lab_head)
    return lm


def _bank(checkpoint: Path | None) -> Any:
    """The reference bank beside ``checkpoint`` (query thresholds), or None with a warning when it is absent."""
    from model_runtime.model.shipped import bank_path_for
    from model_runtime.serving.reference_bank import load_bank

    try:
        return load_bank(bank_path_for(checkpoint))
    except PSGError as exc:
        typer.echo(f"warning: matches are ranked, not thresholded: {exc}", err=True)
        return None


def _night_input(
    night: Path,
    channel: list[str] | None,
    channel_map: Path | None,
    require_eeg: bool = False,
    scoring: Path | None = None,
) -> Any:
    """``load_night_input`` with the channel and scoring options; the channel and scoring reports go to stderr."""
    from model_runtime.serving.night import load_night_input

    overrides, lab_map = channel_args(channel, channel_map)
    night_input = load_night_input(
        night, progress=True, overrides=overrides, lab_map=lab_map, require_eeg=require_eeg, scoring=scoring
    )
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
    lab_head: LabHeadOpt = None,
    scoring: ScoringOpt = None,
) -> None:
    """Zero-shot sleep stages of every epoch with W/N1/N2/N3/R probabilities, or 'uncertain' with the reason.

    With scoring (``--scoring``, a file beside the EDF or its own annotations) the JSON also carries the
    scored ``truth`` per epoch and the ``accuracy`` over scored epochs (null without scoring).
    """
    from model_runtime.model.prompts import STAGE_LABELS
    from model_runtime.serving.night import stage_night

    lm = _load(checkpoint, backend, lab_head)
    night_input = _night_input(night, channel, channel_map, require_eeg=True, scoring=scoring)
    result = {**stage_night(lm, night_input, smooth=smooth, progress=True), "channels": night_input.channels.to_json()}
    result.update(truth=night_input.truth, accuracy=night_input.accuracy(result["stages"]), scoring=night_input.scoring)
    if as_json:
        typer.echo(dumps(result))
        return
    typer.echo(f"{'epoch':>5} {'start_s':>8}  stage  {'  '.join(f'{s:>5}' for s in STAGE_LABELS)}")
    for i, (stage, probs) in enumerate(zip(result["stages"], result["probabilities"], strict=True)):
        typer.echo(f"{i:>5} {i * 30.0:>8.0f}  {stage:<5}  {'  '.join(f'{p:>5.2f}' for p in probs)}")
    if result["accuracy"] is not None:
        typer.echo(
            f"accuracy vs {night_input.scoring or 'the file annotations'}: {result['accuracy']:.3f} "
            f"over {sum(t != '?' for t in result['truth'])} scored epochs"
        )
    counts = {s: result["stages"].count(s) for s in (*STAGE_LABELS, "uncertain", "gap")}
    typer.echo(f"{len(result['stages'])} epochs: " + ", ".join(f"{s} {n}" for s, n in counts.items()))
    typer.echo(f"staged by: {_staged_by(result)}")
    for item in result["uncertain"][:5]:
        typer.echo(f"epoch {item['epoch']} uncertain: {item['reason']}")


def _staged_by(result: dict) -> str:
    """Which model staged the night and why, in a line (the JSON's ``stage_source``, ``stage_head``, ``origin``)."""
    head = result["stage_head"]
    if head == "real-prior":
        why = "a recorded file" if result["origin"] == "recorded" else "its EEG is unlike the simulated nights"
        return f"{result['stage_source']}, real-prior head (YASA's real-data prior): {why}"
    return result["stage_source"] + (f", {head} head" if head else "")


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
    lab_head: LabHeadOpt = None,
    scoring: ScoringOpt = None,
) -> None:
    """Generated captions of epochs; every number in them is a measured feature of that epoch.

    The JSON's ``truth`` lists the scored stage of each described epoch where the night has scoring
    (``--scoring``, a file beside the EDF or its own annotations), else it is null.
    """
    from model_runtime.serving.night import check_modality, describe_night, parse_epochs

    check_modality(modality)
    window = parse_epochs(epochs)
    lm = _load(checkpoint, backend, lab_head)
    night_input = _night_input(night, channel, channel_map, scoring=scoring)
    result = {
        **describe_night(lm, night_input, window, modality, progress=True),
        "channels": night_input.channels.to_json(),
    }
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
    lab_head: LabHeadOpt = None,
) -> None:
    """Find the epochs that best match a sentence, with the seconds inside each where it happens."""
    from model_runtime.serving.night import query_night

    if not text.strip():
        raise PSGError("query text is empty; write what to look for, e.g. 'obstructive apnea during REM'")
    if top < 1:
        raise PSGError(f"--top must be >= 1, got {top}")
    lm = _load(checkpoint, backend, lab_head)
    night_input = _night_input(night, channel, channel_map)
    result = {
        **query_night(lm, night_input, text, top=top, progress=True, bank=_bank(checkpoint)),
        "channels": night_input.channels.to_json(),
    }
    if as_json:
        typer.echo(dumps(result))
        return
    if not result["matches"]:
        threshold = result["threshold"]
        why = "none is staged as it names" if threshold is None else f"score threshold {threshold:.3f}"
        typer.echo(f"no epoch matches {text!r} ({why}, {result['method']})")
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
            raise PSGError(
                f"{path}: no scored stages (needs EDF+ stage annotations, or an NSRR XML or a "
                "Sleep-EDF hypnogram beside it)"
            )
        embeddings.append(embed(night))
        labels.append(truth[: len(embeddings[-1])])
    return np.concatenate(embeddings), np.concatenate(labels)


def probe_cmd(
    nights: Annotated[
        list[Path], typer.Argument(metavar="NIGHTS...", help="Scored nights (EDF+ annotations or NSRR XML beside).")
    ],
    shots: Annotated[int, typer.Option(help="Labelled epochs per stage to fit on (K).")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the draw of training epochs.")] = 0,
    checkpoint: CheckpointOpt = None,
    backend: BackendOpt = "auto",
    as_json: JsonOpt = False,
    channel: ChannelOpt = None,
    channel_map: ChannelMapOpt = None,
) -> None:
    """Few-shot staging: a linear probe on SleepLM embeddings, K scored epochs per stage, tested on the rest."""
    from model_runtime.evaluation.probe import run_probe
    from model_runtime.serving.night import embed_night

    if shots < 1:
        raise PSGError(f"--shots must be >= 1, got {shots}")
    needs_train_extra("probe", "sklearn")  # before embedding the nights: the probe is scikit-learn's
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
    nights: Annotated[
        list[Path],
        typer.Argument(metavar="NIGHTS...", help="A lab's scored nights (EDF+ annotations or NSRR XML beside)."),
    ],
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

    from model_runtime.model.lab_head import fit_lab_head, pick_shots
    from model_runtime.model.prompts import STAGE_LABELS
    from model_runtime.serving.night import stage_head_embeddings

    if out.is_dir():
        raise PSGError(f"{out}: is a folder; --out expects the lab head's file (.npz)")
    if shots < 1:
        raise PSGError(f"--shots must be >= 1, got {shots}")
    needs_train_extra("adapt", "sklearn")  # fitting the head; loading and staging with it needs none
    lm = _load(checkpoint, "auto")
    x, y = _scored_embeddings(nights, channel, channel_map, lambda night: stage_head_embeddings(lm, night))
    picked = pick_shots(y, shots, np.random.default_rng(seed))
    head = fit_lab_head(x[picked], y[picked], shots)
    head.save(out)
    rest = np.setdiff1d(np.flatnonzero(y >= 0), picked)
    held_out = float((head.probabilities(x[rest]).argmax(axis=1) == y[rest]).mean()) if rest.size else None
    counts = {STAGE_LABELS[k]: int((y[picked] == k).sum()) for k in range(len(STAGE_LABELS))}
    result = {
        "lab_head": str(out),
        "shots": shots,
        "fit_epochs": counts,
        "held_out_epochs": int(rest.size),
        "held_out_accuracy": held_out,
    }
    typer.echo(dumps(result) if as_json else f"lab head: {out}\n{dumps(result)}")


def register(app: typer.Typer) -> None:
    """Attach the model commands on files to the ``sleeplm`` app."""
    app.command("stage")(stage_cmd)
    app.command("describe")(describe_cmd)
    app.command("query")(query_cmd)
    app.command("probe")(probe_cmd)
    app.command("adapt")(adapt_cmd)
