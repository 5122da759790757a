"""Retrain the caption decoder alone on a frozen checkpoint: new caption wording, identical embeddings.

Why it exists: caption templates change (issue 15 moved them from a scorer's voice to the monitor's) far
more often than the signal side needs to. Only the decoder reads or writes caption words: its token
embeddings (tied to its output rows), its layers, and ``memory_proj``, which turns the encoder's pooled
decoder tokens into the decoder's memory. Everything else — the signal encoder, the contrastive
projections, the logit scale, the stage and event prompt embeddings and the calibration — decides the
embeddings, the zero-shot stages and event scores, and the reference bank and stage head built on them.
So this keeps those tensors bit for bit (the checkpoint's embedding fingerprint does not move and the
bank stays valid) and costs minutes of CPU instead of the hour of ``train``.

How:

* **Vocabulary** is rebuilt from the corpus captions exactly as ``train`` builds it (``build_tokenizer``);
  the embedding row of every piece the old vocabulary had is copied, new pieces start as a fresh decoder's
  rows do (N(0, 0.02)), pieces no caption uses any more are dropped. The decoder's layers start from the
  old ones (fine-tuning: the grammar of slots and spans carries over).
* **Frozen features, computed once.** The encoder's pooled decoder tokens of every training epoch (the
  clean input, as served) are computed under ``no_grad`` before training, so a step costs only the
  decoder; the encoder never runs in the loop. Validation uses every ``VALIDATION_STRIDE``-th epoch.
* **Same targets as ``train``**: the same stage-balanced, apnea-weighted sampling, caption levels, stage
  and evidence prefixes (with the same '?' and wrong-evidence rates), next-token cross-entropy. One
  caption level per batch (drawn with ``train``'s level weights) instead of one per sample: a batch is
  then as long as its own level's captions, not the brain level's ~150 tokens, about 3x less work.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from model_runtime.model.caption_decoder import CaptionDecoder
from model_runtime.model.checkpoint import CAPTION_SIDE, Checkpoint, load_checkpoint, save_checkpoint
from model_runtime.model.recoca import ReCoCa
from model_runtime.model.tokenizer import EVIDENCE_LABELS, CaptionTokenizer
from model_runtime.training.corpus import Night, build_corpus, default_specs
from model_runtime.training.dataset import build_tokenizer, load_split, to_arrays
from model_runtime.training.train import (
    MODALITY_WEIGHTS,
    UNKNOWN_EVIDENCE_RATE,
    UNKNOWN_STAGE_RATE,
    WRONG_EVIDENCE_RATE,
    sampling_weights,
)
from psg.captions import MODALITIES
from psg.errors import PSGError

#: Validation epochs: every n-th of each validation night (neighbouring epochs say nearly the same thing).
VALIDATION_STRIDE = 10


@dataclass
class DecoderOptions:
    """Everything that decides the result of ``train_decoder`` (recorded in the checkpoint)."""

    steps: int = 1000
    batch: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 50
    seed: int = 0
    per_source: int = 12
    synthetic_nights: int = 8
    threads: int = 2
    psg_dir: str | None = None


@dataclass
class DecoderData:
    """One split for the decoder: frozen encoder tokens (views, n, K, width) and caption ids (n, 5, L)."""

    tokens: np.ndarray  # float16, epochs x K x encoder width
    caption_ids: np.ndarray  # int16, 0-padded, modality/stage/evidence prefix first
    weights: np.ndarray  # sampling probability per epoch (sums to 1)


def remap_decoder(model: ReCoCa, old: CaptionTokenizer, new: CaptionTokenizer) -> ReCoCa:
    """``model`` with a decoder for ``new``'s vocabulary: old layers, old rows for pieces both vocabularies
    hold, fresh rows for new pieces. The rest of the model is the same object, untouched."""
    fresh = CaptionDecoder(model.config, len(new))
    state = {k: v for k, v in model.decoder.state_dict().items() if not k.startswith(("embed.", "head."))}
    fresh.load_state_dict(state, strict=False)
    kept = [(i, old.index[p]) for i, p in enumerate(new.vocab) if p in old.index]
    with torch.no_grad():
        rows = torch.tensor([i for i, _ in kept])
        fresh.embed.weight[rows] = model.decoder.embed.weight[torch.tensor([j for _, j in kept])]
    model.decoder = fresh
    return model


@torch.no_grad()
def encoder_tokens(model: ReCoCa, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """The encoder's pooled decoder tokens (n, K, width) of epochs ``x`` (float16)."""
    model.eval()
    out = [
        model.encoder(torch.from_numpy(x[i : i + batch].astype(np.float32)))[2].to(torch.float16).numpy()
        for i in range(0, len(x), batch)
    ]
    return np.concatenate(out)


