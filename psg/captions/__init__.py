"""Multilevel captions, as in SleepLM (Xu et al., arXiv 2602.23605): modality level (brain, cardiac,
respiratory, somatic), event level and stage_event per 30-s epoch, and a night summary.

Numbers in every caption are the measured features (``psg.features``), never invented.

The names below load on first use (PEP 562): a process that only reads captions back
(``psg.captions.consistency``, the API's night search) must not pay for the caption pipeline, which imports
the feature extraction and with it ``scipy.signal`` (~70 MB of the API's memory).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from psg.captions.epoch import MODALITIES, caption_epoch
    from psg.captions.night import caption_night
    from psg.captions.stage_event import StageContext, stage_descriptor

_HOMES = {
    "MODALITIES": "psg.captions.epoch",
    "caption_epoch": "psg.captions.epoch",
    "caption_night": "psg.captions.night",
    "StageContext": "psg.captions.stage_event",
    "stage_descriptor": "psg.captions.stage_event",
}
__all__ = ["MODALITIES", "StageContext", "caption_epoch", "caption_night", "stage_descriptor"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'psg.captions' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value
