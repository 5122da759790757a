"""Model configurations: ``small`` (CPU serving, shipped in the repository) and ``base`` (GPU training).

Sizes are chosen for throughput first: one epoch is 10 channels x 15 two-second patches = 150 tokens,
so the ``small`` encoder costs ~45 M multiply-adds per epoch and serves hundreds of beds on two cores,
where SleepLM-Base (385 M parameters) encodes under two epochs per second on the same machine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from psg.errors import PSGError


@dataclass(frozen=True)
class ModelConfig:
    """Every size and loss weight of a ReCoCa model (saved inside each checkpoint)."""

    name: str = "small"
    patch_samples: int = 128  # 2 s at 64 Hz -> 15 patches per channel
    width: int = 96  # signal encoder token width
    depth: int = 4  # blocks, alternating channel attention and temporal attention
    heads: int = 4
    mlp_ratio: float = 2.0
    decoder_tokens: int = 8  # K pooled tokens the caption decoder cross-attends to
    embed_dim: int = 128  # the shared signal/text space
    text_dim: int = 384  # all-MiniLM-L6-v2 sentence embedding size
    decoder_width: int = 128
    decoder_depth: int = 2
    decoder_heads: int = 4
    max_caption_tokens: int = 160
    mask_ratio: float = 0.2  # patches masked for the reconstruction loss
    w_contrastive: float = 1.0
    w_caption: float = 1.0
    w_reconstruction: float = 0.5
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)


CONFIGS: dict[str, ModelConfig] = {
    "small": ModelConfig(),
    "base": ModelConfig(
        name="base",
        width=256,
        depth=8,
        heads=8,
        decoder_tokens=16,
        embed_dim=256,
        decoder_width=256,
        decoder_depth=4,
        decoder_heads=8,
    ),
}


def get_config(name: str) -> ModelConfig:
    """The named configuration, or a clear error listing the ones that exist."""
    if name not in CONFIGS:
        raise PSGError(f"unknown model config {name!r}; expected one of {', '.join(CONFIGS)}")
    return CONFIGS[name]
