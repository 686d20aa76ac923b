"""`depthart predict --camera-height M --hfov DEG`: metric .npy and .ply through the floor's plane,
or one line saying why not. The backend is replaced by one that returns an analytic depth map
(a camera 1.2 m above a floor, or facing a wall) divided by a known scale, so the metric output
has an exact expected value."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import depthart_core.runtime
from depthart_core.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ground_plane import TRUE_SCALE, scene  # noqa: E402  (the analytic scenes)

HFOV = 70.0  # the scenes' camera


class FakeBackend:
    """Returns the relative depth it was given for every image."""

    def __init__(self, rel_HW: np.ndarray) -> None:
        self.rel_HW = rel_HW

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        assert rgb.shape[:2] == self.rel_HW.shape
        return self.rel_HW

    def describe(self) -> str:
        return "fake"


@pytest.fixture
def predict_with(monkeypatch, tmp_path):
    def run(metric_HW: np.ndarray, *extra: str) -> tuple[int, Path]:
        rel = (metric_HW / TRUE_SCALE).astype(np.float32)
        monkeypatch.setattr(depthart_core.runtime, "get_backend", lambda *a, **k: FakeBackend(rel))
        img = tmp_path / "view.png"
        cv2.imwrite(str(img), np.full((*metric_HW.shape, 3), 128, np.uint8))
        out = tmp_path / "out"
        return main(["predict", str(img), "--out", str(out), "--hfov", str(HFOV), *extra]), out

    return run


def test_metric_npy_and_ply_from_the_floor(predict_with, capsys):
    metric, _ = scene(1.2, 12.0, hfov=HFOV)
    rc, out = predict_with(metric, "--camera-height", "1.2", "--ply")
    assert rc == 0
    said = capsys.readouterr().out
    assert f"{TRUE_SCALE:.3g}" in said and "m per relative unit" in said
    depth = np.load(out / "view.npy")
    valid = metric > 0
    np.testing.assert_allclose(depth[valid], metric[valid], rtol=0.01)
    head, body = (out / "view.ply").read_bytes().split(b"end_header\n", 1)
    xyz = np.frombuffer(body, dtype=[("xyz", "<f4", 3), ("c", "u1", 3)])["xyz"]
    np.testing.assert_allclose(np.sort(xyz[:, 2]), np.sort(depth[valid]), rtol=1e-6)


def test_the_camera_angle_said_is_from_level_whatever_the_prior(predict_with, capsys):
    """The line said "N deg from level" but printed the angle from the --ground-pitch prior: the
    same floor read 11, 1 or 19 deg "from level" as the prior changed."""
    metric, _ = scene(1.2, 12.0, hfov=HFOV)
    for prior, off in (("0", 12), ("12", 0), ("20", 8)):
        rc, _ = predict_with(metric, "--camera-height", "1.2", "--ground-pitch", prior)
        said = capsys.readouterr().out
        assert rc == 0, said
        assert f"camera 12 deg from level, {off} deg from the --ground-pitch prior" in said, said


def test_no_floor_is_one_line_and_no_files(predict_with, capsys):
    wall, _ = scene(1.2, 0.0, wall=0.6, hfov=HFOV)
    rc, out = predict_with(wall, "--camera-height", "1.2")
    assert rc == 1
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("skipped")]
    assert lines == [
        f"skipped {out.parent / 'view.png'}: no metric scale: no floor in view: the dominant "
        "plane is 90 deg from up > 35 (a wall or a ramp, or the camera pitched more than that "
        "from the pitch prior of 0 deg)"
    ]
    assert not list(out.glob("view*"))


def test_a_camera_pitched_down_steeply_gives_its_pitch(predict_with, capsys):
    """A camera 1.5 m up looking 50 deg down: the floor fills the view, but it is 50 deg from
    a level camera's up, so without --ground-pitch it is refused; with it the scale is found."""
    metric, _ = scene(1.5, 50.0, hfov=HFOV)
    rc, out = predict_with(metric, "--camera-height", "1.5")
    assert rc == 1 and "pitch prior of 0 deg" in capsys.readouterr().err
    rc, out = predict_with(metric, "--camera-height", "1.5", "--ground-pitch", "45")
    assert rc == 0, capsys.readouterr()
    depth, valid = np.load(out / "view.npy"), metric > 0
    np.testing.assert_allclose(depth[valid], metric[valid], rtol=0.01)


def test_a_bad_ground_angle_stops_before_the_model(monkeypatch, tmp_path, capsys):
    def no_model(*a, **k):
        raise AssertionError("the model was loaded for a bad --ground-max-angle")

    monkeypatch.setattr(depthart_core.runtime, "get_backend", no_model)
    argv = ["predict", "x.png", "--out", str(tmp_path / "o"), "--camera-height", "1.2"]
    assert main([*argv, "--ground-max-angle", "95"]) == 1
    err = capsys.readouterr().err
    assert "error: --ground-max-angle must be in (0, 90), got 95" in err
    for bad in ("inf", "nan", "100"):  # inf failed with "math domain error" after loading
        assert main([*argv, "--ground-pitch", bad]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--ground-pitch must be finite and in [-90, 90]" in err, err


def test_options_that_need_another_are_refused_without_it(monkeypatch, tmp_path, capsys):
    """`--ground-pitch 45` without --camera-height was accepted and did nothing (relative depth
    came out as if the pitch had been taken into account); likewise --ply-stride, --hfov."""

    def no_model(*a, **k):
        raise AssertionError("the model was loaded for options that do nothing")

    monkeypatch.setattr(depthart_core.runtime, "get_backend", no_model)
    argv = ["predict", "x.png", "--out", str(tmp_path / "o")]
    for extra, said in (
        (["--ground-pitch", "45"], "--ground-pitch set, but it only takes effect with "
         "--camera-height"),
        (["--ground-pitch", "45", "--ground-max-angle", "50"], "--ground-pitch, "
         "--ground-max-angle set"),
        (["--ply-stride", "4"], "--ply-stride set, but it only takes effect with --ply"),
        (["--hfov", "90"], "--hfov set, but it only takes effect with --ply or --camera-height"),
    ):  # fmt: skip
        assert main([*argv, *extra]) == 1, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("bad", ["0", "-1.2", "nan", "inf"])
def test_bad_camera_height_stops_before_the_model(monkeypatch, tmp_path, capsys, bad):
    def no_model(*a, **k):
        raise AssertionError("the model was loaded for a bad --camera-height")

    monkeypatch.setattr(depthart_core.runtime, "get_backend", no_model)
    rc = main(["predict", "x.png", "--out", str(tmp_path / "o"), "--camera-height", bad])
    assert rc == 1
    err = capsys.readouterr().err
    assert "camera height must be finite and > 0 metres" in err and repr(float(bad)) in err
