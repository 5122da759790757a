"""Corpus (real-PSG path, split by night), slot tokenizer, zero-shot smoothing and calibration helpers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from model_runtime.model.text_tower import mask_numbers
from model_runtime.model.tokenizer import NUM, fill_slots, slot_pieces
from model_runtime.model.zero_shot import best_threshold, causal_smooth, transition_matrix
from model_runtime.training.calibrate import best_scale, event_truth
from model_runtime.training.corpus import NightSpec, build_corpus, default_specs, load_night, split_of
from model_runtime.training.dataset import build_tokenizer, stage_sentence_of, to_arrays
from psg.captions import MODALITIES
from psg.captions.night import caption_night
from psg.errors import PSGError


@pytest.fixture(scope="module")
def real_psg_night(simulated_edf: Path, tmp_path_factory: pytest.TempPathFactory):
    """A scored EDF+ night in a lab's folder, built into the corpus the way `sleeplm train --psg` does."""
    psg_dir = tmp_path_factory.mktemp("lab")
    shutil.copy(simulated_edf, psg_dir / "night1.edf")
    specs = default_specs(tmp_path_factory.mktemp("no-shared-data"), per_source=0, synthetic=0, psg_dir=psg_dir)
    paths = build_corpus(specs, tmp_path_factory.mktemp("cache"), workers=1, progress=False)
    return specs, load_night(paths[0])


def test_real_scored_edf_nights_enter_the_corpus_as_recorded(real_psg_night, simulated_recording) -> None:
    specs, night = real_psg_night
    assert [s.source.endswith("night1.edf") for s in specs] == [True]
    n = simulated_recording.n_epochs
    assert night.x.shape == (n, 10, 1920) and night.x.dtype == np.float16
    assert np.array_equal(night.stages, simulated_recording.timeline.stages[:n].astype(np.int8))
    assert set(night.captions[0]) == set(MODALITIES)
    respiratory = [
        i
        for i, events in enumerate(night.events)
        if any("apnea" in e["type"] or e["type"] == "hypopnea" for e in events)
    ]
    assert respiratory, "the AHI-30 test night has respiratory events"
    assert all(night.flags[i, :2].any() for i in respiratory)


def test_a_psg_folder_without_edf_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PSGError, match="no .edf files"):
        default_specs(tmp_path, per_source=0, synthetic=0, psg_dir=tmp_path)


def test_every_rendering_of_a_timeline_shares_its_split() -> None:
    a = NightSpec("/data/ucddb/ucddb002_stage.txt", seed=0, artifacts=False)
    b = NightSpec("/elsewhere/ucddb002_stage.txt", seed=1, artifacts=True)
    assert a.split == b.split == split_of("ucddb002_stage.txt")
    assert a.key != b.key
    splits = {split_of(f"night{i}.json") for i in range(50)}
    assert splits == {"train", "validation"}


def test_numbers_become_feature_slots_and_come_back_exactly(simulated_recording) -> None:
    records, _ = caption_night(simulated_recording, style="varied", seed=3)
    checked = 0
    for record in records[::7]:
        for modality in ("brain", "cardiac", "respiratory", "somatic"):
            text = record["captions"][modality]
            pieces = slot_pieces(text, modality, record["features"])
            words = [p.lstrip("▁") for p in pieces]
            assert NUM not in words and all(not w[:1].isdigit() or w == "30" for w in words)
            assert fill_slots(pieces, record["features"]) == text
            checked += 1
    assert checked > 20


def test_event_spans_are_filled_from_the_given_spans_or_marked_unknown() -> None:
    pieces = slot_pieces("A Central Apnea occurs between 3.5 and 20.0 seconds of the epoch.", "stage_event", {})
    assert [p.lstrip("▁") for p in pieces].count(NUM) == 2
    assert fill_slots(pieces, {}, [(4.0, 18.0)]) == "A Central Apnea occurs between 4.0 and 18.0 seconds of the epoch."
    assert fill_slots(pieces, {}, []) == ""  # nobody localised it: the sentence goes, no "?" in its place


def test_a_slot_without_a_value_takes_its_list_item_clause_or_sentence_with_it() -> None:
    """A decoder sentence about a channel that measured nothing (the real Sleep-EDF flow after it stopped
    reading) loses that part, never shows "n/a"; with every value present the caption is as written."""
    text = (
        "The respiratory rate is 20.0/min (abdomen 20.0, thorax 20.0, airflow 20.0). "
        "Airflow runs at 0.15 times its baseline amplitude (reduced), flattening index 0.68."
    )
    full = {f"resp_rate{k}_bpm": 20.0 for k in ("", "_abd", "_thx", "_af")} | {"flow_amplitude": 0.15}
    pieces = slot_pieces(text, "respiratory", full | {"flow_flatness": 0.68})
    assert fill_slots(pieces, full | {"flow_flatness": 0.68}) == text
    assert fill_slots(pieces, {"resp_rate_bpm": 20.0, "resp_rate_af_bpm": 20.0, "flow_amplitude": 0.15}) == (
        "The respiratory rate is 20.0/min (airflow 20.0). Airflow runs at 0.15 times its baseline amplitude (reduced)."
    )
    assert (
        fill_slots(pieces, {"flow_amplitude": 0.15}) == "Airflow runs at 0.15 times its baseline amplitude (reduced)."
    )


def test_training_arrays_prefix_each_caption_with_modality_and_stage(real_psg_night) -> None:
    _, night = real_psg_night
    tokenizer = build_tokenizer([night])
    texts: dict[str, int] = {}
    arrays = to_arrays([night], tokenizer, texts, max_tokens=160)
    row = arrays.caption_ids[0]
    for j, modality in enumerate(MODALITIES):
        assert row[j, 0] == tokenizer.modality_id(modality)
        assert row[j, 1] == tokenizer.stage_id(str(np.array(["W", "N1", "N2", "N3", "R"])[arrays.stages[0]]))
    assert arrays.text_index.max() == len(texts) - 1
    assert mask_numbers("SpO2 97.0% in N2, C3-A2 at -0.85") == "SpO2 #% in N2, C3-A2 at #"
    assert stage_sentence_of("This epoch is scored as Stable Light Sleep (N2). No events.") == (
        "This epoch is scored as Stable Light Sleep (N2)."
    )


def test_causal_smoothing_only_looks_back_and_continues_a_chain() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(5), size=30)
    full = causal_smooth(probs)
    assert np.allclose(full.sum(axis=1), 1.0)
    assert np.allclose(causal_smooth(probs[:10]), full[:10])  # the future never changes the past
    continued = causal_smooth(probs[10:], prior=full[9])
    assert np.allclose(continued, full[10:])
    t = transition_matrix(5, 0.9)
    assert np.allclose(t.sum(axis=1), 1.0) and np.allclose(np.diag(t), 0.9)


def test_calibration_helpers() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.1])
    truth = np.array([True, True, False, False, False])
    threshold, f1 = best_threshold(scores, truth)
    assert threshold == 0.8 and f1 == 1.0
    assert best_threshold(scores, np.zeros(5, dtype=bool)) == (float("inf"), 0.0)
    cosines = np.array([[0.5, 0.1], [0.1, 0.5]] * 10)
    assert best_scale(cosines, np.array([0, 1] * 10)) >= 90  # separable: a sharp scale wins
    assert best_scale(cosines, np.array([0, 1] * 8 + [1, 0] * 2)) < 20  # 20% wrong: a soft one
    events = [[{"type": "hypopnea"}], [], [{"type": "central_apnea"}]]
    assert event_truth(events, "hypopnea").tolist() == [True, False, False]
