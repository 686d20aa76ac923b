"""ONNX Runtime backend: the whole static graph on the CPU (or the CUDA execution provider).

`OnnxRuntimeBackend.from_checkpoint(ckpt)` exports the checkpoint once into the ONNX cache
(`depthart_core.runtime.onnx_cache`) and reuses it. An ONNX file given explicitly must carry the
checkpoint's sha256 in its metadata when a checkpoint is given too; a mismatch is a clear error
rather than silently running another model. Likewise the graph's decoding (greedy or soft,
`depthart_decoding`) must be the one asked for.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from depthart_core.checkpoint import CheckpointFile
from depthart_core.export.onnx_export import (
    META_DECODING,
    META_IMAGE_SIZE,
    META_PRECISION,
    META_SHA,
    read_onnx_metadata,
)
from depthart_core.model import SamplingConfig
from depthart_core.runtime.base import Backend, TensorSpec
from depthart_core.runtime.onnx_cache import cached_onnx
from depthart_core.runtime.threads import resolve_threads
from depthart_core.sampling import graph_decoding


def _import_ort():  # optional dependency: onnxruntime (the `onnx` extra)
    try:
        import onnxruntime as ort
    except ImportError as exc:
        # name the interpreter that runs: a colcon install runs the venv in its scripts' #! line
        raise ImportError(
            f"onnxruntime is not installed for {sys.executable}: {sys.executable} -m pip install "
            "onnxruntime onnx onnxscript (the `onnx` extra of a pip install; onnxruntime-gpu "
            "for the CUDA execution provider)"
        ) from exc
    return ort


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(
        self,
        onnx_path: str | Path,
        expected_sha256: str | None = None,
        device: str = "cpu",
        letterbox: bool = False,
        threads: int = 0,
        expected_decoding: str | None = None,
    ) -> None:
        ort = _import_ort()
        path = Path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file not found: {path}")
        meta = read_onnx_metadata(path)
        if expected_sha256 is not None and meta.get(META_SHA) != expected_sha256:
            raise ValueError(
                f"{path} was exported from checkpoint sha256 {meta.get(META_SHA, '?')[:16]}..., "
                f"not from the given checkpoint ({expected_sha256[:16]}...): re-export it with "
                "`depthart export`"
            )
        decoding = meta.get(META_DECODING, "greedy")  # graphs from before the stamp: greedy
        if expected_decoding is not None and decoding != expected_decoding:
            raise ValueError(
                f"{path} decodes {decoding!r}, not {expected_decoding!r}: re-export it with "
                f"`depthart export --sampling {expected_decoding}`"
            )
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # fp16 graphs log harmless constant-folding notes otherwise
        so.intra_op_num_threads = resolve_threads(threads)  # 0: the non-oversubscribing default
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeError(
                    "device=cuda but onnxruntime has no CUDAExecutionProvider: "
                    "pip install onnxruntime-gpu"
                )
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), so, providers=providers)
        self.onnx_path = path
        self.precision = meta.get(META_PRECISION, "fp32")
        self.image_size = int(meta.get(META_IMAGE_SIZE, self.session.get_inputs()[0].shape[-1]))
        self.letterbox = letterbox
        self.checkpoint_sha256 = meta.get(META_SHA, "")
        self.decoding = decoding
        self._in_dtype = np.float16 if self.precision == "fp16" else np.float32

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path | CheckpointFile | None = None,
        onnx_path: str | Path | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        letterbox: bool = False,
        threads: int = 0,
        sampling: SamplingConfig | None = None,
    ) -> OnnxRuntimeBackend:
        """`sampling`: a deterministic decoding (None: greedy); the graph must hold it."""
        _import_ort()
        ckpt = checkpoint if isinstance(checkpoint, CheckpointFile) else CheckpointFile(checkpoint)
        decoding = graph_decoding(sampling)
        if onnx_path is None:
            onnx_path = cached_onnx(ckpt, precision, sampling)
        return cls(
            onnx_path,
            ckpt.sha256,
            device=device,
            letterbox=letterbox,
            threads=threads,
            expected_decoding=decoding,
        )

    @property
    def input_spec(self) -> TensorSpec:
        i = self.session.get_inputs()[0]
        return TensorSpec(i.name, tuple(i.shape), i.type)

    @property
    def output_spec(self) -> TensorSpec:
        o = self.session.get_outputs()[0]
        return TensorSpec(o.name, tuple(o.shape), o.type)

    def describe(self) -> str:
        threads = self.session.get_session_options().intra_op_num_threads
        return (
            f"onnxruntime ({self.precision}, {self.decoding}, {self.session.get_providers()[0]}, "
            f"{threads} threads)" + self.flip_note()
        )

    def run_with_tokens(self, x_B3SS: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depths, tokens = [], []
        for x in np.asarray(x_B3SS):  # the graph is static at batch 1
            d, t = self.session.run(None, {"image": x[None].astype(self._in_dtype)})
            depths.append(d.astype(np.float32))
            tokens.append(t)
        return np.concatenate(depths), np.concatenate(tokens)

    def run(self, x_B3SS: np.ndarray) -> np.ndarray:
        return self.run_with_tokens(x_B3SS)[0]
