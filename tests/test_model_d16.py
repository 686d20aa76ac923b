"""The d16 preset has exactly the names, shapes and counts of VAR's released files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from depthart_core.checkpoint import load_official_var
from depthart_core.config import get_preset
from depthart_core.model import DepthART, count_parameters
from depthart_core.transformer.var import REBUILT_VAR_BUFFERS

MANIFEST = json.loads((Path(__file__).parent / "data" / "var_d16_manifest.json").read_text())


@pytest.fixture(scope="module")
def d16() -> DepthART:
    return DepthART(get_preset("d16"))


def test_d16_parameter_counts(d16):
    assert count_parameters(d16.tokenizer) == 108_948_355
    assert count_parameters(d16.transformer) == 310_283_520


def test_d16_state_dicts_match_manifest(d16):
    vae = {k: list(v.shape) for k, v in d16.tokenizer.state_dict().items()}
    assert vae == MANIFEST["vae"] | {"quantize.ema_vocab_hit_SV": [10, 4096]}
    var = {k: list(v.shape) for k, v in d16.transformer.state_dict().items()}
    expected = {k: s for k, s in MANIFEST["var"].items() if k not in REBUILT_VAR_BUFFERS}
    assert var == expected


def test_official_files_load_strictly(d16, tmp_path):
    """Files laid out like VAR's releases (incl. its 680-token buffers) load; a wrong one fails."""
    gen = torch.Generator().manual_seed(0)
    var_sd = {k: torch.randn(s, generator=gen) * 0.01 for k, s in MANIFEST["var"].items()}
    vae_sd = {k: torch.randn(s, generator=gen) * 0.01 for k, s in MANIFEST["vae"].items()}
    torch.save(var_sd, tmp_path / "var_d16.pth")
    torch.save(vae_sd, tmp_path / "vae_ch160v4096z32.pth")
    load_official_var(d16, tmp_path / "var_d16.pth", tmp_path / "vae_ch160v4096z32.pth")
    assert torch.equal(d16.transformer.head.weight, var_sd["head.weight"])
    assert torch.equal(d16.tokenizer.quantize.embedding.weight, vae_sd["quantize.embedding.weight"])
    # the null condition is VAR's class 1000
    assert d16.transformer.null_class == 1000
    del var_sd["head.bias"]
    torch.save(var_sd, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="head.bias"):
        load_official_var(d16, tmp_path / "bad.pth", None)


def test_d16_full_mask_shape(d16):
    n = 2 * math.prod([1]) * 680
    assert d16.transformer.attn_bias_full.shape == (1, 1, n, n)


def test_var_weights_load_into_plain_attention_as_the_authors_trained(tmp_path, caplog):
    """The DepthART authors trained `d16_authors` (plain attention, tau 4) from var_d16.pth, whose
    blocks carry cosine-attention scales: those alone are left out, and said so; every other key
    still loads strictly, and a cosine-attention model still needs them."""
    import dataclasses
    import logging

    cosine_cfg = get_preset("tiny")
    plain_cfg = dataclasses.replace(
        cosine_cfg,
        transformer=dataclasses.replace(cosine_cfg.transformer, attn_l2_norm=False, tau=4.0),
    )
    var_sd = DepthART(cosine_cfg).transformer.state_dict()
    assert any(k.endswith("attn.scale_mul_1H11") for k in var_sd)
    torch.save(var_sd, tmp_path / "var.pth")
    plain = DepthART(plain_cfg)
    with caplog.at_level(logging.INFO, logger="depthart_core.checkpoint"):
        load_official_var(plain, tmp_path / "var.pth", None)
    assert torch.equal(plain.transformer.head.weight, var_sd["head.weight"])
    n_blocks = len(plain.transformer.blocks)
    assert f"{n_blocks} cosine-attention scales" in caplog.text
    del var_sd["head.bias"]
    torch.save(var_sd, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="head.bias"):
        load_official_var(plain, tmp_path / "bad.pth", None)
    no_scales = {k: v for k, v in var_sd.items() if not k.endswith("attn.scale_mul_1H11")}
    torch.save(no_scales | {"head.bias": plain.transformer.head.bias}, tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="scale_mul_1H11"):
        load_official_var(DepthART(cosine_cfg), tmp_path / "plain.pth", None)
