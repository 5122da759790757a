"""Caption tokenizer: a word-level vocabulary in which numbers are *slots*, never tokens the decoder invents.

DESIGN: numbers in a caption are always the measured values from ``psg`` features. So before training,
every number in a reference caption is replaced by the slot of the feature it was written from (found
by formatting each candidate feature exactly as ``psg.captions.phrasing`` does), e.g. ``<f:hr_bpm>``;
decoding writes the epoch's measured value back into that slot. Numbers that are no feature (the event
spans of stage_event captions) become ``<num>`` and are filled from the model's own language-guided
localisation, or dropped with their phrase when it finds nothing. Words keep their leading space
(``▁word``) so captions round-trip to readable text.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

SPACE = "▁"
PAD, UNK, EOS, NUM = "<pad>", "<unk>", "<eos>", "<num>"
MODALITY_TOKENS = {m: f"<m:{m}>" for m in ("stage_event", "brain", "cardiac", "respiratory", "somatic")}
#: Second prefix token: the stage the caption should state ('?' = let the decoder read it from the signal).
#: In training it is the scored stage (sometimes '?'); at inference the model's own zero-shot stage, so
#: a bed's caption never contradicts the stage shown next to it.
STAGE_TOKENS = {s: f"<s:{s}>" for s in ("W", "N1", "N2", "N3", "R", "?")}
#: Third prefix token: the respiratory event the measured AASM detectors found in the epoch (``none``), or
#: ``?`` when no detector ran. Grounds the caption's event sentence in measured evidence the way feature
#: slots ground its numbers; with ``?`` the decoder reads events from the signal alone.
EVIDENCE_LABELS = ("obstructive_apnea", "central_apnea", "mixed_apnea", "hypopnea", "none", "?")
EVIDENCE_TOKENS = {e: f"<e:{e}>" for e in EVIDENCE_LABELS}
#: Feature keys each modality's caption may write, in the order its sentences mention them.
MODALITY_FEATURES: dict[str, tuple[str, ...]] = {
    "stage_event": (),
    "brain": tuple(
        f"{lead}_{band}"
        for lead in ("c3", "c4")
        for band in ("delta", "theta", "alpha", "sigma", "beta", "slow_wave_pct")
    )
    + ("eog_slow_power", "eog_rapid_power", "eog_lr_correlation"),
    "cardiac": ("hr_bpm", "hr_min_bpm", "hr_max_bpm", "n_beats", "rmssd_ms"),
    "respiratory": (
        "resp_rate_bpm",
        "resp_rate_abd_bpm",
        "resp_rate_thx_bpm",
        "resp_rate_af_bpm",
        "flow_amplitude",
        "flow_flatness",
        "spo2_mean",
        "spo2_min",
        "spo2_trend",
    ),
    "somatic": ("emg_tone_uv", "emg_median_freq_hz"),
}
_TOKEN = re.compile(r"\s*(?:(?<![\w.])[+-]?\d+(?:\.\d+)?(?![\w])|\d+(?:\.\d+)?|[^\W\d_]+[\w²]*|\S)", re.UNICODE)
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
_SLOT = re.compile(r"^<(f|fs):([a-z0-9_]+)>$")


def format_feature(key: str, value: float, signed: bool = False) -> str:
    """``value`` of ``key`` written exactly as the caption pipeline writes it (band powers as percent)."""
    # imported here: psg.captions loads the whole caption pipeline (the detectors, SciPy's signal processing), which a
    # process that only reads the vocabulary (the API's search) should not pay for
    from psg.captions.phrasing import DECIMALS

    if key.endswith(("_delta", "_theta", "_alpha", "_sigma", "_beta")):
        value, decimals = 100.0 * float(value), DECIMALS["band_pct"]
    elif key.endswith("_slow_wave_pct"):
        decimals = DECIMALS["slow_wave_pct"]
    else:
        decimals = DECIMALS[key]
    return f"{float(value):{'+' if signed else ''}.{decimals}f}"


def split_words(text: str) -> list[str]:
    """Text -> pieces, each with ``▁`` where whitespace preceded it."""
    pieces = []
    for match in _TOKEN.finditer(text):
        raw = match.group(0)
        word = raw.lstrip()
        pieces.append((SPACE if len(word) < len(raw) else "") + word)
    return pieces


def slot_pieces(text: str, modality: str, features: Mapping[str, object]) -> list[str]:
    """Pieces of ``text`` with every number replaced by its feature slot (or ``<num>``)."""
    out: list[str] = []
    used: set[str] = set()
    candidates = MODALITY_FEATURES.get(modality, ())
    for piece in split_words(text):
        word = piece.lstrip(SPACE)
        space = piece[: len(piece) - len(word)]
        if not _NUMBER.match(word):
            out.append(piece)
            continue
        slot = _match_feature(word, candidates, features, used)
        if slot is None and word == "30":
            out.append(piece)  # "30-second window", "of the 30 seconds": a constant of the text
            continue
        out.append(space + (slot or NUM))
    return out


def _match_feature(word: str, keys: Iterable[str], features: Mapping[str, object], used: set[str]) -> str | None:
    matches = []
    for key in keys:
        value = features.get(key)
        if not isinstance(value, (int, float)):
            continue
        for signed in (False, True):
            if format_feature(key, value, signed) == word:
                matches.append(f"<{'fs' if signed else 'f'}:{key}>")
                break
    fresh = [m for m in matches if m not in used]
    candidates = fresh or matches
    if not candidates:
        return None
    used.add(candidates[0])
    return candidates[0]


class CaptionTokenizer:
    """Vocabulary of caption pieces and slots; ``encode``/``decode`` between text and ids."""

    def __init__(self, vocab: list[str]) -> None:
        self.vocab = vocab
        self.index = {piece: i for i, piece in enumerate(vocab)}
        self.pad_id, self.unk_id, self.eos_id = self.index[PAD], self.index[UNK], self.index[EOS]

    @classmethod
    def build(cls, piece_lists: Iterable[list[str]], min_count: int = 2) -> CaptionTokenizer:
        """A vocabulary of every piece seen at least ``min_count`` times, plus the special tokens."""
        counts = Counter(p for pieces in piece_lists for p in pieces)
        specials = [PAD, UNK, EOS, *MODALITY_TOKENS.values(), *STAGE_TOKENS.values(), *EVIDENCE_TOKENS.values()]
        words = sorted(p for p, c in counts.items() if c >= min_count and p not in specials)
        return cls(specials + words)

    def __len__(self) -> int:
        return len(self.vocab)

    def modality_id(self, modality: str) -> int:
        return self.index[MODALITY_TOKENS[modality]]

    @property
    def has_evidence(self) -> bool:
        """True for vocabularies with the evidence prefix (checkpoints trained after it was introduced)."""
        return EVIDENCE_TOKENS["?"] in self.index

    def evidence_id(self, label: str | None) -> int:
        """Id of the evidence prefix token for a respiratory event type, 'none', or anything else: '?'."""
        return self.index[EVIDENCE_TOKENS.get(label or "?", EVIDENCE_TOKENS["?"])]

    def stage_id(self, stage: str) -> int:
        """Id of the stage prefix token for label 'W'..'R' (anything else: '?')."""
        return self.index[STAGE_TOKENS.get(stage, STAGE_TOKENS["?"])]

    def encode(self, pieces: list[str], max_tokens: int) -> list[int]:
        """Ids of ``pieces`` followed by ``<eos>``, cut to ``max_tokens``."""
        ids = [self.index.get(p, self.unk_id) for p in pieces][: max_tokens - 1]
        return ids + [self.eos_id]

    def pieces(self, ids: Iterable[int]) -> list[str]:
        out = []
        for i in ids:
            if i == self.eos_id:
                break
            out.append(self.vocab[i])
        return out

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.vocab, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> CaptionTokenizer:
        return cls(json.loads(Path(path).read_text()))


def fill_slots(
    pieces: list[str], features: Mapping[str, object], spans: list[tuple[float, float]] | None = None
) -> str:
    """Pieces -> text with measured values in the feature slots and ``spans`` in the ``<num>`` slots.

    A slot with no value (a feature not measured in this epoch, or an event span nobody localised) is never
    filled with a made-up number nor with a placeholder: its item of a parenthesised list goes ("(abdomen _,
    thorax _, airflow 20.0)" becomes "(airflow 20.0)"), or its trailing clause (", flattening index _"), else
    its whole sentence. On real recordings the decoder, trained on simulated nights where every channel
    breathes, wrote "The respiratory rate is n/a/min" for a flow that had stopped reading.
    """
    numbers = [f"{v:.1f}" for span in (spans or []) for v in span]
    words: list[str] = []
    for piece in pieces:
        word = piece.lstrip(SPACE)
        space = " " if piece.startswith(SPACE) else ""
        slot = _SLOT.match(word)
        if slot:
            value = features.get(slot.group(2))
            text = (
                format_feature(slot.group(2), value, slot.group(1) == "fs")
                if isinstance(value, (int, float))
                else _UNFILLED
            )
        elif word == NUM:
            text = numbers.pop(0) if numbers else _UNFILLED
        elif word in (PAD, UNK):
            continue
        else:
            text = word
        words.append(space + text)
    return _without_unfilled("".join(words).strip())


#: Marks a slot without a value until its list item or sentence is dropped (never in a caption's words).
_UNFILLED = "\x00"
_PARENTHESISED = re.compile(r" ?\(([^()]*)\)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _without_unfilled(text: str) -> str:
    """``text`` without the list items, clauses and then sentences that hold an unfilled slot (``fill_slots``)."""
    if _UNFILLED not in text:
        return text

    def keep_filled(match: re.Match[str]) -> str:
        items = [item for item in match.group(1).split(", ") if _UNFILLED not in item]
        return f" ({', '.join(items)})" if items else ""

    text = _PARENTHESISED.sub(keep_filled, text)
    kept = (_filled_clauses(sentence) for sentence in _SENTENCE_END.split(text) if sentence)
    return " ".join(sentence for sentence in kept if sentence)


def _filled_clauses(sentence: str) -> str:
    """``sentence`` without its trailing ", ..." clauses that hold an unfilled slot; "" if its main clause does."""
    if _UNFILLED not in sentence:
        return sentence
    end = sentence[-1] if sentence[-1] in ".!?" else ""
    main, *rest = (sentence[:-1] if end else sentence).split(", ")
    if _UNFILLED in main:
        return ""
    return ", ".join([main, *(clause for clause in rest if _UNFILLED not in clause)]) + end
