"""Natural-language watch rules, model side: score live epochs against a rule, and calibrate where it fires.

A clinician writes "central apneas" or "REM with oxygen desaturation" for a bed. The model scores every
new epoch against the rule's text vector (``rule_scores``); the alert logic raises an advisory when the
score stays above the rule's calibrated threshold (``calibrate_rule``) long enough.

Why it is built this way:

* **The model decides, the vocabulary only grades.** Live scores come from the shared embedding space
  alone, so any wording works, including ones no list anticipates. The small explicit vocabulary of
  ``rule_concepts`` is used only to label the reference bank (``model_runtime.serving.reference_bank``) so a
  threshold can be chosen where the model separates the named concepts best.
* **Thresholds are calibrated, never fixed.** Cosines in the shared space have no common scale across
  rules ("wake" scores higher than "mixed apnea" everywhere), so a global cut-off would make some rules
  fire on every epoch and others never. With known concepts the threshold maximises F1 on the bank's
  held-out epochs (as the checkpoint's own event thresholds do, ``zero_shot.best_threshold``); with none,
  it is the bank's 98th percentile, i.e. the rule fires on about the 2 % of epochs most like it.
* **Bank F1 is in-sample.** The threshold is chosen on the same epochs its F1 is measured on, so the F1
  reported here is optimistic; ``benchmarks/watch_rules.py`` measures it on nights held out from the
  calibration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.zero_shot import best_threshold
from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.reference_bank import CONCEPT_EVENTS, ReferenceBank, model_fingerprint
from psg.errors import PSGError

#: Without known concepts, a rule fires on the bank's top (1 - this) of epochs.
FALLBACK_QUANTILE = 0.98
_APNEA_TYPES = ("obstructive_apnea", "central_apnea", "mixed_apnea")
#: (pattern, stages), matched case-insensitively on word boundaries. "Light sleep" is N1 and N2: the
#: captions and prompts call both "Light Sleep", and clinicians use it for all of non-deep NREM.
_STAGE_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"nrem|non[- ]?rem|non[- ]rapid eye movement", ("N1", "N2", "N3")),
    (r"rem|rapid eye movements?|r sleep|paradoxical sleep|stage r", ("R",)),
    (r"n3|deep|slow[- ]?wave|sws|stage 3", ("N3",)),
    (r"n2|stage 2", ("N2",)),
    (r"n1|drows(y|iness)|stage 1", ("N1",)),
    (r"light sleep", ("N1", "N2")),
    (r"a?wake|wakefulness|waso|stage w", ("W",)),
)
#: (pattern, events). "Apnea" without a type names all three apnea types; a type word qualifies it.
_EVENT_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"hypopnoeas?|hypopneas?", ("hypopnea",)),
    (r"desat(uration)?s?|low (oxygen|o2|spo2)|(spo2|oxygen|o2) (drop|dip|fall)s?", ("desaturation",)),
    (r"arousals?", ("arousal",)),
)
#: An apnea word with the type words right before it ("obstructive or central (sleep) apneas").
_APNEA = re.compile(
    r"\b((?:(?:obstructive|central|mixed)\s*(?:,|and|or|/)?\s*)*)(?:sleep\s+)?(?:apnoeas?|apneas?)\b", re.IGNORECASE
)
#: The vocabulary cannot express "REM without apnea": a negated rule gets no concepts (quantile fallback)
#: rather than the positives of the concepts it excludes.
_NEGATION = re.compile(r"\b(without|no|not|absent|free of|except)\b", re.IGNORECASE)


@dataclass(frozen=True)
class RuleConcepts:
    """The stages (``STAGE_LABELS``) and event types (``CONCEPT_EVENTS``) a rule's text names."""

    stages: frozenset[str] = field(default_factory=frozenset)
    events: frozenset[str] = field(default_factory=frozenset)

    @property
    def known(self) -> bool:
        return bool(self.stages or self.events)

    def to_dict(self) -> dict:
        return {
            "stages": [s for s in STAGE_LABELS if s in self.stages],
            "events": [e for e in CONCEPT_EVENTS if e in self.events],
        }


