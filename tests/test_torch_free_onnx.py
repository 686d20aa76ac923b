"""ONNX Runtime on a cached graph, and the ROS node on it, run without importing torch.

torch was imported by every `get_backend` and by `import depthart_ros.node`: 0.75 s and about
160 MB resident of the process's 318 MB (1,276 modules), which a Jetson or any small robot pays
for nothing when the node runs the cached graph on ONNX Runtime. torch is now imported where it
runs (the torch backend, an export on a cache miss, TensorRT, CUDA checked through torch). Each
check runs in a fresh interpreter, the graph cached beforehand by this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from depthart_core.runtime.onnx_backend import OnnxRuntimeBackend

ROOT = Path(__file__).resolve().parent.parent
TORCH_FREE = "assert 'torch' not in sys.modules, f'torch imported ({len(sys.modules)} modules)'\n"


def _child(code: str, cache: Path) -> str:
    """Run `code` in a fresh interpreter with the ONNX cache `cache`; its stdout."""
    env = {**os.environ, "DEPTHART_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", "import sys\n" + code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def cached_headed(headed_checkpoint, tmp_path_factory) -> tuple[str, Path]:
    """(checkpoint with the uncertainty head, the ONNX cache holding its default graph)."""
    cache = tmp_path_factory.mktemp("torch_free_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEPTHART_CACHE", str(cache))
        OnnxRuntimeBackend.from_checkpoint(headed_checkpoint, threads=1)  # exports it, once
    assert list(cache.glob("onnx/*_fp32_soft.onnx"))
    return headed_checkpoint, cache


@pytest.mark.parametrize("backend", ["onnxruntime", "auto"])
def test_onnx_runtime_on_a_cached_graph_never_imports_torch(cached_headed, backend):
    """A frame, with and without the uncertainty, on `onnxruntime`, and on `auto` where TensorRT
    is absent: skipped, with the reason it always gave, without importing torch, onnx's exporter
    or the TensorRT backend for the attempt."""
    if backend == "auto" and importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here: auto tries it (with torch)")
    checkpoint, cache = cached_headed
    out = _child(
        "import logging\n"
        "import numpy as np\n"
        "from depthart_core.runtime import get_backend\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')\n"
        f"be = get_backend({backend!r}, {checkpoint!r}, threads=1)\n"
        "rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)\n"
        "depth = be.predict(rgb)\n"
        "depth2, unc = be.predict(rgb, with_uncertainty=True)\n"
        "assert depth.shape == unc.shape == (48, 64) and np.isfinite(unc).all()\n"
        + TORCH_FREE
        + "assert 'depthart_core.runtime.tensorrt_backend' not in sys.modules\n"
        "assert 'depthart_core.export.onnx_export' not in sys.modules\n"
        "print('backend', be.name)\n",
        cache,
    )
    assert "backend onnxruntime" in out, out
    if backend == "auto":
        assert (
            "backend auto: skipping tensorrt (tensorrt is not importable (ModuleNotFoundError: "
            "No module named 'tensorrt'))"
        ) in out, out


def test_importing_the_node_and_loading_its_model_never_imports_torch(cached_headed):
    """`import depthart_ros.node`, then its model load with the default parameters (backend
    auto) on the cached graph, as the node does it at start-up."""
    pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
    pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 sensor_msgs package")
    checkpoint, cache = cached_headed
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here: the node's auto tries it (with torch)")
    load = (
        "from depthart_ros.params import PARAMS\n"
        "log = SimpleNamespace(info=print, warning=print, error=print)\n"
        "core = SimpleNamespace(\n"
        f"    cfg={{p.name: p.default for p in PARAMS}} | {{'checkpoint': {checkpoint!r}}},\n"
        "    get_logger=lambda: log, context=SimpleNamespace(ok=lambda: True), model_loads=0,\n"
        "    _share_threads=lambda n: None,\n"
        ")\n"
        "assert core.cfg['backend'] == 'auto'\n"
        "node_mod.DepthArtCore._load_model(core)\n"
    )
    imported = "from types import SimpleNamespace\nfrom depthart_ros import node as node_mod\n"
    out = _child(
        imported + TORCH_FREE + load + TORCH_FREE + "print('engine', core.engine)\n", cache
    )
    assert "engine onnxruntime" in out, out


def test_predict_on_a_cached_graph_never_imports_torch(cached_headed, tmp_path):
    """`depthart predict --backend onnxruntime --uncertainty` on the cached graph: the depth and
    the uncertainty written, without importing torch (its checks read the checkpoint's header)."""
    checkpoint, cache = cached_headed
    image = tmp_path / "frame.png"
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    assert cv2.imwrite(str(image), rgb)
    out = tmp_path / "out"
    args = ["predict", str(image), "--backend", "onnxruntime", "--checkpoint", checkpoint,
            "--uncertainty", "--threads", "1", "--out", str(out), "--no-progress"]  # fmt: skip
    _child(
        f"from depthart_core.cli import main\nassert main({args!r}) == 0\n" + TORCH_FREE,
        cache,
    )
    assert (out / "frame.npy").is_file() and (out / "frame_uncertainty.npy").is_file()


# device names as the CLI's --device or the node's `device` parameter may give them
DEVICE_NAMES = [
    "cpu", "cuda", "cuda:0", "cuda:1", "cuda:127", "CUDA", "gpu", "cuda:-1", "cuda:x", "mps",
    "meta", "", " cpu", "cpu ", "xpu", "cpu:0", "Cpu", "cuda:01", "cuda:00", "cuda:+1",
    "cuda: 1", "cuda :0", "cuda:1:2", "cuda:", "cuda::0", "cuda:1.0", "cuda:0x1", "cuda:1a",
    "cuda:\u0663", "cuda:2147483647", "cuda:2147483648", "cuda:9999999999999", "hip", "lazy",
    "privateuseone", "PrivateUse1", "cuda_", "_", "gpu:0",
]  # fmt: skip


def _verdict_through_torch(name: str) -> str | None:
    """What `check_device(name, torch_runs_it=False)` said when it asked torch.device."""
    try:
        kind = torch.device(name).type
    except (RuntimeError, TypeError):
        return f"unknown device {name!r}; use cpu, cuda or cuda:N"
    if kind not in ("cpu", "cuda"):
        return f"device {name!r}: only cpu and cuda are supported"
    return None


def test_device_names_are_checked_without_torch_as_torch_checked_them(tmp_path):
    """`check_device(..., torch_runs_it=False)` (ONNX Runtime's check) in an interpreter where
    torch cannot be imported at all: every name accepted or refused, in the same words, as
    when it asked torch.device; and the (type, index) ONNX Runtime picks its GPU by is torch's."""
    code = (
        "sys.modules['torch'] = None  # `import torch` raises ImportError\n"
        "import json\n"
        "from depthart_core.runtime.base import check_device, parse_device\n"
        "from depthart_core.runtime.onnx_backend import execution_providers\n"
        f"names = {DEVICE_NAMES!r}\n"
        "out = {}\n"
        "for name in names:\n"
        "    try:\n"
        "        check_device(name, torch_runs_it=False)\n"
        "        out[name] = [None, parse_device(name)]\n"
        "    except ValueError as exc:\n"
        "        out[name] = [str(exc), None]\n"
        "cuda = execution_providers('cuda:1', ['CUDAExecutionProvider', 'CPUExecutionProvider'])\n"
        "print(json.dumps({'verdicts': out, 'cuda:1': cuda}))\n"
    )
    got = json.loads(_child(code, tmp_path))
    for name in DEVICE_NAMES:
        message, parsed = got["verdicts"][name]
        assert message == _verdict_through_torch(name), name
        if message is None and name != "cuda:2147483647":  # torch keeps an int8 of that index
            dev = torch.device(name)
            assert parsed == [dev.type, dev.index], name
    assert got["cuda:1"] == [["CUDAExecutionProvider", {"device_id": 1}], "CPUExecutionProvider"]
