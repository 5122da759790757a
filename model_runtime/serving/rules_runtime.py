"""The feature-rule runtime: stages from ``psg.staging.rule_stages``, captions from ``psg.captions``.

What the live path runs until the SleepLM model is loaded (``RUNTIMES["rules"]``). Everything it says
is measured: the numbers come from the epoch's features (``psg.features``, computed by the epocher at
device rates), the events from the AASM rule detectors, and the stage from the transparent rule
stager, marked as an estimate in the stage sentence and as ``stage_source='rules'``.

The rule stager judges chin tone and eye movements relative to the night's median epoch, so a single
epoch cannot be staged on its own: the runtime keeps, per bed and recording, the features of the last
``history_epochs`` epochs (2 h by default) and stages the newest as the last element of
``rule_stages`` over that history (causal: no look-ahead, so the live stage can differ from the
offline one, which also smooths with the following epoch). Over a whole night the median epoch is a
sleep epoch (usually N2), which is what the stager's relative thresholds assume; in the first hour the
history is mostly wake, and against a waking chin tone every N1/N2 epoch looks atonic (REM). So an
epoch the first pass does not call wake is staged again against the epochs staged as sleep so far
(plus itself), which is the night's reference the stager expects. On simulated 2.5-h nights this
raises live agreement with the truth from 0.83-0.89 to 0.90-0.91 (offline: 0.98) and removes the
false REM at sleep onset.

A replayed epoch (epoch number not after the last seen for its bed and recording, as after a worker
restart) is answered from a small cache of recent results, or recomputed from the history before it,
without touching the history.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from model_runtime.serving.runtimes import RUNTIMES, EpochResult
from psg.captions import StageContext, caption_epoch
from psg.captions.availability import quality_groups, streamed_events
from psg.codecs import EpochMessage
from psg.errors import PSGError
from psg.staging import rule_stages
from psg.timeline import EPOCH_S, Event, Stage

#: Epochs of history per bed: 240 x 30 s = 2 h, several sleep cycles for the night-relative medians.
HISTORY_EPOCHS = 240
#: Recent results kept per bed for replays.
CACHE_EPOCHS = 64


@dataclass
class _BedState:
    recording_id: str
    history: deque[tuple[int, dict[str, Any]]] = field(default_factory=lambda: deque(maxlen=HISTORY_EPOCHS))
    last_epoch: int = -1
    last_stage: Stage | None = None
    cache: OrderedDict[int, EpochResult] = field(default_factory=OrderedDict)


class RulesRuntime:
    """``InferenceRuntime`` from measured features and rules (see the module docstring)."""

    name = "rules"

    def __init__(self, history_epochs: int = HISTORY_EPOCHS) -> None:
        if history_epochs < 1:
            raise ValueError(f"history_epochs must be >= 1, got {history_epochs}")
        self.history_epochs = history_epochs
        self._beds: dict[str, _BedState] = {}

    def infer(self, epochs: Sequence[EpochMessage]) -> list[EpochResult]:
        """One result per epoch, in order (each bed's epochs are expected in order; replays tolerated)."""
        return [self._one(message) for message in epochs]

    def _one(self, message: EpochMessage) -> EpochResult:
        state = self._beds.get(message.bed_id)
        if state is None or state.recording_id != message.recording_id:
            state = _BedState(message.recording_id, deque(maxlen=self.history_epochs))
            self._beds[message.bed_id] = state
        if message.epoch <= state.last_epoch:
            cached = state.cache.get(message.epoch)
            if cached is not None:
                return cached
            earlier = [features for epoch, features in state.history if epoch < message.epoch]
            return self._result(message, _stage(earlier + [message.features]), None)
        previous = state.last_stage if state.last_epoch == message.epoch - 1 else None
        state.history.append((message.epoch, message.features))
        stage = _stage([features for _, features in state.history])
        result = self._result(message, stage, previous)
        state.last_epoch, state.last_stage = message.epoch, stage
        state.cache[message.epoch] = result
        while len(state.cache) > CACHE_EPOCHS:
            state.cache.popitem(last=False)
        return result

    def _result(self, message: EpochMessage, stage: Stage, previous: Stage | None) -> EpochResult:
        context = StageContext(previous=previous if previous not in (None, Stage.UNSCORED) else None, next=None)
        groups, bad = quality_groups(message.quality)
        captions = caption_epoch(
            message.features,
            stage,
            streamed_events(message_events(message), message.quality),
            message.epoch * EPOCH_S,
            context=context,
            style="canonical",
            estimated=True,
            epoch_s=message.epoch_s,
            groups=groups,
            bad_groups=bad,
        )
        return EpochResult(
            bed_id=message.bed_id,
            recording_id=message.recording_id,
            epoch=message.epoch,
            stage=stage.label,
            stage_source="rules",
            captions=captions,
        )


def message_events(message: EpochMessage) -> list[Event]:
    """The epoch's detector events (``DetectedEvent.to_dict`` shape) as timeline events; malformed ones
    (unknown type, negative times) are skipped, they cannot be described."""
    out = []
    for item in message.events:
        try:
            out.append(
                Event(
                    str(item["type"]),
                    max(0.0, float(item["onset_s"])),
                    max(0.0, float(item["duration_s"])),
                    subtype=item.get("reason"),
                    channel=item.get("channel"),
                )
            )
        except (KeyError, TypeError, ValueError, PSGError):
            continue
    return out


def _stage(history: list[dict[str, Any]]) -> Stage:
    """The last epoch's stage: ``rule_stages`` over ``history``, then, unless that says wake or unscored,
    over the epochs staged as sleep plus the last one (see the module docstring)."""
    first = rule_stages(history)
    if first[-1] in (Stage.W, Stage.UNSCORED):
        return Stage(int(first[-1]))
    asleep = [f for f, s in zip(history[:-1], first[:-1], strict=True) if s not in (Stage.W, Stage.UNSCORED)]
    return Stage(int(rule_stages([*asleep, history[-1]])[-1]))


RUNTIMES["rules"] = RulesRuntime
