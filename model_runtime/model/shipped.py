"""Where the shipped model lives: the one default every command and service falls back to.

"No checkpoint given" means this file everywhere (CLI, settings, live runtime, benchmarks). Kept free of
torch and onnxruntime so that settings and the runtime registry can ask for it without loading a model.
"""

from __future__ import annotations

from pathlib import Path

#: The checkpoint trained by ``sleeplm train --config small``, shipped in the package.
SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "sleeplm-small.pt"


def checkpoint_or_shipped(checkpoint: str | Path | None) -> Path:
    """``checkpoint`` as a path, or the shipped one when none is given (None or an empty string)."""
    return Path(checkpoint) if checkpoint else SHIPPED_CHECKPOINT
