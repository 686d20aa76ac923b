"""Model configuration: frozen dataclasses whose defaults run, and a small preset registry.

A DepthART model is two networks: the multi-scale residual VQ-VAE tokenizer (VAR's
`vae_ch160v4096z32` at the `d16` preset) and the VAR transformer that predicts depth token maps
next-scale, conditioned on an RGB image-token prefix. Width and heads derive from depth as VAR
does (width = 64 * depth, heads = depth) unless given explicitly.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

DEPTH_CODECS = ("linear", "log")  # tokenizer/codec.py
# inference and training precisions (`precision.autocast`); here, as reading them needs no torch
PRECISIONS = ("fp32", "fp16", "bf16")
# Upper bounds on the counts that multiply the model's modules, each many times what any real
# model uses (VAR: depth <= 36, 2 res blocks, 5 stages, 4 shared refiners, 10-13 scales). A
# checkpoint's config is read before its weights: a small file claiming depth 100000 took
# minutes and gigabytes to build the module tree it is checked against; now it is refused here.
MAX_COUNTS = {
    "transformer.depth": 128,
    "tokenizer.num_res_blocks": 16,
    "tokenizer.share_quant_resi": 64,
    "len(tokenizer.ch_mult)": 12,
    "len(tokenizer.patch_nums)": 64,
}


@dataclass(frozen=True)
class TokenizerConfig:
    """Multi-scale residual VQ-VAE (VAR `models/vqvae.py` layout)."""

    ch: int = 16
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)  # len-1 downsamplings: x16
    num_res_blocks: int = 1
    using_sa: bool = False  # self-attention in the last encoder/decoder stage
    using_mid_sa: bool = True
    z_channels: int = 16  # Cvae, the code dimension
    vocab_size: int = 512
    beta: float = 0.25
    quant_conv_ks: int = 3
    quant_resi: float = 0.5  # phi(x) = (1 - r) x + r conv3x3(x)
    share_quant_resi: int = 4
    patch_nums: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8)
    dropout: float = 0.0
    # how depth enters and leaves the tokenizer (tokenizer/codec.py): "linear", the paper's
    # d / q98 * 2 - 1, or "log", uniform in relative depth
    depth_codec: str = "linear"

    def __post_init__(self) -> None:
        if self.depth_codec not in DEPTH_CODECS:
            raise ValueError(f"depth_codec must be one of {DEPTH_CODECS}, got {self.depth_codec!r}")
        for name in ("ch", "z_channels", "vocab_size", "num_res_blocks", "share_quant_resi"):
            _at_least(f"tokenizer.{name}", getattr(self, name), 1)
        _at_least("tokenizer.quant_conv_ks", self.quant_conv_ks, 1)
        for name, values in (("ch_mult", self.ch_mult), ("patch_nums", self.patch_nums)):
            if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                 for v in values):  # fmt: skip
                raise ValueError(f"tokenizer.{name} must be positive ints, got {values!r}")
        for name, value in (
            ("tokenizer.num_res_blocks", self.num_res_blocks),
            ("tokenizer.share_quant_resi", self.share_quant_resi),
            ("len(tokenizer.ch_mult)", len(self.ch_mult)),
            ("len(tokenizer.patch_nums)", len(self.patch_nums)),
        ):
            _at_most(name, value)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"tokenizer.dropout must be in [0, 1), got {self.dropout}")
        if not (math.isfinite(self.beta) and self.beta >= 0.0):
            raise ValueError(f"tokenizer.beta must be finite and >= 0, got {self.beta}")
        if not math.isfinite(self.quant_resi):
            raise ValueError(f"tokenizer.quant_resi must be finite, got {self.quant_resi}")

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def num_tokens(self) -> int:
        return sum(pn * pn for pn in self.patch_nums)


@dataclass(frozen=True)
class TransformerConfig:
    """VAR transformer with an image-token prefix (DepthART)."""

    depth: int = 4
    width: int = 192  # 0: 64 * depth (VAR's rule)
    num_heads: int = 3  # 0: depth (VAR's rule)
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    attn_l2_norm: bool = True  # VAR's published blocks use cosine attention with a learned scale
    # Temperature of plain dot-product attention (attn_l2_norm False): scale 1 / sqrt(d) / tau.
    # The DepthART authors' evaluation config sets cos_attn False with tau 4.
    tau: float = 4.0
    num_classes: int = 0  # VAR d16 has 1000; index num_classes is the "null" condition we use
    drop_path_rate: float = 0.0
    # "vq": the paper's prefix, the tokenizer's quantized image latents at every scale; "cnn": a
    # trainable conv encoder's continuous features (transformer/image_encoder.py), beyond the paper
    image_prefix: str = "vq"
    image_encoder_width: int = 32  # "cnn" only: channels of the encoder's first stage
    image_prefix_dim: int = 128  # "cnn" only: feature channels per prefix token
    # "cnn" only: start the next-scale refinement from the encoder's estimate of the depth latent
    # (f_hat_0 = f_aux) instead of from zero, so the token maps refine a continuous first guess
    refine_from_image_latent: bool = False

    def __post_init__(self) -> None:
        _at_least("transformer.depth", self.depth, 1)
        _at_most("transformer.depth", self.depth)
        for name in ("width", "num_heads"):  # 0: derived from depth
            _at_least(f"transformer.{name}", getattr(self, name), 0)
        _at_least("transformer.num_classes", self.num_classes, 0)
        for name in ("image_encoder_width", "image_prefix_dim"):
            _at_least(f"transformer.{name}", getattr(self, name), 1)
        if not (math.isfinite(self.mlp_ratio) and self.mlp_ratio > 0):
            raise ValueError(f"transformer.mlp_ratio must be > 0, got {self.mlp_ratio}")
        if not (math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"transformer.tau must be finite and > 0, got {self.tau}")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(
                f"transformer.drop_path_rate must be in [0, 1), got {self.drop_path_rate}"
            )
        if not (math.isfinite(self.norm_eps) and self.norm_eps > 0):
            raise ValueError(f"transformer.norm_eps must be > 0, got {self.norm_eps}")

    @property
    def embed_dim(self) -> int:
        return self.width if self.width > 0 else 64 * self.depth

    @property
    def heads(self) -> int:
        return self.num_heads if self.num_heads > 0 else self.depth


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 128
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    # > 0: a learned per-pixel uncertainty head of this width (depthart_core/uncertainty_head.py)
    uncertainty_width: int = 0
    # the head also reads the model's own view of the image (the image prefix's last scale, on the
    # latent grid: the conv encoder's features); needs uncertainty_width > 0
    uncertainty_context: bool = False

    def __post_init__(self) -> None:
        if self.uncertainty_width < 0:
            raise ValueError(f"uncertainty_width must be >= 0, got {self.uncertainty_width}")
        if self.uncertainty_context and not self.uncertainty_width:
            raise ValueError(
                "uncertainty_context needs an uncertainty head (uncertainty_width > 0)"
            )
        if self.uncertainty_width and self.image_size % 8:
            raise ValueError(
                f"the uncertainty head halves the image three times; image_size "
                f"{self.image_size} is not a multiple of 8"
            )
        ds = self.tokenizer.downsample
        if self.image_size <= 0 or self.image_size % ds:
            raise ValueError(
                f"image_size={self.image_size} must be a positive multiple of the tokenizer "
                f"downsampling factor {ds}"
            )
        latent = self.image_size // ds
        if self.tokenizer.patch_nums[-1] != latent:
            raise ValueError(
                f"last patch_num {self.tokenizer.patch_nums[-1]} must equal the latent size "
                f"{latent} (image_size {self.image_size} / {ds})"
            )
        if list(self.tokenizer.patch_nums) != sorted(set(self.tokenizer.patch_nums)):
            raise ValueError(
                f"patch_nums must be strictly increasing, got {self.tokenizer.patch_nums}"
            )
        if self.transformer.image_prefix not in ("vq", "cnn"):
            raise ValueError(
                f"transformer.image_prefix={self.transformer.image_prefix!r} is not 'vq' or 'cnn'"
            )
        if self.transformer.refine_from_image_latent and self.transformer.image_prefix != "cnn":
            raise ValueError("transformer.refine_from_image_latent needs image_prefix 'cnn'")
        if self.transformer.embed_dim % self.transformer.heads:
            raise ValueError(
                f"width {self.transformer.embed_dim} is not divisible by "
                f"heads {self.transformer.heads}"
            )

    @property
    def latent_size(self) -> int:
        return self.image_size // self.tokenizer.downsample

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        tok = _build(TokenizerConfig, d.pop("tokenizer", {}), "tokenizer")
        tr = _build(TransformerConfig, d.pop("transformer", {}), "transformer")
        top = _build(ModelConfig, d, "model", extra={"tokenizer": tok, "transformer": tr})
        return top


def _at_least(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {value!r}")


def _at_most(name: str, value: int) -> None:
    if value > MAX_COUNTS[name]:
        raise ValueError(
            f"{name} must be <= {MAX_COUNTS[name]}, got {value} (more than any real model)"
        )


def _build(cls: type, values: dict[str, Any], where: str, extra: dict | None = None) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"unknown {where} config key(s) {unknown}; valid keys: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for k, v in values.items():
        default = getattr(cls(), k) if not extra or k not in extra else None
        if isinstance(default, tuple) and isinstance(v, (list, tuple)):
            v = tuple(v)
        elif isinstance(default, bool) and not isinstance(v, bool):
            raise TypeError(f"{where}.{k} must be a bool, got {v!r}")
        elif isinstance(default, int) and not isinstance(default, bool):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{where}.{k} must be an int, got {v!r}")
        elif isinstance(default, float):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{where}.{k} must be a number, got {v!r}")
            v = float(v)
        kwargs[k] = v
    if extra:
        kwargs.update(extra)
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------
# Presets. `tiny` runs the test suite in seconds; `small` is what we ship for CPU/Jetson; `d16` is
# the paper's model, with the exact parameter names and shapes of VAR's released files.
_TINY_CNN = ModelConfig(
    image_size=64,
    tokenizer=TokenizerConfig(
        ch=16,
        ch_mult=(1, 2, 2, 4),  # x8
        num_res_blocks=1,
        using_sa=True,
        using_mid_sa=True,
        z_channels=16,
        vocab_size=512,
        patch_nums=(1, 2, 3, 4, 6, 8),
    ),
    transformer=TransformerConfig(
        depth=3, width=96, num_heads=3, image_prefix="cnn", image_encoder_width=24
    ),
)
PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(
        image_size=64,
        tokenizer=TokenizerConfig(
            ch=16,
            ch_mult=(1, 2, 2, 4),  # x8
            num_res_blocks=1,
            using_sa=True,
            using_mid_sa=True,
            z_channels=8,
            vocab_size=64,
            patch_nums=(1, 2, 3, 4, 6, 8),
        ),
        transformer=TransformerConfig(depth=2, width=64, num_heads=2),
    ),
    # tiny's 64x64 pyramid with a larger depth-only codebook and the "cnn" image prefix (a
    # trainable conv encoder that a from-scratch transformer learns to read fast)
    "tiny_cnn": _TINY_CNN,
    # the CPU default: tiny_cnn whose token maps refine the encoder's latent estimate
    "tiny_cnn_refine": dataclasses.replace(
        _TINY_CNN,
        transformer=dataclasses.replace(_TINY_CNN.transformer, refine_from_image_latent=True),
    ),
    "small": ModelConfig(
        image_size=128,
        tokenizer=TokenizerConfig(
            ch=16,
            ch_mult=(1, 1, 2, 2, 4),
            num_res_blocks=1,
            using_sa=False,
            using_mid_sa=True,
            z_channels=16,
            vocab_size=512,
            patch_nums=(1, 2, 3, 4, 5, 6, 8),
        ),
        transformer=TransformerConfig(depth=4, width=192, num_heads=3),
    ),
    "d16": ModelConfig(
        image_size=256,
        tokenizer=TokenizerConfig(
            ch=160,
            ch_mult=(1, 1, 2, 2, 4),
            num_res_blocks=2,
            using_sa=True,
            using_mid_sa=True,
            z_channels=32,
            vocab_size=4096,
            patch_nums=(1, 2, 3, 4, 5, 6, 8, 10, 13, 16),
        ),
        transformer=TransformerConfig(
            depth=16, width=0, num_heads=0, num_classes=1000, drop_path_rate=0.1 * 16 / 24
        ),
    ),
}
# The DepthART authors' released d16 (bulatko/DepthART config/launch/eval/depthART.yaml): VAR d16
# with plain dot-product attention at temperature 4 instead of cosine attention.
PRESETS["d16_authors"] = dataclasses.replace(
    PRESETS["d16"],
    transformer=dataclasses.replace(PRESETS["d16"].transformer, attn_l2_norm=False, tau=4.0),
)


def get_preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available presets: {sorted(PRESETS)}")
    return PRESETS[name]


def with_overrides(cfg: ModelConfig, overrides: dict[str, Any]) -> ModelConfig:
    """Apply nested overrides ({"transformer": {"depth": 4}}) and validate every key."""
    base = cfg.to_dict()
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return ModelConfig.from_dict(base)
