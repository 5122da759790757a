"""Building a reference bank (``sleeplm bank``): render validation nights, embed every epoch, sample them.

The bank's format, how it is read and what it is for are in ``model_runtime.serving.reference_bank``; this
module is the evaluation side (it renders nights through the training corpus code), so serving a bank never
imports the corpus or the evaluation harness.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model_runtime.evaluation.nights import source_group, validation_specs
from model_runtime.model.shipped import bank_path_for
from model_runtime.serving.model_api import SleepLM
from model_runtime.serving.reference_bank import (
    BANK_EPOCHS,
    CONCEPT_EVENTS,
    STAGE_INDEX,
    ReferenceBank,
    model_fingerprint,
    save_bank,
)
from model_runtime.training.corpus import Night, NightSpec, build_corpus, load_night
from psg.errors import PSGError
from psg.paths import shared_data_dir


def build_bank(
    lm: SleepLM,
    specs: list[NightSpec],
    cache_dir: Path | None,
    progress: bool = True,
    epochs: int = BANK_EPOCHS,
    seed: int = 0,
    workers: int = 2,
) -> ReferenceBank:
    """Render (or read from ``cache_dir``; None: a temporary folder) the nights of ``specs``, embed every
    epoch and keep a uniform random sample of ``epochs`` of them (all when there are fewer)."""
    training = [s.key for s in specs if s.split != "validation"]
    if training:
        raise PSGError(f"a reference bank takes validation nights only; {', '.join(training)} are training nights")
    if not specs:
        raise PSGError("no nights to build a reference bank from")

    with tempfile.TemporaryDirectory(prefix="sleeplm-bank-") as scratch:
        paths = build_corpus(specs, Path(cache_dir or scratch), workers=workers, progress=progress)
        bar = tqdm(paths, desc="embedding", unit="night", disable=not progress)
        parts = [_night_part(lm, load_night(p), i) for i, p in enumerate(bar)]
    embeddings, stages, events, night = (np.concatenate(column) for column in zip(*parts, strict=True))
    keep = np.arange(len(embeddings))
    if len(keep) > epochs:
        keep = np.sort(np.random.default_rng(seed).choice(len(keep), epochs, replace=False))
    return ReferenceBank(
        embeddings=embeddings[keep].astype(np.float16),
        stages=stages[keep],
        events=events[keep],
        night=night[keep],
        night_keys=tuple(s.key for s in specs),
        night_sources=tuple(_source_name(s.source) for s in specs),
        fingerprint=model_fingerprint(lm),
    )


def _night_part(lm: SleepLM, night: Night, index: int) -> tuple[np.ndarray, ...]:
    """One night's embeddings, stage indices, event matrix and night ids (every epoch)."""
    embeddings = lm.embed(night.x.astype(np.float32))
    stages = np.array([STAGE_INDEX.get(int(s), -1) for s in night.stages], dtype=np.int8)
    events = np.array(
        [[any(e["type"] == name for e in epoch) for name in CONCEPT_EVENTS] for epoch in night.events], dtype=bool
    ).reshape(len(night.events), len(CONCEPT_EVENTS))
    return embeddings, stages, events, np.full(len(embeddings), index, dtype=np.int16)


def _source_name(source: str) -> str:
    """The timeline a spec renders, without the local data path: 'ucddb/ucddb011_stage.txt', 'synthetic:1001:12'."""
    return source if source.startswith("synthetic:") else f"{source_group(source)}/{Path(source).name}"


def build_bank_command(checkpoint: Path | None, out: Path | None, nights: int, cache: Path | None) -> Path:
    """``sleeplm bank``: build the reference bank of ``checkpoint`` (default: the shipped one) from the first
    ``nights`` validation renderings (25 are all of them) of ``SLEEPLM_DATA``, rendered into ``cache`` (None:
    a temporary folder), and write it to ``out`` (default: beside the checkpoint). Returns the written path."""
    data_dir = shared_data_dir()
    if not data_dir.is_dir():
        raise PSGError(f"shared data folder {data_dir} not found; set SLEEPLM_DATA to the scored nights")
    if nights < 1:
        raise PSGError(f"--nights must be >= 1, got {nights}")
    specs = validation_specs(data_dir, nights)
    if not specs:
        raise PSGError(f"{data_dir}: no validation nights found (expected ucddb, dreem, slpdb, ... hypnograms)")
    bank = build_bank(SleepLM.load(checkpoint), specs, cache)
    return save_bank(bank, out or bank_path_for(checkpoint))
