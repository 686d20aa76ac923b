"""TensorRT backend: build an engine from the exported ONNX once, cache it, run it on torch CUDA.

Written against the TensorRT 10/11 Python API (docs.nvidia.com/deeplearning/tensorrt, Python API
reference and the "Migrating from TensorRT 10.x to 11.x" guide) and laid out like NVIDIA's
`samples/python/*/build_engine.py` (log every parser error and network tensor) and `infer.py`:

- build: `Builder` -> `create_network(1 << STRONGLY_TYPED)` -> `OnnxParser.parse` (bytes);
  `IBuilderConfig.set_memory_pool_limit(MemoryPoolType.WORKSPACE, ...)`; a timing cache loaded
  with `create_timing_cache`/`set_timing_cache` and saved from `get_timing_cache().serialize()`;
  progress through an `IProgressMonitor` subclass set as `config.progress_monitor`, whose
  `step_complete` returning False cancels the build once the program is stopping;
  `build_serialized_network` (None when it failed or was cancelled). Precision lives in the
  ONNX graph: strong typing is opt-in on 10.12-10.x and always on in 11.x, where
  `BuilderFlag.FP16` no longer exists.
- run: `Runtime.deserialize_cuda_engine` (None on a foreign or damaged plan), tensors bound by
  name with `IExecutionContext.set_tensor_address`, `execute_async_v3(stream_handle)` on one
  torch CUDA stream; no pycuda.

Engines are cached by `engine_cache.EngineCache` (model sha256, precision, shape, TensorRT
version, compute capability).

Uncertainty (issue #25): an engine built from a graph with the head has a third I/O tensor,
"uncertainty" (`has_uncertainty`); `run_uncertainty` returns it with the depth from the same
execution. A TensorRT engine computes every output it was built with on every execution, so such
an engine pays for the head on `run` too (not measured: TensorRT does not run here).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import torch
from tqdm import tqdm

from depthart_core.checkpoint_file import CheckpointFile
from depthart_core.export.onnx_meta import (
    META_DECODING,
    META_SHA,
    UNCERTAINTY_OUTPUT,
    read_onnx_metadata,
)
from depthart_core.export.trt_onnx_ops import check_precision, check_tensorrt_compatible, load_graph
from depthart_core.fileutil import (
    CACHE_TEMP_STALE_S,
    ENV_CACHE,
    atomic_write,
    lock_wait_stop_condition,
)
from depthart_core.rundir import utf8_name
from depthart_core.runtime.base import Backend, TensorSpec, check_flag

# TensorRT's import needs neither torch nor onnx (`get_backend("auto")` tries it before this
# module is imported): engine_cache's, re-exported here
from depthart_core.runtime.engine_cache import INSTALL_HINT as INSTALL_HINT
from depthart_core.runtime.engine_cache import MIN_TENSORRT as MIN_TENSORRT
from depthart_core.runtime.engine_cache import (
    PRECISIONS,
    EngineCache,
    EngineKey,
    read_timing_cache,
)
from depthart_core.runtime.engine_cache import TensorRTMissing as TensorRTMissing
from depthart_core.runtime.engine_cache import import_tensorrt as import_tensorrt
from depthart_core.runtime.onnx_cache import cached_onnx
from depthart_core.sampling import SamplingConfig, graph_decoding, runtime_sampling
from depthart_core.signals import stops_the_program

log = logging.getLogger(__name__)

INPUT_NAME, OUTPUT_NAME = "image", "depth"
# the signals that cancel a build on the main thread: Ctrl-C's, and the terminations that
# `signals.interrupt_on_termination` (the CLI's) turns into KeyboardInterrupt
STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


class EngineBuildStopped(KeyboardInterrupt):
    """A TensorRT engine build cancelled because the program is stopping
    (`build_serialized_engine`): an interruption, as `fileutil.LockWaitStopped` is, so no
    `except Exception` on the way out (a backend fallback) takes it for a failed build."""


@functools.cache
def trt_logger():
    """The process's one TensorRT logger (TensorRT keeps a single logger pointer: a second one
    is ignored with a warning), shared by every build and runtime."""
    trt = import_tensorrt()
    return trt.Logger(trt.Logger.WARNING)


def gpu_name(device: int | None = None) -> str:
    """The GPU's model and memory as a file-name-safe slug (e.g. "orin_7gb"): an engine is
    specific to the GPU model, not only its architecture (Orin Nano, NX and AGX are all sm_87)."""
    props = torch.cuda.get_device_properties(device)
    slug = re.sub(r"[^a-z0-9]+", "-", props.name.lower()).strip("-") or "gpu"
    return f"{slug}_{round(props.total_memory / 2**30)}gb"


def tensorrt_available() -> tuple[bool, str]:
    """(usable, reason): TensorRT importable and a CUDA GPU visible to torch."""
    try:
        trt = import_tensorrt()
    except RuntimeError as exc:
        return False, str(exc)
    if not torch.cuda.is_available():
        return False, f"tensorrt {trt.__version__} is installed but torch sees no CUDA GPU"
    return (
        True,
        f"tensorrt {trt.__version__} on {torch.cuda.get_device_name()} ({compute_capability()})",
    )


def compute_capability(device: int | None = None) -> str:
    """The GPU's architecture as "sm_XY" (e.g. "sm_87" on Jetson Orin)."""
    major, minor = torch.cuda.get_device_capability(device)
    return f"sm_{major}{minor}"