def decoder_data(
    ckpt: Checkpoint,
    nights: list[Night],
    tokenizer: CaptionTokenizer,
    cache_dir: Path,
    stride: int = 1,
    progress: bool = True,
) -> DecoderData:
    """Frozen encoder tokens and caption ids of every ``stride``-th scored epoch of ``nights``. The tokens
    are cached beside the corpus under the checkpoint's fingerprint (a rerun skips the encoder)."""
    tokens, ids, stages, flags = [], [], [], []
    for night in tqdm(nights, desc="frozen encoder", unit="night", disable=not progress):
        arrays = to_arrays([night], tokenizer, {}, ckpt.config.max_caption_tokens)
        path = Path(cache_dir) / f"decoder-tokens-{ckpt.fingerprint}-{night.key}-{stride}.npy"
        if not path.is_file():
            np.save(path, encoder_tokens(ckpt.model, arrays.x[::stride]))
        tokens.append(np.load(path))
        ids.append(arrays.caption_ids[::stride])
        stages.append(arrays.stages[::stride])
        flags.append(arrays.flags[::stride])
    weights = sampling_weights(np.concatenate(stages), np.concatenate(flags))
    return DecoderData(np.concatenate(tokens), np.concatenate(ids), weights)


def batch_ids(
    data: DecoderData,
    tokenizer: CaptionTokenizer,
    idx: np.ndarray,
    modality: int | np.ndarray,
    rng: np.random.Generator,
    noisy: bool,
) -> torch.Tensor:
    """Caption ids of epochs ``idx`` at caption level(s) ``modality``; ``noisy``: with ``train``'s '?' stage,
    '?' evidence and wrong-evidence prefixes mixed in (the validation loss keeps the true prefixes)."""
    captions = data.caption_ids[idx, modality].astype(np.int64)
    if noisy:
        captions[rng.random(len(idx)) < UNKNOWN_STAGE_RATE, 1] = tokenizer.stage_id("?")
        draw = rng.random(len(idx))
        captions[draw < UNKNOWN_EVIDENCE_RATE, 2] = tokenizer.evidence_id("?")
        wrong = draw > 1 - WRONG_EVIDENCE_RATE
        labels = rng.choice(EVIDENCE_LABELS[:-1], size=int(wrong.sum()))
        captions[wrong, 2] = [tokenizer.evidence_id(e) for e in labels]
    length = int((captions != 0).sum(axis=1).max())
    return torch.from_numpy(captions[:, :length])


