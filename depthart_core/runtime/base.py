"""The backend interface shared by PyTorch, ONNX Runtime and TensorRT.

A backend runs the model on normalised (B, 3, S, S) float32 input and returns (B, S, S) relative
depth. Pre/post-processing (resize or letterbox, normalisation, un-padding, resize back) lives in
`depthart_core.runtime.preprocess` and is shared here, so every backend's `predict` sees identical
input.

`flip_average` (set by `get_backend`): each frame also runs mirrored left-right, and the depth is
the mean of the two predictions (the mirrored one mirrored back), as in Godard et al., "Unsupervised
Monocular Depth Estimation with Left-Right Consistency" (CVPR 2017, sec. 4.3, post-processing).
It costs a second pass per frame and cancels part of the model's left-right bias; BENCHMARKS.md
(section 2e) has its accuracy and speed.

Uncertainty (issue #25): a checkpoint with the learned uncertainty head
(`depthart_core.uncertainty_head`) gives, with every depth map, the expected absolute relative
error of each pixel (|s d - g| / g after a median scale: 0.1 = "off by about 10 %"). A backend
that can compute it says so with `has_uncertainty` and implements `run_uncertainty`;
`predict(rgb, with_uncertainty=True)` then returns (depth, uncertainty), both resized to the input
by the same `postprocess`. Without the flag nothing extra is computed.
"""

from __future__ import annotations

import abc
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from depthart_core.runtime.preprocess import postprocess, preprocess

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# the head learned the errors of stretched frames (training/uncertainty_head.py): on letterboxed
# 4:3 ones its two lowest deciles claim about half the error they have (0.44-0.58 of it), the
# mean claim is 16-18 % low and the worst decile 53-56 % off (BENCHMARKS 11, forty-fourth session)
LETTERBOX_UNCERTAINTY = (
    "letterbox with uncertainty: the head was trained on stretched frames and underestimates "
    "the error of letterboxed ones (by half where it is surest, 16-18 % on average); use the "
    "stretched default where the uncertainty matters"
)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str


