"""The SleepLM Python API: load a checkpoint once, then stage, describe, query and probe epochs.

>>> lm = SleepLM.load()                      # the shipped checkpoint, onnxruntime when exported, else torch
>>> x = psg.model_input.recording_model_epochs(recording)
>>> stages, probs = lm.stage(x)              # zero-shot, causally smoothed
>>> lm.describe(x, features, modality="stage_event")
>>> lm.query(x, "obstructive apnea during REM", top=20)

Everything here works on model-input epochs ``(n, 10, 1920)``; ``model_runtime.serving.night`` wraps it for files.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model_runtime.model.lab_head import LabHead
from model_runtime.model.prompts import NO_EVENT, STAGE_LABELS
from model_runtime.model.shipped import SHIPPED_CHECKPOINT
from model_runtime.model.text_tower import embed_texts, mask_numbers
from model_runtime.model.tokenizer import EOS, NUM, SPACE, fill_slots
from model_runtime.model.zero_shot import causal_smooth, class_embeddings, class_probabilities
from psg.errors import PSGError
from psg.montage import EPOCH_S
from psg.timeline import RESPIRATORY_EVENT_TYPES as RESPIRATORY_TYPES

if TYPE_CHECKING:  # torch-free at run time: serving loads a ServingCheckpoint on onnxruntime
    from model_runtime.model.backends import Backend
    from model_runtime.model.checkpoint import Checkpoint
    from model_runtime.model.serving_checkpoint import ServingCheckpoint
    from model_runtime.model.stage_head import StageHead

#: Longest caption the decoder writes per level (stage_event captions need ~30 tokens, brain ~130).
MAX_NEW_TOKENS = {"stage_event": 64, "brain": 150, "cardiac": 48, "respiratory": 90, "somatic": 40}
#: Sliding sub-window for language-guided localisation: 5 patches (10 s), moved by 1 patch (2 s).
WINDOW_PATCHES = 5
#: Words (lower case) that name an event class in a generated sentence: "Obstructive apnea 10.0-30.0 s."
#: (the monitor-voice templates) as well as "A Obstructive Apnea occurs ..." (decoders trained before them).
_EVENT_WORDS = {
    "obstructive_apnea": ("obstructive", "apnea"),
    "central_apnea": ("central", "apnea"),
    "mixed_apnea": ("mixed", "apnea"),
    "hypopnea": ("hypopnea",),
    "arousal": ("arousal",),
    "desaturation": ("desaturation",),
}


@dataclass
class Match:
    """One ``query`` hit: epoch index, its start (s), cosine score and the localised spans (recording s)."""

    epoch: int
    start_s: float
    score: float
    spans: list[tuple[float, float]]


class SleepLM:
    """A loaded model with its prompts; see the module docstring."""

    def __init__(
        self,
        checkpoint: Checkpoint | ServingCheckpoint,
        backend: Backend,
        batch: int = 256,
        stage_head: StageHead | Path | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.backend = backend
        self.batch = batch
        #: Which MiniLM embeds new text (``text_tower.embed_texts``): 'onnx' serves; 'torch' (train extra) is the
        #: reference benchmarks/torch_vs_onnx.py compares against.
        self.text_tower = "onnx"
        calibration = checkpoint.calibration
        self.scale = float(calibration.get("stage_scale", checkpoint.logit_scale))
        self.transition = np.asarray(calibration["transition"]) if "transition" in calibration else None
        self.patches = checkpoint.patches
        self.patch_s = EPOCH_S / self.patches
        self.tokenizer = checkpoint.tokenizer
        #: Ids the decoder may never write: padding, unknown and the prefix tokens.
        self._never = [
            i for i, p in enumerate(self.tokenizer.vocab) if p.startswith(("<m:", "<s:")) or p in ("<pad>", "<unk>")
        ]
        self.stage_classes = self.project_text_features([checkpoint.stage_prompt_features[k] for k in STAGE_LABELS])
        #: The stage head's file until it is first needed (``stage_head``): a process that only embeds text
        #: (the API's search) never imports the spectral feature code it needs.
        self._stage_head_file = stage_head if isinstance(stage_head, Path) else None
        self._stage_head: StageHead | None = None if isinstance(stage_head, Path) else stage_head
        if self._stage_head is not None:
            self.stage_head = self._stage_head  # checked against the stage prompts
        #: A lab's few-shot head over the stage head's embeddings (``sleeplm adapt``), when one is loaded.
        self.lab_head: LabHead | None = None
        self.event_labels = [k for k in checkpoint.event_prompt_features if k != NO_EVENT]
        self.event_classes = self.project_text_features(
            [checkpoint.event_prompt_features[k] for k in self.event_labels]
        )
        none = checkpoint.event_prompt_features.get(NO_EVENT)
        self.no_event_class = None if none is None else self.project_text_features([none])[0]

    @property
    def stage_head(self) -> StageHead | None:
        """Stages recordings from their spectral staging features (``model_runtime.model.stage_head``) when present;
        loaded from the file beside the checkpoint on first use."""
        if self._stage_head_file is not None:
            from model_runtime.model.stage_head import StageHead

            file, self._stage_head_file = self._stage_head_file, None
            self.stage_head = StageHead.load(file)
        return self._stage_head

    @stage_head.setter
    def stage_head(self, head: StageHead | None) -> None:
        if head is not None and not np.allclose(head.classes, self.stage_classes, atol=1e-4):
            raise PSGError(
                "the stage head was trained against another checkpoint's stage prompts; rebuild it with "
                "`sleeplm train-stage`"
            )
        self._stage_head_file = None
        self._stage_head = head

    def use_lab_head(self, path: str | Path) -> None:
        """Stage with a lab's few-shot head (``sleeplm adapt``) over this checkpoint's stage head; every command
        that states stages (stage, describe, query, caption, report) loads it the same way, so they agree."""
        if self.stage_head is None:
            raise PSGError(f"{path}: a lab head needs a checkpoint with a stage head beside it (`sleeplm train-stage`)")
        self.lab_head = LabHead.load(path)

    @classmethod
    def load(
        cls, path: str | Path | None = None, backend: str = "auto", device: str | None = None, stage_head: bool = True
    ) -> SleepLM:
        """Load ``path`` (default: the shipped checkpoint) on ``backend``: 'torch', 'onnx' or 'auto'
        (onnxruntime on CPU when an export sits beside the checkpoint, torch otherwise or on a GPU). The stage
        head beside the checkpoint (``<name>.stage.npz``) is loaded unless ``stage_head`` is False (training it).

        On onnxruntime nothing of torch is imported: the checkpoint's serving data comes from the export's
        ``serving.npz`` (``model_runtime.model.serving_checkpoint``), the ``.pt`` itself is read only by torch."""
        if backend not in ("auto", "torch", "onnx"):
            raise PSGError(f"backend must be 'auto', 'torch' or 'onnx', got {backend!r}")
        ckpt_path = Path(path) if path else SHIPPED_CHECKPOINT
        if not ckpt_path.is_file():
            raise PSGError(f"model checkpoint {ckpt_path} not found; train one with `sleeplm train --out {ckpt_path}`")
        head_file = ckpt_path.with_name(ckpt_path.stem + ".stage.npz")  # stage_head.head_path_for
        head = head_file if stage_head and head_file.is_file() else None
        if backend in ("auto", "onnx"):
            from model_runtime.model.onnx_backend import OnnxBackend
            from model_runtime.model.shipped import onnx_dir_for

            onnx_dir = onnx_dir_for(ckpt_path)
            if backend == "onnx" or (onnx_dir.is_dir() and device in (None, "cpu") and not _cuda_available()):
                from model_runtime.model.serving_checkpoint import load_serving_checkpoint

                runner = OnnxBackend(onnx_dir)  # first: it refuses an export made from another checkpoint
                return cls(load_serving_checkpoint(onnx_dir), runner, stage_head=head)
        if importlib.util.find_spec("torch") is None:
            raise PSGError(
                f"no ONNX export beside {ckpt_path} and torch is not installed: export it where the train extra "
                f"is installed (pip install 'sleeplm[train]'; sleeplm export --checkpoint {ckpt_path})"
            )
        from model_runtime.model.backends import TorchBackend
        from model_runtime.model.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(ckpt_path)
        return cls(checkpoint, TorchBackend(checkpoint.model, device), stage_head=head)

    # --- text side -------------------------------------------------------------------------------
    def project_text_features(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Per class, MiniLM prompt features (n_prompts, 384) -> one unit class embedding; (k, E)."""
        return class_embeddings([self.checkpoint.embed_text(np.asarray(f, np.float32)) for f in features])

    def embed_text(self, text: str) -> np.ndarray:
        """A query or watch rule -> unit vector (E,) in the shared space (loads MiniLM once): the mean of the
        text as written and the text set in the captions' own sentence frames (``query_templates``)."""
        if not text or not text.strip():
            raise PSGError("query text is empty; write what to look for, e.g. 'obstructive apnea during REM'")
        texts = [mask_numbers(t) for t in query_templates(text)]
        return self.project_text_features([embed_texts(texts, tower=self.text_tower)])[0]

    # --- signal side -----------------------------------------------------------------------------
    def encode(self, x: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Epochs (n, 10, 1920) -> unit embeddings (n, E) and decoder memory (n, K, W), in batches."""
        x = _check_epochs(x)
        embs, mems = [], []
        for i in range(0, len(x), self.batch):
            e, m = self.backend.encode(x[i : i + self.batch], None if keep is None else keep[i : i + self.batch])
            embs.append(e)
            mems.append(m)
        if not embs:
            c = self.checkpoint.config
            return np.zeros((0, c.embed_dim), np.float32), np.zeros((0, c.decoder_tokens, c.decoder_width), np.float32)
        return np.concatenate(embs), np.concatenate(mems)

    def embed(self, x: np.ndarray) -> np.ndarray:
        """Unit embeddings (n, E) of epochs: retrieval, probes, the live path's ``sleep.embeddings``."""
        return self.encode(x)[0]

    def stage_probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """Zero-shot (n, 5) probabilities over W, N1, N2, N3, R from embeddings."""
        return class_probabilities(embeddings, self.stage_classes, self.scale)

    def smooth(self, probabilities: np.ndarray, prior: np.ndarray | None = None) -> np.ndarray:
        """Causal smoothing of consecutive epochs' probabilities with the checkpoint's stage transitions."""
        return causal_smooth(probabilities, prior=prior, transition=self.transition)

    def stage(self, x: np.ndarray, smooth: bool = True) -> tuple[list[str], np.ndarray]:
        """Stage labels and (n, 5) probabilities of consecutive epochs of one night."""
        probs = self.stage_probabilities(self.embed(x))
        if smooth and len(probs):
            probs = self.smooth(probs)
        return [STAGE_LABELS[i] for i in probs.argmax(axis=1)], probs

    def event_scores(self, embeddings: np.ndarray) -> dict[str, np.ndarray]:
        """Per event class, each epoch's cosine similarity to the class's prompts minus its similarity to
        the "no events" prompts (when the checkpoint has them)."""
        sims = embeddings @ self.event_classes.T
        if self.no_event_class is not None:
            sims = sims - (embeddings @ self.no_event_class)[:, None]
        return {label: sims[:, j] for j, label in enumerate(self.event_labels)}

    def detect_events(self, embeddings: np.ndarray) -> list[list[str]]:
        """Advisory event classes per epoch: similarity above the class threshold calibrated on validation."""
        thresholds = self.checkpoint.calibration.get("event_thresholds", {})
        scores = self.event_scores(embeddings)
        return [
            [k for k in self.event_labels if k in thresholds and scores[k][i] >= thresholds[k]]
            for i in range(len(embeddings))
        ]

    # --- captions --------------------------------------------------------------------------------
    def generate(
        self,
        memory: np.ndarray,
        modality: str,
        stages: Sequence[str] | None = None,
        evidence: Sequence[str | None] | None = None,
    ) -> list[list[str]]:
        """Greedy, KV-cached decoding of one caption level for a batch: pieces per epoch (slots unfilled).

        ``stages`` and ``evidence`` (the measured detectors' respiratory event type or 'none' per epoch;
        None = '?') are the decoder's prefix; see ``model_runtime.model.tokenizer``."""
        if modality not in MAX_NEW_TOKENS:
            raise PSGError(f"unknown modality {modality!r}; expected one of {', '.join(MAX_NEW_TOKENS)}")
        out: list[list[str]] = []
        for i in range(0, len(memory), self.batch):
            part = memory[i : i + self.batch]
            part_stages = None if stages is None else stages[i : i + self.batch]
            part_evidence = None if evidence is None else evidence[i : i + self.batch]
            out.extend(self._generate_batch(part, modality, part_stages, part_evidence))
        return out

    def _generate_batch(
        self, memory: np.ndarray, modality: str, stages: Sequence[str] | None, evidence: Sequence[str | None] | None
    ) -> list[list[str]]:
        b = len(memory)
        tok = self.tokenizer
        past_k, past_v = self.backend.empty_cache(b)
        prefix = [
            np.full(b, tok.modality_id(modality), dtype=np.int64),
            np.array([tok.stage_id(s) for s in (stages if stages is not None else ["?"] * b)], dtype=np.int64),
        ]
        if tok.has_evidence:
            labels = evidence if evidence is not None else [None] * b
            prefix.append(np.array([tok.evidence_id(e) for e in labels], dtype=np.int64))
        logits, past_k, past_v = self.backend.step(prefix[0], 0, memory, past_k, past_v)
        for position, token in enumerate(prefix[1:], start=1):
            logits, past_k, past_v = self.backend.step(token, position, memory, past_k, past_v)
        out: list[list[int]] = [[] for _ in range(b)]
        active = np.arange(b)  # rows still in the batch; finished rows are dropped from it (see below)
        done = np.zeros(b, dtype=bool)  # aligned with ``active``
        max_new = min(MAX_NEW_TOKENS[modality], self.checkpoint.config.max_caption_tokens - len(prefix))
        for position in range(len(prefix), len(prefix) + max_new):
            logits[:, self._never] = -np.inf
            token = logits.argmax(axis=1).astype(np.int64)
            token[done] = tok.eos_id
            for row, t, finished in zip(active, token, done, strict=True):
                if not finished:
                    out[row].append(int(t))
            done |= token == tok.eos_id
            alive = ~done
            if not alive.any():
                break
            # Most stage_event captions ("no events") end early and a few long ones run on: once a quarter
            # of the rows have finished, shrink the batch so later steps only compute the live rows.
            if alive.sum() <= 0.75 * len(active):
                active, token, memory, done = active[alive], token[alive], memory[alive], done[alive]
                past_k, past_v = past_k[:, alive], past_v[:, alive]
                logits = logits[alive]
            logits, past_k, past_v = self.backend.step(token, position, memory, past_k, past_v)
        return [tok.pieces(row) for row in out]

    def describe(
        self,
        x: np.ndarray,
        features: Sequence[Mapping[str, object]],
        modality: str = "stage_event",
        stages: Sequence[str] | None = None,
        evidence: Sequence[str | None] | None = None,
        groups: set[str] | frozenset[str] | None = None,
    ) -> list[str]:
        """Generated captions of ``modality`` for epochs ``x``; numbers come from ``features`` (measured)
        and, for event spans, from the model's own localisation of the event it named. ``evidence``: see
        ``generate`` (``respiratory_evidence`` turns detector output into it). ``groups``: the channel groups
        the recording has (``psg.captions.availability.channel_groups``); a sentence about a missing group is
        dropped and the level says plainly that it was not recorded (None: no such check)."""
        embeddings, memory = self.encode(x)
        if stages is None and modality == "stage_event":
            stages = [STAGE_LABELS[i] for i in self.stage_probabilities(embeddings).argmax(axis=1)]
        generated = self.generate(memory, modality, stages, evidence)
        texts = [
            self.fill(x[i], pieces, features[i] if i < len(features) else {}) for i, pieces in enumerate(generated)
        ]
        if groups is None:
            return texts
        from psg.captions.availability import restrict_caption

        return [restrict_caption(text, modality, groups) for text in texts]

    def fill(self, epoch: np.ndarray, pieces: list[str], features: Mapping[str, object]) -> str:
        """Generated pieces of one epoch -> text: measured ``features`` in the feature slots, and in the span
        slots the span of the event each sentence names, localised by the model in ``epoch`` (10, 1920)."""
        spans = self._event_spans(epoch, pieces) if NUM in "".join(pieces) else []
        return fill_slots(pieces, features, spans)

    def _event_spans(self, epoch: np.ndarray, pieces: list[str]) -> list[tuple[float, float]]:
        """For each sentence with span slots, the span of the event it names, located in ``epoch``."""
        spans = []
        sentence: list[str] = []
        for piece in [*pieces, EOS]:
            sentence.append(piece.lstrip(SPACE))
            if piece.lstrip(SPACE) not in (".", EOS):
                continue
            slots = sum(1 for w in sentence if w == NUM)
            if slots >= 2:
                label = _named_event(sentence)
                found = (
                    self.localise(epoch[None], self.event_classes[self.event_labels.index(label)])[0] if label else []
                )
                spans.append(found[0] if found else (0.0, EPOCH_S))
            sentence = []
        return spans

    # --- localisation and retrieval --------------------------------------------------------------
    def window_similarities(self, x: np.ndarray, target: np.ndarray, window: int = WINDOW_PATCHES) -> np.ndarray:
        """(n, n_windows) cosine of each sliding sub-window's embedding (the rest masked) with ``target``."""
        n_windows = self.patches - window + 1
        keep = np.zeros((n_windows, self.patches), dtype=bool)
        for w in range(n_windows):
            keep[w, w : w + window] = True
        xs = np.repeat(_check_epochs(x), n_windows, axis=0)
        masks = np.tile(keep, (len(x), 1))
        emb, _ = self.encode(xs, masks)
        return (emb @ target).reshape(len(x), n_windows)

    def localise(
        self, x: np.ndarray, target: np.ndarray, window: int = WINDOW_PATCHES
    ) -> list[list[tuple[float, float]]]:
        """Per epoch, spans (s from the epoch start) where sub-windows match ``target`` best: windows within
        30% of the epoch's similarity range from its best window, merged."""
        sims = self.window_similarities(x, target, window)
        out = []
        for row in sims:
            lo, hi = float(row.min()), float(row.max())
            chosen = np.flatnonzero(row >= hi - 0.3 * (hi - lo)) if hi > lo else np.arange(len(row))
            spans: list[tuple[float, float]] = []
            for w in chosen:
                start, end = w * self.patch_s, (w + window) * self.patch_s
                if spans and start <= spans[-1][1]:
                    spans[-1] = (spans[-1][0], end)
                else:
                    spans.append((start, end))
            spans.sort(key=lambda s: -float(row[int(s[0] / self.patch_s)]))
            out.append([(round(float(a), 1), round(float(min(b, EPOCH_S)), 1)) for a, b in spans])
        return out

    def query(self, x: np.ndarray, text: str, top: int = 10, embeddings: np.ndarray | None = None) -> list[Match]:
        """The ``top`` epochs most similar to ``text`` with localised spans (recording seconds)."""
        if top < 1:
            raise PSGError(f"top must be >= 1, got {top}")
        target = self.embed_text(text)
        embeddings = self.embed(x) if embeddings is None else embeddings
        scores = embeddings @ target
        order = np.argsort(-scores)[:top]
        spans = self.localise(x[order], target) if len(order) else []
        return [
            Match(
                int(i),
                float(i * EPOCH_S),
                float(scores[i]),
                [(float(i * EPOCH_S + a), float(i * EPOCH_S + b)) for a, b in s],
            )
            for i, s in zip(order, spans, strict=True)
        ]


def query_templates(text: str) -> list[str]:
    """A user's text alone and in the caption sentences it would appear in (CLIP-style prompt ensembling):
    'hypopnea' is matched as 'A hypopnea occurs between # and # seconds of the epoch.' too."""
    text = text.strip().rstrip(".")
    return [
        text,
        f"{text}.",
        f"A {text} occurs between # and # seconds of the epoch.",
        f"{text[:1].upper()}{text[1:]} recorded from # s to # s.",
    ]


def respiratory_evidence(detected: Sequence[Mapping[str, Any]], n_epochs: int) -> list[str]:
    """Per epoch, the first respiratory event type the AASM detectors found overlapping it, else 'none'.

    ``detected``: dicts with ``type``, ``onset_s``, ``duration_s`` in recording seconds (the shape of
    ``DetectedEvent.to_dict`` and of the live path's ``EpochMessage.events``)."""
    out = ["none"] * n_epochs
    respiratory = [e for e in detected if e.get("type") in RESPIRATORY_TYPES]
    for event in sorted(respiratory, key=lambda e: float(e["onset_s"]), reverse=True):
        onset, end = float(event["onset_s"]), float(event["onset_s"]) + float(event["duration_s"])
        for epoch in range(max(int(onset // EPOCH_S), 0), min(int(end // EPOCH_S) + 1, n_epochs)):
            if onset < (epoch + 1) * EPOCH_S and end > epoch * EPOCH_S:
                out[epoch] = str(event["type"])
    return out


def _named_event(sentence_words: list[str]) -> str | None:
    words = {w.lower() for w in sentence_words}
    for label, needed in _EVENT_WORDS.items():
        if all(w in words for w in needed):
            return label
    return None


def _check_epochs(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 3 or x.shape[1:] != (10, 1920):
        raise PSGError(f"model input must be epochs shaped (n, 10, 1920) (64 Hz x 30 s, 10 channels), got {x.shape}")
    return x


#: Present when an NVIDIA driver is loaded; without it torch.cuda.is_available() is False as well.
_NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def _cuda_available() -> bool:
    """Whether torch would run on a GPU, without importing torch (seconds, ~300 MB) where it cannot."""
    if importlib.util.find_spec("torch") is None or not _NVIDIA_DRIVER.exists():
        return False
    import torch

    return torch.cuda.is_available()
