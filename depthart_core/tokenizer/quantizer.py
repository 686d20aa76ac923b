"""Multi-scale residual vector quantization (VAR, arXiv 2404.02905, Sec. 3.2 / Alg. 1).

At scale k the residual r = f - f_hat is area-downsampled to pn_k x pn_k, each position takes its
nearest code (L2), the codes are embedded, bicubic-upsampled back to the latent size, refined by
phi_k(x) = (1 - r) x + r conv3x3(x), added to f_hat and removed from the residual.

Everything the trainers need is public here: token maps of a latent, f_hat from any prefix of
token maps, one scale's contribution, and the DepthART target (the quantized residual between the
continuous ground-truth latent and the model's own reconstruction so far).
Parameter names follow VAR's `quant.py`: `embedding`, `quant_resi.qresi_ls.{i}`, `ema_vocab_hit_SV`.

Precision: like VAR's quantizer (which casts to float32), every entry point runs with autocast
off, in the dtype of the codebook (fp32 unless the caller converted the whole model with .half(),
as the fp16 ONNX export does). Under bf16/fp16 autocast the nearest-code choice, the residual
targets and the f_hat updates would otherwise run in low precision and change tokens.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from depthart_core.tokenizer.resize import resize_square

F_ = TypeVar("F_", bound=Callable)


def no_autocast(weight: Callable[[nn.Module], torch.Tensor]) -> Callable[[F_], F_]:
    """Run a method with autocast off, floating tensor arguments cast to `weight(self).dtype`."""

    def wrap(fn: F_) -> F_:
        @functools.wraps(fn)
        def run(self: nn.Module, *args, **kwargs):
            w = weight(self)
            args = tuple(_cast(a, w.dtype) for a in args)
            kwargs = {k: _cast(v, w.dtype) for k, v in kwargs.items()}
            with torch.autocast(device_type=w.device.type, enabled=False):
                return fn(self, *args, **kwargs)

        return run  # type: ignore[return-value]

    return wrap


def _cast(x, dtype: torch.dtype):
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.to(dtype)
    if isinstance(x, list):
        return [_cast(v, dtype) for v in x]
    return x


_codebook = no_autocast(lambda q: q.embedding.weight)


class Phi(nn.Conv2d):
    """Residual refiner phi(x) = (1 - r) x + r conv3x3(x)."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__(dim, dim, kernel_size=3, stride=1, padding=1)
        self.ratio = abs(ratio)

    def forward(self, h_BChw: torch.Tensor) -> torch.Tensor:
        return h_BChw * (1.0 - self.ratio) + super().forward(h_BChw) * self.ratio


class PhiPartiallyShared(nn.Module):
    """K refiners shared across scales: scale si uses the one whose tick is nearest si/(SN-1)."""

    def __init__(self, qresi_ls: nn.ModuleList) -> None:
        super().__init__()
        self.qresi_ls = qresi_ls
        K = len(qresi_ls)
        if K == 4:
            self.ticks = np.linspace(1 / 3 / K, 1 - 1 / 3 / K, K)
        else:
            self.ticks = np.linspace(1 / 2 / K, 1 - 1 / 2 / K, K)

    def index_for(self, si: int, num_scales: int) -> int:
        at = si / (num_scales - 1) if num_scales > 1 else 0.0
        return int(np.argmin(np.abs(self.ticks - at)))

    def forward(self, h_BChw: torch.Tensor, si: int, num_scales: int) -> torch.Tensor:
        return self.qresi_ls[self.index_for(si, num_scales)](h_BChw)


