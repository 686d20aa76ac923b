"""Convolutional encoder and decoder of the multi-scale VQ-VAE.

Layout and parameter names follow VAR's `models/basic_vae.py` (itself from taming-transformers), so
that the official `vae_ch160v4096z32.pth` loads strictly into the `d16` preset: `conv_in`,
`down.{i}.block.{j}`, `down.{i}.attn.{j}`, `down.{i}.downsample`, `mid.block_1/attn_1/block_2`,
`norm_out`, `conv_out` (and `up.{i}...` in the decoder). Written here from the architecture.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(32, channels), num_channels=channels, eps=1e-6, affine=True)


class Upsample2x(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x_BChw: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x_BChw, scale_factor=2.0, mode="nearest"))


class Downsample2x(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x_BChw: torch.Tensor) -> torch.Tensor:
        # Asymmetric (right/bottom) padding, as in taming/VAR.
        return self.conv(F.pad(x_BChw, pad=(0, 1, 0, 1), mode="constant", value=0.0))


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = _norm(out_channels)
        self.dropout = nn.Dropout(dropout) if dropout > 1e-6 else nn.Identity()
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut: nn.Module = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        else:
            self.nin_shortcut = nn.Identity()

    def forward(self, x_BChw: torch.Tensor) -> torch.Tensor:
        h_BChw = self.conv1(F.silu(self.norm1(x_BChw)))
        h_BChw = self.conv2(self.dropout(F.silu(self.norm2(h_BChw))))
        return self.nin_shortcut(x_BChw) + h_BChw


class AttnBlock(nn.Module):
    """Single-head spatial self-attention over all h*w positions."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.C = channels
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x_BChw: torch.Tensor) -> torch.Tensor:
        B, C, h, w = x_BChw.shape
        qkv_B3Chw = self.qkv(self.norm(x_BChw)).reshape(B, 3, C, h * w)
        q_BLC = qkv_B3Chw[:, 0].transpose(1, 2)
        k_BLC = qkv_B3Chw[:, 1].transpose(1, 2)
        v_BLC = qkv_B3Chw[:, 2].transpose(1, 2)
        o_BLC = F.scaled_dot_product_attention(
            q_BLC.unsqueeze(1), k_BLC.unsqueeze(1), v_BLC.unsqueeze(1)
        ).squeeze(1)
        o_BChw = o_BLC.transpose(1, 2).reshape(B, C, h, w)
        return x_BChw + self.proj_out(o_BChw)


def _attn(channels: int, enabled: bool) -> nn.Module:
    return AttnBlock(channels) if enabled else nn.Identity()


class Encoder(nn.Module):
    def __init__(
        self,
        ch: int,
        ch_mult: tuple[int, ...],
        num_res_blocks: int,
        z_channels: int,
        in_channels: int = 3,
        dropout: float = 0.0,
        using_sa: bool = True,
        using_mid_sa: bool = True,
    ) -> None:
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        in_ch_mult = (1, *ch_mult)
        # 1. stem
        self.conv_in = nn.Conv2d(in_channels, ch, kernel_size=3, stride=1, padding=1)
        # 2. downsampling stages
        self.down = nn.ModuleList()
        block_in = ch
        for i_level in range(self.num_resolutions):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_in = ch * in_ch_mult[i_level]
            block_out = ch * ch_mult[i_level]
            last = i_level == self.num_resolutions - 1
            for _ in range(num_res_blocks):
                block.append(ResnetBlock(block_in, block_out, dropout))
                block_in = block_out
                if last and using_sa:
                    attn.append(AttnBlock(block_in))
            down = nn.Module()
            down.block, down.attn = block, attn
            if not last:
                down.downsample = Downsample2x(block_in)
            self.down.append(down)
        # 3. middle
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, dropout)
        self.mid.attn_1 = _attn(block_in, using_mid_sa)
        self.mid.block_2 = ResnetBlock(block_in, block_in, dropout)
        # 4. head
        self.norm_out = _norm(block_in)
        self.conv_out = nn.Conv2d(block_in, z_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x_B3HW: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x_B3HW)
        for i_level, down in enumerate(self.down):
            for i_block in range(self.num_res_blocks):
                h = down.block[i_block](h)
                if len(down.attn) > 0:
                    h = down.attn[i_block](h)
            if i_level != self.num_resolutions - 1:
                h = down.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))  # B, z_channels, H/ds, W/ds


class Decoder(nn.Module):
    def __init__(
        self,
        ch: int,
        ch_mult: tuple[int, ...],
        num_res_blocks: int,
        z_channels: int,
        in_channels: int = 3,
        dropout: float = 0.0,
        using_sa: bool = True,
        using_mid_sa: bool = True,
    ) -> None:
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        block_in = ch * ch_mult[-1]
        # 1. stem and middle
        self.conv_in = nn.Conv2d(z_channels, block_in, kernel_size=3, stride=1, padding=1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in, dropout)
        self.mid.attn_1 = _attn(block_in, using_mid_sa)
        self.mid.block_2 = ResnetBlock(block_in, block_in, dropout)
        # 2. upsampling stages, stored in resolution order (up[0] is the finest)
        ups: list[nn.Module] = []
        for i_level in reversed(range(self.num_resolutions)):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks + 1):
                block.append(ResnetBlock(block_in, block_out, dropout))
                block_in = block_out
                if i_level == self.num_resolutions - 1 and using_sa:
                    attn.append(AttnBlock(block_in))
            up = nn.Module()
            up.block, up.attn = block, attn
            if i_level != 0:
                up.upsample = Upsample2x(block_in)
            ups.insert(0, up)
        self.up = nn.ModuleList(ups)
        # 3. head
        self.norm_out = _norm(block_in)
        self.conv_out = nn.Conv2d(block_in, in_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, z_BChw: torch.Tensor) -> torch.Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z_BChw))))
        for i_level in reversed(range(self.num_resolutions)):
            up = self.up[i_level]
            for i_block in range(self.num_res_blocks + 1):
                h = up.block[i_block](h)
                if len(up.attn) > 0:
                    h = up.attn[i_block](h)
            if i_level != 0:
                h = up.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))  # B, 3, H, W
