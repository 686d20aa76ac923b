"""DepthART targets depend on the model's own predictions; teacher forcing does not."""

from __future__ import annotations

import torch

from depthart_core.config import get_preset
from depthart_core.model import DepthART
from depthart_core.training.objectives import depthart_loss, rollout_targets, teacher_forcing_loss


def _setup(seed=0):
    torch.manual_seed(seed)
    m = DepthART(get_preset("tiny"))
    q = m.tokenizer.quantize
    torch.nn.init.normal_(q.embedding.weight)  # a spread codebook, like a trained one
    f_D = torch.randn(2, q.Cvae, 8, 8)
    return m, q, f_D


def test_targets_equal_teacher_forcing_when_predictions_are_ground_truth():
    m, q, f_D = _setup()
    gt_idx, _, _ = q.quantize(f_D)
    targets = rollout_targets(q, f_D, gt_idx)
    for si, (t, g) in enumerate(zip(targets, gt_idx, strict=False)):
        assert torch.equal(t, g), f"scale {si}"


def test_targets_change_when_earlier_predictions_change():
    m, q, f_D = _setup(1)
    gt_idx, _, _ = q.quantize(f_D)
    wrong = [i.clone() for i in gt_idx]
    wrong[1] = (wrong[1] + 7) % q.vocab_size  # the model erred at scale 2
    targets = rollout_targets(q, f_D, wrong)
    assert torch.equal(targets[0], gt_idx[0]) and torch.equal(targets[1], gt_idx[1])
    changed = [not torch.equal(t, g) for t, g in zip(targets[2:], gt_idx[2:], strict=False)]
    assert changed[0], "the target right after the error must correct it"
    assert any(changed)


def test_depthart_loss_uses_model_predictions_and_backpropagates():
    m, q, f_D = _setup(2)
    img = torch.randn(2, m.transformer.L, q.Cvae)
    out = depthart_loss(m, img, f_D)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    grads = [p.grad for p in m.transformer.parameters()]
    assert all(g is not None for g in grads)
    # the first block's key/value weights get gradient from every scale through the KV cache
    assert m.transformer.blocks[0].attn.mat_qkv.weight.grad.abs().sum() > 0
    tf = teacher_forcing_loss(m, img, f_D)
    assert out.tokens == tf.tokens == 2 * m.transformer.L
    # an untrained model's argmax rollout differs from the ground truth, so the losses differ
    assert abs(float(out.loss) - float(tf.loss)) > 1e-6


def test_last_scale_gumbel_variant_drops_last_scale_from_ce():
    m, q, f_D = _setup(3)
    img = torch.randn(2, m.transformer.L, q.Cvae)
    out = depthart_loss(m, img, f_D, last_scale_gumbel=True)
    assert out.tokens == 2 * (m.transformer.L - q.patch_nums[-1] ** 2)
    assert "latent_mse" in out.logs
    out.loss.backward()
    assert m.transformer.head.weight.grad is not None
