"""Night search that returns only the epochs that match: a score threshold per query, calibrated on the
reference bank the way watch rules are (``model_runtime.serving.watch_rules``).

Why: ranking alone always returns ``top`` epochs, so "oxygen desaturation" on a night without one still
answered ten, and the first of them mentioned no desaturation. A search a clinician can trust answers
"no epoch matches" when none does. The score is the watch rules' (``rule_scores``: the contrast with
"no events" for an event query, the plain cosine for a stage query) and the threshold is chosen on the
bank's held-out epochs for the concepts the query names (``rule_concepts``): the lowest score at which
the bank's matches are still ``SEARCH_PRECISION`` correct, never below the F1-optimal watch-rule
threshold. A search is a question asked once, so a wrong match costs the reader's trust more than a
missed one costs a finding. A query naming no known concept gets the watch rules' quantile fallback
(the bank's top 2 %), and the answer says so (``method``).

The score alone does not reach that precision for every event: measured on held-out simulated nights with
artifacts (``benchmarks/night_search.py``), oxygen desaturation 0.27 and hypopnea 0.37, with ten answers
on nights that hold none (the bank's hypopnea precision never reaches 0.9 at any threshold; artifacts on
event-free nights score like desaturations). So a query naming event types also needs the epoch's own
record to hold one (``stated``: the detectors' events, what its caption and chips show): one truth per
epoch, and a match never contradicts the caption beside it.

Stages likewise (``shown``: the stage each epoch's record shows, the stage head's on a real recording): a
query naming stages keeps only epochs shown with one of them, and one naming stages and no event is answered
by those epochs, best score first, without the encoder's threshold (``method`` 'shown stage'). Why: the
encoder learnt from simulated signals only, and on the real Sleep-EDF wake, which the stage head and the
experts call W in all 10 epochs, "wake" matched 1 of them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.reference_bank import ReferenceBank
from model_runtime.serving.watch_rules import calibrate_rule, rule_concepts, rule_scores, rule_truth
from psg.timeline import EPOCH_S

#: Precision the threshold keeps on the bank's epochs of the named concepts.
SEARCH_PRECISION = 0.9
#: Fewer bank matches than this above a threshold is too few to call its precision.
MIN_BANK_MATCHES = 5


@dataclass(frozen=True)
class SearchThreshold:
    """Where a query's matches start: ``threshold`` on ``rule_scores``; ``method`` 'bank-precision' (the
    bank precision ``precision`` reached ``SEARCH_PRECISION``), 'bank-f1' (it never did: the F1-optimal
    threshold) or 'bank-quantile' (no known concept); ``recall`` on the bank where known."""

    threshold: float | None  # None: not applied ('shown stage')
    method: str
    precision: float | None
    recall: float | None

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "method": self.method, "precision": self.precision, "recall": self.recall}


def search_threshold(lm: SleepLM, text: str, bank: ReferenceBank, vector: np.ndarray | None = None) -> SearchThreshold:
    """The calibrated threshold of query ``text`` (``vector``: its ``lm.embed_text``; computed when None)."""
    vector = lm.embed_text(text) if vector is None else np.asarray(vector, dtype=np.float32)
    rule = calibrate_rule(lm, text, bank, vector)
    if rule.method != "bank-f1":
        return SearchThreshold(rule.threshold, rule.method, None, None)
    scores = rule_scores(lm, vector, bank.embeddings)
    truth = rule_truth(rule.concepts, bank)
    order = np.argsort(-scores, kind="stable")
    hits = np.cumsum(truth[order])
    shown = np.arange(1, len(scores) + 1)
    precise = np.flatnonzero((hits / shown >= SEARCH_PRECISION) & (shown >= MIN_BANK_MATCHES))
    if precise.size == 0:
        return SearchThreshold(rule.threshold, "bank-f1", rule.precision, rule.recall)
    k = int(precise[-1])
    threshold = max(float(scores[order][k]), rule.threshold)
    fired = scores >= threshold
    hit = int((fired & truth).sum())
    return SearchThreshold(threshold, "bank-precision", hit / max(int(fired.sum()), 1), hit / int(truth.sum()))


def matching_epochs(
    lm: SleepLM,
    text: str,
    embeddings: np.ndarray,
    bank: ReferenceBank,
    top: int,
    stated: Sequence[Collection[str]] | None = None,
    shown: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, SearchThreshold]:
    """Indices of the (at most ``top``) epochs of ``embeddings`` at or above the query's threshold, best
    first, their scores, and the threshold; no index when nothing matches. ``stated``: per epoch, the event
    types its record holds; when given, a query naming event types keeps only epochs holding one of them.
    ``shown``: per epoch, the stage its record shows; when given, a query naming stages keeps only epochs
    shown with one of them, and one naming no event is answered by those (see the module docstring)."""
    vector = lm.embed_text(text)
    concepts = rule_concepts(text)
    scores = rule_scores(lm, vector, np.asarray(embeddings, dtype=np.float32))
    order = np.argsort(-scores, kind="stable")
    if shown is not None and concepts.stages and not concepts.events:
        calibration = SearchThreshold(None, "shown stage", None, None)
    else:
        calibration = search_threshold(lm, text, bank, vector)
        order = order[scores[order] >= calibration.threshold]
    if stated is not None and concepts.events:
        order = order[[bool(concepts.events.intersection(stated[i])) for i in order]] if len(order) else order
    if shown is not None and concepts.stages:
        order = order[[shown[i] in concepts.stages for i in order]] if len(order) else order
    order = order[:top]
    return order, scores[order], calibration


def detector_types(events: Iterable[Mapping[str, Any]], n_epochs: int) -> list[set[str]]:
    """Per epoch, the types of the ``events`` (``DetectedEvent.to_dict`` shape, recording seconds) overlapping it."""
    out: list[set[str]] = [set() for _ in range(n_epochs)]
    for event in events:
        onset = float(event["onset_s"])
        end = onset + float(event.get("duration_s") or 0.0)
        for i in range(max(int(onset // EPOCH_S), 0), min(int(end // EPOCH_S) + 1, n_epochs)):
            if onset < (i + 1) * EPOCH_S and (end > i * EPOCH_S or end == onset):
                out[i].add(str(event["type"]))
    return out
