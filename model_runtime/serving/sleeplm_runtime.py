"""The SleepLM runtime of the live path (``RUNTIMES["sleeplm"]``): model stages, captions, embeddings, advisories.

One ``infer`` call is one batched ``SleepLM.encode`` of every message's ``signals``; from its two outputs:

* **stage**: zero-shot probabilities over W, N1, N2, N3, R, smoothed per bed with the *causal* sticky
  chain of ``model_runtime.model.zero_shot.causal_smooth``, continued across batches with ``prior=`` the
  bed's previous belief (propagated over skipped epochs), so a live bed gets the stage that
  ``SleepLM.stage`` would give the same night offline, the moment the epoch arrives. ``stage`` is the
  argmax, ``stage_source='model'``.
* **captions**: all five levels are the measured-feature captions of ``psg.captions`` for the model's
  stage, with the detectors' events and the epoch's quality flags (a group flagged bad on every channel
  says so): one record, one truth (``psg.captions.consistency`` checks it). The decoder's generated
  stage_event caption is not shown live: it re-decides events per epoch (a hypopnea's type flipped from
  one epoch to the next within one detector event) and its spans are the model's localisation rather
  than the detectors'; ``SleepLM.describe`` writes it offline.
* **embedding**: the epoch's unit vector in the joint space (``EpochResult.embedding``), which the
  inference agent publishes on ``sleep.embeddings`` for retrieval and watch rules.
* **advisories**: ``SleepLM.detect_events`` (class similarity over the calibrated thresholds), one dict
  per detected class in the shape of ``DetectedEvent.to_dict`` spanning the whole epoch (localising each
  costs another ~11 encoder passes per epoch), plus ``source='model'`` and the cosine ``score``.

Replays (an epoch number not after the last seen for its bed and recording, as after a worker restart):
the chain is never advanced twice. The runtime keeps, per bed, the prior each of the last
``PRIOR_EPOCHS`` epochs was smoothed from, and answers a replay by smoothing its (deterministic) model
probabilities from that stored prior, which reproduces the first answer without touching the chain; a
replay older than that falls back to the unsmoothed probabilities.

Unscorable epochs: when more than half of the EEG/EOG channels (C3, C4, EOG-L, EOG-R) are flagged missing
or flat, the epoch's model input is mostly zeros and a model stage would be a guess. Such an epoch still
gets a result: stage ``'?'``, no probabilities, no embedding (nothing to index), no advisories, and the
measured-feature captions for an unscored stage; it does not advance the bed's chain.
"""

from __future__ import annotations

import importlib.util
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model_runtime.model.lab_head import LabHead
from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.zero_shot import transition_matrix
from model_runtime.serving.live_stage_head import LiveStageHead, LiveVerdict
from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.night import uncertain_caption
from model_runtime.serving.rules_runtime import message_events
from model_runtime.serving.runtimes import RUNTIMES, EpochResult
from psg.captions import caption_epoch
from psg.captions.availability import quality_groups, streamed_events
from psg.codecs import EpochMessage
from psg.errors import PSGError
from psg.montage import EEG_C3, EEG_C4, EOG_L, EOG_R, MODEL_CHANNELS, MODEL_EPOCH_SAMPLES
from psg.timeline import EPOCH_S, Stage

#: Per bed, the smoothing priors kept for replays: 64 epochs (32 min), more than a restart replays.
PRIOR_EPOCHS = 64
#: The brain channels a stage needs; more than half of them missing or flat -> stage '?'.
STAGING_CHANNELS: tuple[str, ...] = (EEG_C3, EEG_C4, EOG_L, EOG_R)
_UNSCORABLE_FLAGS = frozenset({"missing", "flat"})
#: Beyond this many skipped epochs the chain has forgotten the old belief (0.85**200 ~ 1e-14).
_MAX_GAP = 200


@dataclass
class _Chain:
    """One bed's causal smoothing state for one recording."""

    recording_id: str
    last_epoch: int = -1
    belief: np.ndarray | None = None  # posterior after ``belief_epoch``
    belief_epoch: int = -1
    priors: OrderedDict[int, np.ndarray] = field(default_factory=OrderedDict)


