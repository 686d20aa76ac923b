"""The multi-scale VQ-VAE: encoder, quant_conv, multi-scale quantizer, post_quant_conv, decoder.

Names match VAR's `VQVAE` (`encoder`, `decoder`, `quantize`, `quant_conv`, `post_quant_conv`).
In DepthART the tokenizer is frozen: it tokenizes both the RGB image and the 3-channel depth map.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from depthart_core.config import TokenizerConfig
from depthart_core.tokenizer.conv_nets import Decoder, Encoder
from depthart_core.tokenizer.quantizer import MultiScaleQuantizer, no_autocast


class MultiScaleVQVAE(nn.Module):
    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        nets = dict(
            ch=cfg.ch,
            ch_mult=tuple(cfg.ch_mult),
            num_res_blocks=cfg.num_res_blocks,
            z_channels=cfg.z_channels,
            dropout=cfg.dropout,
            using_sa=cfg.using_sa,
            using_mid_sa=cfg.using_mid_sa,
        )
        # 1. conv encoder / decoder
        self.encoder = Encoder(**nets)
        self.decoder = Decoder(**nets)
        # 2. multi-scale quantizer
        self.quantize = MultiScaleQuantizer(
            vocab_size=cfg.vocab_size,
            dim=cfg.z_channels,
            patch_nums=tuple(cfg.patch_nums),
            beta=cfg.beta,
            quant_resi=cfg.quant_resi,
            share_quant_resi=cfg.share_quant_resi,
        )
        # 3. convs around the quantizer
        ks = cfg.quant_conv_ks
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.z_channels, ks, stride=1, padding=ks // 2)
        self.post_quant_conv = nn.Conv2d(
            cfg.z_channels, cfg.z_channels, ks, stride=1, padding=ks // 2
        )

    @property
    def Cvae(self) -> int:
        return self.cfg.z_channels

    @property
    def vocab_size(self) -> int:
        return self.cfg.vocab_size

    @no_autocast(lambda vae: vae.quant_conv.weight)  # tokenization runs in fp32, as in VAR
    def encode_latent(self, x_B3HW: torch.Tensor) -> torch.Tensor:
        """Continuous latent f = quant_conv(encoder(x)), x in [-1, 1]."""
        if x_B3HW.ndim != 4 or x_B3HW.shape[1] != 3:
            raise ValueError(f"tokenizer input must be (B, 3, H, W), got {tuple(x_B3HW.shape)}")
        return self.quant_conv(self.encoder(x_B3HW))

    @no_autocast(lambda vae: vae.quant_conv.weight)
    def tokenize(
        self, x_B3HW: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor]]:
        """(token maps per scale, f_hat, cumulative f_hat after each scale)."""
        return self.quantize.quantize(self.encode_latent(x_B3HW))

    def decode_f_hat(self, f_hat_BChw: torch.Tensor) -> torch.Tensor:
        """Decoder output (unclamped), nominally in [-1, 1]."""
        return self.decoder(self.post_quant_conv(f_hat_BChw))

    def decode_idx(self, idx_list: list[torch.Tensor]) -> torch.Tensor:
        return self.decode_f_hat(self.quantize.idx_to_f_hat(idx_list))

    def forward(
        self, x_B3HW: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Stage-1 training forward: (reconstruction, vq_loss, token maps)."""
        f_hat, vq_loss, idx_list = self.quantize(self.encode_latent(x_B3HW))
        return self.decode_f_hat(f_hat), vq_loss, idx_list
