"""Bad input caught before any work and without a trace left, found by probing every command as
a user would (thirty-first session): an --out that is the input, out-of-range numbers, a device
this PyTorch cannot use, output paths that cannot be written, Ctrl-C in the middle of writing."""

from __future__ import annotations

import argparse
import importlib.util
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from depthart_core.cli import main
from depthart_core.data.synthetic import set as synth_set
from depthart_core.runtime.base import LETTERBOX_UNCERTAINTY
from depthart_core.runtime.threads import MAX_THREADS

TOPICS = ["--image-topic", "/camera/image_raw", "--depth-topic", "/camera/depth"]


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("guards") / "bag"
    argv = ["synth-bag", "--out", str(out), "--frames", "6", "--size", "24x32", "--sensor"]
    assert main([*argv, "--no-progress"]) == 0
    return out


def _err(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    return err.splitlines()[-1] if err else ""


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_out_that_is_the_input_is_refused_and_overwrite_moves_nothing(bag, tmp_path, capsys):
    before = _tree(bag)
    for extra in ([], ["--overwrite"]):
        argv = ["replay", str(bag), *TOPICS, "--out", str(bag), "--no-plots", *extra]
        assert main(argv) == 1
        assert f"--out {bag} is the input {bag}: pick another --out" in _err(capsys)
    assert main(["replay", str(bag), *TOPICS, "--out", str(bag.parent), "--no-plots"]) == 1
    assert f"--out {bag.parent} holds the input {bag}" in _err(capsys)
    assert _tree(bag) == before and not list(bag.parent.glob("*.old-*"))
    assert main(["finetune", str(bag), *TOPICS, "--out", str(bag), "--steps", "1"]) == 1
    assert "is the input" in _err(capsys)
    assert main(["finetune", str(bag), str(bag), *TOPICS, "--out", str(tmp_path / "f")]) == 1
    assert f"bag given more than once: {bag}" in _err(capsys)
    (file,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]  # the same bag again
    assert main(["finetune", str(bag), str(file), *TOPICS, "--out", str(tmp_path / "f")]) == 1
    assert f"bag given more than once: {bag}, {file}" in _err(capsys)
    syn = tmp_path / "syn"
    assert (
        main(["synth", "--out", str(syn), "--count", "1", "--size", "16x16", "--no-progress"]) == 0
    )
    capsys.readouterr()
    argv = ["eval", "--dataset", "synthetic", "--root", str(syn), "--out", str(syn)]
    assert main([*argv, "--overwrite"]) == 1
    assert "is the input" in _err(capsys) and (syn / "meta.json").is_file()


def test_a_checkpoint_is_an_input_too(bag, tiny_checkpoint, tmp_path, capsys):
    """A model inside --out was moved aside by --overwrite (eval, replay, finetune), and export
    wrote its graph over the checkpoint itself: each is refused, the model untouched."""
    run = tmp_path / "run"
    run.mkdir()
    model = run / "checkpoint.safetensors"
    model.write_bytes(Path(tiny_checkpoint).read_bytes())
    (run / "report.json").write_text("{}")  # an earlier report: --overwrite would move the folder
    syn = tmp_path / "syn"
    assert (
        main(["synth", "--out", str(syn), "--count", "1", "--size", "16x16", "--no-progress"]) == 0
    )
    capsys.readouterr()
    for argv in (
        ["eval", "--dataset", "synthetic", "--root", str(syn), "--checkpoint", str(model)],
        ["replay", str(bag), *TOPICS, "--checkpoint", str(model), "--no-plots"],
        ["finetune", str(bag), *TOPICS, "--checkpoint", str(model), "--steps", "1"],
    ):
        assert main([*argv, "--out", str(run), "--overwrite"]) == 1
        assert f"holds the input {model}" in _err(capsys), argv[0]
        assert model.is_file() and not list(tmp_path.glob("run.old-*"))
    # the default model set by $DEPTHART_CHECKPOINT (a deployed fine-tune) is an input as well
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DEPTHART_CHECKPOINT", str(model))
        for argv in (
            ["eval", "--dataset", "synthetic", "--root", str(syn)],
            ["replay", str(bag), *TOPICS, "--no-plots"],
            ["finetune", str(bag), *TOPICS, "--steps", "1"],
        ):
            assert main([*argv, "--out", str(run), "--overwrite"]) == 1
            assert f"holds the input {model}" in _err(capsys), argv[0]
            assert model.is_file() and not list(tmp_path.glob("run.old-*"))
    before = model.read_bytes()
    argv = ["export", "--checkpoint", str(model), "--out", str(model), "--overwrite"]
    assert main(argv) == 1
    assert "would write over the input" in _err(capsys) and model.read_bytes() == before


def test_numbers_out_of_range_are_named_before_any_work(bag, tmp_path, capsys):
    png = tmp_path / "in.png"
    import cv2

    cv2.imwrite(str(png), np.full((16, 16, 3), 90, np.uint8))
    out = tmp_path / "p"
    assert main(["predict", str(png), "--out", str(out), "--threads", str(MAX_THREADS + 1)]) == 1
    assert f"threads must be 0 (automatic) to {MAX_THREADS}, got {MAX_THREADS + 1}" in _err(capsys)
    assert not out.exists()
    for flag, value in (("--max-dt", "inf"), ("--max-dt", "1e308")):
        argv = ["finetune", str(bag), *TOPICS, "--out", str(tmp_path / "f"), flag, value]
        assert main(argv) == 1
        assert "error: --max-dt must lie in [0, 3600] s" in _err(capsys)
        assert main(["replay", str(bag), *TOPICS, "--out", str(tmp_path / "r"), flag, value]) == 1
        assert "error: --max-dt must lie in [0, 3600] s" in _err(capsys)
    finetune_bad = (
        ("--eval-frames", "0", "--eval-frames must be >= 1, got 0"),
        ("--steps", "-1", "--steps must be >= 1, got -1"),
        ("--lr", "0", "--lr must be > 0, got 0.0"),
        ("--split-gap", "-1", "--split-gap must be >= 0 s, got -1.0"),
        ("--heldout", "1", "--heldout must lie in (0, 1), got 1.0"),
    )
    for flag, value, said in finetune_bad:  # the option typed, not the config's field
        argv = ["finetune", str(bag), *TOPICS, "--out", str(tmp_path / "f"), flag, value]
        assert main(argv) == 1 and _err(capsys).endswith(f"error: {said}")
    replay_bad = (
        ("--max-frames", "0", "--max-frames must be >= 1, got 0"),
        ("--imu-max-dt", "-1", "--imu-max-dt must be >= 0 s, got -1.0"),
    )
    imu = ["--protocol", "ground_plane", "--camera-height", "1", "--imu-topic", "/imu"]
    imu += ["--camera-info-topic", "/camera/camera_info"]
    for flag, value, said in replay_bad:
        argv = ["replay", str(bag), *TOPICS, "--out", str(tmp_path / "r"), flag, value, *imu]
        assert main(argv) == 1 and _err(capsys).endswith(f"error: {said}")
    assert not (tmp_path / "f").exists() and not (tmp_path / "r").exists()
    for runs, warmup in (("0", "3"), ("-2", "3"), ("5", "-1")):
        argv = ["bench", "--no-peer", "--size", "16x16", "--runs", runs, "--warmup", warmup]
        assert main(argv) == 1
        assert "--runs must be >= 1, --warmup and --busy-cores >= 0" in _err(capsys)
    with pytest.raises(SystemExit) as exc:  # argparse: exit status 2 and the usage line
        main(["eval", "--dataset", "synthetic", "--root", str(tmp_path), "--eval-size", "100000"])
    assert exc.value.code == 2 and "1 to 4096 pixels" in _err(capsys)
    with pytest.raises(SystemExit):
        main(["predict", str(png), "--out", str(out), "--colormap", "nosuch"])
    assert "invalid choice: 'nosuch'" in _err(capsys) and not out.exists()
    argv = ["synth", "--out", str(tmp_path / "s"), "--count", "1"]
    assert main([*argv, "--size", "100000x100000"]) == 1
    assert "at most 16777216 pixels (4096x4096)" in _err(capsys)
    assert main([*argv, "--seed", "-1", "--size", "16x16"]) == 1
    assert "seed must be a non-negative int below 2**32, got -1" in _err(capsys)
    assert main([*argv, "--seed", str(2**32 + 777), "--size", "16x16"]) == 1  # seed 777's frame 1
    assert f"below 2**32, got {2**32 + 777}" in _err(capsys)
    assert not (tmp_path / "s").exists()  # no empty rgb/ depth/ intrinsics/ left either


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_this_pytorch_cannot_use_is_one_line(tmp_path, capsys):
    png = tmp_path / "in.png"
    import cv2

    cv2.imwrite(str(png), np.full((16, 16, 3), 90, np.uint8))
    for device, words in (("cuda", "no CUDA device is available"), ("nosuch", "unknown device")):
        assert main(["predict", str(png), "--out", str(tmp_path / "p"), "--device", device]) == 1
        assert words in _err(capsys) and not (tmp_path / "p").exists()
    argv = ["parity", "--backend", "torch", "--device", "cuda", "--count", "1"]
    assert main(argv) == 1 and _err(capsys).endswith("use --device cpu")
    argv = ["finetune", str(tmp_path / "bag"), "--image-topic", "/i", "--teacher", str(png)]
    assert main([*argv, "--teacher-device", "cuda", "--out", str(tmp_path / "f")]) == 1
    assert _err(capsys).endswith("use --teacher-device cpu") and not (tmp_path / "f").exists()


def test_outputs_that_cannot_be_written_stop_the_command_before_its_work(bag, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    out = tmp_path / "r"
    argv = ["replay", str(bag), *TOPICS, "--out", str(out), "--write-bag", str(afile / "wb")]
    assert main(argv) == 1
    assert "a part of the path is a file, not a folder" in _err(capsys) and not out.exists()
    argv = ["bench", "--no-peer", "--size", "16x16", "--runs", "1", "--json", str(afile / "x")]
    assert main(argv) == 1
    assert f"cannot write {afile / 'x'}" in _err(capsys)
    if importlib.util.find_spec("tensorrt") is None:  # the graph is not written first
        engine = tmp_path / "x.engine"
        assert main(["export", "--out", str(engine), "--format", "tensorrt"]) == 1
        assert not engine.with_suffix(".onnx").exists()


def test_a_replay_that_scores_no_frame_exits_1(bag, tmp_path, capsys):
    """The image topic given as the depth camera's: every frame rejected, the report written
    with their causes, but the command does not claim success."""
    out = tmp_path / "r"
    swapped = ["--image-topic", "/camera/depth", "--depth-topic", "/camera/image_raw"]
    assert main(["replay", str(bag), *swapped, "--out", str(out), "--no-plots"]) == 1
    err = _err(capsys)
    assert "no frame of 6 was scored: 6 rejected (most often: image not decodable" in err, err
    assert (out / "report.json").is_file()
    # depth stamped 30 ms after each image, the tolerance 20 ms: none pairs, and it says by how far
    from depthart_core.rosio.bags import write_synthetic_bag

    late = tmp_path / "late"
    write_synthetic_bag(late, 3, size=(24, 32), depth_delay_ns=30_000_000)
    out = tmp_path / "r_late"
    assert main(["replay", str(late), *TOPICS, "--out", str(out), "--no-plots"]) == 1
    err = _err(capsys)
    assert "3 unmatched (the nearest depth stamp is 0.030 s from an image, --max-dt is 0.02" in err


def test_interrupted_writes_leave_no_partial_outputs(tmp_path, monkeypatch):
    from depthart_core import fileutil
    from depthart_core.cli import predict

    calls, write = [], fileutil._write_temp

    def write_then_stop(path, tmp, data):  # the second file of an image: Ctrl-C
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        write(path, tmp, data)

    monkeypatch.setattr(fileutil, "_write_temp", write_then_stop)
    args = argparse.Namespace(colormap="turbo", ply=False, hfov=60.0, ply_stride=1)
    depth = np.ones((8, 8), np.float32)
    with pytest.raises(KeyboardInterrupt):
        predict.write_outputs(tmp_path, "img", depth, np.zeros((8, 8, 3), np.uint8), args)
    assert calls[0] == tmp_path / "img.npy" and not any(tmp_path.iterdir())  # no temp folder
    monkeypatch.undo()

    monkeypatch.setattr(synth_set, "render_batch", _render_stopping_at(1))
    out = tmp_path / "set"  # Ctrl-C in the first batch, before any frame is complete
    with pytest.raises(KeyboardInterrupt):
        synth_set.write_synthetic_set(out, 20, 0, (16, 16), progress=False, batch_size=8)
    assert not out.exists()  # nothing complete: the folders are gone too


def _render_stopping_at(batch: int):
    """`render_batch` that raises KeyboardInterrupt (Ctrl-C) on its `batch`-th call."""
    render, calls = synth_set.render_batch, []

    def render_then_stop(*a, **kw):
        calls.append(1)
        if len(calls) == batch:
            raise KeyboardInterrupt
        return render(*a, **kw)

    return render_then_stop


def _files(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_interrupted_synth_keeps_complete_frames_and_resumes(tmp_path, monkeypatch, capsys):
    whole = synth_set.write_synthetic_set(tmp_path / "whole", 20, 3, (16, 16), progress=False)
    render = synth_set.render_batch
    monkeypatch.setattr(synth_set, "render_batch", _render_stopping_at(2))  # frames 16-19
    out = tmp_path / "set"
    argv = ["synth", "--out", str(out), "--count", "20", "--seed", "3", "--size", "16x16"]
    argv += ["--no-progress"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "stopped; 16 of 20 frames are kept in" in err and "with --resume" in err, err
    held = _files(out)
    assert sorted(k for k in held if k.startswith("rgb")) == [f"rgb/{i:06d}.png" for i in range(16)]
    assert "meta.json" not in held and "partial.json" in held
    with pytest.raises(ValueError, match="interrupted synthetic set .16 of 20 frames.*--resume"):
        synth_set.SyntheticSet(out)  # no reader takes the part for a set
    monkeypatch.undo()
    assert main(argv) == 1
    assert "interrupted set (16 of 20 frames): pass --resume" in _err(capsys)
    assert main([*argv[:6], "4", *argv[7:], "--resume"]) == 1  # another seed: its own frames
    assert "of other settings (--count 20 --seed 3 --size 16x16)" in _err(capsys)
    assert _files(out) == held  # refused without touching a file
    rendered = []

    def render_noting(seed, idx, *a, **kw):
        rendered.extend(idx)
        return render(seed, idx, *a, **kw)

    monkeypatch.setattr(synth_set, "render_batch", render_noting)
    assert main([*argv, "--resume"]) == 0
    assert rendered == [16, 17, 18, 19]  # only what was missing
    assert _files(out) == _files(whole)  # equal to the set written in one go
    assert main([*argv, "--resume"]) == 0  # already complete: nothing to do
    assert main([*argv[:6], "4", *argv[7:], "--resume"]) == 1
    assert "complete set of other settings" in _err(capsys)
    empty = tmp_path / "empty"
    assert main(["synth", "--out", str(empty), "--count", "2", "--resume", "--no-progress"]) == 1
    assert "holds no interrupted set" in _err(capsys) and not empty.exists()


def _terminated_when(argv: list[str], ready: Callable[[], bool]) -> tuple[int, str]:
    """`depthart ARGV` in its own session, sent SIGTERM (as `timeout`, systemd or a cancelled CI
    job sends) once `ready()`; its exit status and stderr."""
    cmd = [sys.executable, "-m", "depthart_core", *argv]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"it ended before the signal: {proc.communicate()[1]}"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_sigterm_stops_a_command_as_ctrl_c_does(tmp_path):
    """SIGTERM killed synth, synth-bag, export and offline replay at once (only train, finetune
    and live replay turned it into a stop): no line, the finished frames not recorded for
    --resume, a temp file inside the set, a half-written bag that blocked the next run."""
    out = tmp_path / "set"
    argv = ["synth", "--out", str(out), "--count", "400", "--size", "16x16", "--no-progress"]
    rc, err = _terminated_when(argv, lambda: len(list(out.glob("rgb/*.png"))) >= 4)
    assert rc == 130 and "stopped by SIGTERM" in err and "Traceback" not in err, err
    assert "frames are kept in" in err and "with --resume" in err, err
    assert (out / "partial.json").is_file() and not (out / "meta.json").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]  # no half-written frame
    bag = tmp_path / "bag"
    argv = ["synth-bag", "--out", str(bag), "--frames", "5000", "--size", "24x32"]
    rc, err = _terminated_when([*argv, "--no-progress"], lambda: any(bag.glob("*.mcap")))
    assert rc == 130 and "stopped by SIGTERM" in err and "Traceback" not in err, err
    assert not bag.exists()  # no half-written bag left to block the next run


def test_main_as_a_library_leaves_its_callers_handlers_and_streams(monkeypatch):
    """`main()` called from another program: a SIGTERM handler the program installed keeps the
    signal (it was taken over: the program never saw its stop), and its streams' error modes are
    as they were after (a strict stream escapes names only while main runs; a UTF-8 locale's
    surrogateescape, which prints a Latin-1 name as its own bytes, is left alone)."""
    import io

    from depthart_core.cli import info, train

    seen = {}

    def command(args):  # what a command sees while main runs it
        seen["sigterm"] = signal.getsignal(signal.SIGTERM)
        seen["errors"] = (sys.stdout.errors, sys.stderr.errors)
        return 0

    def host(signum, frame):  # the calling program's own
        pass

    monkeypatch.setattr(info, "run", command)
    strict = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    escaping = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape")
    monkeypatch.setattr(sys, "stdout", strict)
    monkeypatch.setattr(sys, "stderr", escaping)
    before = signal.signal(signal.SIGTERM, host)
    try:
        assert main(["info"]) == 0
        assert signal.getsignal(signal.SIGTERM) is host
    finally:
        signal.signal(signal.SIGTERM, before)
    assert seen == {"sigterm": host, "errors": ("backslashreplace", "surrogateescape")}
    assert (strict.errors, escaping.errors) == ("strict", "surrogateescape")
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a program that handles nothing: main takes it
    try:
        assert main(["info"]) == 0
        assert seen["sigterm"] not in (signal.SIG_DFL, host)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # and puts it back
        monkeypatch.setenv("WORLD_SIZE", "2")  # a torchrun rank: its SIGTERM ends it, as before
        monkeypatch.setattr(train, "run", command)
        assert main(["train", "--config", "c.yaml", "--out", "o"]) == 0
        assert seen["sigterm"] is signal.SIG_DFL
        # a WORLD_SIZE left in the shell: a command torchrun never runs still stops cleanly
        assert main(["info"]) == 0 and seen["sigterm"] not in (signal.SIG_DFL, host)
        monkeypatch.setenv("WORLD_SIZE", "")  # set but empty: not a rank, and no error
        assert main(["info"]) == 0 and seen["sigterm"] not in (signal.SIG_DFL, host)
    finally:
        signal.signal(signal.SIGTERM, before)


def test_python_api_arguments_are_checked_by_name(tiny_checkpoint, tmp_path):
    from depthart_core.runtime import get_backend

    for kw, words in (
        ({"threads": "2"}, "threads must be an int"),
        ({"threads": 2.5}, "threads must be an int"),
        ({"threads": True}, "threads must be an int"),
        ({"flip_average": "false"}, "flip_average must be True or False, got 'false'"),
        ({"letterbox": "no"}, "letterbox must be True or False, got 'no'"),
    ):
        with pytest.raises(TypeError, match=words):
            get_backend("torch", tiny_checkpoint, **kw)
    # the class README shows first checks the same, and so does a flag set afterwards
    from depthart_core.runtime.torch_backend import DepthEstimator

    for kw, words in (
        ({"letterbox": "false"}, "letterbox must be True or False, got 'false'"),
        ({"flip_average": 1}, "flip_average must be True or False, got 1"),
        ({"sampling": "greedy"}, r"SamplingConfig or None, got 'greedy'.*sampling_setting"),
    ):
        with pytest.raises(TypeError, match=words):
            DepthEstimator.from_checkpoint(tiny_checkpoint, **kw)
    est = DepthEstimator.from_checkpoint(tiny_checkpoint, flip_average=True)
    assert est.flip_average is True and est.letterbox is False
    with pytest.raises(TypeError, match="flip_average must be True or False, got 'yes'"):
        est.flip_average = "yes"
    if importlib.util.find_spec("onnxruntime") is not None:
        not_onnx = tmp_path / "README.onnx"
        not_onnx.write_text("# not a graph\n" * 20)
        with pytest.raises(ValueError, match="is not a readable ONNX model"):
            get_backend("onnxruntime", tiny_checkpoint, onnx_path=not_onnx)
    backend = get_backend("torch", tiny_checkpoint, threads=1)
    frames = np.random.default_rng(0).integers(0, 256, (2, 24, 32, 3), dtype=np.uint8)
    batch = backend.predict_batch(frames)  # an NxHxWx3 array: N frames
    assert len(batch) == 2 and all(d.shape == (24, 32) for d in batch)
    np.testing.assert_array_equal(batch[1], backend.predict_batch(list(frames))[1])
    assert backend.predict_batch(f for f in []) == []  # an empty generator, as an empty list
    assert len(backend.predict_batch(f for f in frames)) == 2
    with pytest.raises(ValueError, match=r"got one array of shape \(24, 32, 3\); use predict\(\)"):
        backend.predict_batch(frames[0])


def test_a_missing_optional_dependency_is_one_line_naming_its_extra(tmp_path, monkeypatch, capsys):
    """`synth` without scikit-image (the renderer's textures; the `train` extra): one line that
    names the module and the extra, exit 1, no traceback and no folder left."""
    from depthart_core.data.synthetic.textures import texture_bank

    texture_bank.cache_clear()  # the bank imports scikit-image when it is first built
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    out = tmp_path / "s"
    argv = ["synth", "--out", str(out), "--count", "1", "--size", "16x16", "--no-progress"]
    try:
        assert main(argv) == 1
    finally:
        texture_bank.cache_clear()
    err = _err(capsys)
    assert err.startswith("depthart synth: error: ") and "skimage" in err, err
    assert "pip install 'depthart_ros[train]'" in err, err
    assert not out.exists()


def test_a_sampled_decoding_has_no_uncertainty(tmp_path, capsys):
    """The head predicts the soft / greedy decoding's error: with the paper's sampling the
    shipped model has no uncertainty and says why (Python API, predict --uncertainty, the
    model itself)."""
    import cv2

    from depthart_core.runtime import get_backend
    from depthart_core.sampling import sampling_setting

    assert get_backend("torch", threads=1).has_uncertainty  # the shipped head, soft decoding
    paper = get_backend("torch", threads=1, sampling=sampling_setting("paper"))
    assert not paper.has_uncertainty and "random draws" in paper.uncertainty_missing
    rgb = np.zeros((24, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="not of paper"):
        paper.predict(rgb, with_uncertainty=True)
    x = torch.zeros(1, 3, paper.image_size, paper.image_size)
    with pytest.raises(ValueError, match="a sampled decoding"):
        paper.model.infer(x, sampling_setting("paper"), with_uncertainty=True)
    png = tmp_path / "f.png"
    cv2.imwrite(str(png), rgb)
    argv = ["predict", str(png), "--out", str(tmp_path / "o"), "--threads", "1"]
    assert main([*argv, "--sampling", "paper", "--uncertainty"]) == 1
    err = _err(capsys)  # the remedy is the decoding, not an export or a new head
    assert "random draws" in err and "--sampling soft or greedy" in err, err
    assert "depthart export" not in err and "uncertainty_head.py" not in err, err
    bench = ["bench", "--sampling", "paper", "--uncertainty", "--backend", "torch"]
    assert main([*bench, "--size", "32x32", "--runs", "1", "--warmup", "0", "--no-peer"]) == 1
    err = _err(capsys)
    assert "random draws" in err and "--sampling soft or greedy" in err, err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_letterbox_with_uncertainty_warns_once(caplog):
    """The head learned stretched frames and underclaims letterboxed ones: said once."""
    import logging

    from depthart_core.runtime import get_backend

    est = get_backend("torch", threads=1, letterbox=True)
    rgb = np.zeros((24, 48, 3), np.uint8)
    with caplog.at_level(logging.WARNING, logger="depthart_core.runtime.base"):
        est.predict(rgb)  # depth only: nothing to say
        assert not caplog.records
        est.predict(rgb, with_uncertainty=True)
        est.predict(rgb, with_uncertainty=True)
    assert [r.getMessage() for r in caplog.records] == [LETTERBOX_UNCERTAINTY]


LIVE = ["--live"]  # the options depthart_ros's live mode adds act only with it
GROUND = ["--protocol", "ground_plane", "--camera-height", "1.0"]
IDLE_OPTIONS = [  # (argv after the command's own, what is said): set, but doing nothing
    (["--rate", "2"], "--rate set, but it only takes effect with --live"),
    (["--node-arg=-p", "--node-arg=letterbox:=true"], "--node-arg set, but it only takes effect"),
    (["--keep-stamps", "--time-limit", "5"], "--time-limit, --keep-stamps set, but it only"),
    (["--domain-id", "7", "--startup-timeout", "9", "--drain-timeout", "1"], "--domain-id, "),
    (["--seed", "3"], "--seed set, but it only takes effect with --protocol metric (got "),
    (["--protocol", "affine", "--sparse-points", "9", "--sparse-fit", "scale_shift"], "--sparse"),
    (["--depth-range", "0", "5"], "--depth-range set, but it only takes effect with --protocol "
     "affine, metric or ground_plane (got --protocol depthart)"),
    (["--ground-pitch", "10", "--ground-normal", "prior"], "--ground-normal, --ground-pitch set"),
    (["--protocol", "metric", "--lines-agree", "4"], "--lines-agree set, but it only takes "
     "effect with --protocol ground_plane (got --protocol metric)"),
    (["--ground-window", "1", "--ground-tilt", "0.75", "--ground-max-angle", "15"], "--ground-w"),
    (["--imu-max-dt", "0.1"], "--imu-max-dt set, but it only takes effect with --protocol "
     "ground_plane (got --protocol depthart)"),
    (GROUND + ["--imu-max-dt", "0.1"], "--imu-max-dt set, but it only takes effect with "
     "--imu-topic"),
    (GROUND + ["--lines-agree", "4"], "--lines-agree set, but it only takes effect with "
     "--vertical-lines"),
    (["--pred-topic", "/my/pred"], "--pred-topic set, but it only takes effect with --write-bag"),
]  # fmt: skip


@pytest.mark.parametrize("extra, said", IDLE_OPTIONS)
def test_replay_options_that_would_do_nothing_are_refused_before_any_work(
    bag, tmp_path, capsys, extra, said
):
    """`depthart replay` without --live took the live mode's --rate, --node-arg, ... and a
    protocol's options under another protocol (--seed, --sparse-*, --depth-range under depthart,
    --ground-*, --lines-agree outside ground_plane), and ran without them: one line, status 1."""
    out = tmp_path / "r"
    assert main(["replay", str(bag), *TOPICS, "--out", str(out), *extra]) == 1
    err = _err(capsys)
    assert err.startswith("depthart replay: error: ") and said in err, err
    assert not out.exists()


def test_live_options_are_the_parsers():
    """Which options need --live is read from the live mode's parser, not a copy of its list."""
    from depthart_core.cli import build_parser

    args = build_parser().parse_args(["replay", "b", "--image-topic", "/i", "--out", "o"])
    if "live" not in args.mode_options:
        pytest.skip("depthart_ros's replay mode is not installed")
    live = {args.option_defaults[d][0] for d in args.mode_options["live"]}
    assert {"--rate", "--node-arg", "--keep-stamps", "--domain-id", "--time-limit"} <= live
    assert "--live" not in live and "--depth-topic" not in live


def test_options_that_only_act_with_another_are_refused(bag, tmp_path, capsys):
    """finetune's --teacher-* without --teacher, export's --workspace-mb without --format
    tensorrt, bench's --peer-short-side with --no-peer, and --seed without --sampling paper were
    accepted and did nothing; each is one line and status 1, before any work."""
    png = tmp_path / "in.png"
    import cv2

    cv2.imwrite(str(png), np.full((16, 16, 3), 90, np.uint8))
    out = tmp_path / "o"
    finetune = ["finetune", str(bag), *TOPICS, "--out", str(out)]
    refused = [
        ([*finetune, "--teacher-flip-average"], "--teacher-flip-average set, but it only takes "
         "effect with --teacher"),
        ([*finetune, "--teacher-sampling", "paper", "--teacher-device", "cpu"], "--teacher-samp"),
        (["export", "--out", str(out / "m.onnx"), "--workspace-mb", "64"], "--workspace-mb set, "
         "but it only takes effect with --format tensorrt"),
        (["bench", "--no-peer", "--peer-short-side", "252", "--json", str(out / "b.json")],
         "--peer-short-side set, but it only takes effect with the peer (without --no-peer)"),
        (["predict", str(png), "--out", str(out), "--seed", "3"], "--seed set, but it only "
         "takes effect with --sampling paper"),
        (["eval", "--dataset", "synthetic", "--root", str(tmp_path), "--out", str(out),
          "--sampling", "greedy", "--seed", "3"], "--seed set, but it only takes effect with "
         "--sampling paper"),
        (["bench", "--no-peer", "--json", str(out / "b.json"), "--seed", "1"], "--seed set"),
        (["eval", "--dataset", "synthetic", "--root", str(tmp_path), "--roots", str(tmp_path),
          "--out", str(out)], "give either --dataset/--root or --datasets/--roots, not both"),
        (["eval", "--datasets", "synthetic", "--roots", str(tmp_path), "--root", str(tmp_path),
          "--out", str(out)], "give either --dataset/--root or --datasets/--roots, not both"),
    ]  # fmt: skip
    for argv, said in refused:
        assert main(argv) == 1, argv
        err = _err(capsys)
        assert err.startswith(f"depthart {argv[0]}: error: ") and said in err, err
        assert not out.exists(), argv


@pytest.mark.parametrize("script", ["ablation", "average", "diagnostics", "real_photos", "ship"])
def test_training_help_prints_the_examples_as_written(script):
    """The docstrings that are these scripts' --help (RawTextHelpFormatter) held `\\` line
    continuations in plain strings: Python joined the lines, so the examples printed collapsed."""
    path = Path(__file__).resolve().parent.parent / "training" / f"{script}.py"
    doc = path.read_text().split('"""')[1]
    continued = [line.rstrip() for line in doc.splitlines() if line.endswith("\\")]
    assert continued, "no example with a continued line: nothing to check"
    said = subprocess.run(
        [sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120
    )
    assert said.returncode == 0, said.stderr
    shown = [line.rstrip() for line in said.stdout.splitlines()]
    assert all(line in shown for line in continued), said.stdout


def test_export_never_replaces_an_existing_out_without_overwrite(tmp_path, tiny_checkpoint, capsys):
    """export wrote over an existing graph or engine silently (convert, train and the rest
    refuse without --overwrite)."""
    out = tmp_path / "model.onnx"
    out.write_bytes(b"a graph exported last week")
    assert main(["export", "--checkpoint", tiny_checkpoint, "--out", str(out)]) == 1
    err = _err(capsys)
    assert f"--out {out}: {out} exists: give --overwrite" in err, err
    assert out.read_bytes() == b"a graph exported last week"
    assert main(["export", "--checkpoint", tiny_checkpoint, "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes()[:2] != b"a "


def test_export_tensorrt_never_replaces_the_graph_beside_the_engine(tmp_path, capsys):
    """--format tensorrt writes its graph beside the engine: an existing one was replaced."""
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"an fp32 graph")
    argv = ["export", "--format", "tensorrt", "--out", str(tmp_path / "model.engine")]
    assert main(argv) == 1
    err = _err(capsys)
    assert f"{graph} exists (--format tensorrt writes its graph beside" in err, err
    assert graph.read_bytes() == b"an fp32 graph"


def test_export_onnx_minds_only_its_own_out(tmp_path, tiny_checkpoint, capsys):
    """The tensorrt graph's sibling check refused `--format onnx --out depth.fp16` beside an
    unrelated depth.onnx, which an ONNX export never writes."""
    other = tmp_path / "depth.onnx"
    other.write_bytes(b"another graph")
    out = tmp_path / "depth.fp16"
    assert main(["export", "--checkpoint", tiny_checkpoint, "--out", str(out)]) == 0, _err(capsys)
    assert out.is_file() and other.read_bytes() == b"another graph"
