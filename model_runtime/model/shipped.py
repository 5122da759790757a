"""Where a checkpoint and its companion files live: the one place each default path is written.

"No checkpoint given" means the shipped one everywhere (CLI, settings, live runtime, API, benchmarks), and
every file that belongs to a checkpoint sits beside it under its stem: the ONNX export, the stage head and
the watch rules' reference bank. Kept free of torch and onnxruntime so that settings, the runtime registry
and the API can ask without loading a model.
"""

from __future__ import annotations

from pathlib import Path

#: The checkpoint trained by ``sleeplm train --config small``, shipped in the package.
SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "sleeplm-small.pt"
#: The frozen text tower (all-MiniLM-L6-v2) exported for onnxruntime, with its tokenizer.
TEXT_TOWER_DIR = SHIPPED_CHECKPOINT.parent / "minilm-l6-v2.onnx"


def checkpoint_or_shipped(checkpoint: str | Path | None) -> Path:
    """``checkpoint`` as a path, or the shipped one when none is given (None or an empty string)."""
    return Path(checkpoint) if checkpoint else SHIPPED_CHECKPOINT


def onnx_dir_for(checkpoint: str | Path | None) -> Path:
    """The ONNX export of a checkpoint: ``sleeplm-small.pt`` -> ``sleeplm-small.onnx/``."""
    return checkpoint_or_shipped(checkpoint).with_suffix(".onnx")


def head_path_for(checkpoint: str | Path | None) -> Path:
    """The stage head of a checkpoint: ``<stem>.stage.npz`` beside it."""
    path = checkpoint_or_shipped(checkpoint)
    return path.with_name(path.stem + ".stage.npz")


def bank_path_for(checkpoint: str | Path | None = None) -> Path:
    """The watch rules' reference bank of a checkpoint: ``<stem>.bank.npz`` beside it."""
    return checkpoint_or_shipped(checkpoint).with_suffix(".bank.npz")
