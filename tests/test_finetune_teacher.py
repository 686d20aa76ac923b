"""`depthart finetune --teacher`: a teacher checkpoint labels a bag's frames and the student
trains on those labels; sensor depth, where the bag has it, only scores. The labels are cached in
the run folder and reused; a labels file made with --labels-only trains the student without the
teacher; bad input is one line and leaves no folder. Tiny random checkpoints, 30-frame bags."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from depthart_core.checkpoint import save_checkpoint
from depthart_core.cli import main
from depthart_core.config import get_preset
from depthart_core.finetune.prepare import to_model_size
from depthart_core.finetune.teacher import LABELS_NAME, label_valid
from depthart_core.model import DepthART
from depthart_core.rosio import messages
from depthart_core.rosio.bags import BagWriter
from depthart_core.runtime import get_backend
from depthart_core.sampling import sampling_setting

T0 = 1_700_000_000 * 1_000_000_000
PERIOD = 100_000_000  # 10 Hz
IMG, DEPTH = "/camera/image_raw", "/camera/depth"
FAST = ["--steps", "2", "--batch-size", "4", "--eval-frames", "3", "--split-gap", "0.1"]
FAST += ["--device", "cpu", "--teacher-device", "cpu", "--no-progress"]


def _rgb(i: int) -> np.ndarray:
    """A gradient that shifts with i (so depth models see structure), 24x32."""
    y, x = np.mgrid[0:24, 0:32]
    base = np.stack([8 * x + 3 * i, 10 * y, 255 - 8 * x], -1)
    return (base % 256).astype(np.uint8)


def _write_bag(
    path: Path, n: int = 30, depth: bool = True, broken_images: bool = False, other: int = 0
) -> Path:
    """n frames at 10 Hz; 16UC1 depth 1.0 + 0.01 * i m (the same stamp), or no depth topic.
    `other`: the images of another drive (shifted) under the same stamps."""
    with BagWriter(path) as bag:
        for i in range(n):
            t = T0 + i * PERIOD
            msg = messages.image_msg(_rgb(i + other), "rgb8", t, "cam")
            if broken_images:  # a header that promises more bytes than the message carries
                msg = dataclasses.replace(msg, data=msg.data[:100])
            bag.write(IMG, msg, t)
            if depth:
                d = np.full((24, 32), 1000 + 10 * i, dtype=np.uint16)
                bag.write(DEPTH, messages.image_msg(d, "16UC1", t, "cam"), t)
    return path


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory) -> str:
    """A teacher of another input size and tokenizer than the student: `small` (128 px, seven
    scales) teaching `tiny` (64 px, six)."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("teacher") / "teacher.safetensors"
    model = DepthART(get_preset("small")).eval()
    return str(save_checkpoint(path, model, {"stage": "transformer"}))


def _finetune(bag: Path, out: Path, *extra: str) -> int:
    return main(["finetune", str(bag), "--image-topic", IMG, "--out", str(out), *FAST, *extra])


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("depthart finetune: error: ") and "\n" not in err, err
    return err


def test_student_trains_on_the_teachers_labels_not_on_the_sensor(
    tmp_path, tiny_checkpoint, teacher_ckpt
):
    bag = _write_bag(tmp_path / "bag")
    run = tmp_path / "run"
    args = ["--teacher", teacher_ckpt, "--checkpoint", tiny_checkpoint, "--depth-topic", DEPTH]
    assert _finetune(bag, run, *args) == 0
    # the training frames hold the teacher's soft-decoded prediction at the student's 64 px,
    # resized as sensor depth is: frame 0 recomputed here through the same backend factory
    teacher = get_backend("torch", teacher_ckpt, sampling=sampling_setting("soft"))
    full = teacher.predict(_rgb(0))
    from depthart_core.finetune.frames import Frame

    f = Frame(0, 0, T0, "train", _rgb(0), full, label_valid(full))
    want = to_model_size(f, 64)
    train = load_file(str(run / "frames" / "train.safetensors"))
    assert np.allclose(train["depth"][0].numpy(), want.depth, atol=1e-6)
    assert not np.allclose(train["depth"][0].numpy().mean(), 1.0, atol=0.05)  # not the sensor
    report = json.loads((run / "report.json").read_text())
    assert report["teacher"]["labels"] == "computed" and report["teacher"]["image_size"] == 128
    assert report["teacher"]["labelled_frames"] == 29  # 30 frames, 1 in the 0.1 s gap
    assert report["sensor_frames"] == 3 and report["split"]["scored"] == 3
    for key in ("before", "after", "teacher_vs_sensor"):
        assert 0 <= report[key]["depthart"]["abs_rel"] < 10
    vs = report["vs_teacher"]
    assert set(vs) == {"before", "after", "change"} and vs["after"]["abs_rel"] >= 0
    md = (run / "report.md").read_text()
    assert "against the teacher" in md and "scores only" in md and "| teacher |" in md
    assert "random sensor pixels" in md  # the sensor table's legend, beside that table
    # RGB | teacher | before | after, one row per scored frame
    assert cv2.imread(str(run / "figure.png")).shape == (3 * 24, 4 * 32, 3)
    # the labels are cached; a re-run with --overwrite takes them from the cache, bit for bit
    labels = load_file(str(run / LABELS_NAME))
    assert len([k for k in labels if k.startswith("small/")]) == 29
    assert len([k for k in labels if k.startswith("full/")]) == 3
    assert _finetune(bag, run, *args, "--overwrite") == 0
    again = json.loads((run / "report.json").read_text())
    assert again["teacher"]["labels"] == "cached" and again["teacher"]["labelled_frames"] == 0
    retrain = load_file(str(run / "frames" / "train.safetensors"))
    assert torch.equal(retrain["depth"], train["depth"])
    assert again["vs_teacher"]["before"] == report["vs_teacher"]["before"]
    # another teacher setting is another key: labelled afresh
    assert _finetune(bag, run, *args, "--overwrite", "--teacher-flip-average") == 0
    flipped = json.loads((run / "report.json").read_text())["teacher"]
    assert flipped["labels"] == "computed" and flipped["flip_average"] is True


