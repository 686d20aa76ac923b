"""The "cnn" image prefix (issue #14): shapes, KV cache == full masked forward, gradients into the
encoder through the token loss and the auxiliary latent loss, training with augmentation and
exact resume, the photometric augmentation, the mean-depth-map prior, and the config guard."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthart_core.config import get_preset, with_overrides
from depthart_core.evaluation.runner import mean_depth_baseline, mean_depth_map
from depthart_core.model import DepthART
from depthart_core.training import objectives as obj
from depthart_core.training.augment import photometric

SMALL = {"transformer": {"depth": 2, "width": 64, "num_heads": 2, "image_prefix_dim": 32}}


def _model(seed: int = 0) -> DepthART:
    torch.manual_seed(seed)
    cfg = with_overrides(get_preset("tiny_cnn"), SMALL)
    return DepthART(cfg).eval()


def test_prefix_has_one_token_per_pyramid_position_and_the_encoder_dim():
    m = _model()
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    img, f_aux = m.image_prefix_and_latent(x)
    assert img.shape == (3, m.transformer.L, 32)
    assert f_aux.shape == (3, m.cfg.tokenizer.z_channels, 8, 8)
    # the coarsest scale is the mean of the finest: area resizing of the same features
    assert torch.allclose(img[:, 0], img[:, -64:].mean(dim=1), atol=1e-5)
    assert "transformer.image_encoder.stem.0.weight" in m.state_dict()
    vq = DepthART(get_preset("tiny"))
    assert not any("image_encoder" in k or "image_embed" in k for k in vq.state_dict())


def test_kv_cache_equals_full_masked_forward_with_cnn_prefix():
    m = _model()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    idx_list, _, logits_steps = m.generate(x)
    with torch.no_grad():
        full = m.transformer(
            m.image_prefix(x), m.tokenizer.quantize.teacher_forcing_inputs(idx_list)
        )
    cached = torch.cat(logits_steps, dim=1)
    assert (full - cached).abs().max().item() < 1e-4
    assert torch.equal(full.argmax(-1), torch.cat([i.flatten(1) for i in idx_list], 1))


def test_prediction_depends_on_the_image():
    m = _model()
    a = m.image_prefix(torch.zeros(1, 3, 64, 64))
    b = m.image_prefix(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("mode", ["depthart", "teacher_forcing"])
def test_encoder_gets_gradients_from_tokens_and_from_the_aux_loss(mode):
    m = _model().train()
    rgb = torch.rand(2, 3, 64, 64) * 2 - 1
    depth = torch.rand(2, 64, 64) + 0.5
    f_D = obj.depth_latent(m, depth, torch.ones_like(depth, dtype=torch.bool))
    img, f_aux = m.image_prefix_and_latent(rgb)
    loss_fn = obj.depthart_loss if mode == "depthart" else obj.teacher_forcing_loss
    loss_fn(m, img, f_D).loss.backward(retain_graph=True)
    stem = m.transformer.image_encoder.stem[0].weight
    assert stem.grad is not None and stem.grad.abs().sum() > 0
    assert m.transformer.image_encoder.aux.weight.grad is None  # the token loss skips the head
    m.zero_grad()
    obj.aux_latent_loss(f_aux, f_D).backward()
    assert m.transformer.image_encoder.aux.weight.grad.abs().sum() > 0
    assert m.transformer.head.weight.grad is None


def test_unknown_prefix_kind_is_rejected():
    with pytest.raises(ValueError, match="image_prefix='clip'"):
        with_overrides(get_preset("tiny"), {"transformer": {"image_prefix": "clip"}})


def test_photometric_augmentation_is_seeded_bounded_and_changes_images():
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    a, b, c = photometric(x, 5), photometric(x, 5), photometric(x, 6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= -1 and a.max() <= 1
    assert (a - x).abs().mean() > 0.01
    with pytest.raises(ValueError, match=r"\(4, 16, 16\)"):
        photometric(x[:, 0], 0)


def test_cnn_prefix_training_with_aux_and_augment_resumes_exactly(tmp_path):
    from pathlib import Path

    from safetensors.torch import load_file

    from depthart_core.training.config import load_train_config
    from depthart_core.training.trainer import Trainer

    root = Path(__file__).resolve().parent.parent
    sets = [
        "batch_size=2", "data.val_count=2", "val_every=1000", "ckpt_every=1000",
        "random_tokenizer_ok=true",
        "data.pool_size=0", "steps=12", "model_overrides={transformer: {depth: 1, width: 32, "
        "num_heads: 2, image_prefix_dim: 16, image_encoder_width: 8}}",
    ]  # fmt: skip

    def cfg():
        return load_train_config(root / "training/configs/tiny_cnn_depthart.yaml", sets)

    straight = Trainer(cfg(), tmp_path / "a")
    logs = straight.train_step()
    assert "aux" in logs and np.isfinite(logs["aux"])
    straight.fit(progress=False)
    first = Trainer(cfg(), tmp_path / "b")
    first.fit(steps=6, progress=False)
    first.save()
    resumed = Trainer(cfg(), tmp_path / "b", resume=True)
    resumed.fit(progress=False)
    a = load_file(str(tmp_path / "a" / "train_state.safetensors"))
    b = load_file(str(tmp_path / "b" / "train_state.safetensors"))
    for k in a:
        if k.startswith("model.transformer.image_encoder"):
            assert torch.equal(a[k], b[k]), k


def test_augment_needs_the_cnn_prefix(tmp_path):
    from pathlib import Path

    from depthart_core.training.config import load_train_config
    from depthart_core.training.trainer import Trainer

    root = Path(__file__).resolve().parent.parent
    cfg = load_train_config(
        root / "training/configs/tiny_depthart.yaml",
        [
            "batch_size=2",
            "data.val_count=2",
            "data.pool_size=0",
            "augment=true",
            "random_tokenizer_ok=true",
        ],
    )
    with pytest.raises(ValueError, match="augment=true needs"):
        Trainer(cfg, tmp_path / "r").train_step()


def test_mean_depth_prior_is_the_codec_mean_of_training_frames():
    from depthart_core.data.synthetic.config import SynthConfig
    from depthart_core.data.synthetic.render import render_batch
    from depthart_core.tokenizer.codec import decode_depth, encode_depth

    prior = mean_depth_map(seed=3, count=8, size=16)
    b = render_batch(3, list(range(8)), SynthConfig(size=(16, 16)))
    want = decode_depth(encode_depth(b["depth"], b["valid"])[0]).mean(0).numpy()
    assert prior.shape == (16, 16)
    assert np.allclose(prior, want, atol=1e-5)
    assert 0.05 < float(prior.mean()) < 1.0
    out = mean_depth_baseline(np.zeros((30, 40, 3), np.uint8))
    assert out.shape == (30, 40) and np.isfinite(out).all()


def _refining_model(seed: int = 0) -> DepthART:
    torch.manual_seed(seed)
    over = {"transformer": {**SMALL["transformer"], "refine_from_image_latent": True}}
    return DepthART(with_overrides(get_preset("tiny_cnn"), over)).eval()


def test_refinement_starts_from_the_encoder_latent():
    m = _refining_model()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    img, f_aux = m.image_prefix_and_latent(x)
    idx_list, f_hat, logits_steps = m.generate(x)
    q = m.tokenizer.quantize
    assert torch.allclose(f_hat, f_aux + q.idx_to_f_hat(idx_list), atol=1e-5)
    with torch.no_grad():  # the cached loop equals the full masked pass fed from f_aux
        full = m.transformer(img, q.teacher_forcing_inputs(idx_list, f_aux))
    assert (full - torch.cat(logits_steps, dim=1)).abs().max().item() < 1e-4
    plain = _model()
    plain.load_state_dict(m.state_dict())
    assert not torch.allclose(plain.generate(x)[1], f_hat)


@pytest.mark.parametrize("mode", ["depthart", "teacher_forcing"])
def test_refinement_targets_are_the_residual_to_the_start(mode):
    m = _refining_model()
    f_D = torch.randn(2, m.cfg.tokenizer.z_channels, 8, 8)
    f_start = 0.9 * f_D + 0.1 * torch.randn_like(f_D)
    img = m.image_prefix(torch.rand(2, 3, 64, 64) * 2 - 1)
    q = m.tokenizer.quantize
    want = q.quantize(f_D - f_start)[0]
    if mode == "teacher_forcing":
        out = obj.teacher_forcing_loss(m, img, f_D, f_start)
        full = m.transformer(img, q.teacher_forcing_inputs(want, f_start))
        target = torch.cat([i.flatten(1) for i in want], 1)
        ce = torch.nn.functional.cross_entropy(full.flatten(0, 1), target.flatten())
        assert torch.allclose(out.loss, ce, atol=1e-5)
    else:
        # the first target is the coarsest code of the residual to the start, not of f_D
        assert torch.equal(q.residual_target(f_D, f_start, 0), want[0])
        with_start = obj.depthart_loss(m, img, f_D, f_start=f_start).loss
        from_zero = obj.depthart_loss(m, img, f_D).loss
        assert torch.isfinite(with_start) and not torch.allclose(with_start, from_zero)


def test_refinement_needs_the_cnn_prefix():
    with pytest.raises(ValueError, match="refine_from_image_latent needs"):
        with_overrides(get_preset("tiny"), {"transformer": {"refine_from_image_latent": True}})
