"""The runtime interface the inference agent calls: a batch of epochs in, one result per epoch out.

The stream agents only know this interface, so the SleepLM model replaces the feature-rule runtime by
registering another name in ``RUNTIMES``, without touching the agents. A runtime may keep per-bed state
(recent stages and features for context and smoothing); it is fed each bed's epochs in order, and must
tolerate a replayed epoch (after a worker restart) without raising.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

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


#: Runtime name -> factory. ``rules`` is the measured-feature caption pipeline (``model_runtime.rules``).
RUNTIMES: dict[str, Callable[[], InferenceRuntime]] = {}


def load_runtime(name: str = "rules") -> InferenceRuntime:
    """The runtime registered as ``name``; ``ValueError`` naming the known ones otherwise."""
    if not RUNTIMES:
        from model_runtime import rules  # noqa: F401  (registers "rules")
    try:
        factory = RUNTIMES[name]
    except KeyError:
        raise ValueError(f"unknown runtime {name!r}; expected one of {sorted(RUNTIMES)}") from None
    return factory()
