"""The model side of watch rules for the live path: SleepLM's text tower, scores and bank-calibrated thresholds
(``model_runtime.serving.watch_rules``) behind the ``RuleScorer`` interface the alert monitor uses."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from model_runtime.serving.runtimes import InferenceRuntime
from psg.alerts.watch import RuleScorer
from psg.errors import PSGError

log = logging.getLogger(__name__)


class ModelRuleScorer:
    """``RuleScorer`` over a loaded ``SleepLM`` and its reference bank of held-out epochs."""

    def __init__(self, lm: Any, bank: Any) -> None:
        self.lm = lm
        self.bank = bank

    def compile(self, text: str) -> tuple[np.ndarray, dict[str, Any]]:
        from model_runtime.serving.watch_rules import calibrate_rule

        vector = self.lm.embed_text(text)
        return vector, calibrate_rule(self.lm, text, self.bank, vector=vector).to_dict()

    def score(self, vector: np.ndarray, embedding: np.ndarray) -> float:
        from model_runtime.serving.watch_rules import rule_scores

        return float(rule_scores(self.lm, vector, embedding[None, :])[0])


def rule_scorer_for(runtime: InferenceRuntime, checkpoint: Path) -> RuleScorer | None:
    """A scorer for ``runtime`` when it has a joint embedding space (the sleeplm runtime) and the reference
    bank beside ``checkpoint`` loads; None otherwise (watch rules then report that they need the model)."""
    lm = getattr(runtime, "lm", None)
    if lm is None:
        return None
    from model_runtime.model.shipped import bank_path_for
    from model_runtime.serving.reference_bank import load_bank

    try:
        bank = load_bank(bank_path_for(checkpoint))
    except PSGError as exc:
        log.warning("watch rules unavailable: %s", exc)
        return None
    return ModelRuleScorer(lm, bank)
