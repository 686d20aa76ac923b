"""Start a model at a new input size from one trained at another (`TrainConfig.init_resize`).

Only three tensors of a DepthART model depend on the scale pyramid (`tokenizer.patch_nums`); all
other weights are convolutions, attention and embeddings that work at any size. Each scale of the
new pyramid takes the tensors of the old scale nearest to it in side length (the shared scales
keep theirs exactly), the position embedding resized bilinearly to the new side, the way ViT
and DeiT carry position embeddings to a new resolution (Dosovitskiy et al. 2021, sec. 3.2):

    transformer.pos_1LC            (1, L, C): the per-token position embedding, scale by scale
    transformer.lvl_embed.weight   (S, C): one embedding per scale
    tokenizer.quantize.ema_vocab_hit_SV  (S, V): codebook-use statistics per scale

The codebook is untouched, so the transformer's token embeddings and head keep their meaning.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POS = "transformer.pos_1LC"
LVL = "transformer.lvl_embed.weight"
HITS = "tokenizer.quantize.ema_vocab_hit_SV"


def nearest_scales(src: tuple[int, ...], dst: tuple[int, ...]) -> list[int]:
    """For each side length of `dst`, the index in `src` of the nearest side (ties: the smaller)."""
    return [min(range(len(src)), key=lambda i: (abs(src[i] - pn), src[i])) for pn in dst]


def resize_pyramid_state(
    state: dict[str, torch.Tensor], src: tuple[int, ...], dst: tuple[int, ...]
) -> dict[str, torch.Tensor]:
    """A copy of `state` (a whole DepthART state dict for patch_nums `src`) whose per-scale
    tensors are laid out for patch_nums `dst`. Raises if a per-scale tensor does not fit `src`."""
    L = sum(pn * pn for pn in src)
    expect = {POS: (L,), LVL: (len(src),), HITS: (len(src),)}
    for key, lead in expect.items():
        got = tuple(state[key].shape[1:2] if key == POS else state[key].shape[:1])
        if got != lead:
            raise ValueError(
                f"{key} has shape {tuple(state[key].shape)}, which does not fit patch_nums {src}"
            )
    pick = nearest_scales(src, dst)
    starts = [sum(pn * pn for pn in src[:i]) for i in range(len(src))]
    pos_1LC = state[POS]
    C = pos_1LC.shape[-1]
    blocks = []
    for pn, i in zip(dst, pick, strict=True):
        spn = src[i]
        blk_1Chw = pos_1LC[0, starts[i] : starts[i] + spn * spn].T.reshape(1, C, spn, spn)
        if spn != pn:
            blk_1Chw = F.interpolate(blk_1Chw, size=(pn, pn), mode="bilinear", align_corners=False)
        blocks.append(blk_1Chw.reshape(C, pn * pn).T)
    out = dict(state)
    out[POS] = torch.cat(blocks, 0).unsqueeze(0).contiguous()
    out[LVL] = state[LVL][pick].clone()
    out[HITS] = state[HITS][pick].clone()
    return out
