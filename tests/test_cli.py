"""The `depthart` CLI: predict writes both files; info reports the published parameter counts."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np

from depthart_core.cli import main


def test_predict_writes_npy_and_png(tiny_checkpoint, tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (47, 71, 3), dtype=np.uint8)
    img = tmp_path / "frame.png"
    cv2.imwrite(str(img), rgb[:, :, ::-1])
    out = tmp_path / "out"
    assert main(["predict", str(img), "--checkpoint", tiny_checkpoint, "--out", str(out)]) == 0
    depth = np.load(out / "frame.npy")
    assert depth.shape == (47, 71) and depth.dtype == np.float32
    png = cv2.imread(str(out / "frame_depth.png"))
    assert png.shape == (47, 71, 3)
    from depthart_core.runtime.torch_backend import DepthEstimator

    assert np.allclose(depth, DepthEstimator.from_checkpoint(tiny_checkpoint).predict(rgb))


def test_predict_keeps_images_that_share_a_stem_apart(tiny_checkpoint, tmp_path, capsys):
    rng = np.random.default_rng(1)
    names = [tmp_path / "cam0" / "1.png", tmp_path / "cam1" / "1.png", tmp_path / "cam1" / "1.jpg"]
    names.append(tmp_path / "cam1" / "2.png")
    shapes = [(20, 30), (24, 36), (28, 40), (32, 44)]
    for path, (h, w) in zip(names, shapes, strict=True):
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    out = tmp_path / "out"
    args = ["predict", *map(str, names), "--checkpoint", tiny_checkpoint, "--out", str(out)]
    assert main(args) == 0
    expected = ["cam0__1_png", "cam1__1_png", "cam1__1_jpg", "2"]  # only colliding ones renamed
    for stem, shape in zip(expected, shapes, strict=True):
        assert np.load(out / f"{stem}.npy").shape == shape  # each its own image, none overwritten
        assert (out / f"{stem}_depth.png").is_file()
    assert len(list(out.glob("*.npy"))) == 4
    assert "3 images share a file name" in capsys.readouterr().out


def test_predict_reports_unreadable_image(tiny_checkpoint, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    rc = main(["predict", str(bad), "--checkpoint", tiny_checkpoint, "--out", str(tmp_path / "o")])
    assert rc == 1
    assert "broken.png" in capsys.readouterr().out


def test_info_d16_json_counts():
    out = subprocess.run(
        [sys.executable, "-m", "depthart_core", "info", "--preset", "d16", "--json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    params = json.loads(out)["parameters"]
    assert params["tokenizer"] == 108_948_355
    assert params["transformer"] == 310_283_520


def test_info_checkpoint_and_errors(tiny_checkpoint, capsys):
    assert main(["info", tiny_checkpoint]) == 0
    assert "transformer" in capsys.readouterr().out
    assert main(["info", "--preset", "nope"]) == 1
    assert "unknown preset 'nope'" in capsys.readouterr().err
    assert main(["predict", "x.png", "--checkpoint", "/no/such.safetensors", "--out", "o"]) == 1
    assert "/no/such.safetensors" in capsys.readouterr().err


def test_a_non_finite_training_loss_is_a_one_line_error(monkeypatch, capsys):
    """`depthart train` stopping on NaN exits 1 with the trainer's message, no traceback."""
    from depthart_core import cli
    from depthart_core.cli import train as train_cli

    def stop(_args):
        raise FloatingPointError("non-finite loss (nan) at step 3; stopping. The last good ...")

    monkeypatch.setattr(train_cli, "run", stop)
    assert cli.main(["train", "--config", "x.yaml", "--out", "y"]) == 1
    err = capsys.readouterr().err
    assert "depthart train: error: non-finite loss (nan) at step 3" in err
    assert "Traceback" not in err
