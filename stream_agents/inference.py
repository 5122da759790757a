"""Inference step of the live path: one runtime call per batch of epochs -> ``sleep.captions`` records.

Broker-free: the Faust inference agent batches ``EpochMessage``s across beds and calls
``caption_records``; the records are exactly the ``sleep.captions`` contract (strict JSON: NaN and
infinities are None), so the agent only encodes and sends them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from model_runtime.runtime import InferenceRuntime
from psg.codecs import EpochMessage, to_jsonable
from psg.errors import PSGError


def caption_records(runtime: InferenceRuntime, messages: Sequence[EpochMessage]) -> list[dict[str, Any]]:
    """One caption record per message, in order, from a single ``runtime.infer`` call.

    Raises ``PSGError`` if the runtime answers with a different number of results or for other epochs
    than it was given (a runtime bug must not store captions under the wrong bed or epoch).
    """
    if not messages:
        return []
    results = runtime.infer(list(messages))
    if len(results) != len(messages):
        raise PSGError(f"runtime {runtime.name!r} returned {len(results)} results for {len(messages)} epochs")
    records = []
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
    return records
