"""DepthART: the frozen multi-scale tokenizer plus the image-prefixed VAR transformer.

`DepthART.generate` is the KV-cached next-scale loop: one prefill over [image prefix + SOS], then
one pass per scale. Greedy argmax by default (deterministic and exportable); "soft": the
probability-weighted mean of the code embeddings (deterministic and exportable, a softmax and a
matmul); optional seeded sampling with temperature / top-k / top-p and the paper's mean of n
sampled code embeddings (the soft decoding is that mean's expectation).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn as nn

from depthart_core.config import ModelConfig
from depthart_core.sampling import SamplingConfig as SamplingConfig
from depthart_core.tokenizer.codec import decode_depth, encode_depth
from depthart_core.tokenizer.resize import resize_square
from depthart_core.tokenizer.vqvae import MultiScaleVQVAE
from depthart_core.transformer.image_encoder import multiscale_tokens
from depthart_core.transformer.var import DepthVAR
from depthart_core.uncertainty_head import HeadInput, UncertaintyHead, embedding_variance


def filter_logits(logits_BlV: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask logits outside top-k and outside the top-p nucleus with -inf."""
    V = logits_BlV.shape[-1]
    if 0 < top_k < V:
        kth = logits_BlV.topk(top_k, dim=-1).values[..., -1:]
        logits_BlV = logits_BlV.masked_fill(logits_BlV < kth, float("-inf"))
    if 0.0 < top_p < 1.0:
        sorted_logits, order = logits_BlV.sort(dim=-1, descending=False)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cum <= (1.0 - top_p)
        drop_sorted[..., -1:] = False  # always keep the most likely code
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits_BlV = logits_BlV.masked_fill(drop, float("-inf"))
    return logits_BlV


class Inference(NamedTuple):
    """What `DepthART.infer` returns: the token map of each scale (B, pn, pn), the relative depth
    (B, S, S) in [0, 1] and, when asked for, the expected relative error (B, S, S) of each pixel."""

    tokens: list[torch.Tensor]
    depth: torch.Tensor
    uncertainty: torch.Tensor | None


