"""Training objectives: tokenizer (stage 1), teacher forcing (VAR) and DepthART (stage 2).

Teacher forcing (VAR, arXiv 2404.02905): one masked pass over [image prefix | SOS | depth inputs];
inputs are the area-downsampled cumulative ground-truth f_hat, targets the ground-truth token maps.

DepthART (arXiv 2409.15010, Fig. 2): the model is rolled out on its own argmax predictions. With the
continuous ground-truth depth latent f_D and the model's running reconstruction f_hat_<k built from
its *predicted* maps, the target at scale k is t_k = Q_k(f_D - f_hat_<k) (area-downsample the
residual, nearest code), so the model learns to correct its own earlier errors. Predictions are
detached; the KV cache keeps earlier keys/values in the graph, so one backward covers all scales.
Where the detach sits: by default on the next scale's input latent, so its word, level and position
embeddings are trained by the rollout's tokens as teacher forcing trains them; with
`detach_embedding` (the authors' code, bulatko/DepthART, and Fig. 2's "no grad") after those
embeddings, so the rollout's depth tokens train none of them. Every leg shipped so far used the
default.
Cross-entropy over the codebook with uniform per-token weight. Optionally (off by default) the
released configuration's last-scale variant: a Gumbel-softmax mixture of code embeddings at the
last scale, that scale dropped from the cross-entropy, plus 10 * MSE(f_hat, f_D).

Two more options (off by default) make the rollout match the `soft` decoding
(`depthart_core.sampling`), where each scale adds the probability-weighted mean of the code
embeddings: `soft_rollout` builds the running f_hat, and so the next inputs and targets, from that
mean instead of the argmax code; `soft_latent` adds w * mean over scales of
MSE(f_hat_<k + eta_k(softmax_k @ codebook), f_D), a gradient through the softmax that asks every
scale to lower the latent error of the reconstruction it starts from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from depthart_core.model import DepthART
from depthart_core.tokenizer.codec import encode_depth
from depthart_core.tokenizer.quantizer import MultiScaleQuantizer


@dataclass
class StepOutput:
    loss: torch.Tensor
    logs: dict[str, float]
    tokens: int


def prepare_inputs(
    model: DepthART, rgb_B3HW_uint8: torch.Tensor, depth_BHW: torch.Tensor, valid_BHW: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen tokenizer: (image-prefix latents (B, L, Cvae), continuous depth latent f_D)."""
    rgb = rgb_B3HW_uint8.float() / 127.5 - 1.0
    with torch.no_grad():
        img_BLCv = model.image_prefix(rgb)
    return img_BLCv, depth_latent(model, depth_BHW, valid_BHW)


@torch.no_grad()
def depth_latent(model: DepthART, depth_BHW: torch.Tensor, valid_BHW: torch.Tensor) -> torch.Tensor:
    """The continuous ground-truth depth latent f_D of the frozen tokenizer."""
    depth_x3, _ = encode_depth(depth_BHW, valid_BHW, model.cfg.tokenizer.depth_codec)
    return model.tokenizer.encode_latent(depth_x3)


def aux_latent_loss(f_aux_BChw: torch.Tensor, f_D: torch.Tensor) -> torch.Tensor:
    """MSE between the "cnn" image encoder's estimate of the depth latent and f_D."""
    return F.mse_loss(f_aux_BChw.float(), f_D.float())


def rollout_targets(
    quant: MultiScaleQuantizer, f_D: torch.Tensor, pred_idx: list[torch.Tensor]
) -> list[torch.Tensor]:
    """DepthART targets for every scale given the model's predicted maps at earlier scales."""
    f_hat = torch.zeros_like(f_D)
    targets = []
    for si in range(quant.num_scales):
        targets.append(quant.residual_target(f_D, f_hat, si))
        if si < len(pred_idx):
            f_hat = f_hat + quant.idx_contribution(pred_idx[si], si)
    return targets


def teacher_forcing_loss(
    model: DepthART,
    img_BLCv: torch.Tensor,
    f_D: torch.Tensor,
    f_start: torch.Tensor | None = None,
) -> StepOutput:
    """With `f_start` (refine_from_image_latent) the targets are the token maps of f_D - f_start
    and the inputs the running f_hat from f_start."""
    quant = model.tokenizer.quantize
    with torch.no_grad():
        if f_start is not None:
            f_start = f_start.detach()
        idx_list, _, _ = quant.quantize(f_D if f_start is None else f_D - f_start)
        depth_in = quant.teacher_forcing_inputs(idx_list, f_start)
    logits_BLV = model.transformer(img_BLCv, depth_in)
    target_BL = torch.cat([i.flatten(1) for i in idx_list], dim=1)
    loss = F.cross_entropy(logits_BLV.float().flatten(0, 1), target_BL.flatten())
    acc = (logits_BLV.argmax(-1) == target_BL).float().mean()
    return StepOutput(loss, {"ce": loss.item(), "acc": acc.item()}, target_BL.numel())


