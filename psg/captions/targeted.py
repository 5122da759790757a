"""Targeted insight (SleepLM's idea): a question about one body system is answered from its caption level.

"How is her breathing?" wants the respiratory level, "any heart trouble?" the cardiac one, not the stage
and event summary. ``targeted_level`` maps a question to the one level its words point at (brain,
cardiac, respiratory, somatic), by a small explicit vocabulary, so which level answers is predictable;
a question naming none, or words of several, is not targeted (None) and the caller keeps its default.
"""

from __future__ import annotations

import re

#: Level -> word stems that point at it (matched at word starts, case-insensitively).
LEVEL_WORDS: dict[str, tuple[str, ...]] = {
    "respiratory": (
        "breath",
        "respirat",
        "airflow",
        "oxygen",
        "spo2",
        "saturation",
        "apnea",
        "apnoea",
        "hypopn",
        "desat",
        "snor",
    ),
    "cardiac": ("heart", "pulse", "cardiac", "ecg", "hr", "rhythm", "brady", "tachy", "hrv", "rmssd"),
    "brain": ("brain", "eeg", "eye", "eog", "spindle", "slow wave", "alpha", "delta", "theta"),
    "somatic": ("body", "position", "posture", "muscle", "chin", "emg", "limb", "movement", "lying"),
}
_PATTERNS = {
    level: re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + ")", re.IGNORECASE)
    for level, words in LEVEL_WORDS.items()
}
_QUESTION = re.compile(r"\?\s*$|^\s*(how|what|is|are|was|were|does|did|any)\b", re.IGNORECASE)


def targeted_level(text: str) -> str | None:
    """The caption level ``text`` asks about ('respiratory' for "how is her breathing?"), or None."""
    levels = [level for level, pattern in _PATTERNS.items() if pattern.search(text)]
    return levels[0] if len(levels) == 1 else None


def is_question(text: str) -> bool:
    """True for a question ("how is her breathing?", "any apneas?") rather than a description to search for."""
    return bool(_QUESTION.search(text))
