"""Runtime backends behind one interface: PyTorch, ONNX Runtime, TensorRT.

`get_backend` is the one place a backend is built (the CLI, the evaluator, the replay, the
benchmark and the ROS node all call it). `get_backend("auto", ...)` tries TensorRT, then ONNX
Runtime, then PyTorch, and logs why each earlier one was skipped; the checkpoint is resolved and
hashed once and its model loaded at most once along the way (`checkpoint.CheckpointFile`).
Asking for a backend explicitly that cannot run raises with how to install it. A deterministic
decoding (`greedy`, `soft`) runs on every backend (exported graphs hold argmax or softmax @
codebook); a sampled one (`paper`) runs on PyTorch only: `auto` then takes PyTorch, an exported
backend asked for by name raises.

Uncertainty (issue #25): with a checkpoint that has the uncertainty head every backend has
`has_uncertainty` and `predict(rgb, with_uncertainty=True)` (PyTorch runs the head; the exported
graph, and so ONNX Runtime and a TensorRT engine built from it, has an "uncertainty" output).

    base             `Backend` (`predict`, `predict_batch`), `TensorSpec`, the argument checks
    preprocess       resize or letterbox in, un-pad and resize back out (shared by all)
    torch_backend    `DepthEstimator`, the PyTorch backend
    onnx_cache       the one ONNX export cache (ONNX Runtime and TensorRT read it)
    onnx_backend     `OnnxRuntimeBackend`
    engine_cache     TensorRT engines cached by model, precision, shape, version and GPU
    tensorrt_backend `TensorRTBackend` and the engine builder
    bench            stage timings and the Depth Anything V2 peer for `depthart bench`

torch is imported only where it runs: the torch backend (`DepthEstimator`, imported at its first
use), an export on an ONNX cache miss, TensorRT (tried only where `tensorrt` imports), CUDA
checked through torch. ONNX Runtime on a cached graph, and so the ROS node on `onnxruntime` or on
`auto` without TensorRT, runs without it (about 160 MB resident and 0.75 s of start-up less).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from depthart_core.checkpoint_file import CheckpointFile
from depthart_core.config import PRECISIONS
from depthart_core.runtime.base import (
    Backend,
    check_device,
    check_flag,
    parse_device,
    torch_missing,
)
from depthart_core.runtime.engine_cache import import_tensorrt
from depthart_core.runtime.onnx_backend import OnnxRuntimeBackend
from depthart_core.runtime.threads import resolve_threads, set_opencv_threads, set_torch_threads
from depthart_core.sampling import (
    SamplingConfig,
    describe_sampling,
    require_greedy,
    runtime_sampling,
)

log = logging.getLogger(__name__)
BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


def __getattr__(name: str) -> Any:
    """`DepthEstimator` and `torch`, imported at their first use: the torch backend's, which a
    process that runs ONNX Runtime (the node on a cached graph) never loads (about 160 MB)."""
    if name == "DepthEstimator":
        return _torch_backend()
    if name == "torch":
        import torch  # as `runtime.torch` was before torch became lazy here

        return torch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _torch_backend() -> type[Backend]:
    """The PyTorch backend's class (`torch_backend.DepthEstimator`), imported with torch; an
    ImportError saying so where torch is not installed (an install for ONNX Runtime alone)."""
    try:
        from depthart_core.runtime.torch_backend import DepthEstimator  # torch: its backend only
    except ModuleNotFoundError as exc:
        if not torch_missing(exc):
            raise
        raise ModuleNotFoundError(
            "backend 'torch' needs PyTorch, which is not installed", name="torch"
        ) from exc
    return DepthEstimator


def get_backend(
    name: str = "auto",
    checkpoint: str | Path | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    letterbox: bool = False,
    onnx_path: str | Path | None = None,
    threads: int = 0,
    sampling: SamplingConfig | None = None,
    vae: str | Path | None = None,
    flip_average: bool = False,
    vae_setting: str | None = None,
) -> Backend:
    """The backend `name` for `checkpoint` (default: the shipped one); see the module docstring.
    `threads`: CPU threads for inference, 0 = automatic (`runtime.threads`). `sampling`: a
    `SamplingConfig` or None (the default, soft); greedy and soft run on every backend, a sampled
    one (`paper`) on torch only. `onnx_path`: a graph for onnxruntime or tensorrt (or `auto`).
    `vae`: VAR's VQ-VAE for an authors' checkpoint saved without it; `vae_setting`: what its
    errors call it (the CLI's --vae, the node's parameter; None, the default: a caller with no
    such setting, `load_checkpoint`). `flip_average`: also run each frame
    mirrored and average (`runtime.base`; twice the compute)."""
    check_flag("letterbox", letterbox)  # before a model is loaded
    check_flag("flip_average", flip_average)
    resolve_threads(threads)  # a TypeError or ValueError naming a bad count
    runtime_sampling(sampling)  # a TypeError naming anything but a SamplingConfig or None
    backend = _get_backend(
        name, checkpoint, device, precision, letterbox, onnx_path, threads, sampling, vae,
        vae_setting,
    )  # fmt: skip
    backend.flip_average = flip_average
    return backend


def _get_backend(
    name: str,
    checkpoint: str | Path | None,
    device: str,
    precision: str,
    letterbox: bool,
    onnx_path: str | Path | None,
    threads: int,
    sampling: SamplingConfig | None,
    vae: str | Path | None,
    vae_setting: str | None,
) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")
    if name == "torch" and onnx_path is not None:  # the graph would be ignored, not run
        raise ValueError(
            f"onnx_path {str(onnx_path)!r} with backend 'torch': a graph is run by onnxruntime "
            "or tensorrt; backend 'torch' runs the checkpoint"
        )
    check_device(device, torch_runs_it=False)  # the name; CUDA itself where torch runs it
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose fp32, fp16 or bf16")
    ckpt = CheckpointFile(checkpoint, vae=vae, vae_setting=vae_setting)
    if sampling is not None and not sampling.deterministic:
        if onnx_path is not None:  # the graph would be ignored: torch runs the checkpoint
            raise ValueError(
                f"onnx_path {str(onnx_path)!r} with {describe_sampling(sampling)}: a graph "
                "decodes soft or greedy only; sampling runs on the torch backend from a checkpoint"
            )
        if name == "auto":
            log.info("backend auto: using torch (sampling needs it)")
            name = "torch"
        require_greedy(sampling if name != "torch" else None, f"backend {name!r}")
        check_device(device)
        estimator = _torch_backend()  # without torch: one line, before its thread setting
        set_torch_threads(threads)
        return estimator.from_checkpoint(
            ckpt, device=device, letterbox=letterbox, precision=precision, sampling=sampling,
            threads=None,  # set above
        )  # fmt: skip
    if name == "auto":
        reasons = []
        environment = None  # the first candidate that failed on the system (an OSError), and why
        torchless = None  # onnxruntime's failure for want of torch (an export on a cache miss)
        for candidate in ("tensorrt", "onnxruntime"):
            try:
                backend = _make(
                    candidate, ckpt, device, precision, letterbox, onnx_path, threads, sampling
                )
            # any failure of an optional runtime (a TensorRT whose API differs raises
            # AttributeError) moves on, named in the log, rather than stopping the node
            except Exception as exc:
                short = _short(getattr(exc, "reason", f"{type(exc).__name__}: {exc}"))
                short += _environment_hint(exc)
                reasons.append(f"{candidate}: {short}")
                if environment is None and isinstance(exc, OSError):
                    environment = f"{candidate}: {short}"
                if candidate == "onnxruntime" and torch_missing(exc):
                    torchless = exc
                log.info("backend auto: skipping %s (%s)", candidate, short)
                continue
            return backend
        if onnx_path is not None:  # the caller's graph is its input: torch would run another model
            raise ValueError(
                f"onnx_path {str(onnx_path)!r}: no runtime could run it ({'; '.join(reasons)})"
            )
        try:
            backend = _make(
                "torch", ckpt, device, precision, letterbox, onnx_path, threads, sampling
            )
        except Exception as exc:
            if torchless is not None and torch_missing(exc):
                # no torch at all: the candidate's error says how to run without it (whole, not
                # the log's cut line), not just that the torch backend cannot start
                raise torchless from exc
            if environment is None:
                raise
            # the system's failure came first, and may be what broke torch too (a temp dir
            # missing left torch's own imports half done): named first, not hidden behind it
            why = _short(f"{type(exc).__name__}: {exc}") + _environment_hint(exc)
            raise RuntimeError(
                f"backend auto: no backend could start: {environment}; then torch: {why}"
            ) from exc
        log.info("backend auto: using torch (%s)", "; ".join(reasons))
        return backend
    return _make(name, ckpt, device, precision, letterbox, onnx_path, threads, sampling)


_REASON_CHARS = 300  # of a skipped backend's error in the log: never megabytes of it


def _short(text: object) -> str:
    """An error's text for one log line: its first line, cut to `_REASON_CHARS` characters (a
    pybind11 error quotes its arguments, once a whole traced graph of megabytes)."""
    lines = str(text).strip().splitlines()
    line = lines[0] if lines else str(text)
    cut = len(lines) > 1 or len(line) > _REASON_CHARS
    return line[:_REASON_CHARS] + (" [...]" if cut else "")


def _environment_hint(exc: BaseException) -> str:
    """What to change on the system for an error that is the system's, else "": Python found
    no writable temp folder (tempfile's "No usable temporary directory"; torch needs one)."""
    if isinstance(exc, OSError) and "No usable temporary directory" in str(exc):
        return " (set TMPDIR to a writable folder)"
    return ""


def _make(
    name: str,
    ckpt: CheckpointFile,
    device: str,
    precision: str,
    letterbox: bool,
    onnx_path: str | Path | None,
    threads: int = 0,
    sampling: SamplingConfig | None = None,
) -> Backend:
    """`sampling`: None (the default decoding) or a deterministic decoding. On a CUDA device the
    torch backend replays the whole inference as one CUDA graph: the tiny default is bound by
    kernel launches there, and the graph ran it 5x faster (BENCHMARKS 4c); its depth matches the
    eager pass's to 1e-4 in tests/test_checkpoint_estimator.py (a GPU only; no run recorded)."""
    if name == "torch":
        check_device(device)
        estimator = _torch_backend()  # without torch: one line, before its thread setting
        set_torch_threads(threads)
        return estimator.from_checkpoint(
            ckpt,
            device=device,
            letterbox=letterbox,
            precision=precision,
            sampling=sampling,
            cuda_graph=parse_device(device)[0] == "cuda",
            threads=None,  # set above
        )
    set_opencv_threads(threads)  # the pre-processing's, as the runtime's own threads
    if name == "onnxruntime":
        return OnnxRuntimeBackend.from_checkpoint(
            ckpt,
            onnx_path=onnx_path,
            device=device,
            precision=precision,
            letterbox=letterbox,
            threads=threads,
            sampling=sampling,
        )
    # absent: TensorRTMissing, its install guide for an explicit --backend; checked first, so
    # that `auto` without TensorRT imports neither torch nor onnx for the attempt
    import_tensorrt()
    # Imported here: tensorrt_backend needs the optional `onnx` package and torch at import time,
    # and the TensorRT backend is only tried where the optional `tensorrt` package is installed.
    from depthart_core.runtime.tensorrt_backend import TensorRTBackend, tensorrt_available

    ok, why = tensorrt_available()
    if not ok:
        raise RuntimeError(why)
    return TensorRTBackend.from_checkpoint(
        ckpt, onnx_path, precision, letterbox, sampling, device=device
    )
