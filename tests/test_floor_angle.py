"""training/floor_angle.py: the angle helpers, and one short run through the camera-only fit."""

from __future__ import annotations

import math

import numpy as np
import pytest


def test_pitch_and_angle_of_a_tilted_up(training_script):
    fa = training_script("floor_angle")
    p = math.radians(10.0)
    up_3 = np.array([0.0, -math.cos(p), math.sin(p)])  # the optical frame's up, 10 deg pitched
    assert fa.pitch_roll_deg(up_3) == pytest.approx((10.0, 0.0))
    assert fa.angle_deg(up_3, np.array([0.0, -1.0, 0.0])) == pytest.approx(10.0)
    assert fa.angle_deg(up_3, -up_3) == pytest.approx(0.0, abs=1e-6)  # a normal's sign is free


def test_a_short_run_fits_every_rig_and_the_true_depth_is_level(training_script, capsys):
    """The shipped model on one room per rig: each rig gets a line, and the fit on the true
    depth finds the true up to within 2 deg (a broken fit or sign is tens of degrees off)."""
    assert training_script("floor_angle").main(["--seeds", "0", "--sequences", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for rig in ("wheeled", "cart", "mast"):
        (line,) = [x for x in lines if x.startswith(f"{rig} (")]
        assert "frames fitted" in line
        assert float(line.split("true depth median ")[1].split(",")[0]) < 2.0
