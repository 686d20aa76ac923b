"""Runs that start from a checkpoint of another shape: init_resize (another input size,
training/resize.py), init_grow (a deeper transformer, training/grow.py) and
init_transformer_from (a new tokenizer of the same shape)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from depthart_core.checkpoint import save_checkpoint
from depthart_core.config import get_preset, with_overrides
from depthart_core.model import DepthART
from depthart_core.sampling import sampling_setting
from depthart_core.training.config import load_train_config
from depthart_core.training.grow import block_count, grow_depth_state
from depthart_core.training.resize import HITS, LVL, POS, nearest_scales, resize_pyramid_state
from depthart_core.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
SRC, DST = (1, 2, 3, 4, 6, 8), (1, 2, 3, 4, 6, 8, 11, 16)
FAST = [
    "random_tokenizer_ok=true",  # no stage-1 run: quick
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


def _grow_source(tmp_path: Path) -> tuple[Path, DepthART]:
    torch.manual_seed(0)
    model = DepthART(get_preset("tiny"))  # depth 2
    for p in model.parameters():  # distinctive weights: a copy can be told from a fresh init
        p.data.normal_(std=0.05)
    return save_checkpoint(tmp_path / "src.safetensors", model), model


def test_grown_model_predicts_exactly_what_the_checkpoint_did(tmp_path):
    path, src = _grow_source(tmp_path)
    sets = FAST + [f"init_checkpoint={path}", "model_overrides.transformer.depth=4"]
    cfg_file = ROOT / "training" / "configs" / "tiny_depthart.yaml"
    with pytest.raises(ValueError, match="depth 4 -> 2.*init_grow=true"):  # without init_grow
        Trainer(load_train_config(cfg_file, sets), tmp_path / "refused")
    tr = Trainer(load_train_config(cfg_file, sets + ["init_grow=true"]), tmp_path / "run")
    grown = tr.model.eval()
    assert len(grown.transformer.blocks) == 4 and block_count(grown.state_dict()) == 4
    got, want = grown.state_dict(), src.state_dict()
    assert all(torch.equal(got[k], v) for k, v in want.items())
    new = grown.transformer.blocks[2]
    assert not new.attn.proj.weight.any() and not new.ffn.fc2.weight.any()
    assert new.attn.mat_qkv.weight.abs().sum() > 0  # the rest keeps a fresh init: it can learn
    rgb = torch.rand(2, 3, 64, 64) * 2 - 1
    for name in ("greedy", "soft"):
        s = sampling_setting(name, 0)
        _, f_src, logits_src = src.eval().generate(rgb, s)
        _, f_got, logits_got = grown.generate(rgb, s)
        assert torch.allclose(f_got, f_src, atol=1e-5)
        assert all(
            torch.allclose(a, b, atol=1e-5) for a, b in zip(logits_got, logits_src, strict=True)
        )


def test_grow_refuses_a_deeper_or_different_checkpoint():
    torch.manual_seed(0)
    shallow = DepthART(get_preset("tiny")).state_dict()
    cfg = get_preset("tiny")
    deep_cfg = dataclasses.replace(cfg, transformer=dataclasses.replace(cfg.transformer, depth=3))
    deep = DepthART(deep_cfg).state_dict()
    with pytest.raises(ValueError, match="checkpoint 3, model 2"):
        grow_depth_state(deep, shallow)
    with pytest.raises(ValueError, match="checkpoint 2, model 2"):
        grow_depth_state(shallow, shallow)
    wide = {k: (v[:1] if k.endswith("head.bias") else v) for k, v in shallow.items()}
    with pytest.raises(ValueError, match="head.bias"):
        grow_depth_state(wide, deep)


def test_transformer_from_one_checkpoint_tokenizer_from_another(tmp_path):
    path, src = _grow_source(tmp_path)  # the trained transformer
    torch.manual_seed(1)
    tok_model = DepthART(get_preset("tiny"))  # a new tokenizer of the same shape
    for p in tok_model.tokenizer.parameters():
        p.data.normal_(std=0.05)
    tok_path = save_checkpoint(tmp_path / "tok.safetensors", tok_model)
    cfg_file = ROOT / "training" / "configs" / "tiny_depthart.yaml"
    sets = FAST[:-1] + [f"init_checkpoint={tok_path}", f"init_transformer_from={path}"]
    tr = Trainer(load_train_config(cfg_file, sets), tmp_path / "run")
    got = tr.model.state_dict()
    for k, v in src.state_dict().items():
        want = tok_model.state_dict()[k] if k.startswith("tokenizer.") else v
        assert torch.equal(got[k], want), k
    grown = Trainer(
        load_train_config(
            cfg_file, sets + ["init_grow=true", "model_overrides.transformer.depth=3"]
        ),
        tmp_path / "grown",
    ).model
    assert len(grown.transformer.blocks) == 3 and not grown.transformer.blocks[2].ffn.fc2.bias.any()
    with pytest.raises(ValueError, match="init_tokenizer_only=true"):
        Trainer(load_train_config(cfg_file, sets + ["init_tokenizer_only=false"]), tmp_path / "x")
    with pytest.raises(ValueError, match="init_grow needs the transformer"):
        Trainer(load_train_config(cfg_file, FAST[:-1] + ["init_grow=true"]), tmp_path / "y")


def test_a_checkpoint_with_an_uncertainty_head_starts_a_run_without_its_stale_head(
    tmp_path, caplog
):
    """The shipped checkpoint carries a head that reads the depth; a run that changes the depth
    starts from everything else and says the head was left out (it once failed on the head's
    unexpected keys)."""
    torch.manual_seed(0)
    src = DepthART(dataclasses.replace(get_preset("tiny"), uncertainty_width=4))
    for p in src.parameters():
        p.data.normal_(std=0.05)
    path = save_checkpoint(tmp_path / "headed.safetensors", src)
    cfg_file = ROOT / "training" / "configs" / "tiny_depthart.yaml"
    cfg = load_train_config(cfg_file, FAST + [f"init_checkpoint={path}"])
    with caplog.at_level("WARNING", logger="depthart_core.training.trainer"):
        tr = Trainer(cfg, tmp_path / "run")
    assert tr.model.uncertainty_head is None
    assert "uncertainty head (width 4)" in caplog.text and "uncertainty_head.py" in caplog.text
    got = tr.model.state_dict()
    want = {k: v for k, v in src.state_dict().items() if not k.startswith("uncertainty_head.")}
    assert got.keys() == want.keys() and all(torch.equal(got[k], v) for k, v in want.items())


def test_a_checkpoint_of_another_model_is_refused_with_the_sets_that_match_it(tmp_path):
    """The shipped model is the preset with a log codec and six blocks: a run from it without
    those overrides is told which --set makes its model match, and then starts."""
    cfg = with_overrides(
        get_preset("tiny"), {"tokenizer": {"depth_codec": "log"}, "transformer": {"depth": 3}}
    )
    path = save_checkpoint(tmp_path / "log6.safetensors", DepthART(cfg))
    cfg_file = ROOT / "training" / "configs" / "tiny_depthart.yaml"
    sets = FAST + [f"init_checkpoint={path}"]
    with pytest.raises(ValueError) as err:
        Trainer(load_train_config(cfg_file, sets), tmp_path / "a")
    assert "tokenizer.depth_codec 'linear' -> 'log'" in str(err.value)
    assert "--set model_overrides.tokenizer.depth_codec=log" in str(err.value)
    codec = sets + ["model_overrides.tokenizer.depth_codec=log"]
    with pytest.raises(ValueError, match="--set model_overrides.transformer.depth=3$"):
        Trainer(load_train_config(cfg_file, codec), tmp_path / "b")
    tr = Trainer(
        load_train_config(cfg_file, codec + ["model_overrides.transformer.depth=3"]), tmp_path / "c"
    )
    assert tr.model.cfg == cfg
