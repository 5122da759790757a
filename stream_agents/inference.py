"""Inference step of the live path: one runtime call per batch of epochs -> ``sleep.captions`` records
and, for runtimes that embed epochs (SleepLM), ``sleep.embeddings`` records.

Broker-free: the Faust inference agent batches ``EpochMessage``s across beds and calls
``inference_records``; the records are exactly the topics' contracts (strict JSON: NaN and infinities
are None), so the agent only encodes and sends them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from model_runtime.runtime import EpochResult, InferenceRuntime
from psg.codecs import EpochMessage, to_jsonable
from psg.errors import PSGError

#: Decimals an embedding keeps on ``sleep.embeddings``: cosine scores move by < 1e-4, JSON stays compact.
EMBEDDING_DECIMALS = 5


class InferenceRecords(NamedTuple):
    """What one batch produces: one caption record per epoch, one embedding record per embedded epoch."""

    captions: list[dict[str, Any]]
    embeddings: list[dict[str, Any]]


def caption_records(runtime: InferenceRuntime, messages: Sequence[EpochMessage]) -> list[dict[str, Any]]:
    """One caption record per message, in order, from a single ``runtime.infer`` call (see ``inference_records``)."""
    return inference_records(runtime, messages).captions


def inference_records(runtime: InferenceRuntime, messages: Sequence[EpochMessage]) -> InferenceRecords:
    """Caption records (one per message, in order) and embedding records (one per result that has an
    embedding, in order) from a single ``runtime.infer`` call.

    Raises ``PSGError`` if the runtime answers with a different number of results or for other epochs
    than it was given (a runtime bug must not store captions under the wrong bed or epoch).
    """
    if not messages:
        return InferenceRecords([], [])
    results = runtime.infer(list(messages))
    if len(results) != len(messages):
        raise PSGError(f"runtime {runtime.name!r} returned {len(results)} results for {len(messages)} epochs")
    records, embeddings = [], []
    for message, result in zip(messages, results, strict=True):
        if (result.bed_id, result.recording_id, result.epoch) != (message.bed_id, message.recording_id, message.epoch):
            raise PSGError(
                f"runtime {runtime.name!r} answered epoch {result.bed_id}/{result.recording_id}/{result.epoch} "
                f"for {message.bed_id}/{message.recording_id}/{message.epoch}"
            )
        records.append(
            to_jsonable(
                {
                    "bed_id": message.bed_id,
                    "recording_id": message.recording_id,
                    "epoch": message.epoch,
                    "start_time": message.start_time,
                    "epoch_s": message.epoch_s,
                    "stage": result.stage,
                    "stage_source": result.stage_source,
                    "probabilities": None if result.probabilities is None else list(result.probabilities),
                    "captions": dict(result.captions),
                    "features": message.features,
                    "quality": message.quality,
                    "events": message.events,
                    "advisories": result.advisories,
                    "end_received_at": message.end_received_at,
                    "runtime": runtime.name,
                }
            )
        )
        if result.embedding is not None:
            embeddings.append(embedding_record(message, result, runtime.name))
    return InferenceRecords(records, embeddings)


def embedding_record(message: EpochMessage, result: EpochResult, runtime_name: str) -> dict[str, Any]:
    """The ``sleep.embeddings`` record of one epoch (``encode_json`` adds ``schema``): the joint-space vector
    rounded to ``EMBEDDING_DECIMALS``, keyed like the caption record so consumers can join the two."""
    vector = np.asarray(result.embedding, dtype=np.float64).ravel()
    return to_jsonable(
        {
            "bed_id": message.bed_id,
            "recording_id": message.recording_id,
            "epoch": message.epoch,
            "start_time": message.start_time,
            "runtime": runtime_name,
            "embedding": [round(float(v), EMBEDDING_DECIMALS) for v in vector],
        }
    )
