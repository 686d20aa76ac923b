"""training/decoder_finetune.py: only the decoder moves, so every frame keeps its tokens."""

from __future__ import annotations

import pytest
import torch

from depthart_core.checkpoint import load_checkpoint, save_checkpoint
from depthart_core.config import get_preset
from depthart_core.data.synthetic.set import write_synthetic_set
from depthart_core.model import DepthART


def test_only_the_decoder_changes_and_the_record_says_how(tmp_path, training_script):
    torch.manual_seed(0)
    base = DepthART(get_preset("tiny_cnn_refine")).eval()
    base_path = save_checkpoint(tmp_path / "base.safetensors", base, {"purpose": "tests"})
    write_synthetic_set(tmp_path / "frames", count=12, seed=0, size=(64, 64), progress=False)
    out = tmp_path / "dec.safetensors"
    args = ["--train-root", str(tmp_path / "frames"), "--checkpoint", str(base_path)]
    args += ["--out", str(out), "--steps", "3", "--batch", "4", "--val", "4", "--lr", "1e-2"]
    assert training_script("decoder_finetune").main(args) == 0

    model, info = load_checkpoint(out)
    before, after = base.state_dict(), model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(
        k.startswith(("tokenizer.decoder.", "tokenizer.post_quant_conv.")) for k in moved
    )
    rec = info["metadata"]["decoder_finetune"]
    assert rec["frames"] == 8 and rec["held_out_frames"] == 4 and len(rec["log"]) == 2
    assert "--steps 3" in rec["command"]


def test_frames_of_another_size_are_refused(tmp_path, training_script):
    base_path = save_checkpoint(
        tmp_path / "base.safetensors", DepthART(get_preset("tiny_cnn_refine")), {}
    )
    write_synthetic_set(tmp_path / "frames", count=2, seed=0, size=(48, 64), progress=False)
    with pytest.raises(SystemExit, match="64x64"):
        training_script("decoder_finetune").main(
            [
                "--train-root",
                str(tmp_path / "frames"),
                "--checkpoint",
                str(base_path),
                "--out",
                str(tmp_path / "x.safetensors"),
            ]
        )
    assert not (tmp_path / "x.safetensors").exists()


def test_a_training_pool_is_read_beside_the_rendered_sets(tmp_path, training_script):
    """--pool reads the trainer's cached pool beside rendered sets; anything else is refused."""
    from depthart_core.training.data import SyntheticPool, pool_metadata

    pool = tmp_path / "pool.safetensors"
    SyntheticPool._render(pool, 0, 64, 6, workers=1, metadata=pool_metadata(0, 64, 6, None))
    write_synthetic_set(tmp_path / "frames", count=5, seed=1, size=(64, 64), progress=False)
    base_path = save_checkpoint(
        tmp_path / "base.safetensors", DepthART(get_preset("tiny_cnn_refine")), {}
    )
    out = tmp_path / "dec.safetensors"
    args = ["--pool", str(pool), "--train-root", str(tmp_path / "frames")]
    args += ["--checkpoint", str(base_path), "--out", str(out), "--steps", "2", "--batch", "2"]
    assert training_script("decoder_finetune").main([*args, "--val", "4"]) == 0
    rec = load_checkpoint(out)[1]["metadata"]["decoder_finetune"]
    assert (rec["frames"], rec["held_out_frames"]) == (7, 4) and rec["pools"] == [str(pool)]

    not_a_pool = tmp_path / "other.safetensors"  # a checkpoint is no pool
    with pytest.raises(SystemExit, match="not a training pool"):
        training_script("decoder_finetune").main(
            ["--pool", str(base_path), "--checkpoint", str(base_path), "--out", str(not_a_pool)]
        )
    assert not not_a_pool.exists()


def test_predicted_decodes_the_models_own_latents(tmp_path, training_script, monkeypatch):
    """--predicted 1 trains on the model's predicted f_hat: the same run with the predictions
    swapped for the true tokens (same draws) gives another decoder; the log scores both; a share
    outside [0, 1] is refused."""
    torch.manual_seed(0)
    base = DepthART(get_preset("tiny_cnn_refine")).eval()
    base_path = save_checkpoint(tmp_path / "base.safetensors", base, {"purpose": "tests"})
    write_synthetic_set(tmp_path / "frames", count=10, seed=0, size=(64, 64), progress=False)
    args = ["--train-root", str(tmp_path / "frames"), "--checkpoint", str(base_path)]
    args += ["--steps", "2", "--batch", "4", "--val", "4", "--lr", "1e-2", "--predicted", "1"]
    script = training_script("decoder_finetune")

    def run(name):
        out = tmp_path / f"{name}.safetensors"
        assert script.main([*args, "--out", str(out)]) == 0
        model, info = load_checkpoint(out)
        return model.tokenizer.decoder.state_dict(), info["metadata"]["decoder_finetune"]

    own, rec = run("own")
    true_codes = {}
    real = script.codes_and_targets

    def keep(*a, **k):
        true_codes["f"] = real(*a, **k)[0]
        return real(*a, **k)

    monkeypatch.setattr(script, "codes_and_targets", keep)
    monkeypatch.setattr(script, "predicted_codes", lambda *a, **k: true_codes["f"])
    swapped, _ = run("swapped")
    assert any(not torch.equal(own[k], swapped[k]) for k in own)
    assert rec["predicted_share"] == 1.0 and "val_abs_rel_predicted" in rec["log"][-1]
    assert script.main([*args, "--score"]) == 0  # scores the checkpoint, writes nothing
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == [
        "base.safetensors",
        "own.safetensors",
        "swapped.safetensors",
    ]
    with pytest.raises(SystemExit):
        script.main([*args[:-1], "1.5", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


def test_resize_takes_rendered_frames_of_another_size(tmp_path, training_script):
    """--resize brings larger renders to the model size as training does (without it: refused)."""
    base_path = save_checkpoint(
        tmp_path / "base.safetensors", DepthART(get_preset("tiny_cnn_refine")), {}
    )
    write_synthetic_set(tmp_path / "frames", count=6, seed=0, size=(96, 96), progress=False)
    args = ["--train-root", str(tmp_path / "frames"), "--checkpoint", str(base_path)]
    args += ["--steps", "1", "--batch", "2", "--val", "2"]
    with pytest.raises(SystemExit, match="--resize"):
        training_script("decoder_finetune").main([*args, "--out", str(tmp_path / "a")])
    out = tmp_path / "b.safetensors"
    assert training_script("decoder_finetune").main([*args, "--resize", "--out", str(out)]) == 0
    assert load_checkpoint(out)[1]["metadata"]["decoder_finetune"]["frames"] == 4
