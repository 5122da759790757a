"""Event-level agreement between detected and scored events (for benchmarks and tests).

Two events match if they share any time; matching is one-to-one and greedy by overlap (largest
overlap first), the usual event-by-event scoring of automatic apnea detectors. F1 = 2TP / (2TP +
FP + FN).
"""

from __future__ import annotations

from dataclasses import dataclass

from psg.timeline import Event


@dataclass(frozen=True)
class Agreement:
    """Counts of one comparison; ``pairs`` are (detected index, truth index) matches."""

    tp: int
    fp: int
    fn: int
    pairs: tuple[tuple[int, int], ...]

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 1.0 if denom == 0 else 2 * self.tp / denom

    @property
    def precision(self) -> float:
        return 1.0 if self.tp + self.fp == 0 else self.tp / (self.tp + self.fp)

    @property
    def recall(self) -> float:
        return 1.0 if self.tp + self.fn == 0 else self.tp / (self.tp + self.fn)


def match_events(detected: list[Event], truth: list[Event], typed: bool = False) -> Agreement:
    """One-to-one greedy matching by overlap; with ``typed`` only events of the same type match."""
    candidates = []
    for i, d in enumerate(detected):
        for j, t in enumerate(truth):
            overlap = min(d.end_s, t.end_s) - max(d.onset_s, t.onset_s)
            if overlap > 0 and (not typed or d.type == t.type):
                candidates.append((overlap, i, j))
    used_d: set[int] = set()
    used_t: set[int] = set()
    pairs = []
    for _, i, j in sorted(candidates, reverse=True):
        if i not in used_d and j not in used_t:
            used_d.add(i)
            used_t.add(j)
            pairs.append((i, j))
    tp = len(pairs)
    return Agreement(tp, len(detected) - tp, len(truth) - tp, tuple(sorted(pairs)))
