"""Multi-scale residual quantizer, resize matrices and the depth codec."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from depthart_core.config import TokenizerConfig, get_preset
from depthart_core.model import DepthART
from depthart_core.tokenizer.codec import (
    LOG_RANGE,
    decode_depth,
    encode_depth,
    encode_rgb,
    relative_to_codec,
)
from depthart_core.tokenizer.resize import resize_square


@pytest.mark.parametrize(
    "n_in,n_out,mode",
    [
        (16, 13, "area"),
        (16, 5, "area"),
        (8, 8, "area"),
        (3, 16, "bicubic"),
        (13, 16, "bicubic"),
        (1, 8, "bicubic"),
    ],
)
def test_resize_matrices_equal_interpolate(n_in, n_out, mode):
    x = torch.randn(2, 4, n_in, n_in)
    if mode == "area":
        ref = F.interpolate(x, size=(n_out, n_out), mode="area")
    else:
        ref = F.interpolate(x, size=(n_out, n_out), mode="bicubic", align_corners=False)
    assert torch.allclose(resize_square(x, n_out, mode), ref, atol=1e-5)


def test_f_hat_is_sum_of_scale_contributions(tiny_model):
    q = tiny_model.tokenizer.quantize
    f = torch.randn(2, q.Cvae, q.patch_nums[-1], q.patch_nums[-1])
    idx_list, f_hat, cum = q.quantize(f)
    parts = [q.idx_contribution(idx, si) for si, idx in enumerate(idx_list)]
    assert torch.allclose(f_hat, torch.stack(parts).sum(0), atol=1e-5)
    assert torch.allclose(q.idx_to_f_hat(idx_list), f_hat, atol=1e-5)
    for k in range(len(idx_list)):
        assert torch.allclose(q.idx_to_f_hat(idx_list[: k + 1]), cum[k], atol=1e-5)
    assert [tuple(i.shape) for i in idx_list] == [(2, pn, pn) for pn in q.patch_nums]


def test_reconstruction_error_falls_with_scales():
    """With a rich codebook, each added scale brings f_hat closer to the latent."""
    from depthart_core.tokenizer.quantizer import MultiScaleQuantizer

    torch.manual_seed(1)
    q = MultiScaleQuantizer(vocab_size=2048, dim=4, patch_nums=(1, 2, 3, 4, 6, 8), quant_resi=0.0)
    torch.nn.init.normal_(q.embedding.weight)
    f = F.interpolate(torch.randn(2, 4, 4, 4), size=(8, 8), mode="bicubic") + 0.3 * torch.randn(
        2, 4, 8, 8
    )
    with torch.no_grad():
        _, _, cum = q.quantize(f)
    errs = [float(F.mse_loss(c, f)) for c in cum]
    assert all(b < a for a, b in zip(errs, errs[1:], strict=False)), errs
    assert errs[-1] < 0.2 * float(f.square().mean())


def test_residual_target_matches_teacher_tokens_on_gt_prefix(tiny_model):
    q = tiny_model.tokenizer.quantize
    f = torch.randn(3, q.Cvae, 8, 8)
    idx_list, _, cum = q.quantize(f)
    for si in range(1, len(idx_list)):
        assert torch.equal(q.residual_target(f, cum[si - 1], si), idx_list[si])
    assert torch.equal(q.residual_target(f, torch.zeros_like(f), 0), idx_list[0])


def test_depth_codec_round_trip():
    depth = torch.rand(2, 16, 16) * 5 + 0.5
    valid = torch.ones_like(depth, dtype=torch.bool)
    valid[0, :2] = False
    x, scale = encode_depth(depth, valid)
    assert x.shape == (2, 3, 16, 16) and x.min() >= -1 and x.max() <= 1
    # invalid rows 0-1 carry the nearest valid pixel's code: row 2 of the same column (issue #11)
    assert torch.equal(x[0, :, :2], x[0, :, 2:3].expand(-1, 2, -1))
    rel = decode_depth(x)
    q98 = torch.stack([torch.quantile(depth[b][valid[b]], 0.98) for b in range(2)])
    assert torch.allclose(scale, q98)
    expected = (depth / q98.view(-1, 1, 1)).clamp(max=1.0)  # (x+1)/2 = d/q98, saturating
    assert torch.allclose(rel[valid], expected[valid], atol=1e-5)


def test_depth_codec_rejects_bad_input():
    d = torch.ones(1, 4, 4)
    d[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        encode_depth(d, torch.ones(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="no valid pixel"):
        encode_depth(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="decoder output"):
        decode_depth(torch.zeros(1, 1, 4, 4))
    assert torch.allclose(encode_rgb(torch.tensor([0.0, 255.0])), torch.tensor([-1.0, 1.0]))


def test_log_depth_codec_is_uniform_in_relative_depth_and_proportional():
    depth = torch.rand(2, 16, 16) * 30 + 0.05  # 5 cm to 30 m: an aisle seen from 0.3 m
    x, scale = encode_depth(depth, codec="log")
    assert x.min() >= -1 and x.max() <= 1
    rel = decode_depth(x, codec="log")
    r = depth / scale.view(-1, 1, 1)
    expected = r.clamp(1 / LOG_RANGE, 1.0)
    assert torch.allclose(rel, expected, rtol=1e-4)  # exact in relative terms, near or far
    # the same relative step costs the same step in x at 3 % of q98 as at 60 %
    step = lambda r0: (relative_to_codec(r0 * 1.1, "log") - relative_to_codec(r0, "log")).item()  # noqa: E731
    assert step(torch.tensor(0.03)) == pytest.approx(step(torch.tensor(0.6)), rel=1e-4)
    lin = lambda r0: (relative_to_codec(r0 * 1.1) - relative_to_codec(r0)).item()  # noqa: E731
    assert lin(torch.tensor(0.03)) < step(torch.tensor(0.03)) / 5  # linear: 6x coarser near
    # proportional: doubling every depth leaves the codes alone (one scale, no shift)
    assert torch.allclose(encode_depth(2 * depth, codec="log")[0], x, atol=1e-5)
    assert decode_depth(-torch.ones(1, 3, 2, 2), codec="log").min() > 0  # never zero depth


def test_depth_codec_is_checked_everywhere():
    with pytest.raises(ValueError, match="depth codec must be one of"):
        encode_depth(torch.ones(1, 4, 4), codec="inverse")
    with pytest.raises(ValueError, match="depth codec must be one of"):
        decode_depth(torch.zeros(1, 3, 4, 4), codec="inverse")
    with pytest.raises(ValueError, match="depth_codec must be"):
        TokenizerConfig(depth_codec="inverse")


def test_a_log_codec_model_decodes_with_its_codec():
    cfg = get_preset("tiny")
    model = DepthART(
        dataclasses.replace(cfg, tokenizer=dataclasses.replace(cfg.tokenizer, depth_codec="log"))
    ).eval()
    f_BChw = torch.randn(1, cfg.tokenizer.z_channels, 8, 8)
    x_B3HW = model.tokenizer.decode_f_hat(f_BChw)
    assert torch.allclose(model.decode(f_BChw), decode_depth(x_B3HW, "log"))
    assert not torch.allclose(model.decode(f_BChw), decode_depth(x_B3HW, "linear"))
