"""The runtime interface the inference agent calls: a batch of epochs in, one result per epoch out.

The stream agents only know this interface, so the SleepLM model replaces the feature-rule runtime by
registering another name in ``RUNTIMES``, without touching the agents. A runtime may keep per-bed state
(recent stages and features for context and smoothing); it is fed each bed's epochs in order, and must
tolerate a replayed epoch (after a worker restart) without raising.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from model_runtime.model.shipped import SHIPPED_CHECKPOINT
from psg.codecs import EpochMessage


@dataclass(frozen=True)
class EpochResult:
    """What the runtime says about one epoch.

    ``stage`` is a stage label ('W', 'N1', 'N2', 'N3', 'R', '?'); ``stage_source`` says who decided it
    ('rules' for the feature-rule estimate, 'model' for SleepLM); ``probabilities`` are W, N1, N2, N3, R
    when the runtime has them; ``captions`` has one text per ``psg.captions.MODALITIES`` key;
    ``advisories`` are advisory event detections (model-found events, same dict shape as
    ``DetectedEvent.to_dict``); ``embedding`` is the epoch's vector in the joint space, if any.
    """

    bed_id: str
    recording_id: str
    epoch: int
    stage: str
    stage_source: str
    captions: dict[str, str]
    probabilities: list[float] | None = None
    advisories: list[dict[str, Any]] = field(default_factory=list)
    embedding: np.ndarray | None = None


class InferenceRuntime(Protocol):
    """A batched runtime: ``infer`` gets epochs of any beds (each bed's in order) and returns results in
    the same order."""

    name: str

    def infer(self, epochs: Sequence[EpochMessage]) -> list[EpochResult]: ...


#: Runtime name -> factory. ``rules`` is the measured-feature caption pipeline
#: (``model_runtime.serving.rules_runtime``), ``sleeplm`` the model (``model_runtime.serving.sleeplm_runtime``);
#: each registers itself when imported.
RUNTIMES: dict[str, Callable[..., InferenceRuntime]] = {}
#: Where each known runtime registers itself: imported on first use, so the rules runtime never loads torch.
RUNTIME_MODULES: dict[str, str] = {
    "rules": "model_runtime.serving.rules_runtime",
    "sleeplm": "model_runtime.serving.sleeplm_runtime",
}


def load_runtime(name: str = "rules", **options: Any) -> InferenceRuntime:
    """The runtime registered as ``name``; ``ValueError`` naming the known ones otherwise.

    ``options`` (e.g. ``checkpoint``, ``backend``) go to the runtime's factory where it takes them and are
    ignored where it does not, so the live path passes the model settings whichever runtime it runs.
    """
    if name not in RUNTIMES and name in RUNTIME_MODULES:
        importlib.import_module(RUNTIME_MODULES[name])
    try:
        factory = RUNTIMES[name]
    except KeyError:
        known = sorted(set(RUNTIMES) | set(RUNTIME_MODULES))
        raise ValueError(f"unknown runtime {name!r}; expected one of {known}") from None
    accepted = inspect.signature(factory).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
        options = {k: v for k, v in options.items() if k in accepted}
    return factory(**options)


def chosen_runtime(runtime: str | None, checkpoint: str | Path | None = None) -> str:
    """The runtime a worker serves: ``runtime`` (SLEEPLM_RUNTIME) when set, else ``default_runtime``."""
    return runtime or default_runtime(checkpoint)


def default_runtime(checkpoint: str | Path | None = None) -> str:
    """``'sleeplm'`` when a model checkpoint is there to serve (``checkpoint``, else the shipped one), else
    ``'rules'``: a checkout without a trained model still runs the live path, on measured features."""
    if checkpoint is not None:
        return "sleeplm"  # named explicitly: a missing file is an error the model runtime reports
    return "sleeplm" if SHIPPED_CHECKPOINT.is_file() else "rules"
