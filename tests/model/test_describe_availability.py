"""Generated captions claim nothing about a channel group the night does not have (issue 12)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.night import describe_night, load_night_input
from psg.captions.availability import MISSING_SENTENCES
from psg.formats import write_edf
from psg.montage import ABD, AF, ECG, HR, POS, SPO2, THX
from psg.recording import Recording

CLAIMS = re.compile(
    r"apnea|hypopnea|desaturation|spo2|oxygen|airflow|breathing|position|heart|bpm|rmssd", re.IGNORECASE
)


def test_describe_night_without_cardiorespiratory_channels(
    tiny_checkpoint: Path,
    simulated_recording: Recording,
    tmp_path: Path,
) -> None:
    removed = {AF, THX, ABD, SPO2, POS, ECG, HR}
    stripped = Recording(
        simulated_recording.record_id,
        {k: s for k, s in simulated_recording.signals.items() if k not in removed},
        timeline=simulated_recording.timeline,
    )
    write_edf(stripped, tmp_path / "stripped.edf")
    lm = SleepLM.load(tiny_checkpoint, backend="torch")
    captions = describe_night(lm, load_night_input(tmp_path / "stripped.edf"), slice(20, 24), "all")["captions"]
    plain = [MISSING_SENTENCES[g] for g in ("respiratory", "spo2", "ecg", "position")]
    for c in captions:
        text = c["text"]
        for sentence in plain:
            text = text.replace(sentence, "")
        assert not CLAIMS.search(text), c
    by_level = {c["modality"]: c["text"] for c in captions if c["epoch"] == 20}
    # the tiny decoder is untrained: what it writes after the plain sentences is noise, claim-free (above)
    assert by_level["respiratory"].startswith("Respiratory channels not recorded. No SpO2 recorded.")
    assert by_level["cardiac"].startswith("No ECG recorded.")
    assert by_level["somatic"].startswith("Body position not recorded.")


@pytest.mark.parametrize("level", ["brain", "stage_event"])
def test_describe_without_groups_is_unchanged(tiny_checkpoint: Path, level: str) -> None:
    import numpy as np

    lm = SleepLM.load(tiny_checkpoint, backend="torch")
    x = np.zeros((1, 10, 1920), dtype=np.float32)
    assert lm.describe(x, [{}], level) == lm.describe(x, [{}], level, groups=None)
