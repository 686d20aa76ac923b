"""The learned uncertainty head: the expected relative error of every pixel of a DepthART depth map.

DepthART's token distributions say where the model doubts its codes (`depthart_core.uncertainty`,
the `latent` estimator), but not where a confident code is wrong: at object edges the upsampled
depth blurs two surfaces, and on far clutter the codec's resolution runs out. This head learns
that from rendered frames. It reads, at the model resolution S:

- the image (3 channels, [-1, 1]);
- log of the decoded relative depth (1);
- the token doubt: sqrt of the sum over scales of each token's code-embedding variance under the
  decoding's distribution, E|e|^2 - |E e|^2, bicubic-resized to S (1);
- how far the refinement moved the latent from the conv encoder's start, |f_hat - f_start| over
  channels, resized to S (1; zero without a start);

and, when the checkpoint says so (`ModelConfig.uncertainty_context`), the model's own view of the
image on its H x H latent grid: the image prefix's last scale (the conv encoder's features with
the "cnn" prefix, the tokenizer's image latent with the paper's "vq" prefix), normalised and
projected, added at the U-Net's coarsest level (S/8, which is H for the 8x-downsampling
tokenizers; resized otherwise). It ranks the error better than the six channels alone
(BENCHMARKS 11); the transformer's last hidden state, tried beside it, added nothing.

A small U-Net (three stride-2 levels, 3x3 convolutions, GELU) maps them to u > 0, trained by
`training/uncertainty_head.py` with the exponential negative log-likelihood e / u + log u, whose
minimiser is u = E[e | inputs]: e is the pixel's |s d - g| / g after the DepthART protocol's
median scale s. So u is in units a user can reason about, "this pixel's depth is off by about
100 u percent", and a threshold on it (`uncertainty.max`) drops the pixels expected to be worse.

The head is part of the checkpoint (`ModelConfig.uncertainty_width` > 0, keys
`uncertainty_head.*`) and runs inside the exported graph as a second output.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from depthart_core.tokenizer.resize import resize_square

IN_CHANNELS = 6
DEPTH_FLOOR = 1e-3  # relative depth below which log depth stops falling
LOG_U_RANGE = (-9.0, 2.0)  # u in [1.2e-4, 7.4]: beyond either end nothing is learned


class HeadInput(NamedTuple):
    """What the head reads: pixel features (B, 6, S, S) and the model's own features on its
    latent grid (B, Cctx, H, H), None for a head without them."""

    pixels: torch.Tensor
    context: torch.Tensor | None = None


def embedding_variance(probs_BlV: torch.Tensor, codebook_VC: torch.Tensor) -> torch.Tensor:
    """E|e|^2 - |E e|^2 of the code embedding under `probs`, per token: (B, l), >= 0."""
    w_VC = codebook_VC.float()
    mean_BlC = probs_BlV.float() @ w_VC
    second_Bl = probs_BlV.float() @ w_VC.square().sum(1)
    return (second_Bl - mean_BlC.square().sum(-1)).clamp_min(0.0)


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
        nn.GELU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.GELU(),
    )


class UncertaintyHead(nn.Module):
    """(image, depth, token doubt, latent move) at S x S, and optionally the model's own features
    at H x H -> expected |s d - g| / g, (B, S, S)."""

    def __init__(self, width: int = 16, context_channels: int = 0) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"uncertainty head width must be >= 1, got {width}")
        if context_channels < 0:
            raise ValueError(f"context_channels must be >= 0, got {context_channels}")
        w = width
        self.context_channels = context_channels
        self.enc1 = _block(IN_CHANNELS, w)  # S
        self.enc2 = _block(w, 2 * w, stride=2)  # S/2
        self.enc3 = _block(2 * w, 4 * w, stride=2)  # S/4
        self.enc4 = _block(4 * w, 4 * w, stride=2)  # S/8: the scene's context
        self.dec3 = nn.Sequential(nn.Conv2d(8 * w, 4 * w, 3, padding=1), nn.GELU())
        self.dec2 = nn.Sequential(nn.Conv2d(6 * w, 2 * w, 3, padding=1), nn.GELU())
        self.dec1 = nn.Sequential(nn.Conv2d(3 * w, w, 3, padding=1), nn.GELU())
        self.out = nn.Conv2d(w, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, -2.5)  # u = 0.08 everywhere before training
        if context_channels:  # the model's own features, added at the S/8 level
            groups = 8 if context_channels % 8 == 0 else 1
            self.ctx_norm = nn.GroupNorm(groups, context_channels)
            self.ctx_proj = nn.Sequential(
                nn.Conv2d(context_channels, 4 * w, 1),
                nn.GELU(),
                nn.Conv2d(4 * w, 4 * w, 3, padding=1),
            )

    @staticmethod
    def features(
        rgb_B3SS: torch.Tensor,
        depth_BSS: torch.Tensor,
        doubt_BHH: torch.Tensor,
        moved_BHH: torch.Tensor,
    ) -> torch.Tensor:
        """The head's input (B, 6, S, S) from the model's outputs (see the module docstring)."""
        S = int(rgb_B3SS.shape[-1])  # a plain int while tracing: the cached resize matrix
        log_d_B1SS = depth_BSS.float().clamp_min(DEPTH_FLOOR).log()[:, None]
        doubt_B1SS = resize_square(doubt_BHH.float()[:, None], S, "bicubic")
        moved_B1SS = resize_square(moved_BHH.float()[:, None], S, "bicubic")
        return torch.cat([rgb_B3SS.float(), log_d_B1SS, doubt_B1SS, moved_B1SS], dim=1)

    @staticmethod
    def context(prefix_BlC: torch.Tensor, H: int) -> torch.Tensor:
        """The image prefix's last scale (B, H*H, Cp), row-major -> (B, Cp, H, H), fp32."""
        B, _, Cp = prefix_BlC.shape
        return prefix_BlC.float().transpose(1, 2).reshape(B, Cp, H, H).contiguous()

    def forward(
        self, feat_B6SS: torch.Tensor, context_BCHH: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Features (B, 6, S, S) [and context (B, Cctx, H, H)] -> log u (B, S, S), clamped to
        LOG_U_RANGE."""
        if (context_BCHH is None) != (self.context_channels == 0):
            raise ValueError(
                f"this head reads {self.context_channels} context channels, given "
                f"{None if context_BCHH is None else tuple(context_BCHH.shape)}"
            )
        e1 = self.enc1(feat_B6SS)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        if context_BCHH is not None:
            # contiguous: torch 2.13's CPU GroupNorm backward crashes on the transposed layout
            ctx = self.ctx_proj(self.ctx_norm(context_BCHH.float().contiguous()))
            if ctx.shape[-1] != e4.shape[-1]:  # a plain int while tracing: a fixed resize
                ctx = resize_square(
                    ctx, int(e4.shape[-1]), "area" if ctx.shape[-1] > e4.shape[-1] else "bicubic"
                )
            e4 = e4 + ctx
        d3 = self.dec3(torch.cat([_up(e4), e3], dim=1))
        d2 = self.dec2(torch.cat([_up(d3), e2], dim=1))
        d1 = self.dec1(torch.cat([_up(d2), e1], dim=1))
        return self.out(d1)[:, 0].clamp(*LOG_U_RANGE)


def _up(x_BChw: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x_BChw, scale_factor=2.0, mode="nearest")
