"""KV-cached inference versus the full masked forward, the DepthART mask, gradients."""

from __future__ import annotations

import torch

from depthart_core.config import get_preset
from depthart_core.model import DepthART, SamplingConfig


def _model(seed: int = 0) -> DepthART:
    torch.manual_seed(seed)
    return DepthART(get_preset("tiny")).eval()


def test_kv_cache_equals_full_masked_forward():
    m = _model()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    idx_list, _, logits_steps = m.generate(x)
    q = m.tokenizer.quantize
    with torch.no_grad():
        img = m.image_prefix(x)
        full = m.transformer(img, q.teacher_forcing_inputs(idx_list))
    cached = torch.cat(logits_steps, dim=1)
    assert full.shape == cached.shape == (2, m.transformer.L, m.transformer.V)
    assert (full - cached).abs().max().item() < 1e-4
    idx_full = torch.cat([i.flatten(1) for i in idx_list], 1)
    assert torch.equal(full.argmax(-1), idx_full)


def _full_logits(m, img, depth_in):
    with torch.no_grad():
        return m.transformer(img, depth_in)


def test_mask_depth_token_changes_only_later_scales():
    m = _model(1)
    var = m.transformer
    img = torch.randn(1, var.L, var.Cvae)
    depth_in = torch.randn(1, var.L - 1, var.Cvae)
    base = _full_logits(m, img, depth_in)
    for si in range(1, len(var.patch_nums)):
        bg, ed = var.begin_ends[si]
        changed = depth_in.clone()
        changed[:, bg - 1] += 5.0  # first input token of scale si (inputs start at scale 1)
        out = _full_logits(m, img, changed)
        diff = (out - base).abs().amax(-1)[0]
        assert diff[:bg].max() == 0, f"scale {si} input leaked into earlier logits"
        assert diff[bg:].max() > 1e-6, f"scale {si} input had no effect on its own scale"


def test_mask_image_token_changes_every_scale():
    m = _model(2)
    var = m.transformer
    img = torch.randn(1, var.L, var.Cvae)
    depth_in = torch.randn(1, var.L - 1, var.Cvae)
    base = _full_logits(m, img, depth_in)
    changed = img.clone()
    changed[:, -1] += 5.0  # the last (finest) image token
    diff = (_full_logits(m, changed, depth_in) - base).abs().amax(-1)[0]
    for bg, ed in var.begin_ends:
        assert diff[bg:ed].max() > 1e-6


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    m = DepthART(get_preset("tiny")).train()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    recon, vq_loss, idx_list = m.tokenizer(x)
    img = m.image_prefix(x).detach() + 0 * recon.mean()
    logits = m.transformer(img, m.tokenizer.quantize.teacher_forcing_inputs(idx_list))
    target = torch.cat([i.flatten(1) for i in idx_list], 1)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), target.flatten())
    loss = loss + torch.nn.functional.mse_loss(recon, x) + vq_loss
    loss.backward()
    assert torch.isfinite(loss)
    missing = [n for n, p in m.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"parameters without gradient: {missing}"


def test_sampling_is_seeded_and_differs_from_greedy():
    m = _model(3)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    s = SamplingConfig(greedy=False, temperature=2.0, top_k=50, top_p=0.95, n_samples=5, seed=7)
    a = m.predict_normalized(x, s)
    b = m.predict_normalized(x, s)
    g = m.predict_normalized(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, g)
