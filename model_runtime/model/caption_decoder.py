"""The caption decoder: a small causal transformer with cross-attention to the signal's decoder tokens.

The first input token is the modality prefix (``<m:stage_event>``, ``<m:brain>``, ...), so one decoder
writes targeted captions for any of the five levels. ``step`` is the inference form: one new token per
call with a key/value cache of the earlier self-attention keys and values, so generating n tokens costs
n small steps instead of n growing re-encodings (SleepLM's reference decoder has no cache). The cache
is explicit tensors in and out, which is also what the ONNX export of ``step`` needs.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from model_runtime.model.config import ModelConfig


class DecoderLayer(nn.Module):
    """Causal self-attention (cached at inference), cross-attention to the signal tokens, MLP."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.self_out = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.cross_out = nn.Linear(width, width)
        self.norm3 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        return x.reshape(b, t, self.heads, w // self.heads).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, h, t, d = x.shape
        return x.transpose(1, 2).reshape(b, t, h * d)

    def _cross(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        k, v = self.kv(memory).chunk(2, dim=-1)
        y = F.scaled_dot_product_attention(self._split(self.q(x)), self._split(k), self._split(v))
        return self.cross_out(self._merge(y))

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        q, k, v = (self._split(t) for t in self.qkv(self.norm1(x)).chunk(3, dim=-1))
        x = x + self.self_out(self._merge(F.scaled_dot_product_attention(q, k, v, is_causal=True)))
        x = x + self._cross(self.norm2(x), memory)
        return x + self.mlp(self.norm3(x))

    def step(
        self, x: torch.Tensor, memory: torch.Tensor, past_k: torch.Tensor, past_v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One token (B, 1, W) with the cache (B, H, t, d) -> output and the cache grown by one."""
        q, k, v = (self._split(t) for t in self.qkv(self.norm1(x)).chunk(3, dim=-1))
        k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        x = x + self.self_out(self._merge(F.scaled_dot_product_attention(q, k, v)))
        x = x + self._cross(self.norm2(x), memory)
        return x + self.mlp(self.norm3(x)), k, v


class CaptionDecoder(nn.Module):
    """Token ids (B, L) + signal tokens (B, K, W) -> next-token logits (B, L, vocab)."""

    def __init__(self, config: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        width = config.decoder_width
        self.config = config
        self.embed = nn.Embedding(vocab_size, width)
        nn.init.normal_(self.embed.weight, std=0.02)  # tied with the output head: keep first logits small
        self.position = nn.Parameter(torch.randn(config.max_caption_tokens + 1, width) * 0.02)
        self.layers = nn.ModuleList(DecoderLayer(width, config.decoder_heads) for _ in range(config.decoder_depth))
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab_size, bias=False)
        self.head.weight = self.embed.weight  # tied: fewer parameters in the shipped checkpoint

    def forward(self, ids: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids) + self.position[: ids.shape[1]]
        for layer in self.layers:
            x = layer(x, memory)
        return self.head(self.norm(x))

    def empty_cache(self, batch: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-length key/value caches (layers, B, H, 0, d)."""
        c = self.config
        shape = (c.decoder_depth, batch, c.decoder_heads, 0, c.decoder_width // c.decoder_heads)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def step(
        self,
        token: torch.Tensor,
        position: torch.Tensor,
        memory: torch.Tensor,
        past_k: torch.Tensor,
        past_v: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """token (B,) at ``position`` (0-d) -> logits (B, vocab) and the grown caches."""
        x = self.embed(token)[:, None, :] + self.position[position][None, None, :]
        new_k, new_v = [], []
        for i, layer in enumerate(self.layers):
            x, k, v = cast(DecoderLayer, layer).step(x, memory, past_k[i], past_v[i])  # ModuleList yields Module
            new_k.append(k)
            new_v.append(v)
        return self.head(self.norm(x))[:, 0], torch.stack(new_k), torch.stack(new_v)
