"""Staging a discontinuous recording (EDF+D): gap epochs are left out of the model and answered "gap".

An epoch that touches a recording gap (``Recording.gap_epochs``) holds zeros, not sleep. Staged with the
rest it would be "uncertain" or, worse, a stage, and its zeros would move everything computed over the
recording: the stage head's robust z-scores and rolling context (``psg.features.stage_spectra``) and the
recording-relative features of the YASA prior. So the stage head is given the recording with its gap
epochs cut out (``recorded_epochs``: the recorded epochs back to back, as if the recorder had paused),
the signal encoder embeds and smooths only the recorded epochs (its model input is per epoch, and a
flat gap epoch adds nothing to the running normaliser), and ``with_gaps`` puts the result back on the
recording's epochs: verdict and best stage ``"gap"``, all-zero probabilities (no stage has any) and no
uncertainty reason.
"""

from __future__ import annotations

import numpy as np

from model_runtime.model.stage_head import StagedEpochs
from psg.montage import EPOCH_S
from psg.recording import Recording

#: The verdict of an epoch in a recording gap (not a stage: nothing was recorded).
GAP_VERDICT = "gap"


def recorded_epochs(recording: Recording, gap: np.ndarray) -> Recording:
    """``recording`` without the epochs where ``gap`` is True (whole epochs back to back; no truth, no gaps)."""
    keep = np.flatnonzero(~gap)
    runs = np.split(keep, np.flatnonzero(np.diff(keep) != 1) + 1) if keep.size else []
    spans = [(int(r[0]) * EPOCH_S, (int(r[-1]) + 1) * EPOCH_S) for r in runs]
    signals = {
        label: sig.with_data(np.concatenate([sig.window(a, b) for a, b in spans]) if spans else sig.data[:0])
        for label, sig in recording.signals.items()
    }
    return Recording(recording.record_id, signals, recording.start_time, None, dict(recording.metadata))


def with_gaps(staged: StagedEpochs, gap: np.ndarray) -> StagedEpochs:
    """``staged`` (the epochs where ``gap`` is False, in order) spread over all ``gap.size`` epochs, the gap
    epochs answered ``GAP_VERDICT`` with zero probabilities."""
    n, kept = gap.size, np.flatnonzero(~gap)[: len(staged.verdicts)]
    verdicts, best, reasons = [GAP_VERDICT] * n, [GAP_VERDICT] * n, [""] * n
    probabilities = np.zeros((n, staged.probabilities.shape[1]) if staged.probabilities.ndim == 2 else (n, 0))
    novelty = np.zeros(n)
    for row, i in enumerate(kept):
        verdicts[i], best[i], reasons[i] = staged.verdicts[row], staged.best[row], staged.reasons[row]
    probabilities[kept] = staged.probabilities[: kept.size]
    novelty[kept] = staged.novelty[: kept.size]
    return StagedEpochs(verdicts, best, probabilities, novelty, reasons, staged.head)
