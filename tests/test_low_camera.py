"""training/low_camera.py: the round trip and the error split by near pixels, on low cameras."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from depthart_core.config import get_preset
from depthart_core.model import DepthART


def test_frame_stats_align_per_frame_and_split_near_pixels(training_script):
    mod = training_script("low_camera")
    gt = np.linspace(0.2, 10.0, 400, dtype=np.float32).reshape(20, 20)
    valid = np.ones_like(gt, dtype=bool)
    st = mod.frame_stats(gt / 7.0, gt, valid)  # right up to one scale: no error
    assert st["abs_rel"] < 1e-6 and st["abs_rel_near"] < 1e-6
    assert st["near_share"] == np.mean(gt < 0.1 * np.quantile(gt, 0.98))
    bad = np.where(gt < 1.0, 2.0 * gt, gt) / 7.0  # the near pixels come out twice as far
    st = mod.frame_stats(bad, gt, valid)
    assert abs(st["abs_rel_near"] - 1.0) < 1e-5 and st["abs_rel"] < st["abs_rel_near"]
    assert mod.frame_stats(np.where(gt < 1.0, 0.0, gt), gt, valid)["zero_share"] > 0.05


def test_round_trip_uses_the_models_codec(training_script):
    mod = training_script("low_camera")
    cfg = get_preset("tiny")
    torch.manual_seed(0)
    lin = DepthART(cfg).eval()
    log = DepthART(
        dataclasses.replace(cfg, tokenizer=dataclasses.replace(cfg.tokenizer, depth_codec="log"))
    ).eval()
    log.load_state_dict(lin.state_dict())  # same weights: only the codec differs
    depth = np.linspace(0.3, 12.0, 96 * 128, dtype=np.float32).reshape(96, 128)
    valid = np.ones_like(depth, dtype=bool)
    a, b = mod.round_trip(lin, depth, valid), mod.round_trip(log, depth, valid)
    assert a.shape == b.shape == depth.shape and not np.allclose(a, b)
    assert b.min() >= 1 / 128 - 1e-6  # the log codec never decodes to zero