def model_sha256(onnx_path: Path, model: onnx.ModelProto) -> str:
    """sha256 of the .onnx file, continued over its external-data files if it has any."""
    h = hashlib.sha256(onnx_path.read_bytes())
    external = sorted(
        {e.value for t in model.graph.initializer for e in t.external_data if e.key == "location"}
    )
    for name in external:
        h.update((onnx_path.parent / name).read_bytes())
    return h.hexdigest()


def engine_input_shape(model: onnx.ModelProto, image_size: int) -> tuple[int, int, int, int]:
    """(B, 3, S, S) the engine is built for: the graph's static batch, or 1 if batch is dynamic."""
    inputs = {i.name: i for i in model.graph.input}
    if INPUT_NAME not in inputs:
        raise ValueError(f"ONNX graph has no input {INPUT_NAME!r}; its inputs are {list(inputs)}")
    dims = [
        d.dim_value if d.HasField("dim_value") else -1
        for d in inputs[INPUT_NAME].type.tensor_type.shape.dim
    ]
    want = (3, image_size, image_size)
    if len(dims) != 4 or any(d not in (-1, w) for d, w in zip(dims[1:], want, strict=True)):
        raise ValueError(
            f"ONNX input {INPUT_NAME!r} has shape {dims}, expected (B, 3, "
            f"{image_size}, {image_size}) with B static or dynamic"
        )
    return (dims[0] if dims[0] > 0 else 1, 3, image_size, image_size)


@functools.cache
def _progress_monitor_class(trt: ModuleType) -> type:
    class BuildMonitor(trt.IProgressMonitor):
        """Cancels the build once `stop_cause()` returns a cause, kept in `cause` (TensorRT 10:
        `step_complete` returning False cancels it); tqdm bars per builder phase where
        `show_progress` (nested phases indented). Thread-safe as TensorRT asks: it calls in
        from its own threads."""

        def __init__(
            self, stop_cause: Callable[[], BaseException | None], show_progress: bool
        ) -> None:
            trt.IProgressMonitor.__init__(self)
            self._stop_cause, self._show = stop_cause, show_progress
            self._bars: dict[str, tqdm] = {}
            self._lock = threading.Lock()
            self.cause: BaseException | None = None

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._keeping_errors(), self._bars_failing_alone():
                if self._show:
                    depth = 0 if parent_phase is None else len(self._bars)
                    self._bars[phase_name] = tqdm(
                        total=num_steps,
                        desc=f"TensorRT {phase_name}",
                        position=depth,
                        leave=parent_phase is None,
                        unit="step",
                    )

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._keeping_errors():
                if self.cause is None:  # asked until it stops: TensorRT's threads may call again
                    self.cause = self._stop_cause()
                with self._bars_failing_alone():
                    bar = self._bars.get(phase_name)
                    if bar is not None:
                        bar.update(step + 1 - bar.n)
            return self.cause is None

        def phase_finish(self, phase_name: str) -> None:
            with self._keeping_errors(), self._bars_failing_alone():
                bar = self._bars.pop(phase_name, None)
                if bar is not None:
                    bar.close()

        @contextlib.contextmanager
        def _bars_failing_alone(self) -> Iterator[None]:
            # a bar that cannot be drawn (a closed stderr) must not cost a 20-minute build:
            # the bars go, the build goes on
            try:
                yield
            except Exception as exc:
                if self._show:
                    log.warning("TensorRT build progress bars turned off: %r", exc)
                self._show = False
                for bar in self._bars.values():  # so that no close() writes to it again
                    bar.disable = True
                self._bars.clear()

        @contextlib.contextmanager
        def _keeping_errors(self) -> Iterator[None]:
            # TensorRT's binding prints and drops what a callback raises: kept as the cause
            # (a Ctrl-C's KeyboardInterrupt, where TensorRT calls in on the main thread, is
            # mostly raised as the callback is entered, before this: `_build_plan` finds it)
            with self._lock:
                try:
                    yield
                except BaseException as exc:
                    if self.cause is None:
                        self.cause = exc

    return BuildMonitor


