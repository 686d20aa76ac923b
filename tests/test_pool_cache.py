"""Synthetic pool caches (training/data.py): a cached pool is reused only when it is readable and
was rendered by this generator with these settings; a damaged or stale one is rendered again.
Latents cached from a pool are keyed by the pool's content."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from depthart_core.data.synthetic.render import generator_digest
from depthart_core.training import data
from depthart_core.training.config import load_train_config
from depthart_core.training.data import SyntheticPool
from depthart_core.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent


def _pool(path: Path, **kw) -> SyntheticPool:
    return SyntheticPool(seed=2, size=16, count=4, batch=2, cache=str(path), **kw)


def _metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def test_pool_records_how_it_was_rendered_and_is_reused(tmp_path, monkeypatch):
    path = tmp_path / "pool.safetensors"
    first = _pool(path)
    first_rgb = first.rgb.clone()
    meta = _metadata(path)
    assert meta["generator"] == generator_digest() and len(meta["generator"]) == 16
    assert (meta["seed"], meta["size"], meta["count"]) == ("2", "16", "4")

    def no_render(*a, **k):
        raise AssertionError("a good cached pool was rendered again")

    monkeypatch.setattr(SyntheticPool, "_render", staticmethod(no_render))
    again = _pool(path)
    assert torch.equal(first_rgb, again.rgb) and first.digest == again.digest


def test_a_pool_rendered_again_keeps_its_digest(tmp_path):
    """safetensors writes its metadata in no fixed order, so one pool rendered twice is two byte
    strings: the digest that keys its latents is of the content, not the bytes."""
    a, b = _pool(tmp_path / "a.safetensors"), _pool(tmp_path / "b.safetensors")
    assert a.digest == b.digest
    other = SyntheticPool(seed=3, size=16, count=4, batch=2, cache=str(tmp_path / "c.safetensors"))
    assert other.digest != a.digest


@pytest.mark.parametrize("damage", ["truncate", "garbage", "old generator", "no metadata"])
def test_damaged_or_stale_pool_is_rendered_again_with_a_warning(tmp_path, caplog, damage):
    path = tmp_path / "pool.safetensors"
    fresh_depth = _pool(path).depth.clone()  # the pool's tensors may map the file
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a safetensors file")
    else:
        meta = _metadata(path)
        tensors = {k: v.clone() for k, v in load_file(str(path)).items()}
        tensors["depth"] = tensors["depth"] * 2  # what an older generator might have drawn
        if damage == "old generator":
            save_file(tensors, str(path), metadata={**meta, "generator": "0" * 16})
        else:
            save_file(tensors, str(path))  # a pool written before pools had metadata
    with caplog.at_level(logging.WARNING, logger=data.__name__):
        again = _pool(path)
    assert str(path) in caplog.text and "rendering it again" in caplog.text
    assert torch.equal(again.depth, fresh_depth)
    assert _metadata(path)["generator"] == generator_digest()


def test_other_settings_are_named_in_the_warning(tmp_path, caplog):
    path = tmp_path / "pool.safetensors"
    _pool(path)
    with caplog.at_level(logging.WARNING, logger=data.__name__):
        other = SyntheticPool(seed=3, size=16, count=4, batch=2, cache=str(path))
    assert "seed='2', not '3'" in caplog.text
    assert _metadata(path)["seed"] == "3" and len(other.rgb) == 4


def test_latents_follow_the_pool_content_not_its_name(tmp_path):
    pool = tmp_path / "pool.safetensors"
    sets = [
        "batch_size=2", "data.val_count=2", "val_every=1000", "ckpt_every=1000", "steps=1",
        "data.pool_size=4", f"data.pool_cache={pool}", "data.render_size=0",
        "random_tokenizer_ok=true",
    ]  # fmt: skip
    cfg = load_train_config(ROOT / "training/configs/tiny_depthart.yaml", sets)
    first = Trainer(cfg, tmp_path / "a")
    first_latents = first.latents[1].clone()
    tensors = {k: v.clone() for k, v in load_file(str(pool)).items()}
    tensors["depth"] = tensors["depth"].flip(-1).contiguous()  # same name and metadata
    save_file(tensors, str(pool), metadata=_metadata(pool))
    second = Trainer(cfg, tmp_path / "b")
    assert len(list(tmp_path.glob("pool.latents-*.safetensors"))) == 2
    assert not torch.equal(first_latents, second.latents[1])


def test_frames_without_valid_depth_are_skipped_not_fatal(tmp_path, caplog):
    """A pool frame with no valid depth pixel (a camera facing a window; it happened in the
    seed-8 pool) has no q98 to encode: the pool drops it once, says so, and every batch then
    encodes; a file of nothing but such frames is refused by name."""
    rgb = torch.zeros(5, 3, 8, 8, dtype=torch.uint8)
    depth = torch.rand(5, 8, 8) + 0.5
    valid = torch.ones(5, 8, 8, dtype=torch.bool)
    valid[2] = False
    depth[2] = 0.0
    path = tmp_path / "frames.safetensors"
    save_file({"rgb": rgb, "depth": depth, "valid": valid}, str(path))
    with caplog.at_level(logging.WARNING, logger=data.__name__):
        pool = data.FramePool(path, seed=0, batch=4)
    assert pool.stored == 5 and pool.dropped_empty == 1 and len(pool.rgb) == 4
    assert "1 of 5 frames have no valid depth pixel" in caplog.text
    for step in range(4):
        assert pool.batch_at(step)["valid"].flatten(1).any(1).all()
    empty = tmp_path / "empty.safetensors"
    save_file({"rgb": rgb, "depth": depth * 0, "valid": valid & False}, str(empty))
    with pytest.raises(ValueError, match="no frames with valid depth"):
        data.FramePool(empty, seed=0, batch=2)


@pytest.mark.parametrize("progress", [True, False])
def test_the_pool_render_bar_obeys_progress(tmp_path, capsys, progress):
    """`train --no-progress` reaches the pool's rendering (a 12,000-frame log once filled a
    training log with bars despite the flag)."""
    _pool(tmp_path / "pool.safetensors", progress=progress)
    err = capsys.readouterr().err
    assert ("render synthetic pool" in err) == progress


def test_the_generator_digest_follows_code_not_comments(tmp_path):
    """A comment or a docstring changed in the renderer keeps cached pools; code does not."""
    from depthart_core.data.synthetic.render import source_digest

    src = tmp_path / "mod.py"
    src.write_text('"""A module."""\n\ndef f(x):\n    """Double."""\n    return 2 * x  # two\n')
    before = source_digest(tmp_path)
    src.write_text('"""Another text."""\n\ndef f(x):\n    """Twice."""\n    return 2 * x  # 2\n')
    assert source_digest(tmp_path) == before
    src.write_text('"""A module."""\n\ndef f(x):\n    """Double."""\n    return 3 * x\n')
    assert source_digest(tmp_path) != before
