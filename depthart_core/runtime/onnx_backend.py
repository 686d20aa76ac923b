"""ONNX Runtime backend: the whole static graph on the CPU (or the CUDA execution provider).

`OnnxRuntimeBackend.from_checkpoint(ckpt)` exports the checkpoint once into the ONNX cache
(`depthart_core.runtime.onnx_cache`) and reuses it. An ONNX file given explicitly must carry the
checkpoint's sha256 in its metadata when a checkpoint is named too (not for the shipped default
that `checkpoint=None` stands for); a mismatch is a clear error rather than silently running
another model. Likewise the graph's decoding (greedy or soft,
`depthart_decoding`) must be the one asked for.

A graph exported from a checkpoint with the uncertainty head has a third output, "uncertainty"
(`has_uncertainty`). Every call names the outputs it needs (`run`: depth; `run_with_tokens`:
depth and tokens; `run_uncertainty`: depth and uncertainty). ONNX Runtime still computes every
node of a graph whatever a call asks for (measured: one thread, the shipped model with a width-16
head, depth alone took as long as all three outputs, about 20 % more than without the head), so
for such a graph `run` and `run_with_tokens` use a session on the graph pruned to depth and
tokens (`export.onnx_meta.keep_outputs`), and `run_uncertainty` opens a session on the whole
graph the first time it is called. A process that asks for both holds the weights twice.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from depthart_core.checkpoint_file import CheckpointFile
from depthart_core.export.onnx_meta import (
    META_DECODING,
    META_IMAGE_SIZE,
    META_PRECISION,
    META_SHA,
    UNCERTAINTY_OUTPUT,
    keep_outputs,
    read_onnx_header,
)
from depthart_core.rundir import utf8_name
from depthart_core.runtime.base import (
    Backend,
    TensorSpec,
    check_device,
    check_flag,
    parse_device,
)
from depthart_core.runtime.onnx_cache import cached_onnx
from depthart_core.runtime.threads import resolve_threads
from depthart_core.sampling import SamplingConfig, graph_decoding, runtime_sampling

if TYPE_CHECKING:
    import torch


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


def execution_providers(device: str | torch.device, available: list[str]) -> list:
    """ONNX Runtime's providers for a checked `device`: the CPU's, after CUDA's on GPU N of
    "cuda:N" (`device_id`; plain "cuda" is GPU 0) where `available` (this onnxruntime's) has it.
    A name is read without torch (`parse_device`)."""
    kind, index = parse_device(device)
    if kind != "cuda":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in available:
        raise RuntimeError(
            f"device={device} but onnxruntime has no CUDAExecutionProvider: "
            "pip install onnxruntime-gpu"
        )
    return [("CUDAExecutionProvider", {"device_id": index or 0}), "CPUExecutionProvider"]


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
        check_device(device, torch_runs_it=False)  # "gpu" ran on the CPU, silently
        ort = _import_ort()
        path = Path(onnx_path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX file not found: {path}")
        meta, outputs = read_onnx_header(path)
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
        providers = execution_providers(device, ort.get_available_providers())
        self.onnx_path = path
        self._has_uncertainty = UNCERTAINTY_OUTPUT in outputs
        self._threads = resolve_threads(threads)  # 0: the non-oversubscribing default
        self._providers = providers
        self._open(ort, prune=self._has_uncertainty)
        self.precision = meta.get(META_PRECISION, "fp32")
        self.image_size = int(meta.get(META_IMAGE_SIZE, self.session.get_inputs()[0].shape[-1]))
        self.letterbox = letterbox
        self.checkpoint_sha256 = meta.get(META_SHA, "")
        self.decoding = decoding
        self._in_dtype = np.float16 if self.precision == "fp16" else np.float32

    def _open(self, ort, prune: bool) -> None:
        """Open the depth session (on the graph pruned to depth and tokens where `prune`: it has
        the head); the whole graph's waits for the first `run_uncertainty`."""
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3  # fp16 graphs log harmless constant-folding notes otherwise
        so.intra_op_num_threads = self._threads
        self._session_args = (so, self._providers)
        self._uncertainty_session = None  # opened by the first run_uncertainty
        self.session = ort.InferenceSession(self._graph(prune), so, providers=self._providers)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a DataLoader worker started with 'spawn' or 'forkserver', `copy.deepcopy`)
        as what reopens it: the graph's path, threads and providers, not the sessions."""
        state = self.__dict__.copy()
        state["_reopen_uncertainty"] = state.pop("_uncertainty_session") is not None
        del state["session"], state["_session_args"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Reopen the sessions on the graph file, which must still be the one pickled."""
        reopen_uncertainty = state.pop("_reopen_uncertainty")
        self.__dict__.update(state)
        path = self.onnx_path
        if not path.is_file():
            raise FileNotFoundError(
                f"cannot unpickle the onnxruntime backend: its graph {path} no longer exists"
            )
        meta, outputs = read_onnx_header(path)
        stamp = (meta.get(META_SHA, ""), meta.get(META_DECODING, "greedy"))
        if stamp != (self.checkpoint_sha256, self.decoding):
            raise ValueError(
                f"cannot unpickle the onnxruntime backend: its graph {path} was replaced, and "
                f"now holds checkpoint sha256 {stamp[0][:16] or '?'}... decoding {stamp[1]!r}"
            )
        self._open(_import_ort(), prune=UNCERTAINTY_OUTPUT in outputs)
        if reopen_uncertainty:
            self._uncertainty_session = self._whole_session()

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
        flip_average: bool = False,
    ) -> OnnxRuntimeBackend:
        """`sampling`: a deterministic decoding the graph must hold; None: the default decoding
        (soft) for the cached graph, or whatever a given `onnx_path` holds (its metadata).
        `flip_average`: also run each frame mirrored and average (`runtime.base`)."""
        if precision not in ("fp32", "fp16"):  # bf16: no ONNX Runtime kernels, not fp32 quietly
            raise ValueError(
                f"ONNX Runtime precision must be fp32 or fp16, got {precision!r} (bf16 runs on the "
                "torch backend)"
            )
        check_flag("letterbox", letterbox)  # bad arguments before the export
        check_flag("flip_average", flip_average)
        check_device(device, torch_runs_it=False)
        resolve_threads(threads)
        _import_ort()
        ckpt = checkpoint if isinstance(checkpoint, CheckpointFile) else CheckpointFile(checkpoint)
        decoding = None  # a given graph, no sampling asked for: take the graph's own
        if sampling is not None or onnx_path is None:
            sampling = runtime_sampling(sampling)
            decoding = graph_decoding(sampling)
        # a graph given alone runs as it is; with a checkpoint named too it must be that one's
        expected = None if onnx_path is not None and ckpt.default else ckpt.model_sha256
        if onnx_path is None:  # exported in float32 whatever the default dtype (`export_onnx`)
            onnx_path = cached_onnx(ckpt, precision, sampling)
        backend = cls(
            onnx_path,
            expected,
            device=device,
            letterbox=letterbox,
            threads=threads,
            expected_decoding=decoding,
        )
        backend.flip_average = flip_average
        dropped = ckpt.info().get("uncertainty_dropped", "")
        if dropped:  # a head not the model's own, said why (a graph given may predate this)
            backend._has_uncertainty, backend.head_left_out = False, dropped
        return backend

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
            f"{threads} threads)" + self.fitting_note()
        )

    def _graph(self, prune: bool) -> str | bytes:
        """The graph for a session: its file, or with `prune` (a graph with the head) its bytes
        pruned to depth and tokens. Its bytes too where the path is not UTF-8 (a Latin-1
        folder), which ONNX Runtime refuses: read by `onnx.load` (Python's file I/O), external
        weights included, tens of MB for a depthart graph."""
        name = utf8_name(self.onnx_path)
        if name is not None and not prune:
            return name
        import onnx  # optional dependency: the `onnx` extra (installed with onnxruntime's)

        graph = onnx.load(str(self.onnx_path))
        if prune:
            graph = keep_outputs(graph, ["depth", "tokens"])
        return graph.SerializeToString()

    @property
    def has_uncertainty(self) -> bool:
        """Whether the graph has the "uncertainty" output (exported with the head)."""
        return self._has_uncertainty

    def _run(self, session, x_B3SS: np.ndarray, names: list[str]) -> list[np.ndarray]:
        """The outputs `names` for each image (the graph is static at batch 1), stacked."""
        per_image = [
            session.run(names, {"image": x[None].astype(self._in_dtype)})
            for x in np.asarray(x_B3SS)
        ]
        return [np.concatenate(col) for col in zip(*per_image, strict=True)]

    def run_with_tokens(self, x_B3SS: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depth, tokens = self._run(self.session, x_B3SS, ["depth", "tokens"])
        return depth.astype(np.float32), tokens

    def run(self, x_B3SS: np.ndarray) -> np.ndarray:
        return self._run(self.session, x_B3SS, ["depth"])[0].astype(np.float32)

    def _whole_session(self):
        """A session on the whole graph, uncertainty output included."""
        so, providers = self._session_args
        return _import_ort().InferenceSession(self._graph(False), so, providers=providers)

    def run_uncertainty(self, x_B3SS: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised (B, 3, S, S) -> ((B, S, S) depth, (B, S, S) expected relative error)."""
        if not self.has_uncertainty:
            return super().run_uncertainty(x_B3SS)  # raises, naming the backend
        if self._uncertainty_session is None:
            self._uncertainty_session = self._whole_session()
        names = ["depth", UNCERTAINTY_OUTPUT]
        depth, unc = self._run(self._uncertainty_session, x_B3SS, names)
        return depth.astype(np.float32), unc.astype(np.float32)
