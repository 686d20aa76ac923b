"""Disk trouble is one line and leaves nothing half-written: a full disk (a 1 MiB tmpfs), a
read-only file system (a tmpfs remounted read-only) and an --out that is a file, for every command
that writes. As root, chmod does not stop writes, so full and read-only file systems are real
mounts; where mounting is not allowed (no root, no CAP_SYS_ADMIN) those tests skip with the reason.
"""

from __future__ import annotations

import gc
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from depthart_core.cli import main
from depthart_core.fileutil import WriteError, atomic_write, is_temp_name, npy_bytes
from depthart_core.rosio.bags import write_synthetic_bag

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "training" / "configs" / "tiny_depthart.yaml"
FAST = ["batch_size=2", "data.val_count=2", "log_every=1", "val_every=1000", "ckpt_every=1000"]
FAST += ["data.render_size=0", "data.pool_size=0", "steps=2", "random_tokenizer_ok=true"]


def _umount(path: Path) -> None:
    gc.collect()  # a run lock still open in a dead Trainer keeps the mount busy
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _mount(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({res.stderr.strip() or 'no mount'})")


@pytest.fixture
def full_disk(tmp_path) -> Iterator[Path]:
    """A 1 MiB file system: anything bigger does not fit."""
    path = tmp_path / "full"
    _mount(path, "1m")
    yield path
    _umount(path)


@pytest.fixture
def read_only(tmp_path) -> Iterator[Path]:
    """A read-only file system holding one folder, `ro/old` (for commands that write into an
    existing folder)."""
    path = tmp_path / "ro"
    _mount(path, "1m")
    (path / "old").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
    yield path
    _umount(path)


def _one_line(capsys, command: str, *expected: str, progress: bool = False) -> str:
    """stderr is exactly one `depthart COMMAND: error: ...` line holding every `expected` (with
    `progress`, besides the progress bar's lines)."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = err.replace("\r", "\n").splitlines() if progress else err.splitlines()
    lines = [line for line in lines if line.startswith("depthart ")] if progress else lines
    assert len(lines) == 1 and lines[0].startswith(f"depthart {command}: error: "), err
    for text in expected:
        assert text in lines[0], (text, err)
    return lines[0]


def _no_temp_left(folder: Path) -> None:
    left = [p for p in folder.rglob("*") if is_temp_name(p.name)]
    assert left == [], left


def _image(path: Path, h: int, w: int) -> Path:
    rng = np.random.default_rng(h * w)
    cv2.imwrite(str(path), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return path


# ------------------------------------------------------------------------------------------------
# fileutil: the one atomic writer


def test_atomic_write_on_a_full_disk_is_one_error_and_leaves_nothing(full_disk):
    big = {"w": torch.zeros(600, 600)}  # 1.44 MB: does not fit in 1 MiB
    target = full_disk / "model.safetensors"
    with pytest.raises(WriteError) as exc:  # safetensors' own Rust I/O error, translated
        atomic_write(target, lambda tmp: save_file(big, tmp))
    assert str(exc.value) == f"cannot write {target}: no space left on the device"
    with pytest.raises(WriteError, match="no space left on the device"):
        atomic_write(full_disk / "depth.npy", npy_bytes(np.zeros((600, 600), np.float32)))
    with pytest.raises(WriteError, match="no space left on the device"):
        atomic_write(full_disk / "x.bin", b"\0" * 2_000_000)
    assert list(full_disk.iterdir()) == []  # no partial file, no temp folder
    atomic_write(full_disk / "small.bin", b"fits")  # the disk still works for what fits
    assert [p.name for p in full_disk.iterdir()] == ["small.bin"]


def test_atomic_write_refuses_a_read_only_disk_and_a_folder_target(read_only, tmp_path):
    with pytest.raises(WriteError) as exc:
        atomic_write(read_only / "a.json", b"{}")
    assert str(exc.value) == f"cannot write {read_only / 'a.json'}: read-only file system"
    (tmp_path / "dir").mkdir()
    with pytest.raises(WriteError, match="is a folder, not a file"):
        atomic_write(tmp_path / "dir", b"x")
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError) as exc:
        atomic_write(tmp_path / "file" / "a.json", b"{}")
    assert str(exc.value) == (
        f"cannot write {tmp_path / 'file' / 'a.json'}: {tmp_path / 'file'}: exists already and "
        "is not a folder"
    )
    _no_temp_left(tmp_path)


# ------------------------------------------------------------------------------------------------
# predict: skip the image that cannot be written, try the rest


def test_predict_on_a_full_disk_skips_that_image_and_goes_on(
    tiny_checkpoint, tmp_path, full_disk, capsys
):
    big = _image(tmp_path / "big.png", 600, 600)  # its 1.44 MB depth map cannot fit
    small = _image(tmp_path / "small.png", 16, 20)
    argv = ["predict", str(big), str(small), "--checkpoint", tiny_checkpoint, "--backend", "torch"]
    assert main([*argv, "--out", str(full_disk)]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.err, out.err
    lines = out.out.splitlines()
    assert (
        f"skipped {big}: cannot write {full_disk / 'big.npy'}: no space left on the device"
    ) in out.err.splitlines()
    assert lines[-1].startswith(
        f"wrote 1 depth maps to {full_disk}, skipped 1 (1 not written (no space left on the "
        "device))"
    )
    assert sorted(p.name for p in full_disk.iterdir()) == ["small.npy", "small_depth.png"]
    assert np.load(full_disk / "small.npy").shape == (16, 20)  # whole, loadable


def test_predict_refuses_an_out_that_is_a_file_or_read_only(
    tiny_checkpoint, tmp_path, read_only, capsys
):
    img = _image(tmp_path / "a.png", 8, 8)
    argv = ["predict", str(img), "--checkpoint", tiny_checkpoint, "--backend", "torch", "--out"]
    (tmp_path / "file").write_text("mine")
    assert main([*argv, str(tmp_path / "file")]) == 1
    _one_line(capsys, "predict", f"cannot write {tmp_path / 'file'}: exists already")
    assert (tmp_path / "file").read_text() == "mine"
    assert main([*argv, str(read_only / "old")]) == 1
    _one_line(capsys, "predict", f"cannot write {read_only / 'old'}: read-only file system")
    assert main([*argv, str(read_only / "new")]) == 1
    _one_line(capsys, "predict", str(read_only / "new"), "read-only file system")


# ------------------------------------------------------------------------------------------------
# train, synth, synth-bag, replay, export, eval, finetune


def _train_argv(out: Path) -> list[str]:
    sets = [a for s in FAST for a in ("--set", s)]
    return ["train", "--config", str(CONFIG), "--out", str(out), "--no-progress", *sets]


def test_train_on_a_full_and_a_read_only_disk(full_disk, read_only, capsys):
    assert main(_train_argv(full_disk / "run")) == 1
    state = full_disk / "run" / "train_state.safetensors"
    _one_line(capsys, "train", f"cannot write {state}: no space left on the device")
    _no_temp_left(full_disk)
    assert not state.exists() and not (full_disk / "run" / "checkpoint.safetensors").exists()
    assert main(_train_argv(read_only / "run")) == 1
    _one_line(capsys, "train", f"cannot write {read_only / 'run'}: read-only file system")


def test_synth_on_a_full_disk_and_into_a_file(full_disk, tmp_path, capsys):
    argv = ["synth", "--count", "80", "--size", "96x128", "--out"]
    assert main([*argv, str(full_disk / "set")]) == 1
    _one_line(capsys, "synth", str(full_disk / "set"), "no space left on the device", progress=True)
    _no_temp_left(full_disk)
    assert not (full_disk / "set" / "meta.json").exists()  # never marked complete
    (tmp_path / "file").write_text("x")
    assert main([*argv, str(tmp_path / "file")]) == 1
    _one_line(capsys, "synth", f"cannot write {tmp_path / 'file'}: exists already", progress=True)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_synth_bag_on_a_full_disk_removes_the_partial_bag(full_disk, storage, capsys):
    out = full_disk / "bag"
    argv = ["synth-bag", "--out", str(out), "--frames", "30", "--format", storage]
    assert main(argv) == 1
    _one_line(  # the disk fills mid-recording, after the bar has started
        capsys, "synth-bag", f"cannot write {out}: no space left on the device", progress=True
    )
    assert list(full_disk.iterdir()) == []


def test_synth_bag_on_a_read_only_disk(read_only, capsys):
    assert main(["synth-bag", "--out", str(read_only / "bag"), "--frames", "2"]) == 1
    _one_line(capsys, "synth-bag", f"cannot write {read_only / 'bag'}: read-only file system")


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory) -> Path:
    bag = tmp_path_factory.mktemp("bags") / "bag"
    write_synthetic_bag(bag, 40, size=(96, 128), depth_encoding="16UC1")
    return bag


def _replay_argv(bag: Path, out: Path, ckpt: str, *extra: str) -> list[str]:
    return ["replay", str(bag), "--image-topic", "/camera/image_raw", "--depth-topic",
            "/camera/depth", "--checkpoint", ckpt, "--backend", "torch", "--no-plots",
            "--out", str(out), *extra]  # fmt: skip


def test_replay_write_bag_on_a_full_disk_and_out_read_only(
    small_bag, tiny_checkpoint, tmp_path, full_disk, read_only, capsys
):
    out, wb = tmp_path / "report", full_disk / "pred_bag"
    assert main(_replay_argv(small_bag, out, tiny_checkpoint, "--write-bag", str(wb))) == 1
    _one_line(capsys, "replay", f"cannot write {wb}: no space left on the device", progress=True)
    assert list(full_disk.iterdir()) == []  # no truncated .mcap, no folder
    report = json.loads((out / "report.json").read_text())  # the run's report is still whole
    assert report["status"].startswith("error: cannot write")
    _no_temp_left(out)  # the prediction spill folder is gone too
    assert main(_replay_argv(small_bag, read_only / "old", tiny_checkpoint)) == 1
    _one_line(capsys, "replay", str(read_only / "old"), "read-only file system", progress=True)


def test_replay_that_fails_leaves_no_folder(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "report"
    assert main(_replay_argv(tmp_path / "missing.mcap", out, tiny_checkpoint)) == 1
    _one_line(capsys, "replay", "missing.mcap", progress=True)
    assert not out.exists()  # not even a folder holding only the lock file


def test_export_to_a_read_only_folder_and_to_a_folder(tiny_checkpoint, tmp_path, read_only, capsys):
    argv = ["export", "--checkpoint", tiny_checkpoint, "--out"]
    assert main([*argv, str(read_only / "model.onnx")]) == 1
    _one_line(capsys, "export", f"cannot write {read_only}: read-only file system")
    (tmp_path / "dir").mkdir()
    assert main([*argv, str(tmp_path / "dir")]) == 1
    _one_line(capsys, "export", f"--out {tmp_path / 'dir'} is a folder")


def test_export_onto_a_fifo_or_with_no_workspace_is_refused_first(
    tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    """`--out` naming a FIFO (or a device: `--out /dev/null` as root made /dev/null a regular
    file) is refused before the export, and left as it was; so is a TensorRT workspace that
    is not positive (it failed after the graph was written)."""
    import os
    import stat

    import depthart_core.export.onnx_export as onnx_export

    def no_export(*args, **kwargs):
        raise AssertionError("the export ran")

    monkeypatch.setattr(onnx_export, "export_onnx", no_export)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    argv = ["export", "--checkpoint", tiny_checkpoint, "--out"]
    assert main([*argv, str(fifo)]) == 1
    _one_line(capsys, "export", f"cannot write {fifo}: not a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    engine = tmp_path / "m.engine"
    assert main([*argv, str(engine), "--format", "tensorrt", "--workspace-mb", "0"]) == 1
    _one_line(capsys, "export", "--workspace-mb must be positive, got 0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_eval_into_a_read_only_folder(tmp_path, read_only, capsys):
    argv = ["eval", "--baselines-only", "--baseline", "ramp", "--no-progress", "--dataset", "nyuv2"]
    argv.append("--root")
    assert main([*argv, str(tmp_path / "nyu"), "--out", str(read_only / "old")]) == 1
    _one_line(capsys, "eval", str(read_only / "old"), "read-only file system")
    assert main([*argv, str(tmp_path / "nyu"), "--out", str(tmp_path / "e")]) == 1
    _one_line(capsys, "eval", "nyu")  # the missing dataset, and no folder left for it
    assert not (tmp_path / "e").exists()


def test_finetune_into_a_read_only_folder(small_bag, tiny_checkpoint, read_only, capsys):
    argv = ["finetune", str(small_bag), "--image-topic", "/camera/image_raw", "--depth-topic",
            "/camera/depth", "--checkpoint", tiny_checkpoint, "--no-progress", "--out",
            str(read_only / "run")]  # fmt: skip
    assert main(argv) == 1
    _one_line(capsys, "finetune", f"cannot write {read_only / 'run'}: read-only file system")
