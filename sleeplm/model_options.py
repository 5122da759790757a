"""Options the model commands share (``sleeplm.model_commands``, ``training_commands``, ``bench_commands``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from psg.errors import PSGError

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

LabHeadOpt = Annotated[
    Path | None,
    typer.Option(
        envvar="SLEEPLM_LAB_HEAD",
        help="A lab's few-shot stage head from `sleeplm adapt` (default: none, the shipped stage head).",
    ),
]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise PSGError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")


#: The package to install where it differs from the module that is imported.
_PACKAGES = {"sklearn": "scikit-learn"}


def needs_torch(command: str) -> None:
    """One line, not a traceback, where the base install (no torch) runs a command of the train extra."""
    needs_train_extra(command, "torch")


def needs_train_extra(command: str, *modules: str) -> None:
    """One line, not a traceback, where the base install runs a command that needs packages of the train
    extra (torch; scikit-learn for fitting probes and lab heads and for the evaluation metrics; yasa)."""
    import importlib.util

    missing = [_PACKAGES.get(name, name) for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise PSGError(
            f"`sleeplm {command}` needs {', '.join(missing)}, which the base install leaves out: "
            "pip install 'sleeplm[train]' (from a checkout: pip install -e '.[train]')"
        )
