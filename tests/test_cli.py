"""The `depthart` CLI: predict writes both files; info reports the published parameter counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

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
    from depthart_core.sampling import sampling_setting

    ref = DepthEstimator.from_checkpoint(tiny_checkpoint, sampling=sampling_setting("soft"))
    assert np.allclose(depth, ref.predict(rgb))  # --sampling soft is the default


def _read_ply(path) -> np.ndarray:
    raw = path.read_bytes()
    head, body = raw.split(b"end_header\n", 1)
    lines = head.decode("ascii").splitlines()
    assert lines[:2] == ["ply", "format binary_little_endian 1.0"]
    n = int(next(x for x in lines if x.startswith("element vertex")).split()[-1])
    rows = np.frombuffer(body, dtype=[("xyz", "<f4", 3), ("c", "u1", 3)])
    assert len(rows) == n
    return rows


def test_predict_ply_back_projects_the_depth(tiny_checkpoint, tmp_path, capsys):
    """--ply: one point per valid pixel, z = the saved depth, x and y through a pinhole of
    --hfov (focal 0.5 W / tan(hfov / 2)), the image's colours; a bad --hfov is named."""
    rgb = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    img = tmp_path / "room.png"
    cv2.imwrite(str(img), rgb[:, :, ::-1])
    out = tmp_path / "out"
    args = ["predict", str(img), "--checkpoint", tiny_checkpoint, "--out", str(out), "--ply"]
    assert main([*args, "--hfov", "90"]) == 0
    assert "depth maps and point clouds" in capsys.readouterr().out
    depth = np.load(out / "room.npy")
    rows = _read_ply(out / "room.ply")
    assert len(rows) == np.isfinite(depth).sum() == 30 * 40
    f = 0.5 * 40 / np.tan(np.radians(45.0))  # 20 px
    v, u = np.mgrid[0:30, 0:40]
    xyz = rows["xyz"].reshape(30, 40, 3)
    np.testing.assert_allclose(xyz[..., 2], depth)
    np.testing.assert_allclose(xyz[..., 0], (u - 19.5) * depth / f, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(xyz[..., 1], (v - 14.5) * depth / f, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(rows["c"].reshape(30, 40, 3), rgb)
    assert main([*args, "--ply-stride", "3"]) == 0
    assert len(_read_ply(out / "room.ply")) == 10 * 14
    assert main([*args, "--hfov", "180"]) == 1
    assert "got 180.0" in capsys.readouterr().err


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
    assert "3 images share a file name" in capsys.readouterr().err


def test_predict_never_writes_over_an_input_or_another_images_output(tmp_path, capsys):
    """`a_uncertainty.png` beside `a.png` with --uncertainty: both would write
    a_uncertainty.npy; a folder of earlier outputs predicted into itself: a.png's output
    a_depth.png is an input. Both refused before any work, naming the files."""
    for name in ("a.png", "a_uncertainty.png", "a_depth.png"):
        cv2.imwrite(str(tmp_path / name), np.full((20, 30, 3), 80, np.uint8))
    before = sorted(p.name for p in tmp_path.iterdir())
    pair = [str(tmp_path / "a.png"), str(tmp_path / "a_uncertainty.png")]
    out = tmp_path / "out"
    assert main(["predict", *pair, "--uncertainty", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "a.png and " in err and "a_uncertainty.png would both write" in err, err
    assert "a_uncertainty.npy" in err and not out.exists()
    assert main(["predict", *pair, "--out", str(out)]) == 0  # without --uncertainty: no clash
    into_itself = [str(tmp_path / "a.png"), str(tmp_path / "a_depth.png")]
    assert main(["predict", *into_itself, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "a_depth.png, an output of" in err and "is one of the input images" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "out"])


def test_predict_reports_unreadable_image(tiny_checkpoint, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    rc = main(["predict", str(bad), "--checkpoint", tiny_checkpoint, "--out", str(tmp_path / "o")])
    assert rc == 1
    assert "broken.png" in capsys.readouterr().err


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


def test_info_checkpoint_and_errors(tiny_checkpoint, capsys, monkeypatch):
    assert main(["info", tiny_checkpoint]) == 0
    assert "transformer" in capsys.readouterr().out
    assert main(["info", "--preset", "nope"]) == 1
    assert "unknown preset 'nope'" in capsys.readouterr().err
    monkeypatch.setenv("DEPTHART_CHECKPOINT", tiny_checkpoint)  # no argument: the default one
    assert main(["info"]) == 0
    assert capsys.readouterr().out.startswith(f"checkpoint {Path(tiny_checkpoint).resolve()}")
    assert main(["info", tiny_checkpoint, "--preset", "tiny"]) == 1
    assert "not both" in capsys.readouterr().err
    assert main(["predict", "x.png", "--checkpoint", "/no/such.safetensors", "--out", "o"]) == 1
    assert "/no/such.safetensors" in capsys.readouterr().err


def test_info_text_shortens_long_metadata_and_names_the_file_and_head(
    headed_model, tmp_path, capsys
):
    """The shipped checkpoint's metadata holds 5,000-character values (curves, logs, commands):
    the text output cuts each to about 120 characters saying how long it is; --json keeps them
    whole. It names the file's sha256 and the uncertainty head's recorded settings."""
    from depthart_core.checkpoint import file_sha256, save_checkpoint

    log = [{"step": i, "train_nll": -1.5 - i / 1e4} for i in range(0, 3000, 25)]
    meta = {"note": "n" * 5000, "uncertainty_head": {"decoding": "soft", "context": False}}
    meta["uncertainty_head"] |= {"log": log}
    meta |= {"training_commands": [f"depthart train --leg {i}" for i in range(200)], "steps": 7}
    path = save_checkpoint(tmp_path / "head.safetensors", headed_model, meta)
    assert main(["info", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 160, max(lines, key=len)
    assert lines[1] == f"sha256 {file_sha256(path)}"
    assert "uncertainty head: context features off, trained on soft decoding" in lines
    assert f"  meta note: {'n' * 80}" in "\n".join(lines)
    assert any(x.endswith(" (5000 chars; --json for all)") for x in lines)
    assert "  meta steps: 7" in lines
    assert main(["info", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metadata"]["note"] == "n" * 5000 and report["sha256"] == file_sha256(path)
    assert report["metadata"]["uncertainty_head"]["log"] == log


def test_output_into_a_closed_pipe_ends_quietly(tiny_checkpoint):
    """`depthart info CKPT | head -1`: the reader goes before the output is written; the command
    ends with 141 (128 + SIGPIPE) and prints nothing (it said "error: Broken pipe")."""
    cmd = [sys.executable, "-m", "depthart_core", "info", tiny_checkpoint]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # long before the interpreter has started and printed
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and err == b"", err.decode()


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


def _parser():
    import argparse

    from depthart_core.cli import build_parser

    p = build_parser()
    return next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize(
    "command", ["train", "eval", "finetune", "synth", "synth-bag", "predict", "replay"]
)
def test_every_command_with_long_work_takes_no_progress(command):
    flags = {o for a in _parser()[command]._actions for o in a.option_strings}
    assert "--no-progress" in flags


def test_synth_and_predict_bars_obey_no_progress(tiny_checkpoint, tmp_path, capsys):
    """A batch job's log gets no bars with --no-progress, and does get them without it."""
    for flag, expect_bar in (([], True), (["--no-progress"], False)):
        out = tmp_path / f"set{len(flag)}"
        assert main(["synth", "--out", str(out), "--count", "3", "--size", "8x8", *flag]) == 0
        assert ("synth set" in capsys.readouterr().err) == expect_bar
        imgs = sorted(str(p) for p in (out / "rgb").glob("*.png"))
        args = ["predict", *imgs, "--checkpoint", tiny_checkpoint, "--out", str(out / "pred")]
        assert main([*args, *flag]) == 0
        assert ("predict:" in capsys.readouterr().err) == expect_bar


def test_synth_bag_shows_a_bar_unless_told_not_to(tmp_path, capsys):
    """Recording a long bag reports its frames as they are written; --no-progress is silent."""
    for flag, expect_bar in (([], True), (["--no-progress"], False)):
        out = tmp_path / f"bag{len(flag)}"
        argv = ["synth-bag", "--out", str(out), "--frames", "3", "--size", "24x32", *flag]
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert ("synth-bag bag" in err) == expect_bar, err
        assert ("3/3" in err) == expect_bar


def test_synth_bag_rig_seed_is_refused_as_typed(tmp_path, capsys):
    """A rig's rooms draw from seed x 100000 + an offset: --seed 42950 was refused as "got
    4295010000" and --seed -1 as "got -90000", numbers the user never typed."""
    for seed in ("42950", "-1"):
        argv = ["synth-bag", "--out", str(tmp_path / "b"), "--frames", "1", "--size", "24x32"]
        assert main([*argv, "--rig", "cart", "--seed", seed, "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert f"--seed {seed} with --rig cart: must be from 0 to 42949" in err, err
        assert not (tmp_path / "b").exists()
    assert main([*argv, "--rig", "wheeled", "--seed", "42949", "--no-progress"]) == 0


@pytest.mark.parametrize("preset", ["tiny", "tiny_cnn", "d16"])
def test_info_breakdown_adds_up_to_each_network(preset):
    """The cnn presets' image encoder (over half of tiny_cnn's transformer) had no row."""
    from depthart_core.info import describe_preset

    p = describe_preset(preset)["parameters"]
    parts = ("embeddings", "image_encoder", "blocks", "head")
    assert sum(p[f"transformer.{k}"] for k in parts) == p["transformer"]
    assert (p["transformer.image_encoder"] > 0) == preset.endswith("cnn")
    tok = ("encoder", "decoder", "quantizer+convs")
    assert sum(p[f"tokenizer.{k}"] for k in tok) == p["tokenizer"]


def test_text_from_files_is_printed_with_its_control_characters_escaped(tmp_path, capsys):
    """A checkpoint's metadata holding terminal escapes (clear the screen, set the title, a
    carriage return) is printed escaped by `info`; a bag's topic names likewise."""
    from depthart_core.checkpoint import save_checkpoint
    from depthart_core.config import get_preset
    from depthart_core.model import DepthART
    from depthart_core.rosio.bags import TopicSummary, describe_topics
    from depthart_core.text import printable

    note = "hello\x1b[2J\x1b]0;TITLE\x07\rRED"
    path = save_checkpoint(tmp_path / "m.safetensors", DepthART(get_preset("tiny")), {"note": note})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out
    assert r"meta note: hello\x1b[2J\x1b]0;TITLE\x07\rRED" in out
    topics = {"/cam\x1b[2J": TopicSummary("/cam\x1b[2J", "sensor_msgs/msg/Image", 3)}
    assert "\x1b" not in describe_topics(topics) and printable("é ok") == "é ok"
