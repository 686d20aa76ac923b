"""Runtime backends behind one interface: PyTorch, ONNX Runtime, TensorRT.

`get_backend("auto", ...)` tries TensorRT, then ONNX Runtime, then PyTorch, and logs why each
earlier one was skipped. Asking for a backend explicitly that cannot run raises with how to
install it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from depthart_core.runtime.base import Backend, TensorSpec

__all__ = ["Backend", "TensorSpec", "get_backend", "BACKENDS"]

log = logging.getLogger(__name__)
BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


def get_backend(
    name: str = "auto",
    checkpoint: str | Path | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    letterbox: bool = False,
    onnx_path: str | Path | None = None,
) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")
    if precision not in ("fp32", "fp16", "bf16"):
        raise ValueError(f"unknown precision {precision!r}; choose fp32, fp16 or bf16")
    if name == "auto":
        reasons = []
        for candidate in ("tensorrt", "onnxruntime"):
            try:
                backend = _make(candidate, checkpoint, device, precision, letterbox, onnx_path)
            except (ImportError, RuntimeError, ValueError) as exc:
                reasons.append(f"{candidate}: {exc}")
                log.info("backend auto: skipping %s (%s)", candidate, exc)
                continue
            return backend
        backend = _make("torch", checkpoint, device, precision, letterbox, onnx_path)
        log.info("backend auto: using torch (%s)", "; ".join(reasons))
        return backend
    return _make(name, checkpoint, device, precision, letterbox, onnx_path)


def _make(name, checkpoint, device, precision, letterbox, onnx_path) -> Backend:
    if name == "torch":
        from depthart_core.estimator import DepthEstimator

        return DepthEstimator.from_checkpoint(
            checkpoint, device=device, letterbox=letterbox, precision=precision
        )
    if name == "onnxruntime":
        from depthart_core.runtime.onnx_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend.from_checkpoint(
            checkpoint, onnx_path=onnx_path, device=device, precision=precision, letterbox=letterbox
        )
    from depthart_core.runtime.tensorrt_backend import tensorrt_available

    ok, why = tensorrt_available()
    if not ok:
        raise RuntimeError(why)
    from depthart_core.runtime.trt_factory import tensorrt_from_checkpoint

    return tensorrt_from_checkpoint(checkpoint, onnx_path, precision, letterbox)
