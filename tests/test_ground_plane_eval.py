"""The floor-scale evaluation (`depthart_core.evaluation.ground_plane`): a per-frame true up
flows into the fit, the floor oracle and the up's noise are what they claim."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthart_core.evaluation.ground_plane import (
    RigEval,
    evaluate_rig,
    noisy_up,
    summary_row,
    true_floor,
)
from depthart_core.ground_plane import GroundPlaneConfig, expected_up


def test_true_up_removes_the_wobble_the_prior_does_not_know():
    """Ground-truth depth (metres, so a steady unit: no unit tracking) on a cart path with pitch
    and roll bumps: the true up gives the exact scale; the mount prior is off by the bumps."""
    steady = GroundPlaneConfig(track_units=False)
    common = dict(sequences=1, frames=6, ground=steady)
    rows = {}
    for up in ("prior", "true"):
        rig = RigEval.named("cart", up_source=up, **common)
        stats = evaluate_rig(rig, None, normals=("prior",))
        rows[up] = summary_row("cart", rig, ("gt", "prior"), stats[("gt", "prior")])
    assert rows["true"]["scaled"] == 6 and rows["true"]["up_source"] == "true"
    assert rows["true"]["metric_abs_rel"] < 0.005
    assert rows["prior"]["metric_abs_rel"] > 3 * rows["true"]["metric_abs_rel"] + 0.005


def test_noisy_up_rotates_by_about_the_noise_and_keeps_unit_length():
    rng = np.random.default_rng(0)
    up = expected_up(10.0, 0.0)
    assert noisy_up(up, 0.0, rng) is up
    angles = []
    for _ in range(400):
        v = noisy_up(up, 1.0, rng)
        assert np.linalg.norm(v) == pytest.approx(1.0)
        angles.append(math.degrees(math.acos(np.clip(v @ up, -1.0, 1.0))))
    # the angle between: the norm of the two axes perpendicular to up, Rayleigh with sigma 1 deg
    assert np.median(angles) == pytest.approx(math.sqrt(2 * math.log(2)), rel=0.15)


def test_true_floor_marks_the_floor_of_the_lower_half_only():
    h, w, f = 40, 60, 50.0
    K = np.array([[f, 0.0, (w - 1) / 2], [0.0, f, (h - 1) / 2], [0.0, 0.0, 1.0]])
    v = np.mgrid[0:h, 0:w][0].astype(np.float64)
    ray_y = (v - K[1, 2]) / f
    depth = np.where(ray_y > 0.05, 1.0 / np.maximum(ray_y, 1e-6), 4.0)  # floor 1 m down, a wall
    valid = np.ones((h, w), bool)
    floor = true_floor(depth, valid, K, np.array([0.0, -1.0, 0.0]), 1.0)
    assert floor[ray_y > 0.05].all() and not floor[ray_y <= 0.05].any()
    assert not true_floor(depth, valid, K, np.array([0.0, -1.0, 0.0]), 1.5).any()


def test_rig_eval_refuses_an_unknown_up_source():
    with pytest.raises(ValueError, match="up_source must be one of"):
        RigEval.named("cart", up_source="imu")
    with pytest.raises(ValueError, match="up_noise_deg"):
        RigEval.named("cart", up_noise_deg=-1.0)
