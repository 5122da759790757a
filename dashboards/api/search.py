"""Plain-language search over one night of one bed ("obstructive apneas in REM", "low oxygen").

With the SleepLM runtime every stored epoch has its joint-space embedding, and the query is embedded
by the same model's text tower (``SleepLM.embed_text``, prompt-ensembled like ``sleeplm query``): the
epochs are ranked by cosine similarity. The model is loaded on the first search, in a worker thread,
and kept; a checkout without a checkpoint, or a night stored by the rules runtime (no embeddings),
falls back to a word match over the night's captions, and the answer says which method ran.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from psg.errors import PSGError

log = logging.getLogger(__name__)

_STOP_WORDS = frozenset(
    {
        "the",
        "and",
        "with",
        "during",
        "when",
        "did",
        "she",
        "he",
        "have",
        "has",
        "any",
        "was",
        "were",
        "for",
        "her",
        "his",
        "in",
        "of",
        "a",
        "an",
        "or",
        "to",
        "at",
        "on",
        "is",
        "are",
    }
)


def query_words(text: str) -> list[str]:
    """Lower-case words of a query without stop words, plural 's' dropped ('apneas' finds 'apnea')."""
    words = [w.lower() for w in re.findall(r"[A-Za-z0-9]+", text)]
    return [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w.lower() not in _STOP_WORDS]


def text_scores(text: str, night: list[dict[str, Any]]) -> np.ndarray:
    """Per epoch, the fraction of the query's words found in its captions (0 when none)."""
    words = query_words(text)
    if not words:
        return np.zeros(len(night))
    out = np.zeros(len(night))
    for i, epoch in enumerate(night):
        caption = " ".join(str(v) for v in (epoch["captions"] or {}).values()).lower()
        out[i] = sum(1 for w in words if w in caption) / len(words)
    return out


class NightSearch:
    """One per API process: the text tower, loaded on first use (see the module docstring)."""

    def __init__(self, checkpoint: Path | None, backend: str = "auto") -> None:
        self.checkpoint = checkpoint
        self.backend = backend
        self._lm: Any = None
        self._failed: str | None = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        with self._lock:
            if self._lm is None and self._failed is None:
                try:
                    from model_runtime.serving.model_api import SleepLM

                    self._lm = SleepLM.load(self.checkpoint, backend=self.backend)
                except (PSGError, ImportError, OSError) as exc:
                    self._failed = str(exc)
                    log.warning("search falls back to caption words: %s", exc)
            return self._lm

    def warm(self) -> None:
        """Load the text tower now (the API starts this in a background thread), and embed one text so the
        sentence encoder is loaded too: the first search then answers in milliseconds, not seconds."""
        lm = self._model()
        if lm is not None:
            lm.embed_text("obstructive apnea")

    def search(self, store: Any, bed_id: str, recording_id: str, text: str, top: int) -> dict[str, Any]:
        """The ``top`` epochs of the recording most like ``text`` (``QueryResult`` shape)."""
        if not text.strip():
            raise PSGError("query text is empty; write what to look for, e.g. 'obstructive apnea during REM'")
        night = store.night_captions(bed_id, recording_id)
        epochs, vectors = store.night_embeddings(bed_id, recording_id)
        lm = self._model() if len(epochs) else None
        if lm is not None:
            scores_by_epoch = dict(zip(epochs.tolist(), (vectors @ lm.embed_text(text)).tolist(), strict=True))
            scores = np.array([scores_by_epoch.get(e["epoch"], -np.inf) for e in night])
            method = "model"
        else:
            scores, method = text_scores(text, night), "text"
        order = [i for i in np.argsort(-scores, kind="stable")[:top] if np.isfinite(scores[i])]
        if method == "text":
            order = [i for i in order if scores[i] > 0]
        matches = [
            {
                "epoch": night[i]["epoch"],
                "start_time": night[i]["start_time"],
                "score": round(float(scores[i]), 4),
                "stage": night[i]["stage"],
                "caption": (night[i]["captions"] or {}).get("stage_event", ""),
            }
            for i in order
        ]
        return {"bed_id": bed_id, "recording_id": recording_id, "query": text, "method": method, "matches": matches}
