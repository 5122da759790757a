"""Captions of an epoch that falls (wholly or partly) in a recording gap (EDF+D: nothing was recorded).

Such an epoch has no measured features (``psg.features`` gives None), so the usual levels would say
"EEG was not measurable", which reads as a bad electrode. What happened is plainer: the recorder was not
recording. Every level says so, with the span when only part of the epoch is missing; a stage the scorer
gave the epoch anyway (the scoring came from elsewhere) is kept after that sentence.
"""

from __future__ import annotations

from collections.abc import Iterable

from psg.timeline import EPOCH_S

#: The epoch's quality flag (``psg.codecs.QUALITY_FLAGS``: the live path flags missing samples the same way).
GAP_FLAG = "gap"


def gap_sentence(gaps: Iterable[tuple[float, float]], epoch_start_s: float, epoch_s: float = EPOCH_S) -> str:
    """ "No signal was recorded in this epoch (recording gap)." or, for part of it, "... from A to B s ..."."""
    end_s = epoch_start_s + epoch_s
    spans = sorted(
        (max(a, epoch_start_s) - epoch_start_s, min(b, end_s) - epoch_start_s)
        for a, b in gaps
        if a < end_s and b > epoch_start_s
    )
    if not spans or _covers(spans, epoch_s):
        return "No signal was recorded in this epoch (recording gap)."
    parts = ", ".join(f"{a:.1f} to {b:.1f} s" for a, b in spans)
    return f"No signal was recorded in this epoch from {parts} (recording gap)."


def gap_captions(captions: dict[str, str], sentence: str, scored: bool) -> dict[str, str]:
    """``captions`` (one text per level) of a gap epoch: every level is ``sentence``; the stage_event level
    keeps the scorer's stage and events after it when the epoch was ``scored``."""
    out = dict.fromkeys(captions, sentence)
    if scored and captions.get("stage_event"):
        out["stage_event"] = f"{sentence} {captions['stage_event']}"
    return out


def _covers(spans: list[tuple[float, float]], epoch_s: float) -> bool:
    reach = 0.0
    for a, b in spans:
        if a > reach:
            return False
        reach = max(reach, b)
    return reach >= epoch_s