def check_flag(name: str, value: Any) -> bool:
    """`value` if it is a bool; a TypeError naming `name` otherwise ("false" would count as
    true, and 0/1 hide a swapped argument)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


# torch.device's grammar (c10/core/Device.cpp): a type, then ":N" with no sign or leading zero
_DEVICE = re.compile(r"([a-zA-Z_]+)(?::([1-9][0-9]*|0))?")
# the device types torch.device knows (its error lists them); any but cpu and cuda is refused
# here anyway (`check_device`), so only the wording of that refusal depends on this list
_TORCH_DEVICE_TYPES = frozenset(
    (
        "cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve", "fpga",
        "maia", "xla", "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone",
    )
)  # fmt: skip
_MAX_DEVICE_INDEX = 2**31 - 1  # torch parses the index as a C int


def parse_device(device: str | torch.device) -> tuple[str, int | None]:
    """(type, index) of a device, as `torch.device(device)` gives them ("cuda:1": ("cuda", 1)),
    or its RuntimeError or TypeError; a name (a str) is parsed without importing torch, so
    ONNX Runtime's device is checked in a process that never loads it. Anything else (a
    torch.device, an int) goes to torch.device itself."""
    if not isinstance(device, str):
        import torch  # not a name: torch.device's own rules (an int is an accelerator's index)

        dev = torch.device(device)
        return dev.type, dev.index
    if not device:
        raise RuntimeError("Device string must not be empty")
    match = _DEVICE.fullmatch(device)
    if match is None:
        raise RuntimeError(f"Invalid device string: {device!r}")
    kind, index = match.group(1), match.group(2)
    if kind not in _TORCH_DEVICE_TYPES:
        raise RuntimeError(f"unknown device type {kind!r} in device string {device!r}")
    if index is not None and int(index) > _MAX_DEVICE_INDEX:
        raise RuntimeError(f"Could not parse device index {index!r} in device string {device!r}")
    return kind, None if index is None else int(index)


def torch_missing(exc: BaseException) -> bool:
    """Whether `exc` is torch's absence (a module of torch not found, or the one-line error said
    for it: a ModuleNotFoundError named "torch"), not another module's or a torch that is there
    but fails to import."""
    if not isinstance(exc, ModuleNotFoundError):
        return False
    name = exc.name or ""
    return name == "torch" or name.startswith("torch.")


def check_device(
    device: str | torch.device,
    torch_runs_it: bool = True,
    flag: str = "--device",
    advice: str = "",
) -> None:
    """Refuse a device this process cannot use, with a one-line reason: a name torch does not
    know, or (`torch_runs_it`) CUDA where this PyTorch has none (a CPU-only wheel or no GPU
    visible; ONNX Runtime checks its own CUDA provider). `flag`: the option the advice names;
    `advice`: the whole remedy instead, where the device is not an option (the ROS node's
    `device` parameter)."""
    try:
        kind, _ = parse_device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from exc
    if torch_runs_it and kind == "cuda":
        try:
            import torch  # where torch runs it: a process that runs ONNX Runtime never imports it
        except ModuleNotFoundError as exc:  # an install for ONNX Runtime alone
            if not torch_missing(exc):
                raise
            raise ValueError(
                f"device {device!r}: CUDA runs on PyTorch here, which is not installed; "
                f"{advice or f'use {flag} cpu'}"
            ) from exc
        if torch.cuda.is_available():
            return
        build = torch.version.cuda or "none (a CPU-only build)"
        raise ValueError(
            f"device {device!r}: no CUDA device is available to this PyTorch {torch.__version__} "
            f"(its CUDA: {build}); {advice or f'use {flag} cpu'}"
        )
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: only cpu and cuda are supported")


def check_device_runnable(backend: str, device: str, deterministic: bool, advice: str = "") -> None:
    """Refuse CUDA where no runtime that `backend` may use can run on it, before the model is
    loaded (an ONNX export takes seconds, a TensorRT build minutes, only to fail after), with
    `advice` as `check_device`'s: torch and TensorRT need a PyTorch with CUDA, ONNX Runtime its
    CUDA execution provider (`auto` falls back to torch when ONNX Runtime has none); a sampled
    decoding (`deterministic` false) runs on torch whatever `backend` says."""
    if backend in ("torch", "tensorrt") or not deterministic:
        check_device(device, advice=advice)
        return
    check_device(device, torch_runs_it=False)  # the name; whether CUDA is there: below
    if not device.startswith("cuda"):
        return
    providers = onnxruntime_providers()
    ort_cuda = providers is not None and "CUDAExecutionProvider" in providers
    if backend == "onnxruntime" and providers is not None and not ort_cuda:
        raise ValueError(
            f"device {device!r}: this onnxruntime has no CUDAExecutionProvider (pip install "
            f"onnxruntime-gpu); {advice or 'use --device cpu'}"
        )
    if backend == "auto" and not ort_cuda:  # TensorRT, then torch: both need torch's CUDA
        check_device(device, advice=advice)


def onnxruntime_providers() -> list[str] | None:
    """This onnxruntime's execution providers; None where it is not installed (the optional
    `onnx` extra: the backend then says so itself)."""
    try:
        import onnxruntime  # optional dependency
    except ImportError:
        return None
    return list(onnxruntime.get_available_providers())


class Backend(abc.ABC):
    """Subclasses set `name`, `image_size`, `letterbox` and implement `run`. `letterbox` and
    `flip_average` refuse anything but a bool, however they are set."""

    head_left_out = ""  # why the checkpoint's own head was not loaded (`checkpoint.copied_head`)

    name: str = "base"
    image_size: int
    _letterbox: bool = False
    _flip_average: bool = False

    @property
    def letterbox(self) -> bool:
        return self._letterbox

    @letterbox.setter
    def letterbox(self, value: bool) -> None:
        self._letterbox = check_flag("letterbox", value)

    @property
    def flip_average(self) -> bool:
        return self._flip_average

    @flip_average.setter
    def flip_average(self, value: bool) -> None:
        self._flip_average = check_flag("flip_average", value)

    @abc.abstractmethod
    def run(self, x_B3SS: np.ndarray) -> np.ndarray:
        """Normalised (B, 3, S, S) float32 in [-1, 1] -> (B, S, S) float32 relative depth."""

    @property
    def has_uncertainty(self) -> bool:
        """Whether `run_uncertainty` works (the checkpoint or graph holds the head)."""
        return False

    @property
    def uncertainty_missing(self) -> str:
        """Why `has_uncertainty` is false, in words (for errors, logs and diagnostics)."""
        return self.head_left_out or "checkpoint has no head"

    @property
    def uncertainty_remedy(self) -> str:
        """What gives this backend an uncertainty, in words (follows `uncertainty_missing`)."""
        return (
            "a checkpoint with the uncertainty head has it (training/uncertainty_head.py adds "
            "one), and so does a graph or engine exported from one (`depthart export`)"
        )

    def run_uncertainty(self, x_B3SS: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised (B, 3, S, S) -> ((B, S, S) relative depth, (B, S, S) expected relative
        error), from one pass."""
        raise ValueError(
            f"backend {self.describe()} has no uncertainty: {self.uncertainty_missing}; "
            f"{self.uncertainty_remedy}"
        )

    @property
    def input_spec(self) -> TensorSpec:
        S = self.image_size
        return TensorSpec("image", (1, 3, S, S), "float32")

    @property
    def output_spec(self) -> TensorSpec:
        S = self.image_size
        return TensorSpec("depth", (1, S, S), "float32")

    def describe(self) -> str:
        return self.name + self.fitting_note()

    def fitting_note(self) -> str:
        """What every `describe` ends with, the options that change the numbers beside the
        decoding: ", letterboxed" and ", flip-averaged" when on (reports name the run by it)."""
        return ", letterboxed" * self.letterbox + ", flip-averaged" * self.flip_average

    def infer(self, x_B3SS: np.ndarray) -> np.ndarray:
        """`run`, averaged with the left-right mirrored input's prediction when `flip_average`."""
        if not self.flip_average:
            return self.run(x_B3SS)
        B = x_B3SS.shape[0]
        both = self.run(np.concatenate([x_B3SS, x_B3SS[..., ::-1]], axis=0))
        return 0.5 * (both[:B] + both[B:, :, ::-1])

    def infer_uncertainty(self, x_B3SS: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`run_uncertainty`; with `flip_average` both maps are the mean of the two passes."""
        if not self.flip_average:
            return self.run_uncertainty(x_B3SS)
        B = x_B3SS.shape[0]
        d, u = self.run_uncertainty(np.concatenate([x_B3SS, x_B3SS[..., ::-1]], axis=0))
        return 0.5 * (d[:B] + d[B:, :, ::-1]), 0.5 * (u[:B] + u[B:, :, ::-1])

    def predict(
        self, rgb: np.ndarray, with_uncertainty: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """HxWx3 uint8 RGB -> HxW float32 relative depth at the input size; with
        `with_uncertainty`, (depth, HxW float32 expected relative error of each pixel)."""
        check_flag("with_uncertainty", with_uncertainty)  # "false" returned a pair
        return self._predict_frames([rgb], with_uncertainty, ["rgb"])[0]

    def predict_batch(self, rgbs: Iterable[np.ndarray], with_uncertainty: bool = False) -> list:
        """`predict` for several frames in one batch: a list of depth maps, or of (depth,
        uncertainty) pairs with `with_uncertainty`. `rgbs`: HxWx3 uint8 frames (any iterable),
        or one NxHxWx3 array of N frames; a bad one is refused by its index ("frame 3")."""
        check_flag("with_uncertainty", with_uncertainty)
        if isinstance(rgbs, np.ndarray) and rgbs.ndim != 4:
            raise ValueError(
                f"predict_batch takes frames (a list of HxWx3 arrays, or an NxHxWx3 array), got "
                f"one array of shape {rgbs.shape}; use predict() for a single frame"
            )
        rgbs = list(rgbs)  # a generator is read once; an NxHxWx3 array becomes N frames
        return self._predict_frames(
            rgbs, with_uncertainty, [f"frame {i}" for i in range(len(rgbs))]
        )

    def _predict_frames(self, rgbs: list, with_uncertainty: bool, names: list[str]) -> list:
        """`predict_batch` of a list, each frame named in an error by `names`."""
        if not rgbs:
            return []
        prepared = [
            preprocess(rgb, self.image_size, self.letterbox, name)
            for rgb, name in zip(rgbs, names, strict=True)
        ]
        x = np.concatenate([p[0] for p in prepared], axis=0)
        if not with_uncertainty:
            out = self.infer(x)
            return [postprocess(out[i], geo) for i, (_, geo) in enumerate(prepared)]
        if self.letterbox and not getattr(self, "_told_letterbox", False):
            log.warning(LETTERBOX_UNCERTAINTY)
            self._told_letterbox = True
        depth, unc = self.infer_uncertainty(x)
        return [
            (postprocess(depth[i], geo), postprocess(unc[i], geo))
            for i, (_, geo) in enumerate(prepared)
        ]
