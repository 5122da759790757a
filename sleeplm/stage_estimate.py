"""The stages `sleeplm caption` and `sleeplm report` give a file without scored stages: the model's.

Why: these commands staged such a file with the rule stager of ``psg.staging`` (band-power thresholds),
while ``sleeplm stage`` reads it with the shipped model's stage head. On the real recordings they disagreed:
the Sleep-EDF wake (experts: 10 epochs W) was N2 in 7 epochs by the rules, so its report said "total sleep
time 3.5 min, N2 100 % of sleep", where ``sleeplm stage`` says W 10 / 10; the awake Nox A1 PSG was N1 3,
N2 1 (sleep efficiency 100 %). Now both commands state what ``sleeplm stage`` states, ``uncertain`` epochs
as unscored ("Stage uncertain"), with ``stage_source: "model"``; the rule stager stays for a checkout
without the shipped checkpoint or its stage head (it says "rule-based estimate"). A lab head
(``--lab-head``, ``SLEEPLM_LAB_HEAD``) stages here as it does in ``sleeplm stage``, so the two still agree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from psg.captions.grounding import stage_of
from psg.captions.night import StageEstimate
from psg.recording import Recording

STAGE_SOURCE = "model"


def model_stage_estimate(recording: Recording, lab_head: Path | None = None) -> StageEstimate | None:
    """The shipped stage head's stages of ``recording`` (UNSCORED where it says uncertain or gap), through
    ``lab_head`` where one is given; None where the recording has scored stages (they win) or no checkpoint
    with a stage head ships."""
    from model_runtime.model.shipped import SHIPPED_CHECKPOINT

    if (recording.timeline is not None and recording.timeline.is_scored) or not SHIPPED_CHECKPOINT.is_file():
        return None
    from model_runtime.serving.model_api import SleepLM
    from model_runtime.serving.night import head_staged

    lm = SleepLM.load()
    if lm.stage_head is None:
        return None
    if lab_head is not None:
        lm.use_lab_head(lab_head)
    verdicts = head_staged(lm, recording, recording.n_epochs).verdicts
    stages = np.array([int(stage_of(v)) for v in verdicts], dtype=np.int64)
    return StageEstimate(stages, STAGE_SOURCE)
