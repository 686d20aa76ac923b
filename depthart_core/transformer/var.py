"""VAR next-scale transformer with an RGB image-token prefix (DepthART, arXiv 2409.15010).

Sequence (length 2L for L tokens per pyramid): [image tokens of all K scales | SOS | depth tokens
of scales 2..K]. Image tokens attend to every image token and to SOS; depth tokens attend to every
image token and block-causally to depth scales at or before their own. Image and depth tokens share
the word embedding (Cvae -> C), the level embedding and the positional table. The AdaLN condition is
one learned "null" class embedding (index `num_classes`; VAR's class 1000 for d16).

Inference is KV-cached: one pass over [image prefix + SOS] (the "prefill"), then one pass per scale
over that scale's pn^2 tokens. Parameter names follow VAR's `models/var.py`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from depthart_core.config import TransformerConfig
from depthart_core.transformer.blocks import KV, AdaLNBeforeHead, AdaLNSelfAttn
from depthart_core.transformer.image_encoder import ImageEncoder

# VAR saves these two buffers shaped for its own 680-token class-conditional sequence; we rebuild
# them for the 2L-token DepthART sequence, so loading an official file ignores exactly these keys.
REBUILT_VAR_BUFFERS = ("lvl_1L", "attn_bias_for_masking")
# each block's learned cosine-attention scale (`attn.scale_mul_1H11`), unused by plain attention
COSINE_ATTENTION_SCALE = "attn.scale_mul_1H11"


class DepthVAR(nn.Module):
    def __init__(
        self,
        cfg: TransformerConfig,
        Cvae: int,
        vocab_size: int,
        patch_nums: tuple[int, ...],
        downsample: int = 16,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.Cvae, self.V = Cvae, vocab_size
        self.prefix_dim = cfg.image_prefix_dim if cfg.image_prefix == "cnn" else Cvae
        self.patch_nums = tuple(patch_nums)
        self.C = C = cfg.embed_dim
        self.L = sum(pn * pn for pn in self.patch_nums)
        self.first_l = self.patch_nums[0] ** 2
        self.null_class = cfg.num_classes
        self.begin_ends: list[tuple[int, int]] = []
        cur = 0
        for pn in self.patch_nums:
            self.begin_ends.append((cur, cur + pn * pn))
            cur += pn * pn
        init_std = math.sqrt(1 / C / 3)

        # 1. word embedding, shared by image and depth tokens
        self.word_embed = nn.Linear(Cvae, C)
        # 2. condition (class table; we always use the null entry) and start token
        self.class_emb = nn.Embedding(cfg.num_classes + 1, C)
        nn.init.trunc_normal_(self.class_emb.weight, mean=0, std=init_std)
        self.pos_start = nn.Parameter(torch.empty(1, self.first_l, C))
        nn.init.trunc_normal_(self.pos_start, mean=0, std=init_std)
        # 3. absolute position per token and level embedding per scale
        self.pos_1LC = nn.Parameter(torch.empty(1, self.L, C))
        nn.init.trunc_normal_(self.pos_1LC, mean=0, std=init_std)
        self.lvl_embed = nn.Embedding(len(self.patch_nums), C)
        nn.init.trunc_normal_(self.lvl_embed.weight, mean=0, std=init_std)
        # 3b. with image_prefix "cnn": the trainable image encoder and its own prefix embedding
        if cfg.image_prefix == "cnn":
            self.image_encoder = ImageEncoder(
                downsample, cfg.image_encoder_width, cfg.image_prefix_dim, Cvae
            )
            self.image_embed = nn.Linear(cfg.image_prefix_dim, C)
        # 4. blocks
        dpr = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.ModuleList(
            AdaLNSelfAttn(
                C, C, cfg.heads, cfg.mlp_ratio, cfg.norm_eps, cfg.attn_l2_norm, dpr[i], cfg.tau
            )
            for i in range(cfg.depth)
        )
        # 5. level ids and the DepthART attention mask for the full 2L sequence (not saved)
        lvl_1L = torch.cat([torch.full((pn * pn,), i) for i, pn in enumerate(self.patch_nums)])
        self.register_buffer("lvl_1L", lvl_1L.view(1, self.L), persistent=False)
        self.register_buffer("attn_bias_full", self._build_mask(lvl_1L), persistent=False)
        # 6. head
        self.head_nm = AdaLNBeforeHead(C, C, cfg.norm_eps)
        self.head = nn.Linear(C, self.V)
        self._init_weights()

    # ------------------------------------------------------------------ construction helpers
    def _build_mask(self, lvl_L: torch.Tensor) -> torch.Tensor:
        L = self.L
        is_img = torch.cat([torch.ones(L, dtype=torch.bool), torch.zeros(L, dtype=torch.bool)])
        lvl = torch.cat([lvl_L, lvl_L])
        q_img, k_img = is_img[:, None], is_img[None, :]
        depth_causal = (~q_img) & (~k_img) & (lvl[None, :] <= lvl[:, None])
        img_sees_sos = q_img & (torch.arange(2 * L)[None, :] < L + self.first_l) & (~k_img)
        allowed = k_img | depth_causal | img_sees_sos
        bias = torch.zeros(2 * L, 2 * L).masked_fill(~allowed, float("-inf"))
        return bias.view(1, 1, 2 * L, 2 * L)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        C = self.C
        for blk in self.blocks:
            lin = blk.ada_lin[1]
            lin.weight.data.mul_(0.5)
            lin.bias.data[: 2 * C].fill_(1.0)  # gates start open: a plain pre-LN block
        self.head.weight.data.mul_(0.1)

    # ------------------------------------------------------------------ embeddings
    def condition(self, batch: int, device: torch.device) -> torch.Tensor:
        idx = torch.full((batch,), self.null_class, dtype=torch.long, device=device)
        return self.class_emb(idx)  # B, C

    def modulations(self, cond_BD: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """AdaLN parameters of every block and the head; computed once per image."""
        return [b.modulation(cond_BD) for b in self.blocks], self.head_nm.modulation(cond_BD)

    def embed_scale(self, x_BlCv: torch.Tensor, si: int) -> torch.Tensor:
        bg, ed = self.begin_ends[si]
        return self.word_embed(x_BlCv) + self.lvl_embed.weight[si] + self.pos_1LC[:, bg:ed]

    def embed_image(self, img_BLCv: torch.Tensor) -> torch.Tensor:
        lvl_LC = self.lvl_embed(self.lvl_1L[0])
        embed = self.image_embed if self.cfg.image_prefix == "cnn" else self.word_embed
        return embed(img_BLCv) + lvl_LC + self.pos_1LC

    def start_tokens(self, cond_BD: torch.Tensor) -> torch.Tensor:
        B = cond_BD.shape[0]
        sos = cond_BD.unsqueeze(1).expand(B, self.first_l, -1) + self.pos_start
        return sos + self.lvl_embed.weight[0] + self.pos_1LC[:, : self.first_l]

    # ------------------------------------------------------------------ forward passes
    def run_blocks(
        self,
        x_BLC: torch.Tensor,
        ada: tuple[list[torch.Tensor], torch.Tensor],
        attn_bias: torch.Tensor | None,
        past: list[KV] | None,
        last: int = 0,
    ) -> tuple[torch.Tensor, list[KV]]:
        """Blocks then head; with `last` > 0 only the last `last` tokens go through the head."""
        block_ada, head_ada = ada
        caches: list[KV] = []
        for i, blk in enumerate(self.blocks):
            x_BLC, kv = blk(x_BLC, block_ada[i], attn_bias, None if past is None else past[i])
            caches.append(kv)
        if last > 0:
            x_BLC = x_BLC[:, -last:]
        return self.head(self.head_nm(x_BLC, head_ada)), caches

    def forward(self, img_BLCv: torch.Tensor, depth_in_BlCv: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing pass over the full 2L sequence with the DepthART mask.

        img_BLCv: image-prefix latents (B, L, Cvae); depth_in_BlCv: inputs of depth scales 2..K,
        (B, L - first_l, Cvae). Returns depth logits for all L depth tokens: (B, L, V).
        """
        B = img_BLCv.shape[0]
        self._check_tokens(img_BLCv, self.L, "image prefix", self.prefix_dim)
        self._check_tokens(depth_in_BlCv, self.L - self.first_l, "depth inputs")
        cond_BD = self.condition(B, img_BLCv.device)
        depth_BLC = self.word_embed(depth_in_BlCv)
        depth_BLC = (
            depth_BLC
            + self.lvl_embed(self.lvl_1L[0, self.first_l :])
            + self.pos_1LC[:, self.first_l :]
        )
        x_BLC = torch.cat(
            (self.embed_image(img_BLCv), self.start_tokens(cond_BD), depth_BLC), dim=1
        )
        bias = self.attn_bias_full.to(x_BLC.dtype)
        logits_BLV, _ = self.run_blocks(x_BLC, self.modulations(cond_BD), bias, None, last=self.L)
        return logits_BLV

    def prefill(
        self, img_BLCv: torch.Tensor, ada: tuple[list[torch.Tensor], torch.Tensor]
    ) -> tuple[torch.Tensor, list[KV]]:
        """Pass over [image prefix + SOS]: logits of scale 1 (B, first_l, V) and the cache."""
        self._check_tokens(img_BLCv, self.L, "image prefix", self.prefix_dim)
        B = img_BLCv.shape[0]
        cond_BD = self.condition(B, img_BLCv.device)
        x_BLC = torch.cat((self.embed_image(img_BLCv), self.start_tokens(cond_BD)), dim=1)
        logits_BlV, caches = self.run_blocks(x_BLC, ada, None, None, last=self.first_l)
        return logits_BlV, caches

    def step(
        self,
        x_BlCv: torch.Tensor,
        si: int,
        ada: tuple[list[torch.Tensor], torch.Tensor],
        past: list[KV],
    ) -> tuple[torch.Tensor, list[KV]]:
        """One scale: its pn^2 input tokens attend to the cache; returns (B, pn^2, V) logits."""
        return self.step_embedded(self.embed_scale(x_BlCv, si), ada, past)

    def step_embedded(
        self, x_BlC: torch.Tensor, ada: tuple[list[torch.Tensor], torch.Tensor], past: list[KV]
    ) -> tuple[torch.Tensor, list[KV]]:
        """`step` on tokens already through `embed_scale` (a rollout that detaches them there)."""
        return self.run_blocks(x_BlC, ada, None, past)

    def _check_tokens(self, x: torch.Tensor, n: int, what: str, dim: int = 0) -> None:
        dim = dim or self.Cvae
        if x.ndim != 3 or x.shape[1] != n or x.shape[2] != dim:
            raise ValueError(f"{what} must be (B, {n}, {dim}), got {tuple(x.shape)}")
