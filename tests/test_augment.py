"""Training augmentation beyond the photometric base: white balance and left-right mirroring
(training/augment.py); a mirrored frame trains exactly as the mirrored scene would."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from depthart_core.training.augment import flip_mask, photometric
from depthart_core.training.config import load_train_config
from depthart_core.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
TINY = (
    "model_overrides={transformer: {depth: 1, width: 32, num_heads: 2, image_prefix_dim: 16, "
    "image_encoder_width: 8}}"
)


def _channel_spread(x_B3HW: torch.Tensor) -> torch.Tensor:
    means_B3 = x_B3HW.mean(dim=(2, 3))
    return means_B3.max(dim=1).values - means_B3.min(dim=1).values


def test_white_balance_casts_a_colour_and_zero_leaves_the_older_augmentation():
    gray = torch.zeros(16, 3, 16, 16)  # mid-gray in [-1, 1]
    plain, cast = photometric(gray, 3), photometric(gray, 3, white_balance=0.2)
    assert torch.equal(plain, photometric(gray, 3, white_balance=0.0))
    assert _channel_spread(plain).max() < 0.02  # only the per-pixel sensor noise
    assert _channel_spread(cast).max() > 0.1  # a colour cast on some frames
    assert cast.min() >= -1 and cast.max() <= 1
    with pytest.raises(ValueError, match="white_balance must be in"):
        photometric(gray, 3, white_balance=1.0)


def test_flip_mask_is_seeded_and_follows_the_probability():
    assert torch.equal(flip_mask(64, 7, 0.5), flip_mask(64, 7, 0.5))
    assert not torch.equal(flip_mask(64, 7, 0.5), flip_mask(64, 8, 0.5))
    assert not flip_mask(64, 7, 0.0).any() and flip_mask(64, 7, 1.0).all()
    assert 16 < int(flip_mask(64, 7, 0.5).sum()) < 48
    with pytest.raises(ValueError, match="got 1.5"):
        flip_mask(4, 0, 1.5)


def _trainer(tmp_path: Path, name: str, *sets: str) -> Trainer:
    base = [
        "batch_size=4", "data.val_count=2", "val_every=1000", "ckpt_every=1000", "steps=1",
        "data.pool_size=8", f"data.pool_cache={tmp_path / 'pool.safetensors'}", TINY,
        "white_balance=0.1", "random_tokenizer_ok=true",
    ]  # fmt: skip
    cfg = load_train_config(ROOT / "training/configs/tiny_cnn_depthart.yaml", base + list(sets))
    return Trainer(cfg, tmp_path / name)


def test_a_mirrored_frame_trains_like_the_mirrored_scene(tmp_path):
    """hflip=1 on a pool frame (cached depth latent) gives the loss of the same trainer fed the
    mirrored RGB and depth without a cache, so the mirrored depth latent is the one it learns."""
    flipping = _trainer(tmp_path, "flip", "hflip=1.0")
    plain = _trainer(tmp_path, "plain")
    assert flipping.latents is not None  # the pool's depth latents are cached
    batch = flipping.batches.batch_at(0)
    mirrored = {k: batch[k].flip(-1) for k in ("rgb", "depth", "valid")}
    unmirrored = {k: batch[k] for k in ("rgb", "depth", "valid")}
    with torch.no_grad():
        got = flipping._loss(batch, seed=11).loss
        want = plain._loss(mirrored, seed=11).loss
        other = plain._loss(unmirrored, seed=11).loss
    assert torch.allclose(got, want, atol=1e-5), (got, want)
    assert not torch.allclose(got, other, atol=1e-3)


def test_hflip_is_validated(tmp_path):
    with pytest.raises(ValueError, match="hflip must be a probability"):
        _trainer(tmp_path, "bad", "hflip=2")
    cfg = load_train_config(
        ROOT / "training/configs/tiny_depthart.yaml",
        [
            "batch_size=2",
            "data.val_count=2",
            "data.pool_size=0",
            "hflip=0.5",
            "random_tokenizer_ok=true",
        ],
    )
    with pytest.raises(ValueError, match="hflip=0.5 needs"):
        Trainer(cfg, tmp_path / "vq").train_step()
    with pytest.raises(ValueError, match="white_balance=0.1 needs augment=true"):
        _trainer(tmp_path, "wb", "augment=false")
