"""ONNX export of a checkpoint (train extra: torch), checked against torch; ``onnx_backend`` serves it on CPU.

Generation is a loop the caller drives, so the decoder is exported as a step: ``encoder.onnx`` (epochs +
keep mask -> unit embedding, decoder memory) and ``decoder_step.onnx`` (one token with explicit
key/value caches and the memory -> logits and the grown caches), the interface of
``CaptionDecoder.step``. ``OnnxBackend`` serves captions from two more graphs split from that step:
``decoder_cross.onnx`` projects the memory to every layer's cross-attention keys/values once per
caption batch, and ``decoder_step_cross.onnx`` is the step taking those instead of the memory. The
memory projection is more than half of a step's multiply-adds (per layer 2*K*W^2 for the K memory
tokens against 14*W^2 for the new token), so this makes each step ~35% cheaper; ``verify`` checks
the served path against ``CaptionDecoder.step`` itself, so the split can never drift from the model.
``meta.json`` records which checkpoint (name and sha256) the graphs came from, so a retrained
checkpoint never silently runs with an old export.

Exporter: the TorchScript-based ``torch.onnx.export(dynamo=False)``. Both exporters give graphs within
1e-6 of torch here (dynamic batch and cache length, including the zero-length cache of the first
decoder step), but the TorchScript one exports in about a second where ``dynamo=True`` needs 10-15 s
and prints pages of progress; the dynamo exporter stays as the fallback if the legacy one fails.
Every export is checked against torch with onnxruntime before it replaces an earlier export.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model_runtime.model.caption_decoder import DecoderLayer
from model_runtime.model.checkpoint import load_checkpoint
from model_runtime.model.onnx_backend import (
    CROSS_FILE,
    CROSS_STEP_FILE,
    DECODER_FILE,
    ENCODER_FILE,
    FORMAT,
    META_FILE,
    OnnxBackend,
    sha256_of,
)
from model_runtime.model.recoca import ReCoCa
from model_runtime.model.serving_checkpoint import write_serving_file
from model_runtime.model.shipped import SHIPPED_CHECKPOINT, onnx_dir_for
from psg.errors import PSGError

#: Largest ORT-vs-torch difference an export may show on random input (float32 graphs agree to ~1e-6).
TOLERANCE = 1e-3


class _EncoderGraph(nn.Module):
    """``model.encode`` with ``keep`` always given (all-True for plain encoding): one graph serves both
    plain embedding and the masked sub-windows of language-guided localisation."""

    def __init__(self, model: ReCoCa) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.encode(x, keep)


class _DecoderStepGraph(nn.Module):
    """``model.decoder.step``: token (B,), position 0-d, memory, caches (L, B, H, t, d) -> logits, k, v."""

    def __init__(self, model: ReCoCa) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(self, token, position, memory, past_k, past_v):  # noqa: ANN001, ANN201 - see docstring
        return self.decoder.step(token, position, memory, past_k, past_v)


class _CrossGraph(nn.Module):
    """memory (B, K, W) -> every layer's cross-attention keys and values, (L, B, H, K, d) each."""

    def __init__(self, model: ReCoCa) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(self, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = [], []
        for module in self.decoder.layers:
            layer = cast(DecoderLayer, module)  # ModuleList yields Module
            k, v = layer.kv(memory).chunk(2, dim=-1)
            keys.append(layer._split(k))
            values.append(layer._split(v))
        return torch.stack(keys), torch.stack(values)


class _CrossStepGraph(nn.Module):
    """``CaptionDecoder.step`` with the cross-attention keys/values precomputed by ``_CrossGraph``."""

    def __init__(self, model: ReCoCa) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(self, token, position, cross_k, cross_v, past_k, past_v):  # noqa: ANN001, ANN201
        d = self.decoder
        x = d.embed(token)[:, None, :] + d.position[position][None, None, :]
        new_k, new_v = [], []
        for i, layer in enumerate(d.layers):
            q, k, v = (layer._split(t) for t in layer.qkv(layer.norm1(x)).chunk(3, dim=-1))
            k, v = torch.cat([past_k[i], k], dim=2), torch.cat([past_v[i], v], dim=2)
            x = x + layer.self_out(layer._merge(F.scaled_dot_product_attention(q, k, v)))
            cross_q = layer._split(layer.q(layer.norm2(x)))
            x = x + layer.cross_out(layer._merge(F.scaled_dot_product_attention(cross_q, cross_k[i], cross_v[i])))
            x = x + layer.mlp(layer.norm3(x))
            new_k.append(k)
            new_v.append(v)
        return d.head(d.norm(x))[:, 0], torch.stack(new_k), torch.stack(new_v)


def _decoder_sizes(model: ReCoCa) -> dict[str, int]:
    c = model.config
    return {
        "layers": c.decoder_depth,
        "heads": c.decoder_heads,
        "head_dim": c.decoder_width // c.decoder_heads,
        "width": c.decoder_width,
        "tokens": c.decoder_tokens,
        "vocab": model.decoder.embed.num_embeddings,
    }


def _export(module: nn.Module, args: tuple, path: Path, names: tuple[list[str], list[str]], axes: dict, opset: int):
    """TorchScript exporter first (fast, quiet); the dynamo exporter if it fails."""
    inputs, outputs = names
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notices
            torch.onnx.export(
                module,
                args,
                str(path),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
        return "torchscript"
    except Exception as legacy_error:  # noqa: BLE001 - any failure: try the other exporter, report both
        try:
            from torch.export import Dim

            dims: dict[str, Dim] = {}
            for per_input in axes.values():
                for name in per_input.values():
                    dims.setdefault(name, Dim(name, min=0 if name == "past" else 1))
            shapes = tuple({axis: dims[name] for axis, name in axes[i].items()} if i in axes else None for i in inputs)
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    module,
                    args,
                    str(path),
                    input_names=inputs,
                    output_names=outputs,
                    dynamic_shapes=shapes,
                    opset_version=opset,
                    dynamo=True,
                    verbose=False,
                )
            return "dynamo"
        except Exception as dynamo_error:  # noqa: BLE001
            raise PSGError(
                f"ONNX export of {path.name} failed with both exporters: torchscript: {legacy_error}; "
                f"dynamo: {dynamo_error}"
            ) from None


def _trace_sizes(sizes: dict[str, int], patches: int) -> tuple[int, int]:
    """Example batch size and cache length for tracing, unequal to every fixed size of the model: the
    dynamo exporter treats equal sizes as one symbol, so a batch of 2 beside 2 decoder layers would be
    frozen to 2."""
    fixed = {*sizes.values(), patches, 10, 1920}
    free = [n for n in (3, 5, 7, 11, 13, 17, 19, 23) if n not in fixed]
    return free[0], free[1]


def export_onnx(checkpoint_path: str | Path | None, out_dir: str | Path | None = None, opset: int = 18) -> Path:
    """Export ``checkpoint_path`` (default: the shipped checkpoint) to ``out_dir`` (default: the folder
    beside it, ``onnx_dir_for``); verify the graphs against torch; return the folder.

    The export is written to a temporary sibling folder and only moved into place once onnxruntime
    reproduces torch, so a failed export never leaves a half-written folder that ``SleepLM.load`` would
    pick up.
    """
    ckpt_path = Path(checkpoint_path or SHIPPED_CHECKPOINT)
    checkpoint = load_checkpoint(ckpt_path)
    model = checkpoint.model.eval()
    out = Path(out_dir) if out_dir else onnx_dir_for(ckpt_path)
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / META_FILE).is_file())):
        raise PSGError(f"{out} exists and is not a SleepLM ONNX export (no {META_FILE}); choose another folder")
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        meta = _export_into(model, tmp, opset)
        write_serving_file(checkpoint, tmp)  # what serving needs of the .pt, readable without torch
        meta.update(checkpoint=ckpt_path.name, checkpoint_sha256=sha256_of(ckpt_path))
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _export_into(model: ReCoCa, folder: Path, opset: int) -> dict:
    """Write both graphs into ``folder``, check them, and return the metadata (without the checkpoint)."""
    sizes = _decoder_sizes(model)
    patches = model.encoder.patches
    batch, past = _trace_sizes(sizes, patches)
    x = torch.randn(batch, 10, 1920)
    keep = torch.ones(batch, patches, dtype=torch.bool)
    exporters = {}
    exporters[ENCODER_FILE] = _export(
        _EncoderGraph(model),
        (x, keep),
        folder / ENCODER_FILE,
        (["x", "keep"], ["embedding", "memory"]),
        {"x": {0: "batch"}, "keep": {0: "batch"}, "embedding": {0: "batch"}, "memory": {0: "batch"}},
        opset,
    )
    # Trace with a non-empty cache so no shape is specialised to t = 0; t = 0 is verified below.
    cache = (sizes["layers"], batch, sizes["heads"], past, sizes["head_dim"])
    exporters[DECODER_FILE] = _export(
        _DecoderStepGraph(model),
        (
            torch.zeros(batch, dtype=torch.int64),
            torch.tensor(past, dtype=torch.int64),
            torch.randn(batch, sizes["tokens"], sizes["width"]),
            torch.randn(cache),
            torch.randn(cache),
        ),
        folder / DECODER_FILE,
        (["token", "position", "memory", "past_k", "past_v"], ["logits", "k", "v"]),
        {
            "token": {0: "batch"},
            "memory": {0: "batch"},
            "past_k": {1: "batch", 3: "past"},
            "past_v": {1: "batch", 3: "past"},
            "logits": {0: "batch"},
            "k": {1: "batch", 3: "length"},
            "v": {1: "batch", 3: "length"},
        },
        opset,
    )
    token, position = torch.zeros(batch, dtype=torch.int64), torch.tensor(past, dtype=torch.int64)
    cross = (sizes["layers"], batch, sizes["heads"], sizes["tokens"], sizes["head_dim"])
    exporters[CROSS_FILE] = _export(
        _CrossGraph(model),
        (torch.randn(batch, sizes["tokens"], sizes["width"]),),
        folder / CROSS_FILE,
        (["memory"], ["cross_k", "cross_v"]),
        {"memory": {0: "batch"}, "cross_k": {1: "batch"}, "cross_v": {1: "batch"}},
        opset,
    )
    exporters[CROSS_STEP_FILE] = _export(
        _CrossStepGraph(model),
        (token, position, torch.randn(cross), torch.randn(cross), torch.randn(cache), torch.randn(cache)),
        folder / CROSS_STEP_FILE,
        (["token", "position", "cross_k", "cross_v", "past_k", "past_v"], ["logits", "k", "v"]),
        {
            "token": {0: "batch"},
            "cross_k": {1: "batch"},
            "cross_v": {1: "batch"},
            "past_k": {1: "batch", 3: "past"},
            "past_v": {1: "batch", 3: "past"},
            "logits": {0: "batch"},
            "k": {1: "batch", 3: "length"},
            "v": {1: "batch", 3: "length"},
        },
        opset,
    )
    backend = OnnxBackend(folder, threads=1, _sizes=sizes)
    diffs = verify(model, backend)
    import onnx
    import onnxruntime

    return {
        "format": FORMAT,
        "opset": opset,
        "exporter": exporters,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "encoder": {"patches": patches, "embed_dim": model.config.embed_dim},
        "decoder": sizes,
        "verified_max_abs_diff": diffs,
    }