@contextlib.contextmanager
def _signal_pipe() -> Iterator[int | None]:
    """The read end of a non-blocking pipe set as Python's signal wakeup fd for the block; None
    where none is set. Python runs a signal's handler (Ctrl-C's KeyboardInterrupt) on the main
    thread between bytecodes, so not before a C++ build returns, but its C-level handler runs at
    once and writes the signal's number to the wakeup fd. Set only on the main thread of the
    main interpreter (Python allows no other) and only where the program set none: one it set
    (asyncio's) stays its own. Only a signal with a Python handler is written: SIGTERM at its
    default disposition kills the process by itself, and an ignored one is written nowhere."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    read, write = os.pipe()
    os.set_blocking(read, False)
    os.set_blocking(write, False)  # Python's rule for a wakeup fd: a full pipe drops bytes
    maybe_set = True  # until known otherwise: a handler may raise between any two lines
    try:
        try:
            previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        except ValueError:  # a subinterpreter's main thread
            previous = None
        if previous is None:
            maybe_set = False
        elif previous != -1:
            # the program's, put back (its warn_on_full_buffer cannot be read: Python's
            # default, asyncio's), with the signal of that instant if one came
            signal.set_wakeup_fd(previous)
            maybe_set = False
            with contextlib.suppress(OSError):
                os.write(previous, os.read(read, 512))
        yield read if maybe_set else None
    finally:
        if maybe_set:  # never left pointing at a closed pipe, whose number the next file gets
            current = signal.set_wakeup_fd(-1)
            if current not in (-1, write):
                signal.set_wakeup_fd(current)
        os.close(read)
        os.close(write)


def _stop_cause(
    stop: Callable[[], bool] | None, pipe: int | None, what: str
) -> KeyboardInterrupt | None:
    """Why the build of `what` must stop now, if it must: the calling thread's
    `lock_waits_end_when` condition (`stop`) is true, or a stop signal reached the wakeup `pipe`
    (`_signal_pipe`), which also gets every other handled signal (SIGCHLD's, SIGUSR1's)."""
    if stop is not None and stop():
        return EngineBuildStopped(f"stopped building {what}")
    if pipe is not None:
        try:
            received = os.read(pipe, 512)
        except BlockingIOError:  # none came
            return None
        for signum in received:
            # only where its handler ends the program: a SIGHUP that reloads a daemon's
            # settings, or a "Ctrl-C again to quit" handler, must not cost it a 20-minute build
            if signum in STOP_SIGNALS and stops_the_program(signal.getsignal(signum)):
                # KeyboardInterrupt itself, as its handler raises: a program ended by one
                # exits as killed by SIGINT (a subclass: status 1)
                name = signal.Signals(signum).name
                return KeyboardInterrupt(f"stopped by {name} while building {what}")
    return None


def _log_network_io(trt: ModuleType, network) -> None:
    for kind, count, get in (
        ("input", network.num_inputs, network.get_input),
        ("output", network.num_outputs, network.get_output),
    ):
        for i in range(count):
            t = get(i)
            log.info("network %s %r: shape %s, dtype %s", kind, t.name, tuple(t.shape), t.dtype)


def build_serialized_engine(
    onnx_path: str | Path,
    input_shape: tuple[int, int, int, int],
    workspace_mb: int = 1024,
    timing_cache_path: str | Path | None = None,
    show_progress: bool = True,
    tf32: bool = False,
    timing_cache_setting: str = ENV_CACHE,
) -> bytes:
    """Parse the ONNX into a strongly typed network and build a serialized engine (a plan).
    `tf32`: let fp32 matrix products run in TF32 (TensorRT's default on Ampere and newer,
    Jetson Orin included); off, an fp32 graph's engine computes in fp32 as the other backends
    do, so its greedy tokens match theirs. `timing_cache_path`: TensorRT's timing cache, read
    only if trusted (`engine_cache.read_timing_cache`; `timing_cache_setting` is what its
    warning says to set) and saved there after the build, writable by you only.

    Stopping: TensorRT's progress monitor cancels the build at its next step once the calling
    thread's `lock_waits_end_when` condition is true (a ROS node's ended context: rclpy's
    SIGTERM handler raises nothing in Python), or, on the main thread, once SIGINT, SIGTERM or
    SIGHUP arrived whose handler ends the program (`signals.stops_the_program`: Python's Ctrl-C
    handler, the CLI's `interrupt_on_termination`; not a handler that reloads settings), seen
    through the signal wakeup fd (`_signal_pipe`), also one that came after the last step. The
    build then raises KeyboardInterrupt (the condition's: `EngineBuildStopped`), never a failed
    build's RuntimeError, and saves no timing cache. No wakeup fd is watched on another thread,
    nor where the program set one of its own (asyncio's): such a build stops on the
    `lock_waits_end_when` condition only."""
    trt = import_tensorrt()
    builder = trt.Builder(trt_logger())
    # 1. network: strongly typed, so FP16 comes only from the graph's own types
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, trt_logger())
    # the graph's bytes (held until the build is done), read by Python: the parser takes a path
    # as UTF-8 and refuses one that is not (a Latin-1 folder). The path, given where it is UTF-8,
    # only serves to find external weights, which a depthart graph has not.
    graph = Path(onnx_path).read_bytes()
    if not parser.parse(graph, utf8_name(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        for err in errors:
            log.error("TensorRT ONNX parser: %s", err)
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: " + " | ".join(errors))
    _log_network_io(trt, network)
    # 2. config: workspace, a fixed-shape profile for any dynamic input dims, timing cache
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if not tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    dynamic = False
    for i in range(network.num_inputs):
        t = network.get_input(i)
        if any(d < 0 for d in t.shape):
            dynamic = True
            profile.set_shape(t.name, input_shape, input_shape, input_shape)
    if dynamic:
        config.add_optimization_profile(profile)
    timing_cache, save_timing = _load_timing_cache(config, timing_cache_path, timing_cache_setting)
    if not config.set_timing_cache(timing_cache, False):  # made on another GPU: refused
        log.warning("TensorRT refused timing cache %s; building without it", timing_cache_path)
        config.set_timing_cache(config.create_timing_cache(b""), False)
    # 3. build (minutes the first time), cancelled if the program stops meanwhile, and persist
    # the timing cache for the next build
    log.info(
        "building TensorRT engine from %s for %s (takes minutes the first time)",
        onnx_path,
        input_shape,
    )
    plan = _build_plan(trt, builder, network, config, show_progress, onnx_path)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see log above)")
    if timing_cache_path is not None and save_timing:  # not over another user's file
        try:  # a speed-up for the next build: its failure must not lose this finished plan
            path = Path(timing_cache_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            data = bytes(config.get_timing_cache().serialize())
            atomic_write(path, data, stale_after_s=CACHE_TEMP_STALE_S, owner_only=True)
        except Exception as exc:
            log.warning("TensorRT timing cache not saved to %s (%r)", timing_cache_path, exc)
    return bytes(plan)


def _build_plan(
    trt: ModuleType, builder, network, config, show_progress: bool, onnx_path: str | Path
):
    """`builder.build_serialized_network(network, config)` under a `BuildMonitor` that cancels
    it once the program is stopping (`build_serialized_engine`): the plan, or None where
    TensorRT failed; where the build was cancelled, the cause is raised."""
    what = f"the TensorRT engine from {onnx_path}"
    with _signal_pipe() as pipe:
        # the condition is the calling thread's; TensorRT asks the monitor on its own threads
        stop_cause = functools.partial(_stop_cause, lock_wait_stop_condition(), pipe, what)
        monitor = _progress_monitor_class(trt)(stop_cause, show_progress)
        config.progress_monitor = monitor  # held in this frame: it must outlive the build
        plan = builder.build_serialized_network(network, config)
        # where TensorRT calls the monitor on this thread, a Ctrl-C's KeyboardInterrupt is
        # raised as a callback is entered, before a line of ours runs, and dropped by the
        # binding: after the last step, the build returns its plan and the Ctrl-C would be
        # lost. Its signal is still in the pipe.
        cause = monitor.cause or stop_cause()
    if cause is not None:
        raise cause
    return plan


def _load_timing_cache(config, path: str | Path | None, setting: str = ENV_CACHE):
    """(TensorRT's timing cache for `config` from `path`, empty where there is none or it cannot
    be read or trusted: `read_timing_cache`; whether the build may save its own at `path`)."""
    data, save = read_timing_cache(path, setting)
    try:
        cache = config.create_timing_cache(data)
    except Exception as exc:
        cache = None
        log.warning("TensorRT timing cache %s unusable (%r); starting empty", path, exc)
    return (cache if cache is not None else config.create_timing_cache(b"")), save


class TensorRTBackend(Backend):
    """`run` on a cached TensorRT engine; I/O are torch CUDA tensors on one CUDA stream.

    `expected_model_hash`, if given, is the sha256 of the checkpoint the ONNX must come from:
    it is compared with the `depthart_checkpoint_sha256` metadata that `export_onnx` stamps, so a
    node never serves an engine for another model. The engine cache itself is keyed by the ONNX
    file's own hash (`model_sha256`), which also changes with precision and exporter.
    `workspace_mb` bounds a build's scratch memory only: an engine already cached under the key is
    reused whatever it was built with (the limit picks tactics, not what the engine computes).
    """

    name = "tensorrt"

    def __init__(
        self,
        onnx_path: str | Path,
        image_size: int,
        precision: str = "fp32",
        letterbox: bool = False,
        cache_dir: str | Path | None = None,
        workspace_mb: int = 1024,
        expected_model_hash: str | None = None,
        device: str | None = None,
    ) -> None:
        # 1. arguments and the ONNX graph (without weights)
        self.onnx_path = Path(onnx_path)
        if not isinstance(image_size, int) or image_size <= 0:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        if workspace_mb <= 0:
            raise ValueError(f"workspace_mb must be positive, got {workspace_mb}")
        model = load_graph(self.onnx_path)
        self.image_size, self.letterbox, self.precision = image_size, letterbox, precision
        shape = engine_input_shape(model, image_size)
        check_tensorrt_compatible(model)  # graph-only checks: seconds here beat minutes of build
        check_precision(model, precision)
        if expected_model_hash is not None:
            stamped = {p.key: p.value for p in model.metadata_props}.get(META_SHA) or "unrecorded"
            if stamped != expected_model_hash.lower():
                raise ValueError(
                    f"{self.onnx_path} was exported from checkpoint sha256 {stamped} "
                    f"({META_SHA}), expected {expected_model_hash}"
                )
        digest = model_sha256(self.onnx_path, model)
        # 2. TensorRT and the GPU
        trt = import_tensorrt()
        if not torch.cuda.is_available():
            raise RuntimeError("the TensorRT backend needs a CUDA GPU; torch sees none")
        self.device = torch.device(device if device is not None else "cuda")
        if self.device.type != "cuda":
            raise ValueError(f"the TensorRT backend runs on a CUDA device, got {device!r}")
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        self.device = torch.device("cuda", index)
        key = EngineKey(
            digest, precision, shape, trt.__version__, compute_capability(index), gpu_name(index)
        )
        # 3. engine: cached, or built (minutes) and cached, on this device
        cache = EngineCache(cache_dir)
        timing = cache.timing_cache_path(key)

        def build() -> bytes:
            return build_serialized_engine(
                self.onnx_path, shape, workspace_mb, timing, timing_cache_setting=cache.setting
            )

        self._runtime = trt.Runtime(trt_logger())  # the logger outlives it (module-wide)
        with torch.cuda.device(index):
            result = cache.get_or_build(key, build, self._runtime.deserialize_cuda_engine)
        self.engine, self.engine_path, self.engine_built = result.engine, result.path, result.built
        self.trt_version, self.key = trt.__version__, key
        # 4. context, buffers bound by name, one stream; one call at a time (the context and its
        # buffers are shared, and execute_async_v3 releases the GIL)
        with torch.cuda.device(index):
            self.context = self.engine.create_execution_context()
            self.stream = torch.cuda.Stream(self.device)
            self._buffers = self._bind(trt, shape)
        self.batch = shape[0]
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | Path | CheckpointFile | None = None,
        onnx_path: str | Path | None = None,
        precision: str = "fp32",
        letterbox: bool = False,
        sampling: SamplingConfig | None = None,
        device: str | None = None,
        flip_average: bool = False,
    ) -> TensorRTBackend:
        """The checkpoint's graph from the ONNX cache (exported once), then the engine cache.
        `device`: "cuda:N" picks the GPU; anything else ("cpu", the default of `get_backend` and
        the node, "cuda", None) is the current CUDA device.
        `sampling`: a deterministic decoding (None: the default decoding, soft, or whatever a given
        `onnx_path` holds); the engine cache is keyed by the graph's own hash, so each decoding
        gets its own engine. `flip_average`: also run each frame mirrored and average
        (`runtime.base`)."""
        if precision not in PRECISIONS:
            raise ValueError(f"TensorRT precision must be fp32 or fp16, got {precision!r}")
        check_flag("letterbox", letterbox)  # bad arguments before the export and the build
        check_flag("flip_average", flip_average)
        ckpt = checkpoint if isinstance(checkpoint, CheckpointFile) else CheckpointFile(checkpoint)
        size = int(ckpt.info()["config"]["image_size"])
        if sampling is not None or onnx_path is None:
            sampling = runtime_sampling(sampling)
        if onnx_path is None:
            onnx_path = cached_onnx(ckpt, precision, sampling)
        decoding = read_onnx_metadata(onnx_path).get(META_DECODING, "greedy")
        if sampling is not None and decoding != graph_decoding(sampling):
            raise ValueError(
                f"{onnx_path} decodes {decoding!r}, not {graph_decoding(sampling)!r}: re-export it "
                f"with `depthart export --sampling {graph_decoding(sampling)}`"
            )
        backend = cls(
            onnx_path,
            size,
            precision=precision,
            letterbox=letterbox,
            expected_model_hash=ckpt.model_sha256,
            # TensorRT runs on a GPU whatever the CPU-side default says: only "cuda:N" picks one
            device=device if device is not None and str(device).startswith("cuda") else None,
        )
        backend.flip_average = flip_average
        return backend

    def _bind(self, trt: ModuleType, shape: tuple[int, ...]) -> dict:
        engine, ctx = self.engine, self.context
        dtypes = {
            getattr(trt.DataType, k): getattr(torch, v)
            for k, v in _TORCH_DTYPES.items()
            if hasattr(trt.DataType, k)
        }
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        if inputs != [INPUT_NAME] or OUTPUT_NAME not in names:
            raise ValueError(
                f"engine I/O must be input {INPUT_NAME!r} and output "
                f"{OUTPUT_NAME!r}; it has inputs {inputs}, tensors {names}"
            )
        if any(d < 0 for d in engine.get_tensor_shape(INPUT_NAME)):
            ctx.set_input_shape(INPUT_NAME, shape)
        buffers = {}
        for n in names:
            dtype = dtypes[engine.get_tensor_dtype(n)]
            buffers[n] = torch.empty(
                tuple(ctx.get_tensor_shape(n)), dtype=dtype, device=self.device
            )
            ctx.set_tensor_address(n, buffers[n].data_ptr())
            log.info(
                "engine tensor %r: %s %s %s",
                n,
                engine.get_tensor_mode(n),
                tuple(buffers[n].shape),
                dtype,
            )
        S = self.image_size
        for n in (OUTPUT_NAME, UNCERTAINTY_OUTPUT):
            if n in buffers and buffers[n].numel() != shape[0] * S * S:
                raise ValueError(
                    f"engine output {n!r} has shape {tuple(buffers[n].shape)}, expected "
                    f"({shape[0]}, {S}, {S})"
                )
        return buffers

    @property
    def input_spec(self) -> TensorSpec:
        t = self._buffers[INPUT_NAME]
        return TensorSpec(INPUT_NAME, tuple(t.shape), str(t.dtype).removeprefix("torch."))

    @property
    def output_spec(self) -> TensorSpec:
        t = self._buffers[OUTPUT_NAME]
        return TensorSpec(OUTPUT_NAME, tuple(t.shape), str(t.dtype).removeprefix("torch."))

    def describe(self) -> str:
        return (
            f"tensorrt {self.trt_version} {self.precision} {self.key.compute_capability} "
            f"engine={self.engine_path.name}{self.fitting_note()}"
        )

    @property
    def has_uncertainty(self) -> bool:
        """Whether the engine has the "uncertainty" output (built from a graph with the head)."""
        return UNCERTAINTY_OUTPUT in self._buffers

    def _execute(self, x_B3SS: np.ndarray, names: tuple[str, ...]) -> list[np.ndarray]:
        """(B, 3, S, S) -> the outputs `names`, each (B, S, S) float32."""
        S = self.image_size
        if x_B3SS.ndim != 4 or x_B3SS.shape[1:] != (3, S, S):
            raise ValueError(f"input must be (B, 3, {S}, {S}), got {x_B3SS.shape}")
        x = torch.from_numpy(np.ascontiguousarray(x_B3SS, dtype=np.float32))
        with self._lock, torch.cuda.device(self.device):
            return self._execute_locked(x, names)

    def _execute_locked(self, x: torch.Tensor, names: tuple[str, ...]) -> list[np.ndarray]:
        S = self.image_size
        inp = self._buffers[INPUT_NAME]
        results: list[list[torch.Tensor]] = [[] for _ in names]
        with torch.cuda.stream(self.stream):
            # The engine has a fixed batch; a larger batch runs in chunks of it.
            for start in range(0, x.shape[0], self.batch):
                chunk = x[start : start + self.batch]
                n = chunk.shape[0]
                inp[:n].copy_(chunk, non_blocking=False)  # casts to FP16 for FP16 graphs
                if not self.context.execute_async_v3(self.stream.cuda_stream):
                    raise RuntimeError("TensorRT execute_async_v3 failed (see TensorRT log)")
                for name, out in zip(names, results, strict=True):
                    out.append(self._buffers[name].reshape(self.batch, S, S)[:n].float().cpu())
        self.stream.synchronize()
        return [torch.cat(out).numpy() for out in results]

    def run(self, x_B3SS: np.ndarray) -> np.ndarray:
        return self._execute(x_B3SS, (OUTPUT_NAME,))[0]

    def run_uncertainty(self, x_B3SS: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised (B, 3, S, S) -> ((B, S, S) depth, (B, S, S) expected relative error)."""
        if not self.has_uncertainty:
            return super().run_uncertainty(x_B3SS)  # raises, naming the backend
        depth, unc = self._execute(x_B3SS, (OUTPUT_NAME, UNCERTAINTY_OUTPUT))
        return depth, unc


_TORCH_DTYPES = {  # trt.DataType member name -> torch dtype name
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT32": "int32",
    "INT64": "int64",
    "INT8": "int8",
    "UINT8": "uint8",
    "BOOL": "bool",
}
