"""`DepthEstimator`: one call from an RGB frame to a relative depth map, in PyTorch.

    est = DepthEstimator.from_checkpoint()          # the shipped default checkpoint
    depth = est.predict(rgb)                        # HxWx3 uint8 RGB -> HxW float32 in [0, 1]

Relative depth is proportional to d / q98(d) of the scene (the DepthART codec); multiply by a
scale (e.g. median-aligned to a metric cue) to get metres. The other backends (ONNX Runtime,
TensorRT) share the same pre/post-processing in `depthart_core.runtime.preprocess`.
"""

from __future__ import annotations

import io
import multiprocessing.context
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthart_core.checkpoint import (
    CheckpointFile,
    load_checkpoint,
    load_model,
    refuse_tokenizer_only,
)
from depthart_core.model import DepthART, SamplingConfig
from depthart_core.precision import autocast
from depthart_core.runtime.base import Backend, check_device
from depthart_core.runtime.threads import follow_torch_threads, set_torch_threads
from depthart_core.sampling import describe_sampling, runtime_sampling


def _model_to_bytes(model: DepthART) -> bytes:
    """The whole module (structure, every parameter and buffer, persistent or not, their dtypes,
    shared storages and train/eval flags) as ONE bytes object, `torch.save`'s archive. Pickled
    as such, the model's tensors are not handed over one by one: in a DataLoader worker's
    start-up torch's sharing reducers pass one file descriptor per tensor, and Python's
    "forkserver" start method (3.14's default on Linux) refuses more than 256 ("too many fds")."""
    buf = io.BytesIO()
    torch.save(model, buf)
    return buf.getvalue()


def _forkserver_start() -> bool:
    """Whether this pickling starts a process through multiprocessing's fork server (its
    "forkserver" start method: Python 3.14's default on Linux)."""
    popen = multiprocessing.context.get_spawning_popen()
    return popen is not None and type(popen).__module__.endswith("popen_forkserver")


def _model_from_bytes(blob: bytes, device: torch.device) -> DepthART:
    """`_model_to_bytes`'s model, on `device` (a CUDA backend's model back on its GPU). Not
    weights-only: the blob is our own, inside a pickle that already runs code as it loads."""
    return torch.load(io.BytesIO(blob), map_location=device, weights_only=False)


