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
