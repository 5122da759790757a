"""Training: builds (or reuses) the corpus, trains ReCoCa, writes the checkpoint, the loss history and its plot.

Sampling is stage-balanced (weights 1/sqrt(stage frequency), so N1 is seen ~3x more often than its
share) and epochs with respiratory events are drawn three times as often: macro-F1 and event mentions are
what the model is judged on. Augmentation is per-channel amplitude jitter and a little noise, the
variation a different amplifier or electrode gives. Each sample trains one caption level, stage_event
most often (it is what the live path writes for every epoch).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model_runtime.model.checkpoint import Checkpoint, save_checkpoint
from model_runtime.model.config import get_config
from model_runtime.model.prompts import STAGE_LABELS, event_prompts, stage_prompts
from model_runtime.model.recoca import ReCoCa
from model_runtime.model.text_tower import mask_numbers
from model_runtime.model.tokenizer import EVIDENCE_LABELS
from model_runtime.model.zero_shot import class_embeddings, class_probabilities
from model_runtime.training.corpus import EVENT_FLAGS, build_corpus, default_specs
from model_runtime.training.dataset import (
    TEXT_OPTIONS,
    TrainingArrays,
    build_tokenizer,
    load_split,
    text_features,
    to_arrays,
)
from psg.captions import MODALITIES

#: Caption level trained per sample: stage_event (written live for every epoch) most, long brain captions least.
MODALITY_WEIGHTS = np.array([0.5, 0.1, 0.15, 0.1, 0.15])
#: Fraction of captions trained with the '?' stage prefix, so the decoder can also state the stage itself.
UNKNOWN_STAGE_RATE = 0.2
#: Fraction trained with the '?' evidence prefix (events read from the signal alone), and the fraction
#: whose evidence is replaced by a random label (detectors err; the decoder must weigh the signal too).
UNKNOWN_EVIDENCE_RATE = 0.3
WRONG_EVIDENCE_RATE = 0.05
#: For stage_event samples, which contrastive text: the full caption, the stage sentence, the event sentences.
STAGE_EVENT_TEXTS = (0.4, 0.3, 0.3)


@dataclass
class TrainOptions:
    """Everything that decides the result of ``train`` (recorded in the checkpoint)."""

    config: str = "small"
    steps: int = 3000
    batch: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 150
    seed: int = 0
    per_source: int = 12
    synthetic_nights: int = 8
    eval_every: int = 250
    threads: int = 2
    psg_dir: str | None = None  # a folder of real scored EDF/EDF+ nights added to the corpus


def sampling_weights(stages: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Stage-balanced (1/sqrt frequency) sampling, respiratory-event epochs x3; sums to 1."""
    counts = np.bincount(stages.astype(np.int64), minlength=5).astype(float)
    w = 1.0 / np.sqrt(np.maximum(counts[stages], 1.0))
    respiratory = flags[:, [EVENT_FLAGS.index("apnea"), EVENT_FLAGS.index("hypopnea")]].any(axis=1)
    w = w * np.where(respiratory, 3.0, 1.0)
    return w / w.sum()


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per-channel gain 0.8-1.25 and N(0, 0.05) noise; the position code (last channel) is left alone."""
    gain = torch.exp((torch.rand(x.shape[0], x.shape[1], 1, generator=generator) - 0.5) * 0.45)
    gain[:, -1] = 1.0
    noise = torch.randn(x.shape, generator=generator) * 0.05
    noise[:, -1] = 0.0
    return x * gain + noise


def lr_at(step: int, options: TrainOptions) -> float:
    if step < options.warmup:
        return options.lr * (step + 1) / options.warmup
    progress = (step - options.warmup) / max(options.steps - options.warmup, 1)
    return options.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def embed_epochs(model: ReCoCa, x: np.ndarray, batch: int = 512) -> np.ndarray:
    """Unit embeddings (n, E) of epochs (n, 10, 1920)."""
    model.eval()
    out = [
        model.encode(torch.from_numpy(x[i : i + batch].astype(np.float32)))[0].numpy() for i in range(0, len(x), batch)
    ]
    return np.concatenate(out) if out else np.zeros((0, model.config.embed_dim), dtype=np.float32)


@torch.no_grad()
def project_prompts(model: ReCoCa, prompt_features: dict[str, np.ndarray], labels: list[str]) -> np.ndarray:
    return class_embeddings([model.embed_text(torch.from_numpy(prompt_features[k])).numpy() for k in labels])


def quick_validation(model: ReCoCa, val: TrainingArrays, stage_features: dict[str, np.ndarray], rng) -> dict:
    """Zero-shot stage accuracy / macro-F1 on up to 3000 validation epochs (no smoothing)."""
    from sklearn.metrics import accuracy_score, f1_score

    idx = rng.choice(len(val.stages), size=min(3000, len(val.stages)), replace=False)
    emb = embed_epochs(model, val.x[idx])
    classes = project_prompts(model, stage_features, list(STAGE_LABELS))
    pred = class_probabilities(emb, classes, float(model.logit_scale.exp())).argmax(axis=1)
    truth = val.stages[idx]
    model.train()
    return {
        "val_accuracy": float(accuracy_score(truth, pred)),
        "val_macro_f1": float(f1_score(truth, pred, average="macro")),
    }


def train(options: TrainOptions, data_dir: Path, cache_dir: Path, out: Path, progress: bool = True) -> dict:
    """Train a model per ``options`` and write ``out`` (checkpoint), ``out``.history.json and .png."""
    torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    started = time.time()
    specs = default_specs(
        data_dir,
        per_source=options.per_source,
        synthetic=options.synthetic_nights,
        psg_dir=Path(options.psg_dir) if options.psg_dir else None,
    )
    build_corpus(specs, cache_dir, workers=options.threads, progress=progress)
    config = get_config(options.config)
    train_nights = load_split(cache_dir, "train", progress)
    val_nights = load_split(cache_dir, "validation", progress)
    tokenizer = build_tokenizer(train_nights)
    texts: dict[str, int] = {}
    train_arrays = to_arrays(train_nights, tokenizer, texts, config.max_caption_tokens)
    val_arrays = to_arrays(val_nights, tokenizer, texts, config.max_caption_tokens)
    del train_nights, val_nights
    s_prompts, e_prompts = stage_prompts(), event_prompts()
    prompt_ids = {
        k: [texts.setdefault(mask_numbers(t), len(texts)) for t in v] for k, v in {**s_prompts, **e_prompts}.items()
    }
    features = text_features(texts, cache_dir, progress)
    stage_features = {k: features[prompt_ids[k]] for k in s_prompts}
    event_features = {k: features[prompt_ids[k]] for k in e_prompts}

    model = ReCoCa(config, len(tokenizer))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    generator = torch.Generator().manual_seed(options.seed)
    weights = sampling_weights(train_arrays.stages, train_arrays.flags)
    features_t = torch.from_numpy(features)
    history: list[dict] = []
    bar = tqdm(range(options.steps), desc=f"training {options.config}", disable=not progress)
    for step in bar:
        idx = rng.choice(len(weights), size=options.batch, p=weights)
        modality = rng.choice(len(MODALITIES), size=options.batch, p=MODALITY_WEIGHTS)
        stage_event_text = rng.choice(
            [0, TEXT_OPTIONS.index("stage_sentence"), TEXT_OPTIONS.index("event_sentences")],
            size=options.batch,
            p=STAGE_EVENT_TEXTS,
        )
        option = np.where(modality == 0, stage_event_text, modality)
        text_ids = train_arrays.text_index[idx, option]
        captions = train_arrays.caption_ids[idx, modality].astype(np.int64)
        unknown = rng.random(options.batch) < UNKNOWN_STAGE_RATE
        captions[unknown, 1] = tokenizer.stage_id("?")
        draw = rng.random(options.batch)
        captions[draw < UNKNOWN_EVIDENCE_RATE, 2] = tokenizer.evidence_id("?")
        wrong = draw > 1 - WRONG_EVIDENCE_RATE
        captions[wrong, 2] = [tokenizer.evidence_id(e) for e in rng.choice(EVIDENCE_LABELS[:-1], size=int(wrong.sum()))]
        length = int((captions != 0).sum(axis=1).max())
        x = augment(torch.from_numpy(train_arrays.x[idx].astype(np.float32)), generator)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, options)
        losses = model.forward_losses(
            x, features_t[text_ids], torch.from_numpy(text_ids), torch.from_numpy(captions[:, :length]), generator
        )
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        record = {"step": step, **{k: float(v) for k, v in losses.items()}}
        if (step + 1) % options.eval_every == 0 or step + 1 == options.steps:
            record.update(quick_validation(model, val_arrays, stage_features, rng))
        history.append(record)
        bar.set_postfix(
            loss=f"{record['loss']:.3f}",
            **({"f1": f"{record['val_macro_f1']:.3f}"} if "val_macro_f1" in record else {}),
        )

    model.eval()
    training = {
        "options": asdict(options),
        "seconds": round(time.time() - started, 1),
        "train_epochs": int(len(train_arrays.stages)),
        "validation_epochs": int(len(val_arrays.stages)),
        "train_nights": train_arrays.night_keys,
        "validation_nights": val_arrays.night_keys,
        "final": history[-1],
        "torch": str(torch.__version__),
    }
    ckpt = Checkpoint(model, tokenizer, s_prompts, stage_features, e_prompts, event_features, {}, training)
    save_checkpoint(ckpt, out)
    write_history(history, out)
    from model_runtime.training.calibrate import calibrate  # imports SleepLM, which needs a saved checkpoint

    training["calibration"] = calibrate(out, cache_dir)
    return training


def write_history(history: list[dict], out: Path) -> None:
    """``<out>.history.json`` and the loss curves as ``<out>.loss.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.with_suffix(".history.json").write_text(json.dumps(history))
    steps = [h["step"] for h in history]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss", "contrastive", "caption", "reconstruction"):
        values = np.convolve([h[key] for h in history], np.ones(25) / 25, mode="valid")
        ax.plot(steps[: len(values)], values, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (25-step mean)")
    ax.set_yscale("log")
    ax.legend()
    evals = [h for h in history if "val_macro_f1" in h]
    ax2.plot([h["step"] for h in evals], [h["val_accuracy"] for h in evals], "o-", label="zero-shot accuracy")
    ax2.plot([h["step"] for h in evals], [h["val_macro_f1"] for h in evals], "s-", label="zero-shot macro-F1")
    ax2.set_xlabel("step")
    ax2.set_ylim(0, 1)
    ax2.legend()
    fig.suptitle("SleepLM ReCoCa training (validation nights: zero-shot staging)")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".loss.png"), dpi=110)
    plt.close(fig)
