"""Start a deeper transformer from a trained shallower one (`TrainConfig.init_grow`).

The trained blocks keep their weights and their order; the new blocks go after them, before the
head. Each new block starts as an identity: its attention output projection and its MLP's second
layer are zero, so `x + gamma * 0` leaves the residual stream unchanged and the grown model
predicts exactly what the checkpoint did (the zero-initialised residual branches of Goyal et al.
2017, sec. 5.1, and of Bachlechner et al.'s ReZero). Their other weights keep the fresh
initialisation, so the gradient reaches the zeroed layers at once and the blocks start learning in
the first step. Every other tensor must match the checkpoint exactly.
"""

from __future__ import annotations

import re

import torch

BLOCK = re.compile(r"^transformer\.blocks\.(\d+)\.")
# the last layer of each residual branch of a block (transformer/blocks.py)
BRANCH_OUTPUTS = ("attn.proj.weight", "attn.proj.bias", "ffn.fc2.weight", "ffn.fc2.bias")


def block_count(state: dict[str, torch.Tensor]) -> int:
    """The number of transformer blocks in a whole DepthART state dict."""
    ids = {int(m.group(1)) for k in state if (m := BLOCK.match(k))}
    return max(ids) + 1 if ids else 0


def grow_depth_state(
    src: dict[str, torch.Tensor], fresh: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """A state dict for the deeper model whose freshly initialised state is `fresh`: every tensor
    of `src` (a shallower model's whole state dict) in place, and identity blocks after them.
    Raises if `src` is not shallower or if any other tensor's name or shape differs."""
    n_src, n_dst = block_count(src), block_count(fresh)
    if not 0 < n_src < n_dst:
        raise ValueError(
            f"init_grow needs a checkpoint with fewer transformer blocks than the model: "
            f"checkpoint {n_src}, model {n_dst}"
        )
    new_keys = {k for k in fresh if (m := BLOCK.match(k)) and int(m.group(1)) >= n_src}
    if set(src) != set(fresh) - new_keys:
        diff = sorted(set(src) ^ (set(fresh) - new_keys))
        raise ValueError(f"init_grow: the checkpoint's tensors differ from the model's: {diff[:5]}")
    for k, v in src.items():
        if v.shape != fresh[k].shape:
            raise ValueError(
                f"init_grow: {k} is {tuple(v.shape)} in the checkpoint, "
                f"{tuple(fresh[k].shape)} in the model"
            )
    out = dict(src)
    for k in new_keys:
        zero = k.split(".", 3)[3] in BRANCH_OUTPUTS
        out[k] = torch.zeros_like(fresh[k]) if zero else fresh[k].clone()
    return out
