"""The shipped caption decoder's own phrasing (issue 15): generated captions must speak in the monitor's voice.

The decoder learns its sentences from the caption templates of ``psg.captions``. The checkpoint first
shipped had learned them while they spoke like a scorer ("The hypnogram marks Stable Wakefulness (W)
during this 30-second window. No events are documented in this epoch."); the templates were fixed (see
``tests/psg/test_caption_truth.py``) and the decoder alone retrained on their captions
(``sleeplm train --decoder-only``, ``model_runtime.training.decoder_training``), the signal side frozen so
staging, the reference bank and the stage head did not move. This checks what the shipped decoder writes
on a simulated night with artifacts against the same grammar and voice rules as the templates. The live
monitor shows the template captions (``model_runtime.serving.sleeplm_runtime``: one truth per epoch);
``sleeplm describe`` prints the generated ones.
"""

from __future__ import annotations

import numpy as np

from model_runtime.serving.model_api import SleepLM
from psg.features import epoch_features
from psg.model_input import recording_model_epochs
from psg.simulate import simulate
from psg.synthetic import synthetic_timeline
from tests.psg.test_caption_truth import grammar_problems


def test_the_shipped_decoder_writes_no_scorer_wording() -> None:
    recording = simulate(synthetic_timeline(hours=0.25, seed=4, ahi=40), seed=1, artifacts=True)
    x = np.asarray(recording_model_epochs(recording)[:12], dtype=np.float32)
    texts = SleepLM.load(None, backend="torch").describe(x, epoch_features(recording)[:12])
    assert texts and all(t.strip() for t in texts)
    problems = {t: grammar_problems(t) for t in texts}
    assert not any(problems.values()), problems
