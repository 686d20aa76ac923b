"""`depthart parity`: a run whose figures are not finite numbers is an error, not a result."""

from __future__ import annotations

import json

import numpy as np
import pytest

from depthart_core.cli import main
from depthart_core.runtime import parity


def _nan_result(*_args, **_kwargs) -> dict:
    """What ONNX Runtime 1.19.0 / 1.19.2 gave for the fp16 graph: all-NaN depth."""
    return {
        "frames": 20,
        "token_agreement": 0.0,
        "depth_abs_err_mean": float("nan"),
        "depth_abs_err_max": float("nan"),
        "backend": "onnxruntime CPU",
        "precision": "fp16",
    }


def test_parity_exits_1_naming_the_figures_that_are_not_finite(monkeypatch, capsys) -> None:
    """It printed "depth_abs_err_max": NaN (no JSON at all) and exited 0."""
    monkeypatch.setattr(parity, "fp16_parity", _nan_result)
    assert main(["parity"]) == 1
    out, err = capsys.readouterr()
    shown = json.loads(out)  # valid JSON: the figures that are not numbers are null
    assert shown["depth_abs_err_max"] is None and shown["token_agreement"] == 0.0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(
        "depthart parity: error: depth_abs_err_mean, depth_abs_err_max not finite (nan, nan) "
        "on onnxruntime CPU, fp16 against fp32"
    ), lines[0]
    assert "Traceback" not in err


def test_parity_with_finite_figures_exits_0(monkeypatch, capsys) -> None:
    result = {**_nan_result(), "depth_abs_err_mean": 0.009, "depth_abs_err_max": 0.2}
    monkeypatch.setattr(parity, "fp16_parity", lambda *a, **k: result)
    assert main(["parity"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == result and err == ""


class _Backend:
    """A backend whose depth is NaN where `nan` says: ONNX Runtime 1.19's fp16 graph."""

    image_size = 32

    def __init__(self, nan: bool) -> None:
        self.nan = nan

    def run_with_tokens(self, x):
        depth = np.full((1, 32, 32), np.nan if self.nan else 1.0, dtype=np.float32)
        return depth, np.zeros((1, 4), dtype=np.int64)


def test_the_run_that_gave_nan_depth_is_named(monkeypatch, capsys) -> None:
    """fp16_parity counts each run's non-finite depth pixels; the line says whose they were."""
    monkeypatch.setattr(parity, "CheckpointFile", lambda path: path)
    monkeypatch.setattr(
        parity.OnnxRuntimeBackend,
        "from_checkpoint",
        classmethod(lambda cls, ckpt, precision: _Backend(precision == "fp16")),
    )
    result = parity.fp16_parity("model.safetensors", count=2)
    assert result["nonfinite_depth"] == {"fp16": 2 * 32 * 32}
    assert result["depth_pixels_per_run"] == 2 * 32 * 32
    assert parity.nonfinite_figures(result) == ["depth_abs_err_mean", "depth_abs_err_max"]
    assert main(["parity", "--count", "2", "--checkpoint", "model.safetensors"]) == 1
    err = capsys.readouterr().err
    assert "on onnxruntime CPU, fp16 against fp32; the fp16 run gave 2048 of 2048 depth " in err


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), None])
def test_nonfinite_figures_names_inf_and_missing(value) -> None:
    result = {"token_agreement": 1.0, "depth_abs_err_mean": 0.01, "depth_abs_err_max": value}
    assert parity.nonfinite_figures(result) == ["depth_abs_err_max"]
