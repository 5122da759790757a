"""Plain-language watch rules on the live stream: each new epoch's embedding scored against every rule of
its bed and of the ward; a finding once the score has held for the rule's minimum duration.

WHY a minimum duration: a single epoch that happens to resemble "REM with oxygen desaturation" is
noise more often than a pattern; a clinician who asks for it wants the pattern. Each rule needs
``ceil(min_duration_s / epoch_s)`` consecutive epochs at or above its threshold, then reports a finding
on every epoch while it keeps holding (the alert engine merges those into one advisory alert and lets
it resolve after its hysteresis once the findings stop).

The model side (text vector, score, calibrated threshold) is a ``RuleScorer``: ``ModelRuleScorer``
wraps SleepLM and its reference bank (``model_runtime.serving.watch_rules``); the rules runtime has no joint
space, so with it rules are kept but report ``unavailable``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from psg.errors import PSGError

log = logging.getLogger(__name__)


class RuleScorer(Protocol):
    """The model side of watch rules."""

    def compile(self, text: str) -> tuple[np.ndarray, dict[str, Any]]:
        """The rule's vector and its calibration (a strict-JSON dict with at least ``threshold``)."""
        ...

    def score(self, vector: np.ndarray, embedding: np.ndarray) -> float:
        """How much one epoch looks like the rule (same scale as the calibrated threshold)."""
        ...


@dataclass
class CompiledRule:
    """A rule ready to score: ``threshold`` is the operator's override, else the calibrated one."""

    id: int
    text: str
    bed_id: str | None
    min_duration_s: float
    version: float
    vector: np.ndarray
    threshold: float
    calibration: dict[str, Any]

    def applies_to(self, bed_id: str) -> bool:
        return self.bed_id is None or self.bed_id == bed_id


@dataclass
class WatchRules:
    """The compiled rules of a worker and the per-(bed, rule) streaks; see the module docstring."""

    scorer: RuleScorer | None = None
    rules: dict[int, CompiledRule] = field(default_factory=dict)
    #: (bed, rule id) -> (recording, last epoch, consecutive epochs at or above the threshold)
    streaks: dict[tuple[str, int], tuple[str, int, int]] = field(default_factory=dict)
    #: rule id -> why it cannot run (compilation failed, or no model)
    unavailable: dict[int, str] = field(default_factory=dict)

    def pending(self, rules: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The rules of ``rules`` that need compiling: new, changed (``updated_at``) or not yet runnable."""
        return [
            rule
            for rule in rules
            if (current := self.rules.get(int(rule["id"]))) is None
            or current.version != float(rule.get("updated_at") or 0.0)
        ]

    def compile(self, rule: Mapping[str, Any]) -> CompiledRule | str:
        """One rule compiled by the scorer, or why it cannot run. Touches no state of this object, so the
        alert agent runs it in a worker thread (the text tower takes seconds to load the first time)."""
        if self.scorer is None:
            return "watch rules need the sleeplm runtime (SLEEPLM_RUNTIME=sleeplm)"
        try:
            vector, calibration = self.scorer.compile(str(rule["text"]))
        except PSGError as exc:
            return str(exc)
        override = rule.get("threshold")
        return CompiledRule(
            id=int(rule["id"]),
            text=str(rule["text"]),
            bed_id=rule.get("bed_id"),
            min_duration_s=float(rule.get("min_duration_s") or 30.0),
            version=float(rule.get("updated_at") or 0.0),
            vector=vector,
            threshold=float(override if override is not None else calibration["threshold"]),
            calibration=calibration,
        )

    def compile_all(self, rules: Iterable[Mapping[str, Any]]) -> dict[int, CompiledRule | str]:
        return {int(rule["id"]): self.compile(rule) for rule in rules}

    def update(
        self, rules: Iterable[Mapping[str, Any]], compiled: Mapping[int, CompiledRule | str] | None = None
    ) -> list[CompiledRule]:
        """Bring the compiled set in line with the store's enabled rules, using ``compiled`` (from
        ``compile_all`` of ``pending``; compiled here when not given). Returns the rules installed now,
        whose calibration the caller writes back. A rule that cannot run is kept out and listed in
        ``unavailable``; the others go on."""
        wanted = {int(r["id"]): r for r in rules}
        for gone in set(self.rules) - set(wanted):
            del self.rules[gone]
        for gone in set(self.unavailable) - set(wanted):
            del self.unavailable[gone]
        self.streaks = {k: v for k, v in self.streaks.items() if k[1] in wanted}
        todo = self.pending(wanted.values())
        results = dict(compiled) if compiled is not None else self.compile_all(todo)
        installed = []
        for rule in todo:
            result = results.get(int(rule["id"]))
            if result is None:
                continue  # changed again since it was compiled: the next sync compiles it
            if isinstance(result, str):
                if self.unavailable.get(int(rule["id"])) != result:
                    log.warning("watch rule %s cannot run: %s", rule["id"], result)
                self.unavailable[int(rule["id"])] = result
                continue
            if result.version != float(rule.get("updated_at") or 0.0):
                continue
            self.rules[result.id] = result
            self.unavailable.pop(result.id, None)
            installed.append(result)
        return installed

    def findings(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Findings for one caption record (``rule_id``, ``text``, ``score``, ``threshold``, ``epochs``): rules
        of its bed whose score held for their minimum duration. A record without an embedding (unscorable
        epoch, rules runtime) breaks every streak of its bed: the pattern was not seen."""
        bed, recording, epoch = record["bed_id"], record["recording_id"], int(record["epoch"])
        embedding = record.get("embedding")
        vector = None if embedding is None else np.asarray(embedding, dtype=np.float32)
        epoch_s = float(record.get("epoch_s") or 30.0)
        out = []
        for rule in self.rules.values():
            if not rule.applies_to(bed):
                continue
            key = (bed, rule.id)
            score = None  # no embedding: unscorable (an installed rule always has the scorer that compiled it)
            if vector is not None and self.scorer is not None:
                score = float(self.scorer.score(rule.vector, vector))
            last = self.streaks.get(key)
            if last is not None and last[0] == recording and epoch <= last[1]:
                continue  # a replayed epoch: already judged
            run = last[2] if last is not None and last[0] == recording and last[1] == epoch - 1 else 0
            run = run + 1 if score is not None and score >= rule.threshold else 0
            self.streaks[key] = (recording, epoch, run)
            if score is not None and run >= max(1, math.ceil(rule.min_duration_s / epoch_s - 1e-9)):
                out.append(
                    {
                        "rule_id": rule.id,
                        "text": rule.text,
                        "score": round(score, 4),
                        "threshold": round(rule.threshold, 4),
                        "epochs": run,
                    }
                )
        return out

    def forget_beds(self, beds: Iterable[str]) -> None:
        lost = set(beds)
        self.streaks = {k: v for k, v in self.streaks.items() if k[0] not in lost}
