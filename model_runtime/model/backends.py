"""Execution backends of a loaded model: the same two calls (encode, one decoder step) on torch or ONNX.

Everything crosses the backend boundary as NumPy arrays, so ``SleepLM`` never knows which one runs:
``TorchBackend`` (CPU, or CUDA with bfloat16 autocast when a GPU is present) and ``OnnxBackend``
(``model_runtime.training.onnx_export``; onnxruntime on CPU, the serving default).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from model_runtime.model.recoca import ReCoCa


class Backend(Protocol):
    """What ``SleepLM`` needs from an execution engine."""

    name: str
    device: str

    def encode(self, x: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Epochs (B, 10, 1920) float32 [+ keep mask (B, T) bool] -> unit embeddings (B, E), memory (B, K, W)."""
        ...

    def step(
        self, token: np.ndarray, position: int, memory: np.ndarray, past_k: np.ndarray, past_v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One decoder step: tokens (B,) int64 -> logits (B, V) and the grown key/value caches."""
        ...

    def empty_cache(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Zero-length caches (layers, B, heads, 0, head_dim)."""
        ...


class TorchBackend:
    """The PyTorch module itself: CPU float32, or CUDA with bfloat16 autocast."""

    def __init__(self, model: ReCoCa, device: str | None = None, threads: int | None = None) -> None:
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.name = "torch"
        if threads:
            torch.set_num_threads(threads)
        self.model = model.to(self.device).eval()
        self._autocast = self.device.startswith("cuda")

    def _run(self, fn, *args):  # noqa: ANN001, ANN202 - internal helper
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=self._autocast):
            return fn(*args)

    def encode(self, x: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        kt = None if keep is None else torch.from_numpy(np.asarray(keep, dtype=bool)).to(self.device)
        emb, memory = self._run(self.model.encode, xt, kt)
        return emb.float().cpu().numpy(), memory.float().cpu().numpy()

    def step(self, token, position, memory, past_k, past_v):  # noqa: ANN001, ANN201 - see Backend
        def run():
            logits, k, v = self.model.decoder.step(
                torch.from_numpy(token).to(self.device),
                torch.tensor(position, device=self.device),
                torch.from_numpy(memory).to(self.device),
                torch.from_numpy(past_k).to(self.device),
                torch.from_numpy(past_v).to(self.device),
            )
            return logits.float().cpu().numpy(), k.float().cpu().numpy(), v.float().cpu().numpy()

        return self._run(run)

    def empty_cache(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        k, v = self.model.decoder.empty_cache(batch)
        return k.numpy(), v.numpy()