@dataclass(frozen=True)
class RuleCalibration:
    """Where a rule fires: ``threshold`` on ``rule_scores`` (``scoring``: 'contrast' or 'cosine', for the
    record). ``method`` 'bank-f1': F1-optimal on the bank's epochs of the named concepts, with the in-sample
    ``f1``/``precision``/``recall``; 'bank-quantile': the bank's ``FALLBACK_QUANTILE`` score, no metrics.
    ``positives``: bank epochs of the concepts."""

    threshold: float
    method: str
    f1: float | None
    precision: float | None
    recall: float | None
    positives: int
    concepts: RuleConcepts
    scoring: str

    def to_dict(self) -> dict:
        """Plain JSON (finite floats, lists): what the store and the API keep beside the rule."""
        return {
            "threshold": self.threshold,
            "method": self.method,
            "f1": self.f1,
            "precision": self.precision,
            "recall": self.recall,
            "positives": self.positives,
            "concepts": self.concepts.to_dict(),
            "scoring": self.scoring,
        }


def rule_concepts(text: str) -> RuleConcepts:
    """The stages and events a rule names, by a small explicit vocabulary (see ``_STAGE_WORDS``,
    ``_EVENT_WORDS``).

    Why explicit: this is the *truth* side of calibration (which bank epochs a rule is about), so it must
    be predictable and reviewable; the model never sees it. Unknown words add nothing, and a rule naming
    nothing known (or negating, e.g. "REM without apnea") gets empty concepts and the quantile threshold.
    Several stages are alternatives ("N2 or N3"), several events too ("apneas and hypopneas": either one);
    stages and events combine with AND ("hypopnea during N2").
    """
    _check_text(text)
    if _NEGATION.search(text):
        return RuleConcepts()
    stages: set[str] = set()
    events: set[str] = set()
    rest = text
    for pattern, labels in _STAGE_WORDS:
        regex = re.compile(rf"\b({pattern})\b", re.IGNORECASE)
        if regex.search(rest):
            stages.update(labels)
            rest = regex.sub(" ", rest)  # 'non-REM' must not also read as 'REM'
    for pattern, labels in _EVENT_WORDS:
        if re.search(rf"\b({pattern})\b", text, re.IGNORECASE):
            events.update(labels)
    for match in _APNEA.finditer(text):
        named = {f"{word.lower()}_apnea" for word in re.findall(r"obstructive|central|mixed", match[1], re.IGNORECASE)}
        events.update(named or _APNEA_TYPES)
    return RuleConcepts(frozenset(stages), frozenset(events))


def rule_truth(concepts: RuleConcepts, bank: ReferenceBank) -> np.ndarray:
    """(n,) bool: bank epochs the concepts describe (a named stage, if any, AND a named event, if any)."""
    truth = np.ones(len(bank), dtype=bool)
    if concepts.stages:
        truth &= np.isin(bank.stages, [STAGE_LABELS.index(s) for s in concepts.stages])
    if concepts.events:
        truth &= np.any([bank.event(e) for e in concepts.events], axis=0)
    return truth