class DepthART(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        tcfg = cfg.tokenizer
        # 1. the frozen tokenizer (trained separately in stage 1)
        self.tokenizer = MultiScaleVQVAE(tcfg)
        # 2. the next-scale transformer
        self.transformer = DepthVAR(
            cfg.transformer, tcfg.z_channels, tcfg.vocab_size, tcfg.patch_nums, tcfg.downsample
        )
        # 3. optional: the learned per-pixel uncertainty (trained after the rest, on its errors)
        self.uncertainty_head = (
            UncertaintyHead(cfg.uncertainty_width, self.uncertainty_context_channels)
            if cfg.uncertainty_width > 0
            else None
        )

    @property
    def uncertainty_context_channels(self) -> int:
        """Channels of the model's own features the uncertainty head reads (0: none): the image
        prefix's last scale, per latent cell."""
        return self.transformer.prefix_dim if self.cfg.uncertainty_context else 0

    @property
    def patch_nums(self) -> tuple[int, ...]:
        return tuple(self.cfg.tokenizer.patch_nums)

    # ------------------------------------------------------------------ image prefix
    def image_prefix(self, rgb_B3HW: torch.Tensor) -> torch.Tensor:
        """RGB in [-1, 1] -> the image prefix (B, L, Cvae), or (B, L, image_prefix_dim) "cnn"."""
        return self.image_prefix_and_latent(rgb_B3HW)[0]

    def image_prefix_and_latent(
        self, rgb_B3HW: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The prefix and, with the "cnn" encoder, its auxiliary estimate of f_D (else None).

        The paper's "vq" prefix: the frozen tokenizer's cumulative f_hat after each scale,
        bicubic-resized to pn x pn (680 tokens at d16). "cnn": the image encoder's features,
        area-resized to every scale."""
        self._check_image(rgb_B3HW)
        if self.cfg.transformer.image_prefix == "cnn":
            feat_BChw, f_aux_BChw = self.transformer.image_encoder(rgb_B3HW)
            return multiscale_tokens(feat_BChw, self.patch_nums), f_aux_BChw
        _, _, cum_list = self.tokenizer.tokenize(rgb_B3HW)
        return self.tokenizer.quantize.image_prefix(cum_list), None

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def generate(
        self, rgb_B3HW: torch.Tensor, sampling: SamplingConfig | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor]]:
        """KV-cached next-scale prediction: (token maps, final f_hat, logits per scale)."""
        sampling = sampling or SamplingConfig()
        img_BLCv, f_start = self.prefix_and_start(rgb_B3HW)
        return self.generate_from_prefix(img_BLCv, sampling, f_start)

    def prefix_and_start(self, rgb_B3HW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The image prefix and the f_hat the refinement starts from (None: zero)."""
        img_BLCv, f_aux = self.image_prefix_and_latent(rgb_B3HW)
        return img_BLCv, f_aux if self.cfg.transformer.refine_from_image_latent else None

    def generate_from_prefix(
        self,
        img_BLCv: torch.Tensor,
        sampling: SamplingConfig,
        f_start_BChw: torch.Tensor | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor]]:
        steps = list(self.refine_steps(img_BLCv, sampling, f_start_BChw))
        return [s[0] for s in steps], steps[-1][2], [s[1] for s in steps]

    def refine_steps(
        self,
        img_BLCv: torch.Tensor,
        sampling: SamplingConfig,
        f_start_BChw: torch.Tensor | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The next-scale loop one scale at a time: yields (token map (B, pn, pn), logits
        (B, pn^2, V), f_hat after this scale). The token map is the argmax for soft decoding and
        the first draw for sampling; f_hat holds what the setting actually added."""
        quant, var = self.tokenizer.quantize, self.transformer
        B = img_BLCv.shape[0]
        H = self.patch_nums[-1]
        gens = None  # one per frame: its draws do not depend on the batch's other frames
        if not sampling.deterministic:
            gens = [
                torch.Generator(device=img_BLCv.device).manual_seed(sampling.seed) for _ in range(B)
            ]
        ada = var.modulations(var.condition(B, img_BLCv.device))
        logits_BlV, cache = var.prefill(img_BLCv, ada)
        f_hat = img_BLCv.new_zeros(B, quant.Cvae, H, H)
        if f_start_BChw is not None:
            f_hat = f_hat + f_start_BChw
        for si, pn in enumerate(self.patch_nums):
            if si > 0:
                logits_BlV, cache = var.step(quant.next_input(f_hat, si), si, ada, cache)
            idx_Bl, emb_BlC = self._pick(logits_BlV, sampling, gens)
            emb_BChw = emb_BlC.transpose(1, 2).reshape(B, quant.Cvae, pn, pn)
            f_hat = f_hat + quant.contribution(emb_BChw, si)
            yield idx_Bl.view(B, pn, pn), logits_BlV, f_hat

    @torch.no_grad()
    def infer(
        self,
        rgb_B3HW: torch.Tensor,
        sampling: SamplingConfig | None = None,
        with_uncertainty: bool = False,
    ) -> Inference:
        """The deterministic inference every backend and the exported graph run: token maps,
        relative depth and, with `with_uncertainty`, the uncertainty head's expected relative
        error of each pixel (the token doubt it reads is gathered in the same pass)."""
        sampling = sampling or SamplingConfig()
        if with_uncertainty and self.uncertainty_head is None:
            raise ValueError(
                "this checkpoint has no uncertainty head (model config uncertainty_width 0); "
                "train one with training/uncertainty_head.py"
            )
        if with_uncertainty and not sampling.deterministic:
            raise ValueError(
                "the uncertainty head predicts the error of the soft or greedy decoding; a "
                "sampled decoding (random draws) has none: decode soft or greedy"
            )
        if not with_uncertainty:
            img_BLCv, f_start = self.prefix_and_start(rgb_B3HW)
            tokens, f_hat, _ = self.generate_from_prefix(img_BLCv, sampling, f_start)
            return Inference(tokens, self.decode(f_hat), None)
        tokens, depth_BSS, head_in = self.uncertainty_features(rgb_B3HW, sampling)
        return Inference(tokens, depth_BSS, self.uncertainty_head(*head_in).exp())

    @torch.no_grad()
    def uncertainty_features(
        self, rgb_B3HW: torch.Tensor, sampling: SamplingConfig, context: bool | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor, HeadInput]:
        """One inference pass that also gathers the uncertainty head's input: (token maps,
        depth (B, S, S), `HeadInput`: the pixel features (B, 6, S, S) and, for a head that reads
        the model's own features, those at H x H). `context`: gather those (None: when this
        checkpoint's head reads them, `ModelConfig.uncertainty_context`)."""
        img_BLCv, f_start = self.prefix_and_start(rgb_B3HW)
        codebook_VC = self.tokenizer.quantize.embedding.weight
        B, H = rgb_B3HW.shape[0], self.patch_nums[-1]
        var_BHH = rgb_B3HW.new_zeros(B, H, H, dtype=torch.float32)
        tokens, f_hat = [], None
        for pn, (idx_Bhw, logits_BlV, f_hat) in zip(  # noqa: B007 (f_hat: the last scale's)
            self.patch_nums, self.refine_steps(img_BLCv, sampling, f_start), strict=True
        ):
            tokens.append(idx_Bhw)
            var_Bl = embedding_variance(self.token_probs(logits_BlV, sampling), codebook_VC)
            var_BHH = var_BHH + resize_square(var_Bl.view(B, 1, pn, pn), H, "bicubic")[:, 0]
        depth_BSS = self.decode(f_hat)
        if f_start is None:
            moved_BHH = torch.zeros_like(var_BHH)
        else:
            moved_BHH = (f_hat - f_start).float().norm(dim=1)
        doubt_BHH = var_BHH.clamp_min(0.0).sqrt()
        feat_B6SS = UncertaintyHead.features(rgb_B3HW, depth_BSS, doubt_BHH, moved_BHH)
        ctx_BCHH = None
        if self.cfg.uncertainty_context if context is None else context:
            ctx_BCHH = UncertaintyHead.context(img_BLCv[:, -H * H :], H)
        return tokens, depth_BSS, HeadInput(feat_B6SS, ctx_BCHH)

    @torch.no_grad()
    def depth_round_trip(
        self, depth_BHW: torch.Tensor, valid_BHW: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Depth through the model's codec and tokenizer and back, no transformer: relative depth
        (B, H, W), the tokenizer's ceiling on these frames."""
        codec = self.cfg.tokenizer.depth_codec
        x_B3HW, _ = encode_depth(depth_BHW, valid_BHW, codec)
        return decode_depth(self.tokenizer(x_B3HW)[0], codec)

    def decode(self, f_hat_BChw: torch.Tensor) -> torch.Tensor:
        """The final f_hat -> relative depth (B, S, S) in [0, 1], in fp32."""
        return decode_depth(
            self.tokenizer.decode_f_hat(f_hat_BChw).float(), self.cfg.tokenizer.depth_codec
        ).float()

    @staticmethod
    def token_probs(logits_BlV: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
        """The distribution a decoding reads each token from: softmax(logits / T) within
        top-k / top-p for soft decoding and sampling, the full softmax for greedy (whose argmax
        is its mode)."""
        if sampling.greedy:
            return logits_BlV.float().softmax(-1)
        logits = filter_logits(
            logits_BlV.float() / sampling.temperature, sampling.top_k, sampling.top_p
        )
        return logits.softmax(-1)

    def _pick(
        self, logits_BlV: torch.Tensor, s: SamplingConfig, gens: list[torch.Generator] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each token's code and embedding; a sampled setting draws frame b's from `gens[b]`."""
        emb = self.tokenizer.quantize.embedding
        if s.greedy:
            idx_Bl = logits_BlV.argmax(dim=-1)
            return idx_Bl, emb(idx_Bl)
        if s.soft:
            # the expectation of the paper's mean of sampled embeddings: softmax @ codebook
            probs_BlV = self.token_probs(logits_BlV, s)
            w_VC = emb.weight
            return logits_BlV.argmax(dim=-1), (probs_BlV.to(w_VC.dtype) @ w_VC)
        probs_BlV = self.token_probs(logits_BlV, s)
        draws_Bln = torch.stack(
            [
                torch.multinomial(p_lV, s.n_samples, replacement=True, generator=g)
                for p_lV, g in zip(probs_BlV, gens, strict=True)
            ]
        )
        return draws_Bln[..., 0], emb(draws_Bln).mean(dim=2)

    @torch.no_grad()
    def predict_normalized(
        self, rgb_B3HW: torch.Tensor, sampling: SamplingConfig | None = None
    ) -> torch.Tensor:
        """RGB in [-1, 1] at the model resolution -> relative depth (B, H, W) in [0, 1]."""
        _, f_hat, _ = self.generate(rgb_B3HW, sampling)
        return decode_depth(self.tokenizer.decode_f_hat(f_hat), self.cfg.tokenizer.depth_codec)

    def _check_image(self, x: torch.Tensor) -> None:
        S = self.cfg.image_size
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2:] != (S, S):
            raise ValueError(f"model input must be (B, 3, {S}, {S}), got {tuple(x.shape)}")
        if not torch.is_floating_point(x):
            raise TypeError(f"model input must be a float tensor in [-1, 1], got {x.dtype}")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
