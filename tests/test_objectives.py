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
    assert abs(out.loss.item() - tf.loss.item()) > 1e-6


def test_last_scale_gumbel_variant_drops_last_scale_from_ce():
    m, q, f_D = _setup(3)
    img = torch.randn(2, m.transformer.L, q.Cvae)
    out = depthart_loss(m, img, f_D, last_scale_gumbel=True)
    assert out.tokens == 2 * (m.transformer.L - q.patch_nums[-1] ** 2)
    assert "latent_mse" in out.logs
    out.loss.backward()
    assert m.transformer.head.weight.grad is not None


def test_soft_rollout_builds_targets_from_the_soft_reconstruction():
    """With soft_rollout the running f_hat after a scale is f_hat + eta(softmax @ codebook), so the
    next scale's target differs from the argmax rollout's; soft_latent adds a loss whose gradient
    reaches the transformer through the softmax."""
    import torch.nn.functional as F

    from depthart_core.config import get_preset as preset

    torch.manual_seed(0)
    m = DepthART(preset("tiny"))
    q = m.tokenizer.quantize
    torch.nn.init.normal_(q.embedding.weight)
    torch.nn.init.normal_(m.transformer.head.weight, std=0.5)  # peaked, non-uniform logits
    f_D = torch.randn(2, q.Cvae, 8, 8)
    img = torch.randn(2, m.transformer.L, q.Cvae)
    base = depthart_loss(m, img, f_D)
    soft = depthart_loss(m, img, f_D, soft_rollout=True)
    assert soft.logs["ce"] != base.logs["ce"]
    # the soft_mse it logs is the hand-built mean over scales of MSE(f_hat_<k + soft_k, f_D)
    var, K = m.transformer, q.num_scales
    with torch.no_grad():
        ada = var.modulations(var.condition(2, f_D.device))
        logits, cache = var.prefill(img, ada)
        f_hat, mse = torch.zeros_like(f_D), 0.0
        for si, pn in enumerate(q.patch_nums):
            if si > 0:
                logits, cache = var.step(q.next_input(f_hat, si), si, ada, cache)
            emb = (logits.softmax(-1) @ q.embedding.weight).transpose(1, 2).reshape(2, -1, pn, pn)
            f_hat = f_hat + q.contribution(emb, si)
            mse += F.mse_loss(f_hat, f_D).item() / K
    assert abs(soft.logs["soft_mse"] - mse) < 1e-5
    # with last_scale_gumbel the last scale is not in the sum: the mean is over the other K - 1
    # (it was their sum / K, 17 % low on this pyramid)
    with torch.no_grad():
        logits, cache = var.prefill(img, ada)
        f_hat, first = torch.zeros_like(f_D), []
        for si, pn in enumerate(q.patch_nums[:-1]):
            if si > 0:
                logits, cache = var.step(q.next_input(f_hat, si), si, ada, cache)
            emb = (logits.softmax(-1) @ q.embedding.weight).transpose(1, 2).reshape(2, -1, pn, pn)
            f_hat = f_hat + q.contribution(emb, si)
            first.append(F.mse_loss(f_hat, f_D).item())
    gumbel = depthart_loss(m, img, f_D, soft_rollout=True, last_scale_gumbel=True)
    assert abs(gumbel.logs["soft_mse"] - sum(first) / (K - 1)) < 1e-5
    m.zero_grad()
    depthart_loss(m, img, f_D, soft_rollout=True, soft_latent=10.0).loss.backward()
    with_latent = m.transformer.head.weight.grad.clone()
    m.zero_grad()
    soft.loss.backward()
    assert not torch.allclose(with_latent, m.transformer.head.weight.grad)


def test_soft_options_refuse_teacher_forcing_and_negative_weights():
    import pytest

    from depthart_core.training.config import TrainConfig

    assert not TrainConfig().soft_rollout and TrainConfig().soft_latent == 0.0
    with pytest.raises(ValueError, match="mode='teacher_forcing' has none"):
        TrainConfig(mode="teacher_forcing", soft_rollout=True)
    with pytest.raises(ValueError, match="soft_latent must be finite and >= 0, got -1"):
        TrainConfig(soft_latent=-1.0)


def test_detach_embedding_moves_the_detach_after_the_embeddings_as_the_authors_code():
    """Same forward and loss either way; with `detach_embedding` the rollout's depth tokens train
    no embedding: with the conv-encoder prefix the word embedding serves only them, so it gets no
    gradient at all, where the default trains it."""
    torch.manual_seed(5)
    m = DepthART(get_preset("tiny_cnn"))
    q = m.tokenizer.quantize
    torch.nn.init.normal_(q.embedding.weight)
    f_D = torch.randn(2, q.Cvae, 8, 8)
    img = torch.randn(2, m.transformer.L, m.transformer.prefix_dim)
    grads, losses = {}, {}
    for detach in (False, True):
        m.zero_grad(set_to_none=True)
        out = depthart_loss(m, img, f_D, detach_embedding=detach)
        out.loss.backward()
        losses[detach] = out.loss.item()
        grads[detach] = m.transformer.word_embed.weight.grad
    assert losses[False] == losses[True]
    assert grads[False] is not None and grads[False].abs().sum() > 0
    assert grads[True] is None
    # the blocks still learn through the KV cache either way
    assert m.transformer.blocks[0].attn.mat_qkv.weight.grad.abs().sum() > 0


def test_detach_embedding_is_a_depthart_option():
    import pytest

    from depthart_core.training.config import TrainConfig

    assert not TrainConfig().detach_embedding
    with pytest.raises(ValueError, match="detach_embedding"):
        TrainConfig(mode="teacher_forcing", detach_embedding=True)