def caption_loss(model: ReCoCa, tokens: np.ndarray, ids: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy of the decoder on frozen encoder ``tokens`` (B, K, width)."""
    memory = model.memory_proj(torch.from_numpy(tokens.astype(np.float32)))
    logits = model.decoder(ids[:, :-1], memory)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=0)


@torch.no_grad()
def validation_loss(model: ReCoCa, data: DecoderData, tokenizer: CaptionTokenizer, epochs: int = 1500) -> dict:
    """Caption loss per level over up to ``epochs`` fixed validation epochs (true prefixes), and their mean
    weighted as training draws the levels."""
    model.eval()
    rng = np.random.default_rng(1)
    idx = rng.choice(len(data.weights), size=min(epochs, len(data.weights)), replace=False)
    out = {}
    for m, modality in enumerate(MODALITIES):
        losses = [
            float(caption_loss(model, data.tokens[part], batch_ids(data, tokenizer, part, m, rng, noisy=False)))
            for part in np.array_split(idx, max(len(idx) // 128, 1))
        ]
        out[modality] = float(np.mean(losses))
    out["weighted"] = float(np.dot(MODALITY_WEIGHTS, [out[m] for m in MODALITIES]))
    model.train()
    return out


def frozen_differences(before: ReCoCa, after: ReCoCa) -> list[str]:
    """Names of tensors outside the decoder that differ between two models (should be none)."""
    old = before.state_dict()
    return [
        name
        for name, tensor in after.state_dict().items()
        if not name.startswith(CAPTION_SIDE) and not torch.equal(tensor, old[name])
    ]


def build_decoder_corpus(options: DecoderOptions, data_dir: Path, cache_dir: Path, progress: bool = True) -> None:
    """The corpus ``train`` would use with these options (only the nights ``cache_dir`` lacks are rendered).
    A cache built before a template change holds the old captions: give a fresh ``cache_dir`` then."""
    specs = default_specs(
        data_dir,
        per_source=options.per_source,
        synthetic=options.synthetic_nights,
        psg_dir=Path(options.psg_dir) if options.psg_dir else None,
    )
    build_corpus(specs, cache_dir, workers=options.threads, progress=progress)


def train_decoder(
    options: DecoderOptions, init: Path | None, cache_dir: Path, out: Path, progress: bool = True
) -> dict:
    """Retrain the caption decoder of checkpoint ``init`` (None: the shipped one) on the captions of the
    corpus in ``cache_dir`` and write the result to ``out``; see the module docstring. Returns the report."""
    torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    started = time.time()
    ckpt = load_checkpoint(init)
    original = load_checkpoint(init).model
    train_nights = load_split(cache_dir, "train", progress)
    val_nights = load_split(cache_dir, "validation", progress)
    if not train_nights or not val_nights:
        raise PSGError(f"{cache_dir}: the corpus needs training and validation nights to retrain the decoder")
    tokenizer = build_tokenizer(train_nights)
    old_vocab = ckpt.tokenizer
    train_data = decoder_data(ckpt, train_nights, tokenizer, cache_dir, progress=progress)
    val_data = decoder_data(ckpt, val_nights, tokenizer, cache_dir, VALIDATION_STRIDE, progress)
    del train_nights, val_nights
    model = remap_decoder(ckpt.model, old_vocab, tokenizer)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(CAPTION_SIDE))
    trained = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=options.lr, weight_decay=options.weight_decay)
    start_loss = validation_loss(model, val_data, tokenizer)
    model.train()
    history: list[dict] = []
    bar = tqdm(range(options.steps), desc="training the decoder", disable=not progress)
    for step in bar:
        idx = rng.choice(len(train_data.weights), size=options.batch, p=train_data.weights)
        modality = int(rng.choice(len(MODALITIES), p=MODALITY_WEIGHTS))
        ids = batch_ids(train_data, tokenizer, idx, modality, rng, noisy=True)
        for group in optimizer.param_groups:
            group["lr"] = _lr(step, options)
        loss = caption_loss(model, train_data.tokens[idx], ids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        history.append({"step": step, "modality": MODALITIES[modality], "caption": loss.item()})
        bar.set_postfix(loss=f"{history[-1]['caption']:.3f}")
    model.eval()
    model.requires_grad_(True)
    changed = frozen_differences(original, model)
    if changed:
        raise PSGError(f"decoder retraining changed frozen weights: {', '.join(changed[:5])}")
    report = {
        "options": asdict(options),
        "init": str(init) if init else "shipped",
        "seconds": round(time.time() - started, 1),
        "vocab": {
            "before": len(old_vocab),
            "after": len(tokenizer),
            "kept": sum(p in old_vocab.index for p in tokenizer.vocab),
            "added": sorted(p for p in tokenizer.vocab if p not in old_vocab.index),
            "dropped": sorted(p for p in old_vocab.vocab if p not in tokenizer.index),
        },
        "validation_caption_loss": {"start": start_loss, "end": validation_loss(model, val_data, tokenizer)},
        "final_train_loss": float(np.mean([h["caption"] for h in history[-50:]])),
    }
    result = Checkpoint(
        model,
        tokenizer,
        ckpt.stage_prompts,
        ckpt.stage_prompt_features,
        ckpt.event_prompts,
        ckpt.event_prompt_features,
        ckpt.calibration,
        {**ckpt.training, "decoder_retraining": report},
    )
    save_checkpoint(result, out)
    return report


def _lr(step: int, options: DecoderOptions) -> float:
    """Linear warm-up, then cosine decay to 5 % of ``options.lr``."""
    if step < options.warmup:
        return options.lr * (step + 1) / options.warmup
    progress = (step - options.warmup) / max(options.steps - options.warmup, 1)
    return options.lr * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * progress)))