def rule_scores(lm: SleepLM, rule_vector: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """Each epoch's score against a rule: (n,) float32 from unit ``embeddings`` (n, E) and ``rule_vector`` (E,).

    An event rule ("central apneas", "arousals") scores the cosine with the rule *minus* the cosine with the
    checkpoint's "no events" prompts (``lm.no_event_class``, the contrast ``SleepLM.event_scores`` uses); a
    stage rule ("deep sleep", "wake") scores the plain cosine. Which one a rule is, the model decides
    (``rule_scoring``), never the vocabulary.

    Why not one scoring for all: measured on the reference bank, thresholds fitted on half of its nights and
    F1 taken on the other half (``benchmarks/watch_rules.py``), neither wins everywhere. Event rules do
    better or as well with the contrast (held-out F1 cosine -> contrast: arousals 0.34 -> 0.77, AUC 0.80 ->
    0.94; desaturation 0.77 -> 0.84; apneas 0.48 -> 0.55; central apneas 0.08 -> 0.15; hypopnea 0.65 ->
    0.66): every epoch's cosine with caption-like text carries a large "a sleep epoch" part, and "rather
    than nothing" removes it. Stage rules do worse with it (deep sleep 0.99 -> 0.74, REM 0.98 -> 0.91, wake
    0.97 -> 0.91): a stage epoch usually *is* an epoch without events, so subtracting its likeness to "no
    events" subtracts the very signal the rule asks for. Picking per rule keeps the better of the two for
    every rule measured (mixed apneas, 6 bank epochs, are a tie within noise).
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    scores = embeddings @ np.asarray(rule_vector, dtype=np.float32)
    if rule_scoring(lm, rule_vector) == "contrast":
        scores = scores - embeddings @ lm.no_event_class
    return scores


def rule_scoring(lm: SleepLM, rule_vector: np.ndarray) -> str:
    """'contrast' when the model reads the rule as an event, else 'cosine' (see ``rule_scores``).

    An event rule is one whose vector is closer to one of the checkpoint's event classes than to every stage
    class; for the benchmark's rules the two readings are far apart (event rules: 0.81-1.00 to an event
    class, <= 0.76 to a stage; stage rules: 0.96-0.98 to a stage, <= 0.63 to an event). A checkpoint without
    "no events" prompts has nothing to contrast with: 'cosine'."""
    if lm.no_event_class is None:
        return "cosine"
    event_like = float((lm.event_classes @ rule_vector).max()) > float((lm.stage_classes @ rule_vector).max())
    return "contrast" if event_like else "cosine"


def calibrate_rule(lm: SleepLM, text: str, bank: ReferenceBank, vector: np.ndarray | None = None) -> RuleCalibration:
    """The threshold of the rule ``text`` on ``bank`` (``vector``: its ``lm.embed_text``, computed when None).

    Known concepts: the threshold maximising F1 against the bank's epochs of those concepts. None known, or
    none of the bank's epochs shows them (e.g. "mixed apnea during N3"): the bank's ``FALLBACK_QUANTILE``
    score, so the rule still fires, on the epochs most like it, and ``method`` says it is uncalibrated.
    """
    concepts = rule_concepts(text)
    if bank.fingerprint != model_fingerprint(lm):
        raise PSGError(
            f"the reference bank was built with another checkpoint (fingerprint {bank.fingerprint}, the loaded "
            f"model is {model_fingerprint(lm)}); rebuild it with `sleeplm bank`"
        )
    vector = lm.embed_text(text) if vector is None else np.asarray(vector, dtype=np.float32)
    scores, scoring = rule_scores(lm, vector, bank.embeddings), rule_scoring(lm, vector)
    truth = rule_truth(concepts, bank) if concepts.known else np.zeros(len(bank), dtype=bool)
    positives = int(truth.sum())
    if not positives:
        threshold = float(np.quantile(scores, FALLBACK_QUANTILE))
        return RuleCalibration(threshold, "bank-quantile", None, None, None, positives, concepts, scoring)
    threshold, f1 = best_threshold(scores, truth)
    fired = scores >= threshold
    hits = int((fired & truth).sum())
    precision, recall = hits / int(fired.sum()), hits / positives
    return RuleCalibration(threshold, "bank-f1", f1, precision, recall, positives, concepts, scoring)


def _check_text(text: str) -> None:
    if not isinstance(text, str) or not text.strip():
        raise PSGError("watch rule text is empty; write what to watch for, e.g. 'central apneas during REM'")
