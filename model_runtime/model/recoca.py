"""ReCoCa: the SleepLM model (signal encoder + text projection + caption decoder + reconstruction head).

``forward_losses`` is the training objective of DESIGN.md:
``w_con * contrastive + w_cap * captioning + w_rec * reconstruction``.

* Contrastive: CLIP loss between the signal's global token and the caption's frozen MiniLM embedding
  (through a trainable projection). Captions repeat (many epochs are "stable N2, no events"), so every
  identical text in the batch counts as a positive instead of a false negative.
* Captioning: next-token cross-entropy of the decoder, prefixed by the caption's modality token.
* Reconstruction: the encoder sees a fraction of its patches replaced by the mask token and rebuilds
  them from its tokens (MSE on the masked patches only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model_runtime.model.caption_decoder import CaptionDecoder
from model_runtime.model.config import ModelConfig
from model_runtime.model.signal_encoder import SignalEncoder

#: Reconstruction targets are clipped: a z-scored artifact spike should not dominate the loss.
RECON_CLIP = 8.0


class ReCoCa(nn.Module):
    """The whole model; see the module docstring."""

    def __init__(self, config: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        self.config = config
        self.encoder = SignalEncoder(config)
        self.signal_proj = nn.Linear(config.width, config.embed_dim)
        self.text_proj = nn.Sequential(
            nn.Linear(config.text_dim, config.text_dim), nn.GELU(), nn.Linear(config.text_dim, config.embed_dim)
        )
        self.memory_proj = nn.Linear(config.width, config.decoder_width)
        self.decoder = CaptionDecoder(config, vocab_size)
        self.recon_head = nn.Linear(config.width, config.patch_samples)
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # ln(1/0.07), as CLIP

    def encode(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Epochs (B, 10, 1920) -> unit signal embedding (B, E) and decoder memory (B, K, W_dec)."""
        _, global_token, decoder_tokens = self.encoder(x, keep)
        embedding = F.normalize(self.signal_proj(global_token), dim=-1)
        return embedding, self.memory_proj(decoder_tokens)

    def embed_text(self, text_features: torch.Tensor) -> torch.Tensor:
        """Frozen MiniLM sentence embeddings (N, 384) -> unit vectors in the shared space (N, E)."""
        return F.normalize(self.text_proj(text_features), dim=-1)

    def forward_losses(
        self,
        x: torch.Tensor,
        text_features: torch.Tensor,
        text_ids: torch.Tensor,
        caption_ids: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Loss terms for a batch. ``text_ids`` (B,) identify equal captions; ``caption_ids`` (B, L) start
        with the modality token and are padded with ``pad_id`` = 0."""
        c = self.config
        b = x.shape[0]
        patches = self.encoder.patches
        keep = torch.rand(b, len(self.encoder.channel_embed), patches, generator=generator) >= c.mask_ratio
        tokens, global_token, decoder_tokens = self.encoder(x, keep)

        z_sig = F.normalize(self.signal_proj(global_token), dim=-1)
        z_txt = self.embed_text(text_features)
        logits = self.logit_scale.exp().clamp(max=100) * z_sig @ z_txt.T
        same = (text_ids[:, None] == text_ids[None, :]).float()
        targets = same / same.sum(dim=1, keepdim=True)
        contrastive = 0.5 * (
            torch.sum(-targets * F.log_softmax(logits, dim=1), dim=1).mean()
            + torch.sum(-targets * F.log_softmax(logits.T, dim=1), dim=1).mean()
        )

        memory = self.memory_proj(decoder_tokens)
        inputs, labels = caption_ids[:, :-1], caption_ids[:, 1:]
        caption_logits = self.decoder(inputs, memory)
        caption = F.cross_entropy(
            caption_logits.reshape(-1, caption_logits.shape[-1]), labels.reshape(-1), ignore_index=0
        )

        masked = ~keep
        if masked.any():
            target = self.encoder.patchify(x).clamp(-RECON_CLIP, RECON_CLIP)
            reconstruction = F.mse_loss(self.recon_head(tokens)[masked], target[masked])
        else:
            reconstruction = torch.zeros((), device=x.device)
        total = c.w_contrastive * contrastive + c.w_caption * caption + c.w_reconstruction * reconstruction
        return {"loss": total, "contrastive": contrastive, "caption": caption, "reconstruction": reconstruction}