class DepthEstimator(Backend):
    """The PyTorch backend (CPU or CUDA); `predict`/`predict_batch` come from `Backend`."""

    name = "torch"

    def __init__(
        self,
        model: DepthART,
        device: str | torch.device = "cpu",
        letterbox: bool = False,
        sampling: SamplingConfig | None = None,
        info: dict[str, Any] | None = None,
        precision: str = "fp32",
        cuda_graph: bool = False,
        flip_average: bool = False,
    ) -> None:
        self.letterbox, self.flip_average = letterbox, flip_average  # bools, or a TypeError
        check_device(device, flag="device")  # one line, not torch's assertion or its list
        self.device = torch.device(device)
        if precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision fp16 needs a CUDA device; use fp32 or bf16 on the CPU")
        self.precision = precision
        if cuda_graph and self.device.type != "cuda":
            raise ValueError("cuda_graph=True needs a CUDA device")
        sampling = runtime_sampling(sampling)  # None: the default decoding (soft)
        self.cuda_graph = cuda_graph and sampling.deterministic
        self._graphs: dict[tuple, tuple] = {}
        self._graph_lock = threading.Lock()
        self.model = model.to(self.device).eval()
        self.sampling = sampling
        self.info = info or {}
        self.head_left_out = self.info.get("uncertainty_dropped", "")

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a DataLoader worker started with 'spawn' or 'forkserver', `copy.deepcopy`)
        without the lock and the captured CUDA graphs, which belong to this process. For a
        process that "forkserver" starts, the model goes as one bytes blob (`_model_to_bytes`):
        there torch's sharing reducers would hand over one file descriptor per tensor, more
        than the fork server takes; elsewhere its tensors go as they are (spawn: shared memory,
        not a copy per worker)."""
        state = self.__dict__.copy()
        del state["_graph_lock"], state["_graphs"]
        if _forkserver_start():
            state["model"] = _model_to_bytes(self.model)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if isinstance(state["model"], bytes):
            self.model = _model_from_bytes(state["model"], self.device)
        self._graphs = {}  # captured again at the first call, per input shape
        self._graph_lock = threading.Lock()

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | CheckpointFile | None = None,
        device: str | torch.device = "cpu",
        vae: str | Path | None = None,
        threads: int | None = 0,
        **kwargs: Any,
    ) -> DepthEstimator:
        """The model of `path` (default: the shipped checkpoint); a `CheckpointFile` shares its
        already loaded model. `vae`: VAR's VQ-VAE, only for an authors' checkpoint without it.
        `threads` (process-wide, as every backend's): 0 = the rule of `runtime.threads` (half
        the cores; a busy core stalls every thread PyTorch has), None = leave PyTorch's as set."""
        if threads is not None:
            set_torch_threads(threads)
        check_device(device, flag="device")  # before the model is loaded
        if isinstance(path, CheckpointFile):
            model, info = load_model(path)
        else:
            model, info = load_checkpoint(path, vae=vae)
            refuse_tokenizer_only(info, info["path"])
        return cls(model, device=device, info=info, **kwargs)

    @property
    def image_size(self) -> int:
        return self.model.cfg.image_size

    def describe(self) -> str:
        graph = ", CUDA graph" if self.cuda_graph else ""
        return (
            f"torch ({self.precision}, {self.device}{graph}, {describe_sampling(self.sampling)})"
            + self.fitting_note()
        )

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(self.device, self.precision):
            r = self.model.infer(x, self.sampling)
        return r.depth.float(), torch.cat([i.flatten(1) for i in r.tokens], dim=1)

    def _graphed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Capture the whole static greedy inference once per input shape, then replay it. One
        call at a time (a lock): the captured input and outputs are shared buffers, so two
        threads' replays would hand one the other's depth; the outputs are copied out inside."""
        with self._graph_lock:
            depth, tokens = self._replay(x)
            return depth.clone(), tokens.clone()

    def _replay(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # On this backend's GPU, capture and replay alike: torch.cuda.graph captures on a stream
        # of the current device (its default one: of the device current when first used), so
        # with cuda:1 the kernels would run eagerly on GPU 1 and leave the graph empty.
        with torch.cuda.device(self.device):
            key = tuple(x.shape)
            if key not in self._graphs:
                static_in = x.clone()
                side = torch.cuda.Stream(device=self.device)
                side.wait_stream(torch.cuda.current_stream(self.device))
                with torch.cuda.stream(side):
                    for _ in range(2):  # warm-up allocates workspaces and the resize matrices
                        self._forward(static_in)
                torch.cuda.current_stream(self.device).wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, stream=side):
                    static_out = self._forward(static_in)
                self._graphs[key] = (graph, static_in, static_out)
            graph, static_in, static_out = self._graphs[key]
            static_in.copy_(x)
            graph.replay()
            return static_out

    @torch.inference_mode()
    def run_with_tokens(self, x_B3SS: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised (B, 3, S, S) float32 -> ((B, S, S) relative depth, (B, L) token maps)."""
        follow_torch_threads()  # the process's count on this thread too (a node's worker)
        x = torch.from_numpy(np.ascontiguousarray(x_B3SS, dtype=np.float32)).to(self.device)
        depth, tokens = self._graphed(x) if self.cuda_graph else self._forward(x)
        return depth.cpu().numpy(), tokens.cpu().numpy()

    def run(self, x_B3SS: np.ndarray) -> np.ndarray:
        """Normalised (B, 3, S, S) float32 -> (B, S, S) relative depth."""
        return self.run_with_tokens(x_B3SS)[0]

    @property
    def has_uncertainty(self) -> bool:
        deterministic = self.sampling is None or self.sampling.deterministic
        return self.model.uncertainty_head is not None and deterministic

    @property
    def uncertainty_missing(self) -> str:
        if self.model.uncertainty_head is not None:  # a sampled decoding
            return (
                f"the head predicts the error of the soft or greedy decoding, not of "
                f"{describe_sampling(self.sampling)}'s random draws"
            )
        return super().uncertainty_missing

    @property
    def uncertainty_remedy(self) -> str:
        if self.model.uncertainty_head is not None:
            return "decode with --sampling soft or greedy for it"
        return super().uncertainty_remedy

    @torch.inference_mode()
    def run_uncertainty(self, x_B3SS: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised (B, 3, S, S) -> ((B, S, S) depth, (B, S, S) expected relative error)."""
        if not self.has_uncertainty and self.model.uncertainty_head is not None:
            raise ValueError(f"backend {self.describe()} has no uncertainty: "
                             f"{self.uncertainty_missing}; {self.uncertainty_remedy}")  # fmt: skip
        if not self.has_uncertainty:
            return super().run_uncertainty(x_B3SS)  # raises, naming the backend
        follow_torch_threads()
        x = torch.from_numpy(np.ascontiguousarray(x_B3SS, dtype=np.float32)).to(self.device)
        with autocast(self.device, self.precision):
            r = self.model.infer(x, self.sampling, with_uncertainty=True)
        return r.depth.float().cpu().numpy(), r.uncertainty.float().cpu().numpy()