def depthart_loss(
    model: DepthART,
    img_BLCv: torch.Tensor,
    f_D: torch.Tensor,
    last_scale_gumbel: bool = False,
    f_start: torch.Tensor | None = None,
    soft_rollout: bool = False,
    soft_latent: float = 0.0,
    detach_embedding: bool = False,
) -> StepOutput:
    """With `f_start` (refine_from_image_latent) the rollout's f_hat starts there, not at zero.
    `soft_rollout` / `soft_latent` / `detach_embedding`: see the module docstring."""
    quant, var = model.tokenizer.quantize, model.transformer
    B, K = f_D.shape[0], quant.num_scales
    ada = var.modulations(var.condition(B, f_D.device))
    logits_BlV, cache = var.prefill(img_BLCv, ada)
    f_hat = torch.zeros_like(f_D) if f_start is None else f_start.detach().clone()
    ce_sum = f_D.new_zeros(())
    n_ce, n_correct = 0, 0
    extra, soft_mse, n_soft = f_D.new_zeros(()), f_D.new_zeros(()), 0
    for si, pn in enumerate(quant.patch_nums):
        if si > 0:
            x_BlCv = quant.next_input(f_hat, si).detach()
            if detach_embedding:
                x_BlC = var.embed_scale(x_BlCv, si).detach()
                logits_BlV, cache = var.step_embedded(x_BlC, ada, cache)
            else:
                logits_BlV, cache = var.step(x_BlCv, si, ada, cache)
        target_Bhw = quant.residual_target(f_D, f_hat, si)
        if last_scale_gumbel and si == K - 1:
            soft_BlV = F.gumbel_softmax(logits_BlV.float(), tau=1.0, hard=False)
            emb_BlC = soft_BlV @ quant.embedding.weight
            h = quant.contribution(emb_BlC.transpose(1, 2).reshape(B, -1, pn, pn), si)
            extra = 10.0 * F.mse_loss(f_hat.detach() + h, f_D)
            break
        ce_sum = ce_sum + F.cross_entropy(
            logits_BlV.float().flatten(0, 1), target_Bhw.flatten(), reduction="sum"
        )
        h_soft = None
        if soft_rollout or soft_latent > 0:
            emb_BlC = logits_BlV.float().softmax(-1) @ quant.embedding.weight
            h_soft = quant.contribution(emb_BlC.transpose(1, 2).reshape(B, -1, pn, pn), si)
            soft_mse = soft_mse + F.mse_loss(f_hat.detach() + h_soft, f_D)
            n_soft += 1
        with torch.no_grad():
            pred_Bl = logits_BlV.argmax(-1)
            n_correct += int((pred_Bl == target_Bhw.flatten(1)).sum())
            n_ce += pred_Bl.numel()
            if soft_rollout:
                f_hat = f_hat + h_soft.detach()
            else:
                f_hat = f_hat + quant.idx_contribution(pred_Bl.view(B, pn, pn), si)
    ce = ce_sum / n_ce
    soft_mse = soft_mse / max(n_soft, 1)  # the scales summed (last_scale_gumbel: K - 1)
    loss = ce + extra + soft_latent * soft_mse
    logs = {"ce": ce.item(), "acc": n_correct / n_ce}
    if last_scale_gumbel:
        logs["latent_mse"] = extra.item() / 10.0
    if h_soft is not None:
        logs["soft_mse"] = soft_mse.item()
    return StepOutput(loss, logs, n_ce)


def tokenizer_loss(model: DepthART, x_B3HW: torch.Tensor) -> StepOutput:
    """Stage 1: L1 + MSE reconstruction plus the VQ (codebook + commitment) loss."""
    recon, vq_loss, idx_list = model.tokenizer(x_B3HW)
    rec = F.l1_loss(recon, x_B3HW) + F.mse_loss(recon, x_B3HW)
    loss = rec + vq_loss
    with torch.no_grad():
        quant = model.tokenizer.quantize
        for si, idx in enumerate(idx_list):
            hits = torch.bincount(idx.flatten(), minlength=quant.vocab_size).float()
            quant.ema_vocab_hit_SV[si].mul_(0.99).add_(hits, alpha=0.01)
    logs = {"rec": rec.item(), "vq": vq_loss.item()}
    return StepOutput(loss, logs, x_B3HW.shape[0])


def code_usage(model: DepthART) -> dict[str, list[float]]:
    """Per-scale share of codes in use and perplexity, from the running hit statistics."""
    hits = model.tokenizer.quantize.ema_vocab_hit_SV
    p = hits / hits.sum(-1, keepdim=True).clamp_min(1e-12)
    usage = (hits > hits.sum(-1, keepdim=True) * 1e-4).float().mean(-1)
    ppl = torch.exp(-(p * p.clamp_min(1e-12).log()).sum(-1))
    return {"usage": usage.tolist(), "perplexity": ppl.tolist()}


@torch.no_grad()
def restart_dead_codes(model: DepthART, f_BChw: torch.Tensor, threshold: float = 1e-3) -> int:
    """Re-seed codes that (almost) no scale uses with random encoder latents. Returns count."""
    quant = model.tokenizer.quantize
    hits = quant.ema_vocab_hit_SV.sum(0)
    dead = (hits < threshold * hits.sum() / quant.vocab_size).nonzero().flatten()
    if dead.numel() == 0:
        return 0
    pool_NC = f_BChw.permute(0, 2, 3, 1).reshape(-1, quant.Cvae)
    pick = torch.randint(0, pool_NC.shape[0], (dead.numel(),), device=pool_NC.device)
    noise = 0.01 * pool_NC.std() * torch.randn(dead.numel(), quant.Cvae, device=pool_NC.device)
    quant.embedding.weight.data[dead] = pool_NC[pick] + noise
    quant.ema_vocab_hit_SV[:, dead] = hits.mean() / quant.num_scales
    return int(dead.numel())
