"""Plain-language search over one night of one bed ("obstructive apneas in REM", "low oxygen").

With the SleepLM runtime every stored epoch has its joint-space embedding, and the query is embedded
by the same model's text tower (``SleepLM.embed_text``, prompt-ensembled like ``sleeplm query``): the
epochs are scored as ``sleeplm query`` scores them and only those at or above the query's threshold,
calibrated on the reference bank beside the checkpoint (``model_runtime.serving.night_search``), and, for a query
naming event types, whose caption names one, are returned, best first: a night without a match answers
no match rather than the ten least unlike epochs. The
model is loaded on the first search, in a worker thread, and kept; a checkout without a checkpoint, or
a night stored by the rules runtime (no embeddings), falls back to the captions: a query naming known
concepts (a stage, an event type: ``watch_rules.rule_concepts``) matches the epochs whose stage_event
caption states them (``psg.captions.consistency.parse_claims``, the same reading the checker uses), any
other query needs every one of its words in the epoch's captions. The answer says which method ran.
A question about one body system is answered from that caption level (SleepLM's targeted insight).
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
    """Per epoch, 1.0 where its captions state what ``text`` asks for, else the fraction of the query's words
    found in them (see the module docstring); only 1.0 counts as a match."""
    from model_runtime.serving.watch_rules import rule_concepts
    from psg.captions.consistency import parse_claims

    concepts = rule_concepts(text)
    words = query_words(text)
    out = np.zeros(len(night))
    for i, epoch in enumerate(night):
        captions = epoch["captions"] or {}
        if concepts.known:
            claims = parse_claims(captions)
            stage_ok = not concepts.stages or claims.stage in concepts.stages
            event_ok = not concepts.events or any(e.type in concepts.events for e in claims.events)
            out[i] = float(stage_ok and event_ok)
        elif words:
            caption = " ".join(str(v) for v in captions.values()).lower()
            out[i] = sum(1 for w in words if w in caption) / len(words)
    return out


def _stated_types(night: list[dict[str, Any]], epochs: np.ndarray) -> list[set[str]]:
    """Per embedded epoch (``epochs``, in the order of the stored vectors), the event types its stage_event
    caption names: what the bed view shows beside it, from the epoch's one record."""
    from psg.captions.consistency import parse_claims

    named = {e["epoch"]: {c.type for c in parse_claims(e["captions"] or {}).events} for e in night}
    return [named.get(int(epoch), set()) for epoch in epochs.tolist()]


def _shown_stages(night: list[dict[str, Any]], epochs: np.ndarray) -> list[str]:
    """Per embedded epoch, the stage its record shows ('?' where none): the one beside it in the bed view."""
    stage = {e["epoch"]: str(e.get("stage") or "?") for e in night}
    return [stage.get(int(epoch), "?") for epoch in epochs.tolist()]


class NightSearch:
    """One per API process: the text tower, loaded on first use (see the module docstring)."""

    def __init__(self, checkpoint: Path | None, backend: str = "auto") -> None:
        self.checkpoint = checkpoint
        self.backend = backend
        self._lm: Any = None
        self._bank: Any = None
        self._failed: str | None = None
        self._lock = threading.Lock()

    def _model(self) -> Any:
        with self._lock:
            if self._lm is None and self._failed is None:
                try:
                    from model_runtime.serving.model_api import SleepLM
                    from model_runtime.serving.reference_bank import bank_path_for, load_bank

                    self._lm = SleepLM.load(self.checkpoint, backend=self.backend)
                    self._bank = load_bank(bank_path_for(self.checkpoint))
                except (PSGError, ImportError, OSError) as exc:
                    self._lm = None
                    self._failed = str(exc)
                    log.warning("search falls back to caption words: %s", exc)
            return self._lm

    def warm(self) -> None:
        """Load the text tower now (the API starts this in a background thread), and embed one text so the
        sentence encoder is loaded too: the first search then answers in milliseconds, not seconds. The
        caption fallback's modules are imported here too, for the same reason."""
        import model_runtime.serving.watch_rules  # noqa: F401 - imported for the caption fallback's first search
        import psg.captions.consistency  # noqa: F401

        lm = self._model()
        if lm is not None:
            lm.embed_text("obstructive apnea")

    def search(self, store: Any, bed_id: str, recording_id: str, text: str, top: int) -> dict[str, Any]:
        """The ``top`` epochs of the recording that match ``text`` (``QueryResult`` shape); each match's caption
        is the level the text targets (``psg.captions.targeted``), else stage_event. A question about one
        body system naming no stage or event ("how is her breathing?") gets the latest epochs at that level
        (``method`` 'latest'), best first meaning newest first."""
        if not text.strip():
            raise PSGError("query text is empty; write what to look for, e.g. 'obstructive apnea during REM'")
        from model_runtime.serving.watch_rules import rule_concepts
        from psg.captions.targeted import is_question, targeted_level

        night = store.night_captions(bed_id, recording_id)
        level = targeted_level(text)  # "how is her breathing?" is answered from the respiratory level
        epochs, vectors = store.night_embeddings(bed_id, recording_id)
        lm = self._model() if len(epochs) else None
        if level is not None and is_question(text) and not rule_concepts(text).known:
            # a question about a body system, not a search for events: its latest epochs at that level
            scores, method = np.array([float(e["epoch"]) for e in night]), "latest"
        elif lm is not None:
            from model_runtime.serving.night_search import matching_epochs

            stated, shown = _stated_types(night, epochs), _shown_stages(night, epochs)
            rows, found, _ = matching_epochs(lm, text, vectors, self._bank, top, stated, shown)
            scores_by_epoch = dict(zip(epochs[rows].tolist(), found.tolist(), strict=True))
            scores = np.array([scores_by_epoch.get(e["epoch"], -np.inf) for e in night])
            method = "model"
        else:
            scores, method = text_scores(text, night), "text"
            scores[scores < 1.0] = -np.inf  # only an epoch that states it all is a match
        order = [i for i in np.argsort(-scores, kind="stable")[:top] if np.isfinite(scores[i])]
        matches = [
            {
                "epoch": night[i]["epoch"],
                "start_time": night[i]["start_time"],
                "score": 1.0 if method == "latest" else round(float(scores[i]), 4),
                "stage": night[i]["stage"],
                "caption": (night[i]["captions"] or {}).get(level or "stage_event", ""),
            }
            for i in order
        ]
        return {
            "bed_id": bed_id,
            "recording_id": recording_id,
            "query": text,
            "method": method,
            "level": level or "stage_event",
            "matches": matches,
        }