class MultiScaleQuantizer(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        dim: int,
        patch_nums: tuple[int, ...],
        beta: float = 0.25,
        quant_resi: float = 0.5,
        share_quant_resi: int = 4,
    ) -> None:
        super().__init__()
        self.vocab_size, self.Cvae = vocab_size, dim
        self.patch_nums = tuple(patch_nums)
        self.beta = beta
        refiners = [
            Phi(dim, quant_resi) if abs(quant_resi) > 1e-6 else nn.Identity()
            for _ in range(share_quant_resi)
        ]
        self.quant_resi = PhiPartiallyShared(nn.ModuleList(refiners))
        # Per-scale code-usage statistics (saved in VAR's files; we keep it for code restarts).
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(len(self.patch_nums), vocab_size))
        self.embedding = nn.Embedding(vocab_size, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / vocab_size, 1.0 / vocab_size)

    @property
    def num_scales(self) -> int:
        return len(self.patch_nums)

    # ------------------------------------------------------------------ primitives
    @_codebook
    def nearest_code(self, x_BChw: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codebook entry (L2) at every position: (B, h, w) int64."""
        B, C, h, w = x_BChw.shape
        x_NC = x_BChw.permute(0, 2, 3, 1).reshape(-1, C)
        e_VC = self.embedding.weight
        d_NV = (
            x_NC.square().sum(1, keepdim=True)
            + e_VC.square().sum(1)[None, :]
            - 2.0 * x_NC @ e_VC.t()
        )
        return d_NV.argmin(dim=1).view(B, h, w)

    def downsample_residual(self, r_BChw: torch.Tensor, si: int) -> torch.Tensor:
        return resize_square(r_BChw, self.patch_nums[si], "area")

    @_codebook
    def contribution(self, emb_BChw: torch.Tensor, si: int) -> torch.Tensor:
        """eta_k: code embeddings at scale si -> bicubic upsample -> phi, at the latent size."""
        H = self.patch_nums[-1]
        up_BCHW = resize_square(emb_BChw, H, "bicubic")
        return self.quant_resi(up_BCHW, si, self.num_scales)

    def embed_idx(self, idx_Bhw: torch.Tensor) -> torch.Tensor:
        return self.embedding(idx_Bhw).permute(0, 3, 1, 2)  # B, C, h, w

    @_codebook
    def idx_contribution(self, idx_Bhw: torch.Tensor, si: int) -> torch.Tensor:
        return self.contribution(self.embed_idx(idx_Bhw), si)

    # ------------------------------------------------------------------ full quantization
    @_codebook
    def quantize(
        self, f_BChw: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor]]:
        """All-scale token maps of a latent.

        Returns (idx_Bhw per scale, f_hat_BChw, cumulative f_hat after each scale).
        """
        self._check_latent(f_BChw)
        f_rest = f_BChw.detach().clone()
        f_hat = torch.zeros_like(f_rest)
        idx_list, cum_list = [], []
        for si in range(self.num_scales):
            idx_Bhw = self.nearest_code(self.downsample_residual(f_rest, si))
            h_BChw = self.idx_contribution(idx_Bhw, si)
            f_hat = f_hat + h_BChw
            f_rest = f_rest - h_BChw
            idx_list.append(idx_Bhw)
            cum_list.append(f_hat)
        return idx_list, f_hat, cum_list

    @_codebook
    def forward(
        self, f_BChw: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Training forward for stage 1: straight-through f_hat, VQ loss, token maps."""
        self._check_latent(f_BChw)
        f_rest = f_BChw.detach().clone()
        f_hat = torch.zeros_like(f_rest)
        vq_loss = f_BChw.new_zeros(())
        idx_list = []
        for si in range(self.num_scales):
            idx_Bhw = self.nearest_code(self.downsample_residual(f_rest, si))
            h_BChw = self.idx_contribution(idx_Bhw, si)
            f_hat = f_hat + h_BChw
            f_rest = f_rest - h_BChw.detach()
            # codebook term pulls codes (and phi) to the encoder; commitment pulls the encoder
            vq_loss = vq_loss + F.mse_loss(f_hat, f_BChw.detach())
            vq_loss = vq_loss + self.beta * F.mse_loss(f_hat.detach(), f_BChw)
            idx_list.append(idx_Bhw)
        vq_loss = vq_loss / self.num_scales
        f_hat_st = f_BChw + (f_hat - f_BChw).detach()  # straight-through estimator
        return f_hat_st, vq_loss, idx_list

    # ------------------------------------------------------------------ reconstruction
    @_codebook
    def idx_to_f_hat(self, idx_list: list[torch.Tensor]) -> torch.Tensor:
        """f_hat from any prefix of token maps (the sum of their contributions)."""
        if not idx_list:
            raise ValueError("idx_to_f_hat needs at least one token map")
        f_hat = None
        for si, idx_Bhw in enumerate(idx_list):
            h = self.idx_contribution(idx_Bhw, si)
            f_hat = h if f_hat is None else f_hat + h
        return f_hat

    @_codebook
    def residual_target(
        self, f_BChw: torch.Tensor, f_hat_BChw: torch.Tensor, si: int
    ) -> torch.Tensor:
        """DepthART target at scale si: Q_si(f - f_hat_<si): area-downsample, nearest code."""
        with torch.no_grad():
            return self.nearest_code(self.downsample_residual(f_BChw - f_hat_BChw, si))

    @_codebook
    def next_input(self, f_hat_BChw: torch.Tensor, si_next: int) -> torch.Tensor:
        """Teacher/autoregressive input for scale si_next: area-downsampled f_hat, (B, pn^2, C)."""
        x_BChw = resize_square(f_hat_BChw, self.patch_nums[si_next], "area")
        return x_BChw.flatten(2).transpose(1, 2)

    @_codebook
    def teacher_forcing_inputs(
        self, idx_list: list[torch.Tensor], f_start_BChw: torch.Tensor | None = None
    ) -> torch.Tensor:
        """VAR's idxBl_to_var_input: inputs of scales 1..K-1 from ground-truth maps (B, L-1, C).

        With `f_start_BChw` the running f_hat starts there instead of at zero."""
        f_hat = f_start_BChw
        xs = []
        for si in range(self.num_scales - 1):
            h = self.idx_contribution(idx_list[si], si)
            f_hat = h if f_hat is None else f_hat + h
            xs.append(self.next_input(f_hat, si + 1))
        return torch.cat(xs, dim=1)

    @_codebook
    def image_prefix(self, cum_list: list[torch.Tensor]) -> torch.Tensor:
        """DepthART image tokens: cumulative f_hat after scale k, bicubic-resized to pn_k."""
        xs = [
            resize_square(f_hat, pn, "bicubic").flatten(2).transpose(1, 2)
            for f_hat, pn in zip(cum_list, self.patch_nums, strict=False)
        ]
        return torch.cat(xs, dim=1)  # B, L, C

    def _check_latent(self, f_BChw: torch.Tensor) -> None:
        H = self.patch_nums[-1]
        if f_BChw.ndim != 4 or f_BChw.shape[1] != self.Cvae or f_BChw.shape[-2:] != (H, H):
            raise ValueError(
                f"latent must have shape (B, {self.Cvae}, {H}, {H}), got {tuple(f_BChw.shape)}"
            )
