"""`depthart predict --uncertainty` with a fine-tune whose uncertainty head is a copy of its base's
(made by a depthart from before 2026-12-06 11:44 UTC, commit eca7b8a): the head is left out at
load (`checkpoint.copied_head`), and predict says why, as `depthart info` and the node do, rather
than that the checkpoint never had one."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depthart_core.checkpoint import read_checkpoint_info, save_checkpoint
from depthart_core.cli import main


def test_predict_uncertainty_names_a_copied_head_before_any_work(
    headed_model, tmp_path, monkeypatch, capsys
):
    import depthart_core.runtime as runtime

    def no_backend(*args, **kwargs):
        raise AssertionError("a backend was built")

    monkeypatch.setattr(runtime, "get_backend", no_backend)
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path / "cache"))
    train = {"train_config": {"init_checkpoint": "/runs/base.safetensors"}}
    ckpt = save_checkpoint(tmp_path / "old_ft.safetensors", headed_model, train)
    why = read_checkpoint_info(ckpt)["uncertainty_dropped"]
    img = tmp_path / "frame.png"
    cv2.imwrite(str(img), np.zeros((20, 30, 3), np.uint8))
    out = tmp_path / "pu"
    args = ["predict", str(img), "--checkpoint", str(ckpt), "--out", str(out)]
    assert main([*args, "--uncertainty"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "has no uncertainty head" not in err, err
    assert why in err and "copied unchanged from /runs/base.safetensors" in err, err
    assert "training/uncertainty_head.py" in err and "old_ft.safetensors" in err, err
    assert "drop --uncertainty" in err, err
    assert not out.exists()


@pytest.mark.parametrize("meta", [{}, {"train_config": {"init_checkpoint": ""}}])
def test_predict_uncertainty_without_a_copied_head_is_not_said_to_have_one(
    tiny_model, tmp_path, monkeypatch, capsys, meta
):
    """A checkpoint with no head at all keeps the message that it has none."""
    import depthart_core.runtime as runtime

    monkeypatch.setattr(runtime, "get_backend", lambda *a, **k: pytest.fail("backend built"))
    ckpt = save_checkpoint(tmp_path / "plain.safetensors", tiny_model, meta)
    img = tmp_path / "frame.png"
    cv2.imwrite(str(img), np.zeros((20, 30, 3), np.uint8))
    args = ["predict", str(img), "--checkpoint", str(ckpt), "--out", str(tmp_path / "pu")]
    assert main([*args, "--uncertainty"]) == 1
    err = capsys.readouterr().err.strip()
    assert "has no uncertainty head" in err and "copied" not in err, err
