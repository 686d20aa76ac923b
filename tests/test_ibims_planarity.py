"""iBims-1 pe-fla / pe-ori (the official definition) and the paper's evaluation-resolution rule."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from depthart_core.data.benchmarks.ibims import IBims1
from depthart_core.evaluation.planarity import plane_errors
from depthart_core.evaluation.protocols import paper_eval_size
from depthart_core.evaluation.runner import Model, evaluate_predictions, run_eval

H, W = 480, 640
CALIB = (500.0, 520.0, 320.5, 240.5)


def plane_depth(normal, k: float) -> np.ndarray:
    """Depth of the plane n . P = k, with P = d ((c - cx) / fx, 1, -(r - cy) / fy), 1-based c, r."""
    fx, fy, cx, cy = CALIB
    c, r = np.meshgrid(np.arange(1, W + 1), np.arange(1, H + 1))
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    return (k / (n[0] * (c - cx) / fx + n[1] - n[2] * (r - cy) / fy)).astype(np.float32)


def angle(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return math.degrees(math.acos(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))


N_GT, N_PRED = (0.0, 1.0, 0.3), (0.1, 1.0, 0.2)


def test_planar_prediction_gives_its_tilt_and_no_flatness_error():
    gt = plane_depth(N_GT, 3.0)
    pred = 0.37 * plane_depth(N_PRED, 2.0)  # any scale: each plane is median-scaled first
    labels = np.zeros((H, W), np.int64)
    labels[200:, :] = 1  # 58% of the image
    labels[:10, :10] = 2  # 0.03%: below the official 5%, not scored
    params = np.zeros((2, 7))
    params[:, 4:7] = np.asarray(N_GT) / np.linalg.norm(N_GT)
    fla, ori = plane_errors(gt, pred, np.ones((H, W), bool), CALIB, labels, params)
    assert fla[0] == pytest.approx(0.0, abs=1e-3) and math.isnan(fla[1])
    assert ori[0] == pytest.approx(angle(N_GT, N_PRED), abs=1e-3) and math.isnan(ori[1])
    # a 1 cm-amplitude checkerboard on the true plane: pe-fla near the std of the offsets
    bump = np.where((np.indices((H, W)).sum(0) % 2) == 0, 0.01, -0.01).astype(np.float32)
    fla, ori = plane_errors(gt, gt + bump, np.ones((H, W), bool), CALIB, labels, params)
    assert 0.5 < fla[0] < 1.0 and ori[0] < 0.5


def _write_ibims_planes(root):
    names = ["a", "b"]
    root.mkdir()
    (root / "imagelist.txt").write_text("\n".join(names) + "\n")
    for d in ("rgb", "depth", "mask_invalid", "mask_transp", "calib", "mask_floor"):
        (root / d).mkdir()
    gt = plane_depth(N_GT, 3.0)
    labels = np.zeros((H, W), np.uint8)
    labels[240:, :] = 1
    for n in names:
        cv2.imwrite(str(root / "rgb" / f"{n}.png"), np.full((H, W, 3), 90, np.uint8))
        cv2.imwrite(str(root / "depth" / f"{n}.png"), np.round(gt * 65535 / 50).astype(np.uint16))
        for m in ("mask_invalid", "mask_transp"):
            cv2.imwrite(str(root / m / f"{n}.png"), np.full((H, W), 255, np.uint8))
        (root / "calib" / f"{n}.txt").write_text(",".join(str(v) for v in CALIB) + "\n")
        cv2.imwrite(str(root / "mask_floor" / f"{n}.png"), labels)
        normal = np.asarray(N_GT) / np.linalg.norm(N_GT)
        (root / "mask_floor" / f"{n}.txt").write_text(
            ",".join(str(v) for v in [0, 0, 0, 0, *normal.tolist()]) + "\n"
        )


def test_ibims_reader_and_runner_report_pe_fla_and_pe_ori(tmp_path):
    root = tmp_path / "ibims"
    _write_ibims_planes(root)
    ds = IBims1(root)
    assert ds[0].extras["calib"] == pytest.approx(CALIB)
    pred = plane_depth(N_PRED, 1.0)
    res = evaluate_predictions(ds, lambda rgb: pred, progress=False)
    assert res.aggregate["n_planes"] == 2
    assert res.aggregate["pe_ori"] == pytest.approx(angle(N_GT, N_PRED), abs=1e-2)
    assert res.aggregate["pe_fla"] < 0.05  # the 16-bit PNG quantises the plane a little


def test_paper_resolution_rule(tmp_path):
    assert paper_eval_size("ibims1") is None
    assert all(paper_eval_size(d) == 256 for d in ("nyuv2", "eth3d", "tum", "kitti"))
    root = tmp_path / "ibims"
    _write_ibims_planes(root)
    pred = plane_depth(N_PRED, 1.0)
    model = Model("plane", lambda rgb: pred)
    out = run_eval([model], ["ibims1"], [root], tmp_path / "o", eval_size="paper", progress=False)
    assert out["per_image"][0]["n_valid"] == H * W  # scored at ground-truth resolution
    assert "pe_fla" in json.loads((tmp_path / "o" / "report.json").read_text())["aggregate"]
    assert "pe-fla" in (tmp_path / "o" / "report.md").read_text()
    out = run_eval([model], ["ibims1"], [root], tmp_path / "p", eval_size=256, progress=False)
    assert out["per_image"][0]["n_valid"] == 256 * 256 and "pe_fla" not in out["aggregate"]
