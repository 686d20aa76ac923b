"""Parameter counts per component, for `depthart info` and the docs."""

from __future__ import annotations

from typing import Any

import torch

from depthart_core.checkpoint import load_checkpoint
from depthart_core.config import get_preset
from depthart_core.model import DepthART, count_parameters


def parameter_breakdown(model: DepthART) -> dict[str, int]:
    tok, var = model.tokenizer, model.transformer
    top = {}  # the transformer's parameters by top-level module
    for n, p in var.named_parameters():
        top[n.split(".")[0]] = top.get(n.split(".")[0], 0) + p.numel()
    embeds = sum(
        top.get(k, 0) for k in ("word_embed", "class_emb", "pos_start", "pos_1LC", "lvl_embed")
    )
    prefix = top.get("image_encoder", 0) + top.get("image_embed", 0)  # the "cnn" image prefix
    return {
        "tokenizer": count_parameters(tok),
        "tokenizer.encoder": count_parameters(tok.encoder),
        "tokenizer.decoder": count_parameters(tok.decoder),
        "tokenizer.quantizer+convs": count_parameters(tok.quantize)
        + count_parameters(tok.quant_conv)
        + count_parameters(tok.post_quant_conv),
        "transformer": count_parameters(var),
        "transformer.embeddings": embeds,
        "transformer.image_encoder": prefix,
        "transformer.blocks": count_parameters(var.blocks),
        "transformer.head": count_parameters(var.head) + count_parameters(var.head_nm),
        "uncertainty_head": count_parameters(model.uncertainty_head)
        if model.uncertainty_head is not None
        else 0,
        "total": count_parameters(model),
    }


def describe_preset(name: str) -> dict[str, Any]:
    cfg = get_preset(name)
    with torch.device("meta"):
        model = DepthART(cfg)
    return _report(f"preset {name}", model, {})


def describe_checkpoint(
    path: str, vae: str | None = None, vae_setting: str | None = None
) -> dict[str, Any]:
    """`vae`: VAR's VQ-VAE, only for an authors' checkpoint saved without it; `vae_setting`:
    what its errors call it (`checkpoint.load_checkpoint`)."""
    model, info = load_checkpoint(path, vae=vae, vae_setting=vae_setting)
    report = _report(f"checkpoint {path}", model, info["metadata"])
    report["sha256"], report["layout"] = info["sha256"], info["layout"]
    return report


def _report(source: str, model: DepthART, metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": source,
        "config": model.cfg.to_dict(),
        "tokens_per_map": model.cfg.tokenizer.num_tokens,
        "parameters": parameter_breakdown(model),
        "metadata": metadata,
    }
