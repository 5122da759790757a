"""Multilevel captions, as in SleepLM (Xu et al., arXiv 2602.23605): modality level (brain, cardiac,
respiratory, somatic), event level and stage_event per 30-s epoch, and a night summary.

Numbers in every caption are the measured features (``psg.features``), never invented.
"""

from psg.captions.epoch import MODALITIES, caption_epoch
from psg.captions.night import caption_night
from psg.captions.stage_event import StageContext, stage_descriptor

__all__ = ["MODALITIES", "StageContext", "caption_epoch", "caption_night", "stage_descriptor"]