def verify(model: ReCoCa, backend: OnnxBackend, seed: int = 0) -> dict[str, float]:
    """Max |onnxruntime - torch| of both graphs on random input (a batch size other than the traced one,
    a partial keep mask, empty and non-empty caches); ``PSGError`` above ``TOLERANCE``."""
    rng = np.random.default_rng(seed)
    sizes = _decoder_sizes(model)
    b = 3
    x = rng.standard_normal((b, 10, 1920)).astype(np.float32)
    keep = rng.random((b, model.encoder.patches)) > 0.3
    keep[:, 0] = True
    diffs: dict[str, float] = {}
    with torch.inference_mode():
        for name, k in (("encoder", None), ("encoder_masked", keep)):
            ref = model.encode(torch.from_numpy(x), None if k is None else torch.from_numpy(k))
            got = backend.encode(x, k)
            diffs[name] = max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref, strict=True))
        memory = rng.standard_normal((b, sizes["tokens"], sizes["width"])).astype(np.float32)
        for t in (0, 4):
            shape = (sizes["layers"], b, sizes["heads"], t, sizes["head_dim"])
            past_k = rng.standard_normal(shape).astype(np.float32)
            past_v = rng.standard_normal(shape).astype(np.float32)
            token = rng.integers(0, sizes["vocab"], b).astype(np.int64)
            step_ref = model.decoder.step(
                torch.from_numpy(token),
                torch.tensor(t),
                torch.from_numpy(memory),
                torch.from_numpy(past_k),
                torch.from_numpy(past_v),
            )
            served = backend.step(token, t, memory, past_k, past_v)
            plain = backend.step_graph(token, t, memory, past_k, past_v)
            for name, outputs in (("decoder_step", plain), ("decoder_step_cross", served)):
                diffs[f"{name}_t{t}"] = max(
                    float(np.abs(g - r.numpy()).max()) if g.shape == tuple(r.shape) else float("inf")
                    for g, r in zip(outputs, step_ref, strict=True)
                )
    worst = max(diffs, key=diffs.__getitem__)
    if not diffs[worst] <= TOLERANCE:
        raise PSGError(
            f"ONNX export does not reproduce torch: {worst} differs by {diffs[worst]:.3g} (> {TOLERANCE}); "
            "the export was not written"
        )
    return diffs
