"""`depthart finetune --resume` across changes the user did not make on the command line: a base
checkpoint replaced at the same path (a `git pull` replaced the shipped one once), and frames
prepared by an older depthart (the frame preparation changed numerically since)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from depthart_core.checkpoint import file_sha256, save_checkpoint
from depthart_core.cli import main
from depthart_core.data.synthetic.sensor import SensorModel
from depthart_core.finetune import run as ft
from depthart_core.model import DepthART
from depthart_core.rosio.bags import write_synthetic_bag

FEW = ("--steps", "2", "--batch-size", "2", "--eval-frames", "2", "--threads", "1")


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corridor") / "bag"
    write_synthetic_bag(
        path,
        40,
        seed=0,
        depth_encoding="16UC1",
        size=(60, 80),
        style="corridor",
        sensor=SensorModel(),
    )
    return path


def _finetune(bag: Path, out: Path, *extra: str) -> int:
    args = ["finetune", str(bag), "--image-topic", "/camera/image_raw", "--no-progress"]
    return main(args + ["--depth-topic", "/camera/depth", "--out", str(out), *FEW, *extra])


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("depthart finetune: error: ") and "\n" not in err, err
    return err


def _contents(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _edit_settings(run: Path, **changes) -> None:
    """RUN/finetune.json with keys set (a value None: the key removed, as an older run's)."""
    path = run / "finetune.json"
    recorded = json.loads(path.read_text())
    for key, value in changes.items():
        recorded.pop(key, None) if value is None else recorded.__setitem__(key, value)
    path.write_text(json.dumps(recorded, indent=2))


def test_resume_refuses_a_base_replaced_at_the_same_path(
    bag, tmp_path, monkeypatch, capsys, tiny_model, tiny_checkpoint
):
    """A --resume compared the base by path only: a checkpoint replaced at that path (a `git
    pull`) was taken, and the report scored the replacement as "before". It is refused, naming
    both hashes, before the bags are read and with nothing in the run rewritten; the same base
    goes on, and a run recorded without the hash (an older depthart's) resumes as before."""
    base, run = tmp_path / "base.safetensors", tmp_path / "run"
    shutil.copy(tiny_checkpoint, base)
    assert _finetune(bag, run, "--checkpoint", str(base)) == 0
    assert _finetune(bag, run, "--checkpoint", str(base), "--steps", "3", "--resume") == 0
    was = file_sha256(base)
    orig = tmp_path / "kept" / "original.safetensors"  # the original, kept elsewhere
    orig.parent.mkdir()
    shutil.copy(base, orig)
    # another model of the same architecture at the same path
    other = DepthART(tiny_model.cfg)
    other.load_state_dict({k: v + 0.01 for k, v in tiny_model.state_dict().items()})
    base.unlink()
    save_checkpoint(base, other, {"purpose": "tests: a replaced base"})
    now = file_sha256(base)
    assert now != was
    before = _contents(run)
    real_prepare, read = ft.prepare, []

    def reading(*args, **kwargs):
        read.append(args[0])
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(ft, "prepare", reading)
    capsys.readouterr()
    assert _finetune(bag, run, "--checkpoint", str(base), "--steps", "4", "--resume") == 1
    assert not read  # refused before the bags are read
    err = _one_line_error(capsys)
    assert (
        f"--resume: the base checkpoint {base} changed since {run} started "
        f"(sha256 {was[:12]}... -> {now[:12]}...): give the original base with --checkpoint, "
        "or start a new --out"
    ) in err, err
    assert _contents(run) == before  # nothing rewritten
    # the run records the hash of the base it started from
    recorded = json.loads((run / "finetune.json").read_text())
    assert recorded["base_checkpoint_sha256"] == was
    # what the refusal advises works: the original base, given at the other path, goes on
    monkeypatch.setattr(ft, "prepare", real_prepare)
    assert _finetune(bag, run, "--checkpoint", str(orig), "--steps", "4", "--resume") == 0
    assert json.loads((run / "report.json").read_text())["train"]["steps"] == 4
    # a run recorded without the hash (an older depthart) is not compared: it resumes as before
    # (the run now records the original's path: the resume above went on from it)
    _edit_settings(run, base_checkpoint_sha256=None)
    assert _finetune(bag, run, "--checkpoint", str(orig), "--steps", "5", "--resume") == 0
    recorded = json.loads((run / "finetune.json").read_text())
    assert recorded["base_checkpoint_sha256"] == was  # recorded from now on
    assert json.loads((run / "report.json").read_text())["train"]["steps"] == 5


def test_resume_of_frames_an_older_depthart_prepared_says_so(
    bag, tmp_path, capsys, tiny_checkpoint
):
    """After an upgrade that changed the frame preparation (a depth-resize interpolation), a
    --resume with the very same bags and options was refused as "differs from what the bags and
    settings give now; resume with the same bags and options": the user changed nothing. A run
    whose recorded frames version (none: an older depthart) is not this one's is told so, with
    the way on from its weights; the same version keeps the message about the user's input."""
    run = tmp_path / "run"
    command = ("--checkpoint", tiny_checkpoint)
    assert _finetune(bag, run, *command) == 0
    # frames as an older preparation gave them: the depth resized otherwise
    frames = run / "frames" / "train.safetensors"
    tensors = load_file(str(frames))
    tensors["depth"] = torch.where(tensors["valid"], tensors["depth"] * 1.01, tensors["depth"])
    save_file(tensors, str(frames))
    weights = run / "checkpoint.safetensors"
    for recorded in (None, 1):  # none: a run from before the version was recorded
        _edit_settings(run, frames_version=recorded)
        before = _contents(run)
        capsys.readouterr()
        assert _finetune(bag, run, *command, "--steps", "3", "--resume") == 1
        err = _one_line_error(capsys)
        assert f"{run}'s frames were prepared by an older depthart (frames version 1" in err, err
        assert (
            f"--resume: {run}'s frames were prepared by an older depthart (frames version 1, now "
            f"{ft.FRAMES_VERSION}), so training cannot go on from the same frames: go on from "
            f"its weights in a new run with --checkpoint {weights} --out NEW"
        ) in err, err
        assert _contents(run) == before  # nothing rewritten
    # the same version: the frames differ by the user's input (today's message)
    _edit_settings(run, frames_version=ft.FRAMES_VERSION)
    assert _finetune(bag, run, *command, "--steps", "3", "--resume") == 1
    err = _one_line_error(capsys)
    assert f"{frames} differs from what the bags and settings give now" in err, err
    # the way on it gives works: a new run from the run's weights, which records the version
    assert _finetune(bag, tmp_path / "new", "--checkpoint", str(weights)) == 0
    recorded = json.loads((tmp_path / "new" / "finetune.json").read_text())
    assert recorded["frames_version"] == ft.FRAMES_VERSION
    # stopped before its first save: no weights to go on from
    _edit_settings(run, frames_version=1)
    weights.unlink()
    with pytest.raises(ft.FinetuneInputError, match=r"\(frames version 1, now \d+\).*new --out$"):
        ft._refuse_older_frames(run)
