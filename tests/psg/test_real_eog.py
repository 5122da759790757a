"""The real REM-sleep EOG (``real-signals/yasa/data_EOGs_REM_256Hz.npz``: 14.3 min, LOC and ROC at 256 Hz).

The EOG features and captions assume conjugate eye movements drive the two leads in opposite directions
(E1-E2 correlation <= ``CONJUGATE_CORRELATION``); the simulator draws them so. Checked here on real REM
sleep: 21 of its 28 epochs read as conjugate, the clinical labels map to the EOG slots, the live epoch
analysis measures what the file path measures, and staging an EOG-only file is refused with its labels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from psg.captions.modality import CONJUGATE_CORRELATION
from psg.channels import map_recording
from psg.epoching.analysis import analyse, recording_windows
from psg.errors import PSGError
from psg.features.neuro import neuro_epoch_features
from psg.formats.edf import read_edf, write_edf
from psg.montage import EOG_L, EOG_R
from psg.recording import Recording, Signal
from sleeplm.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def rem_eog(real_signals: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real REM EOG as an EDF with its own labels (LOC, ROC), as a lab's file would carry them."""
    with np.load(real_signals / "yasa" / "data_EOGs_REM_256Hz.npz") as z:
        data, fs, labels = z["data"], float(z["sf"]), [str(label) for label in z["chan"]]
    assert labels == ["LOC", "ROC"] and data.shape[0] == 2
    path = tmp_path_factory.mktemp("rem") / "rem_eog.edf"
    write_edf(Recording("rem_eog", {lab: Signal(lab, data[i], fs, "uV") for i, lab in enumerate(labels)}), path)
    return path


def _montage(rem_eog: Path) -> Recording:
    return map_recording(read_edf(rem_eog))[0]


def test_real_rem_sleep_reads_as_conjugate_eye_movements(rem_eog: Path) -> None:
    recording = _montage(rem_eog)
    assert set(recording.signals) == {EOG_L, EOG_R}
    correlations = [f["eog_lr_correlation"] for f in neuro_epoch_features(recording, recording.n_epochs)]
    assert len(correlations) == 28 and all(c is not None for c in correlations)
    conjugate = sum(c <= CONJUGATE_CORRELATION for c in correlations)
    assert conjugate >= 20, correlations  # 21: six of the rest are quiet stretches, one in-phase


def test_the_live_analysis_measures_the_real_eog_as_the_file_path_does(rem_eog: Path) -> None:
    recording = _montage(rem_eog)
    offline = neuro_epoch_features(recording, recording.n_epochs)
    live = [analyse(window).features for window in recording_windows(recording)]
    assert len(live) == len(offline)
    for key in ("eog_lr_correlation", "eog_slow_power", "eog_rapid_power"):
        np.testing.assert_allclose([f[key] for f in live], [f[key] for f in offline], rtol=1e-6, err_msg=key)


def test_captions_of_the_real_eog_say_what_it_shows_and_staging_it_is_refused(rem_eog: Path, tmp_path: Path) -> None:
    out = tmp_path / "captions.jsonl"
    captioned = runner.invoke(app, ["caption", str(rem_eog), "--out", str(out)])
    assert captioned.exit_code == 0, captioned.output
    *records, last = [json.loads(line) for line in out.read_text().splitlines()]
    slots = last["channels"]["slots"]
    assert slots[EOG_L]["file_label"] == "LOC" and slots[EOG_R]["file_label"] == "ROC"
    brain = [r["captions"]["brain"] for r in records]
    assert sum("(conjugate eye movements)" in text for text in brain) >= 20, brain
    assert all(text.startswith("No EEG recorded.") for text in brain)
    assert all(r["stage"] == "?" for r in records)  # no EEG: no stage claimed
    staged = runner.invoke(app, ["stage", str(rem_eog), "--json"])
    assert isinstance(staged.exception, PSGError)
    assert "no EEG channel recognised" in str(staged.exception) and "'LOC', 'ROC'" in str(staged.exception)
