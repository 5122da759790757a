"""The ReCoCa signal encoder: per-channel patches, alternating channel/temporal attention, attention pooling.

An epoch (B, 10, 1920) is cut into 2-s patches per channel -> tokens (B, C, T, D). Channel blocks attend
across the 10 channels at each time step (which lead shows what, now); temporal blocks attend across
time within each channel with rotary position embeddings (RoPE: relative timing, so a spindle at second
3 or second 23 looks the same). Attention pooling with learned queries gives one global token (the
contrastive embedding) and K tokens for the caption decoder. Masked patches (a learned mask token in
place of the patch) serve the reconstruction loss in training and language-guided localisation at
inference (embedding a sub-window = masking everything else).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model_runtime.model.config import ModelConfig
from psg.montage import MODEL_CHANNELS, MODEL_EPOCH_SAMPLES


def rope_tables(length: int, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (length, head_dim) for rotary embeddings over ``length`` positions."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.arange(length, dtype=torch.float32)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (..., T, head_dim) queries or keys by their position."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class SelfAttention(nn.Module):
    """Multi-head self-attention over the second-to-last axis, optionally with RoPE."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        n, length, width = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(n, length, width))


class Block(nn.Module):
    """Pre-norm transformer block; ``axis`` says whether it mixes channels or time steps."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, axis: str) -> None:
        super().__init__()
        self.axis = axis
        self.norm1 = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        b, c, t, d = x.shape
        if self.axis == "channel":
            seq = x.transpose(1, 2).reshape(b * t, c, d)
            seq = seq + self.attn(self.norm1(seq))
            seq = seq + self.mlp(self.norm2(seq))
            return seq.reshape(b, t, c, d).transpose(1, 2)
        seq = x.reshape(b * c, t, d)
        seq = seq + self.attn(self.norm1(seq), rope)
        seq = seq + self.mlp(self.norm2(seq))
        return seq.reshape(b, c, t, d)


class AttentionPool(nn.Module):
    """Learned queries attend over every token: query 0 -> global token, queries 1..K -> decoder tokens."""

    def __init__(self, width: int, heads: int, queries: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(queries, width) * 0.02)
        self.norm = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        kv = self.norm(tokens)
        q = self.queries.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        pooled, _ = self.attn(q, kv, kv, need_weights=False)
        return pooled


class SignalEncoder(nn.Module):
    """(B, 10, 1920) epochs -> tokens (B, C, T, D), global token (B, D) and decoder tokens (B, K, D)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.channels = len(MODEL_CHANNELS)
        self.patches = MODEL_EPOCH_SAMPLES // config.patch_samples
        self.patch_embed = nn.Linear(config.patch_samples, config.width)
        self.channel_embed = nn.Parameter(torch.randn(self.channels, config.width) * 0.02)
        self.mask_token = nn.Parameter(torch.zeros(config.width))
        self.blocks = nn.ModuleList(
            Block(config.width, config.heads, config.mlp_ratio, "channel" if i % 2 == 0 else "temporal")
            for i in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.width)
        self.pool = AttentionPool(config.width, config.heads, 1 + config.decoder_tokens)
        cos, sin = rope_tables(self.patches, config.width // config.heads)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, 1920) -> (B, C, T, patch_samples)."""
        return x.reshape(x.shape[0], self.channels, self.patches, self.config.patch_samples)

    def forward(
        self, x: torch.Tensor, keep: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``keep`` (B, T) or (B, C, T) bool: patches to see; the rest become the mask token."""
        tokens = self.patch_embed(self.patchify(x)) + self.channel_embed[None, :, None, :]
        if keep is not None:
            if keep.dim() == 2:
                keep = keep[:, None, :].expand(-1, self.channels, -1)
            tokens = torch.where(keep[..., None], tokens, self.mask_token.to(tokens.dtype))
        rope = (self.rope_cos.to(tokens.dtype), self.rope_sin.to(tokens.dtype))
        for block in self.blocks:
            tokens = block(tokens, rope)
        tokens = self.norm(tokens)
        pooled = self.pool(tokens.flatten(1, 2))
        return tokens, pooled[:, 0], pooled[:, 1:]
