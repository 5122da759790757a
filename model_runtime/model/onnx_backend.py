"""The onnxruntime backend: an exported checkpoint's graphs served on CPU, without torch.

``model_runtime.training.onnx_export`` (train extra: torch) writes the graphs and checks them against torch; this
module only reads them, so every serving path (the live worker, the API's search, the offline commands)
imports it without torch. See ``onnx_export`` for the graphs and why the decoder step is split in two.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np

from psg.errors import PSGError

ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder_step.onnx"
CROSS_FILE = "decoder_cross.onnx"
CROSS_STEP_FILE = "decoder_step_cross.onnx"
GRAPH_FILES = (ENCODER_FILE, DECODER_FILE, CROSS_FILE, CROSS_STEP_FILE)
META_FILE = "meta.json"
FORMAT = "sleeplm-onnx/1"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class OnnxBackend:
    """onnxruntime on CPU: the ``Backend`` of ``model_runtime.model.backends`` for an exported checkpoint."""

    name = "onnx"
    device = "cpu"

    def __init__(self, onnx_dir: Path, threads: int | None = None, _sizes: dict[str, int] | None = None) -> None:
        import onnxruntime as ort

        folder = Path(onnx_dir)
        hint = f"run `sleeplm export --onnx {folder}`"
        if not folder.is_dir():
            raise PSGError(f"ONNX export folder {folder} not found; {hint}")
        missing = [f for f in (*GRAPH_FILES, META_FILE) if not (folder / f).is_file()]
        if _sizes is not None:  # export in progress: meta.json is written after verification
            missing = [f for f in missing if f != META_FILE]
        if missing:
            raise PSGError(f"ONNX export {folder} is incomplete (missing {', '.join(missing)}); {hint}")
        patches = None
        if _sizes is None:
            meta = self._read_meta(folder, hint)
            _sizes = meta["decoder"]
            patches = meta.get("encoder", {}).get("patches")
        self.sizes = _sizes
        self.folder = folder
        self.threads = threads or _cpu_count()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads sleep instead of spinning: the live worker runs a batch every ~0.2 s on cores it
        # shares with the broker, the bridge and other workers, and the spinning between batches cost 4x the
        # CPU of the batches themselves (benchmarks/onnx_spin.py: 71 -> 16 ms per 8-epoch batch, same outputs)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._options, self._hint = options, hint
        self._sessions: dict[str, object] = {}
        self._sessions_lock = threading.Lock()
        # from meta.json when it says (no graph loaded: a process that only embeds text loads none of them)
        self.patches = int(patches) if patches else int(self.encoder.get_inputs()[1].shape[1])
        # Per thread: the memory array of the caption batch being written and its cross keys/values.
        self._local = threading.local()

    def _session(self, file: str):  # noqa: ANN202 - onnxruntime.InferenceSession
        """The graph ``file``, loaded on first use: a process that only embeds text (the API's search) or only
        encodes never holds the decoder graphs."""
        import onnxruntime as ort

        with self._sessions_lock:
            if file not in self._sessions:
                try:
                    self._sessions[file] = ort.InferenceSession(
                        str(self.folder / file), self._options, providers=["CPUExecutionProvider"]
                    )
                except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
                    raise PSGError(f"ONNX export {self.folder} cannot be loaded ({exc}); {self._hint}") from None
            return self._sessions[file]

    @property
    def encoder(self):  # noqa: ANN201 - onnxruntime.InferenceSession
        return self._session(ENCODER_FILE)

    @property
    def decoder(self):  # noqa: ANN201 - the plain step graph (the reference interface, ``step_graph``)
        return self._session(DECODER_FILE)

    @property
    def cross(self):  # noqa: ANN201
        return self._session(CROSS_FILE)

    @property
    def cross_step(self):  # noqa: ANN201
        return self._session(CROSS_STEP_FILE)

    @staticmethod
    def _read_meta(folder: Path, hint: str) -> dict:
        try:
            meta = json.loads((folder / META_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise PSGError(f"{folder / META_FILE} is unreadable ({exc}); {hint}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or "decoder" not in meta:
            raise PSGError(f"{folder / META_FILE}: not a SleepLM ONNX export (expected format {FORMAT!r}); {hint}")
        # The checkpoint the export belongs beside: a retrained checkpoint must not run an old export.
        beside = folder.with_suffix(".pt")
        if beside.name == meta.get("checkpoint") and beside.is_file():
            if sha256_of(beside) != meta.get("checkpoint_sha256"):
                raise PSGError(
                    f"ONNX export {folder} is stale: {beside.name} changed since it was exported; "
                    f"run `sleeplm export --onnx {folder}`"
                )
        return meta

    def encode(self, x: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float32)
        keep = np.ones((len(x), self.patches), dtype=bool) if keep is None else np.ascontiguousarray(keep, dtype=bool)
        if keep.ndim != 2 or keep.shape != (len(x), self.patches):
            raise PSGError(f"keep mask must be (n, {self.patches}) bool for the ONNX encoder, got {keep.shape}")
        embedding, memory = self.encoder.run(None, {"x": x, "keep": keep})
        return embedding, memory

    def step(
        self, token: np.ndarray, position: int, memory: np.ndarray, past_k: np.ndarray, past_v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One decoder step. The memory's cross-attention keys/values are computed on the first step
        with a given ``memory`` array (the same object for every step of a caption batch, as
        ``SleepLM.generate`` passes it) and reused until another array comes; do not modify ``memory``
        in place between the steps of one caption."""
        local = self._local
        if getattr(local, "memory", None) is not memory:
            local.cross = self.cross.run(None, {"memory": np.ascontiguousarray(memory, dtype=np.float32)})
            local.memory = memory
        cross_k, cross_v = local.cross
        feeds = {
            "token": np.ascontiguousarray(token, dtype=np.int64),
            "position": np.asarray(position, dtype=np.int64).reshape(()),
            "cross_k": cross_k,
            "cross_v": cross_v,
            "past_k": np.ascontiguousarray(past_k, dtype=np.float32),
            "past_v": np.ascontiguousarray(past_v, dtype=np.float32),
        }
        logits, k, v = self.cross_step.run(None, feeds)
        return logits, k, v

    def step_graph(
        self, token: np.ndarray, position: int, memory: np.ndarray, past_k: np.ndarray, past_v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The same step through ``decoder_step.onnx`` (memory in, no reuse): the reference interface."""
        feeds = {
            "token": np.ascontiguousarray(token, dtype=np.int64),
            "position": np.asarray(position, dtype=np.int64).reshape(()),
            "memory": np.ascontiguousarray(memory, dtype=np.float32),
            "past_k": np.ascontiguousarray(past_k, dtype=np.float32),
            "past_v": np.ascontiguousarray(past_v, dtype=np.float32),
        }
        logits, k, v = self.decoder.run(None, feeds)
        return logits, k, v

    def empty_cache(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.sizes
        shape = (s["layers"], batch, s["heads"], 0, s["head_dim"])
        return np.zeros(shape, np.float32), np.zeros(shape, np.float32)
