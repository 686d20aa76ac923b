"""Without torch (an install made for ONNX Runtime on a cached graph), what needs it says so.

A robot may be set up with ONNX Runtime alone (`pip install --no-deps` + onnxruntime), which
runs a cached graph without torch (tests/test_torch_free_onnx.py). What still needs torch said
only "No module named 'torch'": an uncached graph (`auto` logging it as ONNX Runtime's failure),
CUDA on `auto` with a CPU-only onnxruntime, a CLI command. Each check runs in a fresh interpreter
where torch cannot be imported (a meta-path finder installed before anything else), with an
empty ONNX cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent

NO_TORCH = """\
import sys


class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoTorch())
"""


def _child(code: str, cache: Path) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter without torch, the ONNX cache `cache`."""
    env = {**os.environ, "DEPTHART_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    env.pop("DEPTHART_CHECKPOINT", None)  # the shipped checkpoint
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _raised(code: str, cache: Path) -> str:
    """The one-line error `code` (a call) raises: "Type: message"."""
    done = _child(
        f"try:\n    {code}\nexcept Exception as exc:\n"
        "    print(f'{type(exc).__name__}: {exc}')\n"
        "else:\n    print('no error')\n",
        cache,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_an_uncached_graph_without_torch_says_how_to_get_one(tmp_path):
    """onnxruntime, and `auto` (which logged it as ONNX Runtime's failure, then raised the
    torch backend's "No module named 'torch'"), on an empty cache: one line naming the graph,
    that PyTorch is needed to export it and how to put it there instead."""
    for backend in ("onnxruntime", "auto"):
        line = _raised(
            f"from depthart_core.runtime import get_backend; get_backend({backend!r}, threads=1)",
            tmp_path,
        )
        assert line.startswith("ModuleNotFoundError: exporting "), line
        assert "into the ONNX cache needs PyTorch, which is not installed" in line, line
        graph = line.split("exporting ", 1)[1].split(" ", 1)[0]
        assert graph.endswith("_fp32_soft.onnx"), line
        assert f"(`depthart export --out {graph} --sampling soft`, same checkpoint)" in line
        assert str(tmp_path / "onnx" / graph) in line, line  # where to copy it
        assert "\n" not in line
    assert not list(tmp_path.glob("onnx/*.onnx"))


def test_backend_torch_without_torch_says_so(tmp_path):
    """Asked for by name (and by a sampled decoding) without torch: one line, not the import's
    "No module named 'torch'" (which came from its thread setting, before the backend)."""
    line = _raised("from depthart_core.runtime import get_backend; get_backend('torch')", tmp_path)
    assert line == "ModuleNotFoundError: backend 'torch' needs PyTorch, which is not installed"


def test_cuda_on_auto_without_torch_names_the_device(tmp_path):
    """CUDA on `auto` with a CPU-only onnxruntime runs on TensorRT or torch, both through torch:
    the node's check before the model (`check_device_runnable`) refuses it in one line naming the
    device and the node's advice, not "No module named 'torch'"."""
    line = _raised(
        "from depthart_core.runtime import base; "
        "base.onnxruntime_providers = lambda: ['CPUExecutionProvider']; "
        "base.check_device_runnable('auto', 'cuda', True, 'set the device parameter to cpu')",
        tmp_path,
    )
    assert line == (
        "ValueError: device 'cuda': CUDA runs on PyTorch here, which is not installed; "
        "set the device parameter to cpu"
    )


def test_a_cli_command_without_torch_says_it_needs_it(tmp_path):
    """`depthart info` (torch: the checkpoint's reader) and `depthart predict` on an uncached
    graph: status 1, one line saying PyTorch is needed, no traceback."""
    done = _child("from depthart_core.cli import main; sys.exit(main(['info']))", tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stderr.strip() == (
        "depthart info: error: No module named 'torch': depthart info needs PyTorch "
        "(pip install torch; see README's install section)"
    )
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.full((48, 64, 3), 128, np.uint8))
    done = _child(
        "from depthart_core.cli import main; "
        f"sys.exit(main(['predict', {str(image)!r}, '--out', {str(tmp_path / 'out')!r}]))",
        tmp_path,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("depthart predict: error: exporting "), done.stderr
    assert "needs PyTorch, which is not installed" in last
    assert "Traceback" not in done.stderr