class SleepLMRuntime:
    """``InferenceRuntime`` backed by the SleepLM model (see the module docstring)."""

    name = "sleeplm"

    def __init__(
        self, checkpoint: str | Path | None = None, backend: str = "auto", lab_head: str | Path | None = None
    ) -> None:
        """Load ``checkpoint`` (default: the shipped one) once, on ``backend`` ('auto', 'torch' or 'onnx');
        ``lab_head``: a lab's few-shot head (``sleeplm adapt``) for the beds the stage head stages."""
        self._start(load_model(checkpoint, backend), None if lab_head is None else LabHead.load(lab_head))

    @classmethod
    def from_model(cls, lm: SleepLM, lab: LabHead | None = None) -> SleepLMRuntime:
        """A runtime with fresh per-bed state around an already loaded model (one model, several runtimes)."""
        runtime = cls.__new__(cls)
        runtime._start(lm, lab)
        return runtime

    def _start(self, lm: SleepLM, lab: LabHead | None = None) -> None:
        self.lm = lm
        self._chains: dict[str, _Chain] = {}
        head = lm.stage_head
        if lab is not None and head is None:
            raise PSGError("a lab head needs the checkpoint's stage head (it is fitted on the stage head's embeddings)")
        self.live_head = None if head is None else LiveStageHead(head, lab)
        self._transition = lm.transition if lm.transition is not None else transition_matrix(len(STAGE_LABELS))

    def histories_wanted(self, epochs: Sequence[EpochMessage]) -> list[tuple[str, str, int]]:
        """(bed, recording, first epoch) of the real beds met mid-night without their stage history, which
        the caller resumes from the store (``resume_history``) before ``infer``; [] without a stage head."""
        return [] if self.live_head is None else self.live_head.wanted(list(epochs))

    def resume_history(self, bed_id: str, recording_id: str, rows: list[tuple[int, dict]]) -> int:
        """A real bed's stage history from its stored measurements (``Store.stage_measurements``)."""
        return 0 if self.live_head is None else self.live_head.resume(bed_id, recording_id, rows)

    def infer(self, epochs: Sequence[EpochMessage]) -> list[EpochResult]:
        """One result per epoch, in order; each bed's epochs are expected in order, replays are tolerated."""
        messages = list(epochs)
        if not messages:
            return []
        verdicts = [None if self.live_head is None else self.live_head.stage(m) for m in messages]
        scorable = [i for i, m in enumerate(messages) if is_scorable(m.quality)]
        x = np.stack([_signals(messages[i]) for i in scorable]) if scorable else np.zeros((0, 10, 1920), np.float32)
        embeddings, _ = self.lm.encode(x)
        raw = self.lm.stage_probabilities(embeddings)
        probs: dict[int, np.ndarray] = {}
        for k, i in enumerate(scorable):
            if verdicts[i] is None:  # the stage head staged the rest (a real bed): their chain is never read
                probs[i] = self._smoothed(messages[i], raw[k])
        for i, message in enumerate(messages):  # unscorable epochs still count as seen (replay detection)
            if i not in probs:
                self._chain(message).last_epoch = max(self._chain(message).last_epoch, message.epoch)
        stages = {i: STAGE_LABELS[int(np.argmax(p))] for i, p in probs.items()}
        advisories = self._advisories(embeddings, [messages[i] for i in scorable])
        by_index = {i: row for row, i in enumerate(scorable)}
        results = []
        for i, message in enumerate(messages):
            row = by_index.get(i)
            verdict = verdicts[i]
            if verdict is not None:
                embedding = None if row is None else embeddings[row].astype(np.float32)
                results.append(_staged_by_head(message, verdict, [] if row is None else advisories[row], embedding))
                continue
            if row is None:
                results.append(self._unscorable(message))
                continue
            texts = measured_captions(message, Stage[stages[i]])
            results.append(
                EpochResult(
                    bed_id=message.bed_id,
                    recording_id=message.recording_id,
                    epoch=message.epoch,
                    stage=stages[i],
                    stage_source="model",
                    captions=texts,
                    probabilities=[float(p) for p in probs[i]],
                    advisories=advisories[row],
                    embedding=embeddings[row].astype(np.float32),
                )
            )
        return results

    # --- smoothing ---------------------------------------------------------------------------------
    def _chain(self, message: EpochMessage) -> _Chain:
        chain = self._chains.get(message.bed_id)
        if chain is None or chain.recording_id != message.recording_id:
            chain = self._chains[message.bed_id] = _Chain(message.recording_id)
        return chain

    def _smoothed(self, message: EpochMessage, probs: np.ndarray) -> np.ndarray:
        """The causally smoothed probabilities of ``message``; advances its bed's chain unless it is a replay."""
        chain = self._chain(message)
        if message.epoch <= chain.last_epoch:
            prior = chain.priors.get(message.epoch)
            return probs.astype(np.float64) if prior is None else self.lm.smooth(probs[None], prior=prior)[0]
        if chain.belief is None:
            prior = np.full(len(probs), 1.0 / len(probs))
        else:  # epochs skipped since the last belief (gap, unscorable epochs): let the chain run over them
            skipped = min(message.epoch - chain.belief_epoch - 1, _MAX_GAP)
            prior = chain.belief @ np.linalg.matrix_power(self._transition, skipped)
        posterior = self.lm.smooth(probs[None], prior=prior)[0]
        chain.priors[message.epoch] = prior
        while len(chain.priors) > PRIOR_EPOCHS:
            chain.priors.popitem(last=False)
        chain.belief, chain.belief_epoch, chain.last_epoch = posterior, message.epoch, message.epoch
        return posterior

    # --- captions and advisories -------------------------------------------------------------------
    def _advisories(self, embeddings: np.ndarray, messages: list[EpochMessage]) -> list[list[dict[str, Any]]]:
        """Per epoch, the model's advisory events as ``DetectedEvent.to_dict``-shaped dicts (whole epoch)."""
        if not messages:
            return []
        detected = self.lm.detect_events(embeddings)
        scores = self.lm.event_scores(embeddings)
        out = []
        for i, (message, labels) in enumerate(zip(messages, detected, strict=True)):
            start = message.epoch * EPOCH_S
            out.append(
                [
                    {
                        "type": label,
                        "onset_s": round(float(start), 2),
                        "duration_s": round(float(message.epoch_s), 2),
                        "channel": None,
                        "source": "model",
                        "score": round(float(scores[label][i]), 4),
                    }
                    for label in labels
                ]
            )
        return out

    def _unscorable(self, message: EpochMessage) -> EpochResult:
        return EpochResult(
            bed_id=message.bed_id,
            recording_id=message.recording_id,
            epoch=message.epoch,
            stage=Stage.UNSCORED.label,
            stage_source="model",
            captions=measured_captions(message, Stage.UNSCORED),
        )


