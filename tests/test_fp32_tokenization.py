"""Tokenization stays fp32 under bf16 autocast (as VAR's quantizer does), in training and inference.

Before the fix, CPU bf16 autocast ran the encoder convs, the resize matmuls and the phi convs in
bf16: image-prefix latents, depth latents, residual targets and f_hat updates all came out
different from fp32 (and typed bf16). Each check below compares against a plain fp32 run.
"""

from __future__ import annotations

import pytest
import torch

from depthart_core.config import TokenizerConfig
from depthart_core.model import DepthART
from depthart_core.precision import autocast
from depthart_core.runtime.torch_backend import DepthEstimator
from depthart_core.tokenizer.vqvae import MultiScaleVQVAE
from depthart_core.training.objectives import prepare_inputs, rollout_targets

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


@pytest.fixture(scope="module")
def vae() -> MultiScaleVQVAE:
    torch.manual_seed(0)
    cfg = TokenizerConfig(
        ch=16,
        ch_mult=(1, 2, 2, 4),
        num_res_blocks=1,
        z_channels=32,
        vocab_size=4096,
        patch_nums=(1, 2, 3, 4, 6, 8),
    )
    vae = MultiScaleVQVAE(cfg).eval()
    with torch.no_grad():  # a codebook on the latents' scale, so nearest codes are close calls
        vae.quantize.embedding.weight.normal_(0, 0.3)
    return vae


def test_tokenize_under_autocast_equals_fp32(vae):
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        idx32, f32, cum32 = vae.tokenize(x)
        with torch.autocast(**BF16):
            idx16, f16, cum16 = vae.tokenize(x)
            lat16 = vae.encode_latent(x)
    assert f16.dtype == torch.float32 and lat16.dtype == torch.float32
    assert torch.equal(f16, f32) and torch.equal(lat16, vae.encode_latent(x))
    for a, b in zip(idx32, idx16, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(cum32, cum16, strict=True):
        assert torch.equal(a, b)


def test_quantizer_steps_under_autocast_equal_fp32(vae):
    q = vae.quantize
    g = torch.Generator().manual_seed(2)
    f = torch.randn(2, 32, 8, 8, generator=g)
    f_hat = torch.randn(2, 32, 8, 8, generator=g) * 0.5
    emb = torch.randn(2, 32, 4, 4, generator=g)
    with torch.no_grad():
        ref = (q.residual_target(f, f_hat, 4), q.contribution(emb, 3), q.next_input(f_hat, 5))
        with torch.autocast(**BF16):
            got = (
                q.residual_target(f, f_hat, 4),
                q.contribution(emb.bfloat16(), 3),  # bf16 input (e.g. a Gumbel mixture)
                q.next_input(f_hat, 5),
            )
    assert torch.equal(got[0], ref[0])
    torch.testing.assert_close(got[1], q.contribution(emb.bfloat16().float(), 3), rtol=0, atol=0)
    assert got[1].dtype == got[2].dtype == torch.float32
    assert torch.equal(got[2], ref[2])


def test_training_inputs_and_targets_under_autocast_equal_fp32(tiny_model: DepthART):
    g = torch.Generator().manual_seed(3)
    rgb = torch.randint(0, 256, (2, 3, 64, 64), generator=g, dtype=torch.uint8)
    depth = torch.rand(2, 64, 64, generator=g) * 5 + 0.5
    valid = torch.ones_like(depth, dtype=torch.bool)
    img32, fD32 = prepare_inputs(tiny_model, rgb, depth, valid)
    with torch.autocast(**BF16):
        img16, fD16 = prepare_inputs(tiny_model, rgb, depth, valid)
        pred = [torch.zeros(2, pn, pn, dtype=torch.long) for pn in tiny_model.patch_nums[:3]]
        t16 = rollout_targets(tiny_model.tokenizer.quantize, fD16, pred)
    t32 = rollout_targets(tiny_model.tokenizer.quantize, fD32, pred)
    assert torch.equal(img16, img32) and torch.equal(fD16, fD32)
    assert all(torch.equal(a, b) for a, b in zip(t16, t32, strict=True))


def test_estimator_bf16_keeps_the_image_prefix_fp32(tiny_model: DepthART):
    est = DepthEstimator(tiny_model, precision="bf16")
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4)) * 2 - 1
    with torch.no_grad():
        ref = tiny_model.image_prefix(x)
        with autocast(est.device, est.precision):
            got = tiny_model.image_prefix(x)
    assert got.dtype == torch.float32 and torch.equal(got, ref)
