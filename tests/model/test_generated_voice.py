"""The shipped caption decoder's own phrasing (issue 15): generated captions must speak in the monitor's voice.

The decoder learned its sentences from the caption templates of ``psg.captions`` as they were when the
shipped checkpoint was trained, which spoke like a scorer ("The hypnogram marks Stable Wakefulness (W)
during this 30-second window. No events are documented in this epoch."). The templates are fixed (see
``tests/psg/test_caption_truth.py``); the checkpoint is not retrained yet (``sleeplm train --config small``:
about an hour of corpus and training on two cores, then ``train-stage`` and ``sleeplm bank`` against the new
encoder), so this test is a strict expected failure that starts passing, and must then lose its marker,
with the retrained checkpoint. The live monitor does not show generated captions meanwhile
(``model_runtime.serving.sleeplm_runtime``); ``sleeplm describe`` still prints them.
"""

from __future__ import annotations

import numpy as np
import pytest

from model_runtime.serving.model_api import SleepLM
from psg.features import epoch_features
from psg.model_input import recording_model_epochs
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline
from tests.psg.test_caption_truth import grammar_problems


@pytest.mark.xfail(
    strict=True,
    reason="the shipped decoder was trained on the old scorer-voice captions; "
    "retrain the checkpoint (see the module docstring)",
)
def test_the_shipped_decoder_writes_no_scorer_wording() -> None:
    recording = simulate(synthetic_timeline(hours=0.25, seed=4, ahi=40), seed=1, artifacts=True)
    x = np.asarray(recording_model_epochs(recording)[:12], dtype=np.float32)
    texts = SleepLM.load(None, backend="torch").describe(x, epoch_features(recording)[:12])
    assert texts and all(t.strip() for t in texts)
    problems = {t: grammar_problems(t) for t in texts}
    assert not any(problems.values()), problems
