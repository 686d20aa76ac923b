"""No usable temp folder (a read-only container: TMPDIR, /tmp and the working folder unwritable,
only DEPTHART_CACHE writable): loading a checkpoint built its shape-check skeleton on the meta
device, where torch's Python reference kernels import torch._dynamo, whose import needs a temp
dir. It raised, and the half-done import made the `auto` fallback to torch fail with
"AssertionError: Artifact of type=precompile already registered" and a traceback. The load path
now never imports torch._dynamo, and `auto` names a system failure that came first."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import depthart_core
from depthart_core import checkpoint as ck
from depthart_core import runtime
from depthart_core.model import DepthART
from depthart_core.runtime import get_backend

NO_TEMP = "No usable temporary directory found in ['/tmp', '/var/tmp', '/usr/tmp', '.']"

# Python's tempfile finding no writable folder, as in the read-only container
SCRIPT = f"""
import errno, sys, tempfile

def no_temp_dir():
    raise FileNotFoundError(errno.ENOENT, {NO_TEMP!r})

tempfile.tempdir = None
tempfile._get_default_tempdir = no_temp_dir
from depthart_core.checkpoint import load_checkpoint
from depthart_core.cli import main

rc = main(sys.argv[1:])
if rc == 0:
    load_checkpoint(sys.argv[sys.argv.index("--checkpoint") + 1])
print("dynamo imported:", "torch._dynamo" in sys.modules)
sys.exit(rc)
"""


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_predict_without_a_temp_dir(backend, tiny_checkpoint, tmp_path):
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8))
    out = tmp_path / "out"
    root = str(Path(depthart_core.__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "DEPTHART_CACHE": str(tmp_path / "cache"),  # fresh: the graph is exported here
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
    }
    args = ["predict", str(frame), "--out", str(out), "--threads", "1", "--backend", backend]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args, "--checkpoint", tiny_checkpoint],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "temporary directory" not in proc.stderr
    assert (out / "frame.npy").is_file() and (out / "frame_depth.png").is_file()
    assert "dynamo imported: False" in proc.stdout  # nor needs it: a second faster to start


def test_auto_names_a_system_failure_that_came_before_torchs(tiny_checkpoint, monkeypatch):
    """onnxruntime failing for want of a temp dir, then torch failing otherwise: the error
    names the first cause (and TMPDIR), not only torch's misleading one."""

    def make(name, *args, **kwargs):
        if name == "tensorrt":
            raise RuntimeError("no GPU")
        if name == "onnxruntime":
            raise FileNotFoundError(errno.ENOENT, NO_TEMP)
        raise AssertionError("Artifact of type=precompile already registered")

    monkeypatch.setattr(runtime, "_make", make)
    with pytest.raises(RuntimeError) as err:
        get_backend("auto", tiny_checkpoint, threads=1)
    text = str(err.value)
    assert "\n" not in text
    assert "onnxruntime: FileNotFoundError: [Errno 2] No usable temporary directory" in text
    assert "set TMPDIR to a writable folder" in text
    assert text.index("onnxruntime") < text.index("then torch: AssertionError: Artifact")
    assert isinstance(err.value.__cause__, AssertionError)


def test_auto_keeps_torchs_own_error_after_no_system_failure(tiny_checkpoint, monkeypatch):
    def make(name, *args, **kwargs):
        raise ValueError(f"{name} cannot")

    monkeypatch.setattr(runtime, "_make", make)
    with pytest.raises(ValueError, match="^torch cannot$"):
        get_backend("auto", tiny_checkpoint, threads=1)


@pytest.mark.parametrize("preset", ["tiny", "headed"])
def test_the_skeleton_has_the_models_shapes(preset, tiny_model, headed_model):
    """`shape_skeleton` skips the init and computes buffers' shapes itself: the same names,
    shapes and dtypes as the real model, nothing allocated."""
    model = tiny_model if preset == "tiny" else headed_model
    with ck.shape_skeleton():
        skeleton = DepthART(model.cfg)
    own = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    own |= {k: (tuple(v.shape), v.dtype) for k, v in model.named_buffers()}
    got = {k: (tuple(v.shape), v.dtype) for k, v in skeleton.state_dict().items()}
    got |= {k: (tuple(v.shape), v.dtype) for k, v in skeleton.named_buffers()}
    assert got == own
    assert all(v.is_meta for v in skeleton.state_dict().values())


def test_the_skeleton_leaves_other_threads_alone():
    """The skeleton's modes are per thread: a module built meanwhile in another thread is real
    and initialised."""
    built = []
    with ck.shape_skeleton():
        worker = threading.Thread(target=lambda: built.append(torch.nn.Linear(8, 8)))
        worker.start()
        worker.join(30)
        assert torch.empty(1).is_meta
    assert not built[0].weight.is_meta and built[0].weight.abs().sum() > 0
    assert not torch.empty(1).is_meta
