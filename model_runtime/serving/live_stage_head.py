"""The stage head on the live path: a real bed's epochs staged as ``sleeplm stage`` stages a recorded file.

Why: the live path staged every bed with the signal encoder, which was trained on simulated waveforms
only and got 9 of 24 real epochs right, never saying it was unsure; the stage head stages the same real
epochs 23 of 24 offline. A bed whose samples are real (``psg.recording.RECORDED``: the bridge's real
devices, EDF replays of recorded files) reaches the runtime with the stage head's per-epoch measurements
(``EpochMessage.stage_measurements``, taken by the epocher from microvolts at the device rate,
``psg.features.live_stage``); this keeps them per bed and stages each new epoch from the bed's history so
far, at once (lag 0), with the head the bed's origin picks (``StageHead.gate``: YASA's real-data prior for
a recorded bed, where YASA could stage the epoch), or a lab's own few-shot head (``SLEEPLM_LAB_HEAD``,
``sleeplm adapt``) in its place. An epoch the head cannot vouch for is ``uncertain``, with its reason,
and so is every epoch of a bed whose every EEG its device low-passed below YASA's band (its beta slope so
far, ``psg.features.eeg_bandwidth``, as offline), every epoch of the first 20 min after this worker took a
bed over mid-night (``takeover_reason``: the history is in memory, so a restart or a rebalance starts it
again) and, live only, an epoch whose two most likely stages are a coin toss (``tie_reason``).
Simulated beds carry no measurements and keep the signal encoder's stage.

Cost per epoch: 3.5 ms with one epoch of history, 11 ms with a 7.5-h night's (the row, YASA's classifier on
one row per EEG derivation, the head; ``benchmarks/live_stage_head.py``); memory ~0.5 MB per real bed and
night (``MeasurementHistory``).
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass

import numpy as np

from model_runtime.model.lab_head import LabHead
from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.stage_head import FULL_HEAD, UNCERTAIN, StageHead
from psg.codecs import EpochMessage
from psg.errors import PSGError
from psg.features.live_stage import MeasurementHistory
from psg.montage import EPOCH_S

_LOG = logging.getLogger(__name__)
#: A history whose first epoch is at most this far into the recording began with it (the epocher's
#: replays after a restart may resend a few epochs of a bed that just started).
TAKEOVER_GRACE_EPOCHS = 3
#: After a takeover mid-night, epochs are ``uncertain`` until the history holds this many (20 min).
TAKEOVER_HISTORY_EPOCHS = 40
#: Two stages closer than this in probability are a coin toss, not a verdict a nurse should act on.
TIE_MARGIN = 0.05


@dataclass(frozen=True)
class LiveVerdict:
    """The stage head's answer for one epoch: ``verdict`` is a stage or ``UNCERTAIN`` (then ``reason`` says
    why and ``best`` is the most likely stage), ``head`` which head staged it (``StageHead.gate``'s choice,
    or "lab" for a lab's head)."""

    verdict: str
    best: str
    probabilities: np.ndarray
    reason: str
    head: str

    @property
    def uncertain(self) -> bool:
        return self.verdict == UNCERTAIN


class LiveStageHead:
    """Per bed, the measurement history of its current recording and the stage head's verdict per epoch."""

    def __init__(self, head: StageHead, lab: LabHead | None = None) -> None:
        self.head = head
        self.lab = lab
        self._beds: dict[str, MeasurementHistory] = {}
        #: Messages whose measurements could not be read (staged by the signal encoder instead).
        self.rejected = 0

    def wanted(self, messages: list[EpochMessage]) -> list[tuple[str, str, int]]:
        """(bed, recording, epoch) of each recorded bed this runtime meets mid-night with no history of its
        recording: a worker that took the bed over, whose history may be in the store (``resume``)."""
        first: dict[tuple[str, str], int] = {}
        for m in messages:
            if m.stage_measurements is None or self._history(m) is not None:
                continue
            if m.epoch > TAKEOVER_GRACE_EPOCHS:
                key = (m.bed_id, m.recording_id)
                first[key] = min(first.get(key, m.epoch), m.epoch)
        return [(bed, recording, epoch) for (bed, recording), epoch in first.items()]

    def resume(self, bed_id: str, recording_id: str, rows: list[tuple[int, dict]]) -> int:
        """Start ``bed_id``'s history of ``recording_id`` from stored measurements (epoch order); returns how
        many epochs were kept (an unreadable one is skipped and counted in ``rejected``)."""
        history = self._beds[bed_id] = MeasurementHistory(recording_id)
        for epoch, measurements in rows:
            try:
                history.keep(epoch, measurements)
            except PSGError as exc:
                self.rejected += 1
                _LOG.warning("bed %s/%s epoch %s: stored measurements skipped: %s", bed_id, recording_id, epoch, exc)
        return len(history.epochs)

    def stage(self, message: EpochMessage) -> LiveVerdict | None:
        """The verdict for ``message``, or None when it carries no (readable) stage measurements."""
        if message.stage_measurements is None:
            return None
        history = self._history(message)
        if history is None:
            history = self._beds[message.bed_id] = MeasurementHistory(message.recording_id)
        try:
            x, eeg_ok, low_passed = history.row(message.epoch, message.stage_measurements)
        except PSGError as exc:  # one bad message must not stop the bed: the encoder stages it
            self.rejected += 1
            _LOG.warning("epoch %s/%s/%s: %s", message.bed_id, message.recording_id, message.epoch, exc)
            return None
        ok = np.array([eeg_ok])  # a lab head replaces the gate, as ``StageHead.stage_features`` does offline
        head = self.head.gate(x[None], ok, message.origin) if self.lab is None else FULL_HEAD
        staged = self.head.judge(x[None], ok, head, self.lab)
        name = head if self.lab is None else "lab"
        reason = (
            low_passed
            or staged.reasons[0]
            or takeover_reason(history, message.epoch)
            or tie_reason(staged.probabilities[0])
        )
        verdict = UNCERTAIN if reason else staged.verdicts[0]
        return LiveVerdict(verdict, staged.best[0], staged.probabilities[0], reason, name)

    def _history(self, message: EpochMessage) -> MeasurementHistory | None:
        """The bed's kept history when it is of ``message``'s recording, else None."""
        history = self._beds.get(message.bed_id)
        return history if history is not None and history.recording_id == message.recording_id else None


def takeover_reason(history: MeasurementHistory, epoch: int) -> str:
    """Why ``epoch`` cannot be vouched for when this worker took the bed over mid-night ('' otherwise).

    The head reads the epoch against the bed's night so far (robust scaling, YASA's smoothing), which lives
    in the worker's memory: after a worker restart or a rebalance the history starts again at the epoch the
    stream resumed from. Measured on held-out simulated nights as recorded beds (``benchmarks/RESULTS.md``,
    "How much history the live stage head needs"): the first 40 epochs after such a takeover were right
    0.49-0.60 of the time against 0.82-0.85 with the whole night, the next 40 0.75 against 0.82. A history
    that began with the recording (its first epochs) is the start of a night, not a takeover."""
    first = history.epochs[0] if history.epochs else epoch
    seen = bisect.bisect_right(history.epochs, epoch)  # the kept epochs are in increasing order
    if first <= TAKEOVER_GRACE_EPOCHS or seen >= TAKEOVER_HISTORY_EPOCHS:
        return ""
    return (
        f"the monitor took this bed over mid-night (a restart) and has {seen * EPOCH_S / 60:.1f} of the "
        f"{TAKEOVER_HISTORY_EPOCHS * EPOCH_S / 60:.0f} min of its night it needs"
    )


def tie_reason(probabilities: np.ndarray) -> str:
    """Why an epoch whose two most likely stages are within ``TIE_MARGIN`` cannot be vouched for ('' otherwise).

    Live only: the tile shows the verdict at once and a nurse acts on it, so a coin toss is shown as one. The
    real Sleep-EDF wake excerpt, played live, came out W 0.50 / N3 0.50 and W 0.45 / N3 0.46 at its 4th and 5th
    epochs (four or five epochs of history for the head's recording-relative features) and was called N3
    both times. Offline, ``sleeplm stage`` keeps the most likely stage and shows the tie in its probabilities.
    """
    second, first = np.argsort(probabilities)[-2:]
    p1, p2 = float(probabilities[first]), float(probabilities[second])
    if p1 - p2 >= TIE_MARGIN:
        return ""
    return f"{STAGE_LABELS[first]} and {STAGE_LABELS[second]} are about equally likely ({p1:.2f} and {p2:.2f})"