def _staged_by_head(
    message: EpochMessage, verdict: LiveVerdict, advisories: list[dict[str, Any]], embedding: np.ndarray | None
) -> EpochResult:
    """The result of an epoch the stage head staged (a real bed): its verdict, or '?' with "Stage uncertain:
    <reason>." leading the stage_event caption; the encoder's embedding and advisories where it could read it."""
    texts = measured_captions(message, Stage[verdict.best])
    if verdict.uncertain:
        texts["stage_event"] = uncertain_caption(texts["stage_event"], verdict.reason)
    return EpochResult(
        bed_id=message.bed_id,
        recording_id=message.recording_id,
        epoch=message.epoch,
        stage=Stage.UNSCORED.label if verdict.uncertain else verdict.verdict,
        stage_source=f"stage head ({verdict.head})",
        captions=texts,
        probabilities=[float(p) for p in verdict.probabilities],
        advisories=advisories,
        embedding=embedding,
    )


def measured_captions(message: EpochMessage, stage: Stage) -> dict[str, str]:
    """All five measured-feature captions of ``message`` for ``stage``, as the rules runtime writes them:
    the message's events and quality flags (``quality_groups``) are the ones its record carries."""
    groups, bad = quality_groups(message.quality)
    return caption_epoch(
        message.features,
        stage,
        streamed_events(message_events(message), message.quality),
        message.epoch * EPOCH_S,
        style="canonical",
        epoch_s=message.epoch_s,
        groups=groups,
        bad_groups=bad,
    )


def is_scorable(quality: Mapping[str, Sequence[str]]) -> bool:
    """False when more than half of ``STAGING_CHANNELS`` are flagged missing or flat in ``quality``."""
    bad = sum(1 for ch in STAGING_CHANNELS if _UNSCORABLE_FLAGS.intersection(quality.get(ch, ()) or ()))
    return bad * 2 <= len(STAGING_CHANNELS)


def load_model(checkpoint: str | Path | None = None, backend: str = "auto") -> SleepLM:
    """``SleepLM.load`` of ``checkpoint`` on ``backend``; 'auto' means torch where the ONNX backend is not
    installed (onnxruntime missing)."""
    if backend == "auto" and not _onnx_available():
        backend = "torch"
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise PSGError(f"SleepLM checkpoint {checkpoint}: no such file (set SLEEPLM_CHECKPOINT to a .pt checkpoint)")
    return SleepLM.load(checkpoint, backend=backend)


def _onnx_available() -> bool:
    needed = ("onnxruntime", "model_runtime.model.onnx_backend")
    return all(importlib.util.find_spec(name) is not None for name in needed)


def _signals(message: EpochMessage) -> np.ndarray:
    signals = np.asarray(message.signals, dtype=np.float32)
    if signals.shape != (len(MODEL_CHANNELS), MODEL_EPOCH_SAMPLES):
        raise PSGError(
            f"epoch {message.bed_id}/{message.recording_id}/{message.epoch}: signals shaped {signals.shape}, "
            f"expected ({len(MODEL_CHANNELS)}, {MODEL_EPOCH_SAMPLES})"
        )
    return signals


RUNTIMES["sleeplm"] = SleepLMRuntime
