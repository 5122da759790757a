"""model_runtime.serving.night on a simulated EDF+ night with a tiny untrained checkpoint: contracts, not accuracy."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.tokenizer import format_feature
from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.night import (
    NightInput,
    describe_night,
    load_night_input,
    parse_epochs,
    query_night,
    stage_night,
)
from psg.captions import MODALITIES
from psg.errors import PSGError


@pytest.fixture(scope="module")
def lm(tiny_checkpoint: Path) -> SleepLM:
    return SleepLM.load(tiny_checkpoint, backend="torch")


@pytest.fixture(scope="module")
def night(simulated_edf: Path) -> NightInput:
    return load_night_input(simulated_edf)


def test_load_night_input_aligns_input_features_and_truth(night: NightInput) -> None:
    n = night.n_epochs
    assert n == 60
    assert night.x.shape == (n, 10, 1920) and night.x.dtype == np.float32
    assert len(night.features) == n and "hr_bpm" in night.features[0]
    assert night.truth is not None and len(night.truth) == n
    assert set(night.truth) <= {*STAGE_LABELS, "?"}
    idx = night.truth_indices()
    assert idx is not None and [STAGE_LABELS[i] if i >= 0 else "?" for i in idx] == night.truth


def test_load_night_input_rejects_missing_and_non_edf_files(tmp_path: Path) -> None:
    with pytest.raises(PSGError, match="no such file"):
        load_night_input(tmp_path / "absent.edf")
    bogus = tmp_path / "notes.edf"
    bogus.write_text("this is not an EDF file\n")
    with pytest.raises(PSGError, match="notes.edf"):
        load_night_input(bogus)


def test_stage_night_shapes_and_probabilities(lm: SleepLM, night: NightInput) -> None:
    for smooth in (True, False):
        result = stage_night(lm, night, smooth=smooth)
        assert set(result) == {
            "stages",
            "best_stages",
            "probabilities",
            "uncertain",
            "gaps",
            "stage_source",
            "stage_head",
            "origin",
        }
        assert result["stage_source"] == "signal encoder" and result["uncertain"] == []
        assert result["stage_head"] is None
        probs = np.asarray(result["probabilities"])
        assert probs.shape == (night.n_epochs, 5)
        assert np.allclose(probs.sum(axis=1), 1.0) and (probs >= 0).all()
        assert result["stages"] == [STAGE_LABELS[i] for i in probs.argmax(axis=1)]
    raw = np.asarray(stage_night(lm, night, smooth=False)["probabilities"])
    assert np.allclose(raw, lm.stage_probabilities(lm.embed(night.x)), atol=1e-6)


def test_describe_night_honours_slice_and_modality(lm: SleepLM, night: NightInput) -> None:
    result = describe_night(lm, night, slice(3, 5), "cardiac")
    assert set(result) == {"captions"}
    captions = result["captions"]
    assert [c["epoch"] for c in captions] == [3, 4]
    assert [c["start_s"] for c in captions] == [90.0, 120.0]
    for c in captions:
        assert set(c) == {"epoch", "start_s", "modality", "text"}
        assert c["modality"] == "cardiac" and isinstance(c["text"], str)


def test_describe_night_all_modalities_in_order(lm: SleepLM, night: NightInput) -> None:
    captions = describe_night(lm, night, slice(58, None), "all")["captions"]
    assert [(c["epoch"], c["modality"]) for c in captions] == [(e, m) for e in (58, 59) for m in MODALITIES]


def test_describe_numbers_are_measured_features(lm: SleepLM, night: NightInput) -> None:
    """Every number the captions write is a formatted measured feature of its epoch, a span inside the
    30-s epoch, or the constant '30' of the phrasing: the model never invents a value."""
    for c in describe_night(lm, night, slice(0, 3), "all")["captions"]:
        feats = night.features[c["epoch"]]
        allowed = {"30"}
        for key, value in feats.items():
            if isinstance(value, (int, float)):
                try:
                    allowed |= {format_feature(key, value), format_feature(key, value, signed=True)}
                except KeyError:
                    continue
        for number in re.findall(r"(?<![\w.])[+-]?\d+(?:\.\d+)?", c["text"]):
            assert number in allowed or 0.0 <= float(number) <= 30.0, (number, c)


def test_describe_night_rejects_bad_range_and_modality(lm: SleepLM, night: NightInput) -> None:
    with pytest.raises(PSGError, match="out of range"):
        describe_night(lm, night, slice(50, 70), "brain")
    with pytest.raises(PSGError, match="out of range"):
        describe_night(lm, night, slice(5, 5), "brain")
    with pytest.raises(PSGError, match="unknown modality"):
        describe_night(lm, night, None, "eeg")


def test_parse_epochs() -> None:
    assert parse_epochs(None) is None
    assert parse_epochs("3:5") == slice(3, 5)
    assert parse_epochs("7") == slice(7, 8)
    assert parse_epochs(":4") == slice(0, 4)
    assert parse_epochs("2:") == slice(2, None)
    for bad in ("", ":", "a:b", "3:5:1", "-1:3", "1.5:3"):
        with pytest.raises(PSGError, match="--epochs"):
            parse_epochs(bad)


def test_query_night_matches_and_spans_inside_epochs(lm: SleepLM, night: NightInput) -> None:
    result = query_night(lm, night, "obstructive apnea during REM", top=4)
    assert set(result) == {"matches", "threshold", "method"}
    assert result["threshold"] is None and result["method"].startswith("ranked")  # no reference bank: no threshold
    matches = result["matches"]
    assert len(matches) == 4 and len({m["epoch"] for m in matches}) == 4
    scores = [m["score"] for m in matches]
    assert scores == sorted(scores, reverse=True)
    for m in matches:
        assert set(m) == {"epoch", "start_s", "score", "spans"}
        assert m["start_s"] == m["epoch"] * 30.0 and -1.0 <= m["score"] <= 1.0
        assert m["spans"], m
        for onset, end in m["spans"]:
            assert m["start_s"] <= onset < end <= m["start_s"] + 30.0
    assert len(query_night(lm, night, "REM sleep", top=500)["matches"]) == night.n_epochs


def test_query_night_rejects_empty_text_and_bad_top(lm: SleepLM, night: NightInput) -> None:
    with pytest.raises(PSGError, match="empty"):
        query_night(lm, night, "   ", top=3)
    with pytest.raises(PSGError, match="top"):
        query_night(lm, night, "apnea", top=0)
