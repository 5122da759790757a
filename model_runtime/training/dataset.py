"""Training arrays from the cached corpus: signals, truth, caption token ids and text-embedding indices.

Every epoch carries six texts for the contrastive loss (the five caption levels plus the stage sentence
alone, the shortest statement of the stage) and five decoder targets. Texts are number-masked before
embedding (``text_tower.mask_numbers``): that turns ~100k distinct captions into a few thousand, each
embedded once by the frozen MiniLM and cached under the corpus folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model_runtime.model.text_tower import embed_texts, mask_numbers
from model_runtime.model.tokenizer import CaptionTokenizer, slot_pieces
from model_runtime.training.corpus import Night, load_night
from psg.captions import MODALITIES
from psg.timeline import Stage

#: Contrastive text options per epoch: the five caption levels, the stage sentence alone, and the event
#: sentences alone (what a clinician's "hypopnea" query or watch rule looks like).
TEXT_OPTIONS: tuple[str, ...] = (*MODALITIES, "stage_sentence", "event_sentences")
RESPIRATORY = ("obstructive_apnea", "central_apnea", "mixed_apnea", "hypopnea")


@dataclass
class TrainingArrays:
    """One split as arrays (epoch-aligned); ``text_index`` points into ``text_features``."""

    x: np.ndarray  # (n, 10, 1920) float16
    stages: np.ndarray  # (n,) int8
    flags: np.ndarray  # (n, n_flags) uint8
    night: np.ndarray  # (n,) int32 index into ``night_keys``
    night_keys: list[str]
    text_index: np.ndarray  # (n, len(TEXT_OPTIONS)) int32
    #: (n, len(MODALITIES), max_tokens) int16, 0-padded: modality, stage and evidence tokens, caption, <eos>
    caption_ids: np.ndarray
    features: list[dict]
    captions: list[dict[str, str]]
    events: list[list[dict]]


def stage_sentence_of(stage_event_caption: str) -> str:
    """The first sentence of a stage_event caption (the stage statement)."""
    return stage_event_caption.split(". ")[0].rstrip(".") + "."


def event_sentences_of(stage_event_caption: str) -> str:
    """A stage_event caption without its stage sentence: the events, or the "no events" sentence."""
    return stage_event_caption.split(". ", 1)[1] if ". " in stage_event_caption else stage_event_caption


def respiratory_evidence(events: list[dict]) -> str:
    """The first respiratory event type overlapping the epoch (by onset), or 'none'."""
    respiratory = sorted((e for e in events if e["type"] in RESPIRATORY), key=lambda e: e["onset_s"])
    return respiratory[0]["type"] if respiratory else "none"


def load_split(cache_dir: Path, split: str, progress: bool = True) -> list[Night]:
    """Cached nights of ``split`` ('train' or 'validation'), sorted by key."""
    nights = []
    for npz in tqdm(sorted(Path(cache_dir).glob("*.npz")), desc=f"loading {split}", disable=not progress):
        if npz.name.endswith(".tmp.npz"):
            continue
        night = load_night(npz)
        if night.split == split:
            nights.append(night)
    return nights


def build_tokenizer(nights: list[Night]) -> CaptionTokenizer:
    """The caption vocabulary of ``nights`` (pieces seen at least twice)."""
    return CaptionTokenizer.build(
        slot_pieces(caps[m], m, feats)
        for night in nights
        for caps, feats in zip(night.captions, night.features, strict=True)
        for m in MODALITIES
    )


def to_arrays(
    nights: list[Night], tokenizer: CaptionTokenizer, texts: dict[str, int], max_tokens: int, scored_only: bool = True
) -> TrainingArrays:
    """Stack ``nights``; new masked texts are appended to ``texts`` (text -> index)."""
    keep_x, stages, flags, night_idx, text_rows, cap_rows = [], [], [], [], [], []
    features, captions, events = [], [], []
    for k, night in enumerate(nights):
        mask = night.stages >= 0 if scored_only else np.ones(len(night.stages), dtype=bool)
        keep_x.append(night.x[mask])
        stages.append(night.stages[mask])
        flags.append(night.flags[mask])
        night_idx.append(np.full(int(mask.sum()), k, dtype=np.int32))
        for i in np.flatnonzero(mask):
            caps, feats = night.captions[i], night.features[i]
            options = [caps[m] for m in MODALITIES] + [
                stage_sentence_of(caps["stage_event"]),
                event_sentences_of(caps["stage_event"]),
            ]
            text_rows.append([texts.setdefault(mask_numbers(t), len(texts)) for t in options])
            rows = np.zeros((len(MODALITIES), max_tokens), dtype=np.int16)
            for j, m in enumerate(MODALITIES):
                prefix = [
                    tokenizer.modality_id(m),
                    tokenizer.stage_id(Stage(int(night.stages[i])).label),
                    tokenizer.evidence_id(respiratory_evidence(night.events[i])),
                ]
                ids = [*prefix, *tokenizer.encode(slot_pieces(caps[m], m, feats), max_tokens - len(prefix))]
                rows[j, : len(ids)] = ids
            cap_rows.append(rows)
            features.append(feats)
            captions.append(caps)
            events.append(night.events[i])
    return TrainingArrays(
        x=np.concatenate(keep_x),
        stages=np.concatenate(stages),
        flags=np.concatenate(flags),
        night=np.concatenate(night_idx),
        night_keys=[n.key for n in nights],
        text_index=np.asarray(text_rows, dtype=np.int32),
        caption_ids=np.stack(cap_rows),
        features=features,
        captions=captions,
        events=events,
    )


def text_features(texts: dict[str, int], cache_dir: Path, progress: bool = True) -> np.ndarray:
    """MiniLM embeddings (n_texts, 384) in index order, cached by the hash of the text list."""
    ordered = sorted(texts, key=texts.__getitem__)
    digest = hashlib.sha256("\n".join(ordered).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"text-features-{digest}.npy"
    if path.is_file():
        return np.load(path)
    features = embed_texts(ordered, progress=progress)
    np.save(path, features)
    return features
