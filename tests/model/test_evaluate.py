"""Evaluation helpers: metric functions on hand-made and real caption inputs, the model-side steps on a
tiny untrained checkpoint and a simulated half-hour night. No full evaluation runs here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_runtime.evaluation.evaluate import (
    caption_facts,
    caption_results,
    embed_caption_texts,
    split_by_timeline,
    staging_results,
    zero_shot_stages,
)
from model_runtime.evaluation.metrics import (
    consensus,
    detection_scores,
    dreem_agreement,
    few_shot_curve,
    mentions,
    recall_at_k,
    scorer_agreement,
    stage_metrics,
    stated_stage,
)
from model_runtime.evaluation.nights import EvalNight, night_from_recording, source_group, validation_specs, yasa_stages
from model_runtime.evaluation.report import summary_markdown, write_plots
from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.text_tower import embed_texts, mask_numbers
from model_runtime.serving.model_api import SleepLM
from psg.captions.night import caption_night
from psg.captions.phrasing import Phraser
from psg.captions.stage_event import StageContext, stage_event_caption
from psg.errors import PSGError
from psg.paths import shared_data_dir
from psg.recording import Recording
from psg.timeline import RESPIRATORY_EVENT_TYPES, Event, Stage

DATA = shared_data_dir()
needs_data = pytest.mark.skipif(not (DATA / "dreem").is_dir(), reason=f"shared data not found at {DATA} (SLEEPLM_DATA)")


@pytest.fixture(scope="module")
def records(simulated_recording: Recording) -> list[dict]:
    return caption_night(simulated_recording, style="varied", seed=3)[0]


@pytest.fixture(scope="module")
def eval_night(simulated_recording: Recording) -> EvalNight:
    """The simulated night as an EvalNight, without YASA (its own test runs it)."""
    return night_from_recording(simulated_recording, "sim", "synthetic:1:30", run_yasa=False)


def test_stated_stage_reads_every_real_caption(records: list[dict]) -> None:
    scored = [r for r in records if r["stage"] != "?"]
    assert scored
    for r in scored:
        assert stated_stage(r["captions"]["stage_event"]) == r["stage"], r["captions"]["stage_event"]


@pytest.mark.parametrize(
    ("stage", "context", "expected"),
    [
        (Stage.R, StageContext(previous=Stage.N2, next=Stage.R), "R"),  # "Transition into REM Sleep (R) from N2"
        (Stage.W, StageContext(previous=Stage.N3, next=Stage.W), "W"),  # "Awakening from N3 into Wakefulness (W)"
        (Stage.N2, StageContext(previous=Stage.N2, next=Stage.N3), "N2"),  # "... (N2) before a transition to N3"
    ],
)
def test_stated_stage_is_the_stage_named_not_a_neighbour(stage: Stage, context: StageContext, expected: str) -> None:
    text = stage_event_caption(stage, [], 0.0, Phraser(), context=context)
    assert stated_stage(text) == expected
    assert stated_stage("stage stage analysis shows Stable Stable (N2. No") is None


def test_mentions_match_reference_captions_exactly(records: list[dict]) -> None:
    texts = [r["captions"]["stage_event"] for r in records]
    held = [any(e["type"] in RESPIRATORY_EVENT_TYPES for e in r["events"]) for r in records]
    assert any(held), "the AHI-30 night should hold respiratory events"
    scores = detection_scores([mentions(t) for t in texts], held)
    assert scores["f1"] == 1.0 and scores["fp"] == 0 and scores["fn"] == 0
    assert mentions("A Hypopnea occurs", "hypopnea") and not mentions("A Hypopnea occurs", "apnea")
    assert mentions("Obstructive Apnea recorded", "apnea") and not mentions("No events.", "respiratory")


def test_detection_scores_by_hand() -> None:
    s = detection_scores([True, True, False, False, True], [True, False, True, False, True])
    assert (s["tp"], s["fp"], s["fn"]) == (2, 1, 1)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    assert detection_scores([False], [False])["f1"] is None


def test_caption_facts_of_reference_captions_are_perfect(records: list[dict]) -> None:
    scored = [r for r in records if r["stage"] != "?"]
    facts = caption_facts(
        [r["captions"]["stage_event"] for r in scored],
        [STAGE_LABELS.index(r["stage"]) for r in scored],
        [[e["type"] for e in r["events"]] for r in scored],
    )
    assert facts["stated_stage_accuracy"] == 1.0 and facts["no_stage_stated"] == 0.0
    assert facts["respiratory_mention"]["f1"] == 1.0


def test_recall_at_k_on_a_hand_made_matrix() -> None:
    sim = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.7, 0.6, 0.1]])
    relevant = np.eye(3, dtype=bool)
    # query 0: own at rank 1; query 1: own (0.3) at rank 2; query 2: own (0.1) at rank 3
    assert recall_at_k(sim, relevant, ks=(1, 2, 3)) == {
        "R@1": pytest.approx(1 / 3),
        "R@2": pytest.approx(2 / 3),
        "R@3": 1.0,
    }
    duplicates = relevant | np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]], dtype=bool)  # query 1's caption twice
    assert recall_at_k(sim, duplicates, ks=(1,))["R@1"] == pytest.approx(2 / 3)
    with pytest.raises(PSGError):
        recall_at_k(sim, relevant[:2])


def test_consensus_and_scorer_agreement_by_hand() -> None:
    votes = np.array(
        [
            [0, 2, 2, 3, -1],
            [0, 2, 1, 3, -1],
            [0, 2, 2, 2, -1],
            [1, 2, 2, 3, -1],
            [0, 2, 2, 3, 4],
        ]
    )
    assert consensus(votes).tolist() == [0, 2, 2, 3, 4]
    assert consensus(np.array([[1, -1], [2, -1]])).tolist() == [1, -1]  # tie -> first scorer's label
    assert consensus(np.array([[-1, 3], [3, 0], [2, 0], [2, 3]])).tolist() == [2, 3]  # 2-2 tie: scorer 0 says 3
    result = scorer_agreement([votes])
    # scorer 1 (N1 at epoch 2), scorer 2 (N2 at epoch 3), scorer 3 (N1 at epoch 0) each miss one of 4 epochs;
    # scorers 0 and 4 agree with the others' majority everywhere (scorer 4's last epoch has no other vote).
    assert [s["epochs"] for s in result["scorers"]] == [4, 4, 4, 4, 4]
    assert [s["accuracy"] for s in result["scorers"]] == [1.0, 0.75, 0.75, 0.75, 1.0]
    assert result["mean_accuracy"] == pytest.approx(0.85)


def test_stage_metrics_by_hand() -> None:
    m = stage_metrics([0, 0, 2, 2, 4], [0, 2, 2, 2, 4])
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["per_class_f1"]["N1"] is None and m["per_class_f1"]["W"] == pytest.approx(2 / 3)
    assert np.asarray(m["confusion"]).sum() == 5 and m["confusion"][0][2] == 1
    assert stage_metrics([], [])["accuracy"] is None


def test_few_shot_probe_separates_toy_embeddings() -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((5, 16)) * 4

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(5), n)
        return centres[y] + rng.standard_normal((len(y), 16)), y

    (train_x, train_y), (test_x, test_y) = draw(60), draw(40)
    out = few_shot_curve(train_x, train_y, test_x, test_y, shots=(1, 5, 50), seeds=(0, 1))
    assert [r["k"] for r in out["curve"]] == [1, 5, 50]
    assert [r["train_epochs"] for r in out["curve"]] == [5, 25, 250]
    assert out["curve"][-1]["accuracy_mean"] > 0.95 and out["curve"][-1]["macro_f1_mean"] > 0.95
    assert out["test_epochs"] == 200


def test_night_from_recording_truth_and_captions(eval_night: EvalNight, simulated_recording: Recording) -> None:
    n = eval_night.n_epochs
    assert eval_night.x.shape == (n, 10, 1920) and eval_night.x.dtype == np.float32
    assert len(eval_night.captions) == len(eval_night.features) == len(eval_night.events) == n
    expected = [s if s >= 0 else -1 for s in simulated_recording.timeline.stages[:n].tolist()]
    assert eval_night.truth.tolist() == expected  # Stage codes 0..4 are STAGE_LABELS indices
    assert eval_night.has_event(("hypopnea", "obstructive_apnea", "central_apnea", "mixed_apnea")).any()
    assert eval_night.group == "synthetic" and eval_night.yasa is None


@pytest.mark.slow  # ~15 s: YASA's first call compiles its feature code
def test_yasa_scores_the_simulated_night(simulated_recording: Recording) -> None:
    labels = yasa_stages(simulated_recording)
    assert len(labels) == simulated_recording.timeline.n_epochs
    assert set(labels.tolist()) <= {-1, 0, 1, 2, 3, 4} and np.mean(labels >= 0) > 0.9


def test_model_steps_on_a_tiny_checkpoint(tiny_checkpoint: Path, eval_night: EvalNight, tmp_path: Path) -> None:
    lm = SleepLM.load(tiny_checkpoint, backend="torch", device="cpu")
    emb, memory = lm.encode(eval_night.x)
    smoothed = zero_shot_stages(lm, emb, smooth=True)
    raw = zero_shot_stages(lm, emb, smooth=False)
    for smooth, ours in ((True, smoothed), (False, raw)):
        labels, _ = lm.stage(eval_night.x, smooth=smooth)
        assert [STAGE_LABELS[i] for i in ours] == labels
    key = eval_night.key
    staging = staging_results([eval_night], {key: smoothed}, {key: raw})
    assert staging["model_smoothed"]["epochs"] == int(np.sum(eval_night.truth >= 0)) and staging["yasa"] is None
    captions = caption_results(lm, [eval_night], {key: memory}, {key: smoothed}, per_night=6, progress=False)
    assert captions["model_stage"]["epochs"] == captions["decoder_alone"]["epochs"] == 6
    assert captions["reference"]["stated_stage_accuracy"] == 1.0
    result = {"nights": [], "staging": staging, "captions": captions, "passes": {}}
    assert "SleepLM zero-shot, smoothed" in summary_markdown(result)
    assert [p.name for p in write_plots(result, tmp_path)] == ["confusion.png", "per_night_accuracy.png"]


def test_caption_text_embeddings_are_the_projected_single_texts(tiny_checkpoint: Path) -> None:
    lm = SleepLM.load(tiny_checkpoint, backend="torch", device="cpu")
    texts = [
        "This epoch is scored as Stable Light Sleep (N2). A Hypopnea occurs between 1.0 and 9.5 seconds.",
        "This epoch is scored as Stable Light Sleep (N2). A Hypopnea occurs between 3.0 and 12.5 seconds.",
        "REM Sleep (R).",
    ]
    emb = embed_caption_texts(lm, texts)
    assert emb.shape == (3, lm.checkpoint.config.embed_dim)
    single = lm.project_text_features([embed_texts([mask_numbers(texts[2])])])[0]
    np.testing.assert_allclose(emb[2], single, atol=1e-5)  # a caption as written (queries add templates)
    np.testing.assert_allclose(emb[0], emb[1])  # numbers are masked: same sentence, same embedding


def test_split_by_timeline_keeps_renderings_together(eval_night: EvalNight) -> None:
    def night(key: str, source: str) -> EvalNight:
        return EvalNight(key, source, "ucddb", eval_night.x[:1], [], [], eval_night.truth[:1], [[]], None)

    nights = [night("a0", "a"), night("a1", "a"), night("b0", "b"), night("c0", "c"), night("c1", "c")]
    train, test = split_by_timeline(nights)
    assert [n.key for n in train] == ["a0", "a1", "c0", "c1"] and [n.key for n in test] == ["b0"]


@needs_data
def test_validation_specs_round_robin_over_sources() -> None:
    specs = validation_specs(DATA, nights=5)
    assert len(specs) == 5 and all(s.split == "validation" for s in specs)
    groups = [source_group(s.source) for s in specs]
    assert groups[:2] == ["ucddb", "synthetic"]  # the sources with respiratory events come first
    assert len(set(groups)) >= 4
    assert len(validation_specs(DATA)) >= len(specs)


@needs_data
def test_dreem_five_scorer_agreement_is_a_plausible_ceiling() -> None:
    out = dreem_agreement(DATA)
    assert out["all"]["nights"] == out["dodh"]["nights"] + out["dodo"]["nights"] > 0
    assert len(out["all"]["scorers"]) == 5
    assert 0.7 < out["all"]["mean_accuracy"] < 0.97
    assert 0.6 < out["all"]["mean_kappa"] < 0.95


def test_event_helper_overlap_matches_captions() -> None:
    """A hypopnea that only grazes an epoch still counts for that epoch (psg.captions' in_epoch rule)."""
    caption = stage_event_caption(Stage.N2, [Event("hypopnea", 25.0, 10.0, subtype="obstructive")], 30.0, Phraser())
    assert mentions(caption) and mentions(caption, "hypopnea")
