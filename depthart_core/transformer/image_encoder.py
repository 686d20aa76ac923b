"""A small convolutional image encoder for the transformer's image prefix (an option beyond the
paper, `TransformerConfig.image_prefix = "cnn"`).

The paper conditions on the RGB image's own VQ tokens (the frozen tokenizer's cumulative f_hat at
every scale). Trained from scratch on a CPU budget, a transformer learns to read that quantized
prefix slowly (BENCHMARKS.md section 2b). This encoder instead gives the prefix continuous,
trainable features at the latent resolution: a conv stem, a stride-2 conv per tokenizer
downsampling (with a residual block before each but the first), then two residual blocks and a
global-context term at the latent size.
The features are area-resized to every scale's pn x pn, so the prefix has the same L tokens per
pyramid as the paper's. An auxiliary head maps the features to the tokenizer's latent space; the
trainer may regress it onto the ground-truth depth latent f_D (`TrainConfig.aux_latent`), which
teaches the encoder depth cues directly instead of only through the token cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from depthart_core.tokenizer.resize import resize_square


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


class ResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.norm1 = _norm(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.norm2 = _norm(ch)

    def forward(self, x_BChw: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.norm1(self.conv1(x_BChw)))
        return F.gelu(x_BChw + self.norm2(self.conv2(h)))


class ImageEncoder(nn.Module):
    """RGB (B, 3, S, S) in [-1, 1] -> features (B, out_dim, S/ds, S/ds) and an f_D estimate."""

    def __init__(self, downsample: int, width: int, out_dim: int, Cvae: int) -> None:
        super().__init__()
        levels = downsample.bit_length() - 1
        if 2**levels != downsample:
            raise ValueError(f"downsample must be a power of two, got {downsample}")
        chs = [min(width * 2**i, 4 * width) for i in range(levels + 1)]
        # 1. stem
        self.stem = nn.Sequential(nn.Conv2d(3, chs[0], 3, padding=1), _norm(chs[0]), nn.GELU())
        # 2. a stride-2 conv per downsampling, after a residual block below full resolution
        self.down = nn.ModuleList(
            nn.Sequential(
                ResBlock(chs[i]) if i > 0 else nn.Identity(),
                nn.Conv2d(chs[i], chs[i + 1], 3, stride=2, padding=1),
                _norm(chs[i + 1]),
                nn.GELU(),
            )
            for i in range(levels)
        )
        # 3. at the latent size: two residual blocks and a global-context term
        self.mid = nn.Sequential(ResBlock(chs[-1]), ResBlock(chs[-1]))
        self.context = nn.Linear(chs[-1], chs[-1])
        # 4. prefix features and the auxiliary latent head
        self.out = nn.Conv2d(chs[-1], out_dim, 1)
        self.aux = nn.Conv2d(out_dim, Cvae, 1)

    def forward(self, rgb_B3HW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.stem(rgb_B3HW)
        for stage in self.down:
            h = stage(h)
        h = self.mid(h)
        h = h + self.context(h.mean(dim=(2, 3)))[:, :, None, None]
        feat_BChw = self.out(h)
        return feat_BChw, self.aux(feat_BChw)


def multiscale_tokens(feat_BChw: torch.Tensor, patch_nums: tuple[int, ...]) -> torch.Tensor:
    """Features at the latent size -> the prefix (B, L, C): area-resized to every pn x pn."""
    xs = [resize_square(feat_BChw, pn, "area").flatten(2).transpose(1, 2) for pn in patch_nums]
    return torch.cat(xs, dim=1)
