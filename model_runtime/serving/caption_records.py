"""Inference step of the live path: one runtime call per batch of epochs -> ``sleep.captions`` records
and, for runtimes that embed epochs (SleepLM), ``sleep.embeddings`` records.

Broker-free: the Faust inference agent batches ``EpochMessage``s across beds and calls
``inference_records``; the records are exactly the topics' contracts (strict JSON: NaN and infinities
are None), so the agent only encodes and sends them.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import NamedTuple, cast

import numpy as np

from model_runtime.serving.runtimes import InferenceRuntime
from psg.alerts.facts import aux_record
from psg.codecs import EpochMessage
from psg.contracts import CaptionRecord, Captions, EmbeddingRecord, WaveformPreview
from psg.errors import PSGError
from psg.json_codec import to_jsonable
from psg.montage import MODEL_CHANNELS, MODEL_FS

#: Rate of the waveform preview in caption records (Hz); the model input is 64 Hz.
WAVEFORM_HZ = 32.0
#: Decimals an embedding keeps on ``sleep.embeddings``: cosine scores move by < 1e-4, JSON stays compact.
EMBEDDING_DECIMALS = 5


class InferenceRecords(NamedTuple):
    """What one batch produces: one caption record per epoch, one embedding record per embedded epoch."""

    captions: list[CaptionRecord]
    embeddings: list[EmbeddingRecord]


def caption_records(runtime: InferenceRuntime, messages: Sequence[EpochMessage]) -> list[CaptionRecord]:
    """One caption record per message, in order, from a single ``runtime.infer`` call (see ``inference_records``)."""
    return inference_records(runtime, messages).captions


def inference_records(
    runtime: InferenceRuntime, messages: Sequence[EpochMessage], waveform_hz: float = WAVEFORM_HZ
) -> InferenceRecords:
    """Caption records (one per message, in order) and embedding records (one per result that has an
    embedding, in order) from a single ``runtime.infer`` call.

    Besides stage, captions, features, quality and events, a caption record carries what the alert agent
    and the bed view need and nothing else has: ``aux`` (per-second SpO2 and HR), ``embedding`` (the
    joint-space vector, for watch rules and plain-language search; None without one), ``waveform``
    (the epoch's model-montage traces at ``waveform_hz``, float16; None when 0) and ``stage_measurements``
    (a real bed's, stored so a worker taking the bed over resumes its stage history; None otherwise).

    Raises ``PSGError`` if the runtime answers with a different number of results or for other epochs
    than it was given (a runtime bug must not store captions under the wrong bed or epoch).
    """
    if not messages:
        return InferenceRecords([], [])
    results = runtime.infer(list(messages))
    if len(results) != len(messages):
        raise PSGError(f"runtime {runtime.name!r} returned {len(results)} results for {len(messages)} epochs")
    records: list[CaptionRecord] = []
    embeddings: list[EmbeddingRecord] = []
    for message, result in zip(messages, results, strict=True):
        if (result.bed_id, result.recording_id, result.epoch) != (message.bed_id, message.recording_id, message.epoch):
            raise PSGError(
                f"runtime {runtime.name!r} answered epoch {result.bed_id}/{result.recording_id}/{result.epoch} "
                f"for {message.bed_id}/{message.recording_id}/{message.epoch}"
            )
        record: CaptionRecord = {
            "bed_id": message.bed_id,
            "recording_id": message.recording_id,
            "epoch": message.epoch,
            "start_time": message.start_time,
            "epoch_s": message.epoch_s,
            "stage": result.stage,
            "stage_source": result.stage_source,
            "probabilities": None if result.probabilities is None else list(result.probabilities),
            "captions": cast(Captions, dict(result.captions)),  # the runtimes write every level; the store checks
            "features": message.features,
            "quality": message.quality,
            "events": message.events,
            "advisories": result.advisories,
            "end_received_at": message.end_received_at,
            "runtime": runtime.name,
            "aux": aux_record(message.aux),
            "embedding": None if result.embedding is None else rounded_embedding(result.embedding),
            "waveform": waveform_preview(message.signals, waveform_hz) if waveform_hz else None,
            "stage_measurements": message.stage_measurements,
        }
        records.append(to_jsonable(record))
        if result.embedding is not None:
            embeddings.append(embedding_record(message, result.embedding, runtime.name))
    return InferenceRecords(records, embeddings)


def embedding_record(message: EpochMessage, embedding: np.ndarray, runtime_name: str) -> EmbeddingRecord:
    """The ``sleep.embeddings`` record of one epoch (``encode_json`` adds ``schema``): the runtime's joint-space
    vector ``embedding`` rounded to ``EMBEDDING_DECIMALS``, keyed like the caption record so consumers can join
    the two."""
    return to_jsonable(
        {
            "bed_id": message.bed_id,
            "recording_id": message.recording_id,
            "epoch": message.epoch,
            "start_time": message.start_time,
            "runtime": runtime_name,
            "embedding": rounded_embedding(embedding),
        }
    )


def rounded_embedding(embedding: np.ndarray) -> list[float]:
    """The vector as a JSON list rounded to ``EMBEDDING_DECIMALS``."""
    return [round(float(v), EMBEDDING_DECIMALS) for v in np.asarray(embedding, dtype=np.float64).ravel()]


def waveform_preview(signals: np.ndarray, hz: float) -> WaveformPreview:
    """The epoch's traces for the bed view: each model channel averaged down to ``hz`` (a boxcar, which is
    also the anti-alias filter: the page draws 30 s in a few hundred pixels), as base64 float16."""
    x = np.asarray(signals, dtype=np.float32)
    factor = max(1, int(round(MODEL_FS / hz)))
    usable = x.shape[1] - x.shape[1] % factor
    reduced = x[:, :usable].reshape(x.shape[0], -1, factor).mean(axis=2)
    data = np.clip(np.nan_to_num(reduced), -60000, 60000).astype("<f2")
    return {
        "fs": MODEL_FS / factor,
        "channels": list(MODEL_CHANNELS),
        "data_b64": base64.b64encode(data.tobytes()).decode(),
    }
