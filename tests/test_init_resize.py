"""init_resize: a model trained at one input size starts a run at another (training/resize.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from depthart_core.checkpoint import save_checkpoint
from depthart_core.config import get_preset, with_overrides
from depthart_core.model import DepthART
from depthart_core.training.config import load_train_config
from depthart_core.training.resize import HITS, LVL, POS, nearest_scales, resize_pyramid_state
from depthart_core.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
SRC, DST = (1, 2, 3, 4, 6, 8), (1, 2, 3, 4, 6, 8, 11, 16)
FAST = [
    "batch_size=2",
    "data.val_count=2",
    "val_every=1000",
    "ckpt_every=1000",
    "data.render_size=0",
    "data.pool_size=0",
    "steps=1",
    "init_tokenizer_only=false",
]


def _source(tmp_path: Path) -> tuple[Path, DepthART]:
    torch.manual_seed(0)
    model = DepthART(get_preset("tiny"))
    for p in model.parameters():  # make every tensor distinctive, so a copy can be told apart
        p.data.normal_()
    model.tokenizer.quantize.ema_vocab_hit_SV.normal_()
    return save_checkpoint(tmp_path / "src.safetensors", model), model


def test_nearest_scales_keep_shared_sides_and_map_new_ones_to_the_closest():
    assert nearest_scales(SRC, DST) == [0, 1, 2, 3, 4, 5, 5, 5]
    assert nearest_scales(SRC, (1, 2, 5)) == [0, 1, 3]  # 5 is as near 4 as 6: the smaller wins
    assert nearest_scales((1, 4), (1, 2, 3)) == [0, 0, 1]


def test_resize_keeps_shared_scales_exactly_and_resizes_the_new_ones(tmp_path):
    _, model = _source(tmp_path)
    state = model.state_dict()
    out = resize_pyramid_state(state, SRC, DST)
    C = state[POS].shape[-1]
    assert out[POS].shape == (1, sum(p * p for p in DST), C)
    n_shared = sum(p * p for p in SRC)
    assert torch.equal(out[POS][:, :n_shared], state[POS])  # scales 1..8 unchanged
    last_1Chw = state[POS][0, n_shared - 64 :].T.reshape(1, C, 8, 8)
    want_16 = F.interpolate(last_1Chw, size=(16, 16), mode="bilinear", align_corners=False)
    assert torch.allclose(out[POS][0, -256:], want_16.reshape(C, 256).T)
    assert torch.equal(out[LVL], state[LVL][[0, 1, 2, 3, 4, 5, 5, 5]])
    assert torch.equal(out[HITS][-1], state[HITS][-1]) and out[HITS].shape[0] == len(DST)
    untouched = [k for k in state if k not in (POS, LVL, HITS)]
    assert untouched and all(out[k] is state[k] for k in untouched)
    with pytest.raises(ValueError, match="does not fit patch_nums"):
        resize_pyramid_state(state, DST, SRC)


def test_trainer_starts_a_128px_run_from_a_64px_checkpoint(tmp_path):
    path, model = _source(tmp_path)
    sets = FAST + [
        f"init_checkpoint={path}",
        "model_overrides.image_size=128",
        "model_overrides.tokenizer.patch_nums=[1,2,3,4,6,8,11,16]",
    ]
    cfg_file = ROOT / "training" / "configs" / "tiny_depthart.yaml"
    with pytest.raises(ValueError, match="init_resize=true"):
        Trainer(load_train_config(cfg_file, sets), tmp_path / "refused")
    tr = Trainer(load_train_config(cfg_file, sets + ["init_resize=true"]), tmp_path / "run")
    assert tr.model.cfg.image_size == 128
    got, src = tr.model.state_dict(), model.state_dict()
    assert torch.equal(
        got["tokenizer.quantize.embedding.weight"], src["tokenizer.quantize.embedding.weight"]
    )
    assert torch.equal(got[POS][:, : src[POS].shape[1]], src[POS])
    want = with_overrides(get_preset("tiny"), {"image_size": 128, "tokenizer": {"patch_nums": DST}})
    assert tr.model.cfg == want