def test_no_sensor_at_all_and_labels_made_elsewhere(tmp_path, tiny_checkpoint, teacher_ckpt):
    bag = _write_bag(tmp_path / "bag", depth=False)
    # the workstation: labels only (no training, no report)
    ws = tmp_path / "workstation"
    assert _finetune(bag, ws, "--teacher", teacher_ckpt, "--labels-only") == 0
    assert (ws / LABELS_NAME).is_file() and not (ws / "report.json").exists()
    assert not (ws / "checkpoint.safetensors").exists()
    # the robot: the labels file is the teacher; the teacher checkpoint is not needed, and the
    # bag is a copy in another place (labels are keyed by the bag's stamps and images, not path)
    labels = tmp_path / "robot_labels.safetensors"
    labels.write_bytes((ws / LABELS_NAME).read_bytes())
    robot_bag = tmp_path / "robot_side" / "bag"
    shutil.copytree(bag, robot_bag)
    run = tmp_path / "robot"
    robot = ("--teacher", str(labels), "--checkpoint", tiny_checkpoint)
    assert _finetune(robot_bag, run, *robot) == 0
    report = json.loads((run / "report.json").read_text())
    assert report["teacher"]["labels"] == "cached" and report["teacher"]["sha256"]
    assert report["sensor_frames"] == 0 and "before" not in report
    assert report["counts"]["total"]["paired"] == 30 and report["depth_encodings"] == []
    md = (run / "report.md").read_text()
    assert "depth `none`" in md
    # no sensor table, so no legend of its protocol columns, sensor pixels or baseline row
    assert "random sensor pixels" not in md and "mean depth map" not in md, md
    assert "the bag gave no sensor depth (--depth-topic) to score against" in md
    assert "(README, Adapt to your robot, No uncertainty head)" in md or "none (" in md
    assert (run / LABELS_NAME).is_file()  # the run keeps the labels it trained on


def test_bad_teacher_input_is_one_line_and_leaves_no_folder(
    tmp_path, capsys, tiny_checkpoint, teacher_ckpt
):
    bag = _write_bag(tmp_path / "bag", depth=False)
    run = tmp_path / "run"
    # not a DepthART checkpoint
    junk = tmp_path / "junk.safetensors"
    save_file({"w": torch.zeros(2)}, str(junk))
    assert _finetune(bag, run, "--teacher", str(junk)) == 1
    assert "is not a DepthART checkpoint" in _one_line_error(capsys)
    # a stage-1 checkpoint: its transformer never trained
    tok = tmp_path / "tok.safetensors"
    save_checkpoint(tok, DepthART(get_preset("tiny")), {"stage": "tokenizer"})
    assert _finetune(bag, run, "--teacher", str(tok)) == 1
    assert "stage-1 (tokenizer) checkpoint" in _one_line_error(capsys)
    # labels made for another bag
    other = _write_bag(tmp_path / "other", n=32, depth=False)
    ws = tmp_path / "ws"
    assert _finetune(other, ws, "--teacher", teacher_ckpt, "--labels-only") == 0
    capsys.readouterr()
    assert _finetune(bag, run, "--teacher", str(ws / LABELS_NAME)) == 1
    err = _one_line_error(capsys)
    assert "holds labels for other bags or settings: bag 1: 32 images" in err
    assert "-> 30 images" in err, err
    # labels of another drive whose stamps are the same: refused at its first frame
    twin = _write_bag(tmp_path / "twin", n=32, depth=False, other=7)
    assert _finetune(twin, run, "--teacher", str(ws / LABELS_NAME)) == 1
    assert "teacher labels were made for other images: frame 0 of" in _one_line_error(capsys)
    assert not run.exists()
    # no image message on the topic
    empty = tmp_path / "empty"
    with BagWriter(empty) as w:
        w.write(DEPTH, messages.image_msg(np.ones((4, 4), np.uint16), "16UC1", T0, "c"), T0)
        w._conn(IMG, messages.IMAGE_TYPE, None, None)  # the topic, with no message on it
    assert _finetune(empty, run, "--teacher", teacher_ckpt) == 1
    assert f"topic '{IMG}' in {empty} has no messages" in _one_line_error(capsys)
    # neither a depth topic nor a teacher; --labels-only without a teacher
    assert _finetune(bag, run) == 1
    assert "--depth-topic" in _one_line_error(capsys)
    assert _finetune(bag, run, "--depth-topic", DEPTH, "--labels-only") == 1
    assert "--labels-only needs --teacher" in _one_line_error(capsys)
    assert not run.exists()


def test_all_frames_rejected_are_reported_by_cause(tmp_path, capsys, teacher_ckpt):
    bag = _write_bag(tmp_path / "bag", depth=False, broken_images=True)
    assert _finetune(bag, tmp_path / "run", "--teacher", teacher_ckpt) == 1
    err = _one_line_error(capsys)
    assert "0 paired" in err and "rejected 30: 30 image not decodable (short_data)" in err
    assert not (tmp_path / "run").exists()
