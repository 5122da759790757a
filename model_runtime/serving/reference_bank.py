"""The reference bank: embeddings of held-out epochs with their truth, shipped beside the checkpoint.

A watch rule ("central apneas", "REM with oxygen desaturation") is scored as a cosine in the shared space,
and cosines have no natural cut-off: where a rule should fire depends on the rule. The bank is what the
threshold is calibrated on (``model_runtime.serving.watch_rules``), so it is built the way the checkpoint's own
calibration is:

* **Validation nights only.** The nights of ``model_runtime.evaluation.nights.validation_specs`` (the corpus split
  by timeline hash, with the training run's 12 nights per database + 8 synthetic nights): the checkpoint
  never trained on them, so a threshold calibrated here is not fitted to memorised epochs.
* **The live path's input.** Nights are rendered and epoched by the corpus code (``corpus.build_corpus``,
  the live epocher's offline twin) and embedded with ``SleepLM.embed``, the vector the live worker has.
* **A uniform random sample of epochs.** Every scored database is kept, and epochs are drawn uniformly
  (not per event), so the bank's event prevalence is the validation nights' prevalence: an F1-optimal
  threshold depends on prevalence, and a bank enriched in rare events would set thresholds that fire too
  often on a real ward. The price: rare events (central and mixed apneas) have few epochs; the count is
  recorded and the benchmark reports it.
* **Small.** 8000 epochs x 128 float16 (1.9 MB compressed): it ships in the package next to the checkpoint.
* **Tied to its checkpoint.** Embeddings change with every retraining; the bank stores a fingerprint of
  the weights it was built with, and calibration refuses a bank from another checkpoint.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_runtime.model.prompts import STAGE_LABELS
from model_runtime.model.shipped import bank_path_for
from model_runtime.serving.model_api import SleepLM
from psg.errors import PSGError
from psg.timeline import Stage

#: Event columns of ``ReferenceBank.events``: the event types a watch rule can name.
CONCEPT_EVENTS: tuple[str, ...] = (
    "obstructive_apnea",
    "central_apnea",
    "mixed_apnea",
    "hypopnea",
    "desaturation",
    "arousal",
)
#: Epochs kept in a bank: 1.9 MB (compressed .npz) at the small config's 128 float16 dimensions.
BANK_EPOCHS = 8000
FORMAT = "sleeplm-bank/1"
STAGE_INDEX = {int(Stage.from_label(label)): i for i, label in enumerate(STAGE_LABELS)}


@dataclass(frozen=True)
class ReferenceBank:
    """Held-out epochs: ``embeddings`` (n, E) float16 unit vectors, ``stages`` (n,) int8 indices into
    ``STAGE_LABELS`` (-1 unscored), ``events`` (n, len(CONCEPT_EVENTS)) bool (an event of that type overlaps
    the epoch), ``night`` (n,) int16 index into ``night_keys`` (the rendering) and ``night_sources`` (its
    timeline: two renderings of one hypnogram share it, so a split by night must group by source), and
    ``fingerprint`` of the checkpoint weights that made the embeddings."""

    embeddings: np.ndarray
    stages: np.ndarray
    events: np.ndarray
    night: np.ndarray
    night_keys: tuple[str, ...]
    night_sources: tuple[str, ...]
    fingerprint: str

    def __len__(self) -> int:
        return int(len(self.embeddings))

    def event(self, name: str) -> np.ndarray:
        """(n,) bool: an event of type ``name`` (one of ``CONCEPT_EVENTS``) overlaps the epoch."""
        return self.events[:, CONCEPT_EVENTS.index(name)]


def model_fingerprint(lm: SleepLM) -> str:
    """A short hash of the loaded weights: whichever backend serves them, the same checkpoint gives the same
    fingerprint, and a retrained one a different one."""
    return lm.checkpoint.fingerprint


def save_bank(bank: ReferenceBank, path: Path) -> Path:
    """Write ``bank`` to ``path`` (compressed .npz, plain arrays only: it loads without pickle)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        format=np.array(FORMAT),
        fingerprint=np.array(bank.fingerprint),
        event_names=np.array(CONCEPT_EVENTS),
        stage_labels=np.array(STAGE_LABELS),
        embeddings=bank.embeddings.astype(np.float16),
        stages=bank.stages.astype(np.int8),
        events=bank.events.astype(bool),
        night=bank.night.astype(np.int16),
        night_keys=np.array(bank.night_keys),
        night_sources=np.array(bank.night_sources),
    )
    tmp.replace(path)
    return path


def load_bank(path: str | Path | None = None) -> ReferenceBank:
    """Read a bank (default: the shipped checkpoint's); a clear error naming the file when it is missing or
    not a bank of this format."""
    path = Path(path) if path else bank_path_for(None)
    if not path.is_file():
        raise PSGError(f"reference bank {path} not found; build it with `sleeplm bank --out {path}`")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            values = {k: arrays[k] for k in arrays.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise PSGError(f"{path}: not a SleepLM reference bank ({exc})") from None
    problem = _problem(values)
    if problem:
        raise PSGError(f"{path}: not a usable SleepLM reference bank ({problem}); rebuild it with `sleeplm bank`")
    return ReferenceBank(
        embeddings=values["embeddings"],
        stages=values["stages"],
        events=values["events"],
        night=values["night"],
        night_keys=tuple(str(k) for k in values["night_keys"]),
        night_sources=tuple(str(s) for s in values["night_sources"]),
        fingerprint=str(values["fingerprint"]),
    )


def _problem(values: dict[str, np.ndarray]) -> str | None:
    """What is wrong with the arrays of a bank file, or None."""
    needed = ("format", "fingerprint", "event_names", "stage_labels", "embeddings", "stages", "events", "night")
    missing = [k for k in (*needed, "night_keys", "night_sources") if k not in values]
    if missing:
        return f"missing {', '.join(missing)}"
    if str(values["format"]) != FORMAT:
        return f"format {str(values['format'])!r}, expected {FORMAT!r}"
    columns = (tuple(values["event_names"].tolist()), tuple(values["stage_labels"].tolist()))
    if columns != (CONCEPT_EVENTS, STAGE_LABELS):
        return f"event and stage columns {columns}, expected {(CONCEPT_EVENTS, STAGE_LABELS)}"
    n = len(values["embeddings"]) if values["embeddings"].ndim == 2 else 0
    if n == 0:
        return "no (n, E) embeddings"
    expected = {
        "embeddings": (np.float16, 2),
        "stages": (np.int8, 1),
        "events": (np.bool_, 2),
        "night": (np.int16, 1),
    }
    for key, (dtype, ndim) in expected.items():
        if values[key].ndim != ndim or values[key].dtype != dtype or len(values[key]) != n:
            got = f"{values[key].dtype} {values[key].shape}"
            return f"{key} must be {ndim}-d {np.dtype(dtype).name} with {n} rows, got {got}"
    if values["events"].shape[1] != len(CONCEPT_EVENTS):
        return f"events must have {len(CONCEPT_EVENTS)} columns ({', '.join(CONCEPT_EVENTS)})"
    keys, sources, night = values["night_keys"], values["night_sources"], values["night"]
    if keys.ndim != 1 or keys.shape != sources.shape or night.min() < 0 or night.max() >= len(keys):
        return "night ids do not match the night tables"
    if values["stages"].min() < -1 or values["stages"].max() >= len(STAGE_LABELS):
        return "stage indices out of range"
    return None
