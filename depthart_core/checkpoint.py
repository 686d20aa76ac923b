"""Checkpoints: safetensors weights with the model config and provenance in the file's metadata.

A checkpoint is one `.safetensors` file (self-contained: loading needs nothing else) plus a
human-readable `.json` sidecar with the same config and metadata. Loading is strict: every key and
shape must match, and a mismatch raises naming the keys. Nothing is ever unpickled; the one
exception is reading VAR's official `.pth` releases, done with `torch.load(weights_only=True)`.

This module is the one place that resolves a checkpoint (`resolve_checkpoint`: the path given,
else `$DEPTHART_CHECKPOINT`, else the shipped one) and hashes it (`file_sha256`, once per file
version and process). `CheckpointFile` carries one resolved checkpoint through
`runtime.get_backend`, so the `auto` fallback chain reads, hashes and loads it once.

The DepthART authors' released `model.safetensors` (bulatko/DepthART) is accepted wherever a
checkpoint is: it is recognised by its keys and mapped in `depthart_core.authors_layout`; when it
lacks the VQ-VAE, VAR's `vae_ch160v4096z32.pth` is taken from `vae=` or from beside the file.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import site
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import save_file
from torch.overrides import TorchFunctionMode

from depthart_core import authors_layout
from depthart_core.config import ModelConfig
from depthart_core.fileutil import atomic_write, sha256_file
from depthart_core.model import DepthART
from depthart_core.rundir import open_safetensors
from depthart_core.transformer.var import COSINE_ATTENTION_SCALE, REBUILT_VAR_BUFFERS

FORMAT = "depthart/1"
AUTHORS_LAYOUT = "bulatko/DepthART"  # the authors' released model.safetensors (authors_layout)
DEFAULT_CHECKPOINT_NAME = "depthart_tiny_cnn.safetensors"
ENV_CHECKPOINT = "DEPTHART_CHECKPOINT"

log = logging.getLogger(__name__)


def check_state_shapes(
    own: dict[str, tuple[int, ...]], state: dict[str, tuple[int, ...]], what: str
) -> None:
    """Raise with the offending keys when the tensor names or shapes of `state` (a checkpoint's)
    are not `own`'s (the model's)."""
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    bad_shape = [
        f"{k}: checkpoint {tuple(state[k])} vs model {tuple(own[k])}"
        for k in sorted(set(own) & set(state))
        if tuple(own[k]) != tuple(state[k])
    ]
    if missing or extra or bad_shape:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:10]}{' ...' if len(missing) > 10 else ''}")
        if extra:
            parts.append(f"unexpected keys {extra[:10]}{' ...' if len(extra) > 10 else ''}")
        if bad_shape:
            parts.append(f"shape mismatches {bad_shape[:10]}")
        raise ValueError(f"{what}: state dict does not match the model: " + "; ".join(parts))


def _dtype_kind(dtype: torch.dtype) -> str:
    if dtype.is_floating_point:
        return "floating"
    return "complex" if dtype.is_complex else "integer/bool"


def check_state_dtypes(
    own: dict[str, torch.dtype], state: dict[str, torch.dtype], what: str
) -> None:
    """Raise naming the keys whose dtype in `state` (a checkpoint's) is of another kind than
    `own`'s (the model's): a floating tensor must get a floating one (F16, BF16, F32, F64: cast
    on load), an integer or bool buffer an integer or bool one. Loading int8 codes or an F32
    tensor's bytes relabelled I32 into float weights would cast them to garbage silently."""
    bad = [
        f"{k}: checkpoint {str(state[k]).removeprefix('torch.')} vs model "
        f"{str(own[k]).removeprefix('torch.')}"
        for k in sorted(set(own) & set(state))
        if _dtype_kind(own[k]) != _dtype_kind(state[k])
    ]
    if bad:
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise ValueError(
            f"{what}: tensor dtypes do not match the model (a floating weight needs a floating "
            f"tensor): {'; '.join(bad[:10])}{more}"
        )


def load_state_dict_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Copy `state` into `module`, raising with the offending keys on any mismatch of names,
    shapes or dtype kinds (`check_state_dtypes`)."""
    own = module.state_dict()
    check_state_shapes(
        {k: tuple(v.shape) for k, v in own.items()},
        {k: tuple(v.shape) for k, v in state.items()},
        what,
    )
    check_state_dtypes(
        {k: v.dtype for k, v in own.items()}, {k: v.dtype for k, v in state.items()}, what
    )
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k].to(v.dtype))


def save_checkpoint(
    path: str | Path,
    model: DepthART,
    metadata: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Atomically write `path` (.safetensors) and its `.json` sidecar. Returns the path."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path must end in .safetensors, got {path}")
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        tensors[k] = v.half() if half and v.is_floating_point() else v
    info = {"format": FORMAT, "config": model.cfg.to_dict(), "metadata": metadata or {}}
    st_meta = {
        "format": FORMAT,
        "config": json.dumps(info["config"]),
        "metadata": json.dumps(info["metadata"]),
    }

    def write(tmp: str) -> None:
        save_file(tensors, tmp, metadata=st_meta)
        sort_safetensors_header(tmp)

    atomic_write(path, write)
    sidecar = path.with_suffix(".json")
    atomic_write(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2) + "\n"))
    return path


def sort_safetensors_header(path: str | Path) -> None:
    """Rewrite a safetensors file's JSON header with its keys sorted, in place: safetensors
    writes `__metadata__` in hash-map order, which differs between processes, so the same
    model saved twice got two file hashes (and the ONNX and engine caches, keyed by the file's
    hash, exported and built it again). Offsets are relative to the data, so only the header's
    bytes change; it keeps its length (padded with spaces, as safetensors pads it)."""
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        raw = f.read(n)
        header = json.loads(raw)
        text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        new = text.encode()
        if len(new) > n:  # another escaping than serde's made it longer: leave it as written
            return
        f.seek(8)
        f.write(new + b" " * (n - len(new)))


def read_checkpoint_info(path: str | Path) -> dict[str, Any]:
    """Config and metadata stored inside a checkpoint, without loading weights."""
    path = _existing(path)
    _refuse_pickle(path)
    try:
        with open_safetensors(path) as f:
            meta = f.metadata() or {}
            keys = list(f.keys()) if meta.get("format") != FORMAT else []
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        if path.suffix.lower() == ".onnx":  # an exported graph is not a checkpoint
            raise ValueError(
                f"{path} is an ONNX graph, not a checkpoint: give the .safetensors it was "
                "exported from"
            ) from exc
        if path.suffix.lower() in _PICKLE_SUFFIXES:  # named so, but not pickled (_refuse_pickle)
            raise ValueError(
                f"{path} is not a safetensors checkpoint, nor a torch.save file ({exc})"
            ) from exc
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from exc
    if meta.get("format") != FORMAT:
        if authors_layout.is_authors_layout(keys):
            cfg = authors_layout.authors_config(keys)
            return {"config": cfg.to_dict(), "metadata": {}, "layout": AUTHORS_LAYOUT}
        raise ValueError(f"{path} is not a DepthART checkpoint (format={meta.get('format')!r})")
    parsed: dict[str, Any] = {}
    for key, default in (("config", None), ("metadata", "{}")):
        text = meta.get(key, default)
        try:
            parsed[key] = json.loads(text) if text is not None else None
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, without the file's name
            raise ValueError(f"{path}: its {key!r} metadata is not valid JSON ({exc})") from exc
        if not isinstance(parsed[key], dict):
            raise ValueError(f"{path}: its {key!r} metadata is not a JSON object")
    copied = copied_head(parsed["metadata"], parsed["config"])
    if copied is not None:  # the model is the one without the head (`load_checkpoint` drops it)
        headless = {"uncertainty_width": 0, "uncertainty_context": False}
        return {**parsed, "config": parsed["config"] | headless, "layout": FORMAT} | copied
    return {**parsed, "layout": FORMAT}


HEAD_PREFIX = "uncertainty_head."


def copied_head(metadata: dict[str, Any], config: dict[str, Any]) -> dict[str, str] | None:
    """{"uncertainty_dropped": why} for a checkpoint whose uncertainty head is not its own, else
    None: one trained from another checkpoint (`train_config.init_checkpoint`, as a fine-tune
    before 2026-12-06 11:44 UTC, commit eca7b8a) that kept that one's head. Training never
    changes the head, so it is the other model's, unchanged; a head trained for the model
    (training/uncertainty_head.py) records itself in the metadata's "uncertainty_head"."""
    train = metadata.get("train_config")
    width = config.get("uncertainty_width")  # a bad one: ModelConfig names it
    if not (isinstance(width, int) and width > 0) or "uncertainty_head" in metadata:
        return None
    if not isinstance(train, dict) or not train.get("init_checkpoint"):
        return None
    if train.get("init_tokenizer_only"):  # the head was not copied (a new one, never trained)
        return None
    return {
        "uncertainty_dropped": (
            f"its uncertainty head was copied unchanged from {train['init_checkpoint']} (as "
            "depthart's fine-tunes did before 2026-12-06 11:44 UTC, commit eca7b8a) and "
            "describes that model's errors, not this one's: train a head for it with "
            "training/uncertainty_head.py"
        )
    }


# Building a model to load (`load_checkpoint`) and its shape skeleton (`shape_skeleton`) in
# torch-function modes, which are per thread: nothing process-wide (the default dtype, the global
# RNG) is changed, so another thread that draws or builds meanwhile is left alone.
_INIT_FUNCTIONS = frozenset(  # nn.init's public functions (its __all__ only came in torch 2.8)
    f
    for name, f in vars(nn.init).items()
    if not name.startswith("_") and callable(f) and getattr(f, "__module__", "") == nn.init.__name__
)
_RANDOM_FILLS = frozenset(
    (
        "normal_", "uniform_", "random_", "exponential_", "cauchy_", "log_normal_",
        "geometric_", "bernoulli_",
    )
)  # fmt: skip
_RANDOM_DRAWS = _RANDOM_FILLS | frozenset(
    (
        "rand", "randn", "randint", "randperm", "rand_like", "randn_like", "randint_like",
        "normal", "bernoulli", "multinomial", "poisson", "binomial",
    )
)  # fmt: skip


class _NoInit(TorchFunctionMode):
    """Build a model every weight of which is then loaded, drawing nothing from torch's global
    RNG: the initializers that reach a torch-function mode (`nn.init.kaiming_uniform_`,
    `uniform_`, `normal_`, `constant_`: those of nn.Linear, nn.Conv2d, nn.Embedding) return
    their tensor unchanged, so no time is spent on values the load overwrites; any other random
    draw (`nn.init.trunc_normal_` reaches no mode, and its rejection loop needs real values)
    takes them from a generator of this build's own. Other ops run as usual."""

    def __init__(self) -> None:
        super().__init__()
        self._generators: dict[torch.device, torch.Generator] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        if func in _INIT_FUNCTIONS:
            return args[0] if args else kwargs["tensor"]
        if getattr(func, "__name__", "") in _RANDOM_DRAWS and kwargs.get("generator") is None:
            kwargs = {**kwargs, "generator": self._generator(args, kwargs)}
        return func(*args, **kwargs)

    def _generator(self, args: tuple, kwargs: dict) -> torch.Generator:
        first = next(_tensors(args), None)
        if first is not None:
            device = first.device
        else:  # a factory: its device, else the default one (torch.set_default_device)
            device = torch.device(kwargs.get("device") or torch.empty(()).device)
        if device.type == "meta":  # a meta tensor draws nothing, from any generator
            device = torch.device("cpu")
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device)
        return self._generators[device]


# Shape skeleton (`shape_skeleton`): on the meta device, many ops have no kernel of their own but
# torch's Python reference (torch._refs), whose wrapper imports torch._dynamo. That import costs
# about a second, and needs a temp dir (inductor's cache folder is computed when it is imported):
# with none (a read-only container) it raised, and the half-finished import then made every
# later one fail with "AssertionError: Artifact of type=precompile already registered". The
# reference of `arange` (VAR builds its attention mask with one) imports sympy and torch.fx
# instead, about 35 MB kept for the life of the process (a node's): `_int_range`.
_ELEMENTWISE = frozenset(
    (
        "lt", "le", "gt", "ge", "eq", "ne", "__lt__", "__le__", "__gt__", "__ge__", "__eq__",
        "__ne__", "__and__", "__or__", "__xor__", "__rand__", "__ror__", "__rxor__",
        "__invert__", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not",
        "logical_and", "logical_or", "logical_xor", "logical_not", "log", "exp", "sqrt",
        "rsqrt", "neg", "abs", "masked_fill", "where", "clamp", "clamp_min", "clamp_max",
    )
)  # fmt: skip
_CONCATENATE = frozenset(("cat", "concat", "concatenate"))


class _ShapeOnly(_NoInit):
    """The skeleton's torch-function mode (`shape_skeleton`): initializers and random draws as
    in `_NoInit` (and on meta tensors, random fills do nothing: a skeleton's values are never
    read), and the elementwise ops and concatenations that a model computes its buffers with get
    a meta result of the right shape and dtype without running torch's meta kernel for them
    (`_ELEMENTWISE`, `_CONCATENATE`), and so does an integer `arange` that reaches the meta
    device (`_int_range`); any other op runs as usual."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        meta_input = any(t.is_meta for t in _tensors((args, kwargs)))
        device = kwargs.get("device")  # None: the skeleton's, meta
        meta_out = device is None or torch.device(device).type == "meta"
        ints = _int_range(args, kwargs) if name == "arange" and meta_out else None
        if ints is not None:  # its length is known: no values, and no torch._refs (sympy)
            return torch.empty(len(ints), dtype=torch.int64, device="meta")
        if func in _INIT_FUNCTIONS or not meta_input:
            return super().__torch_function__(func, types, args, kwargs)
        if name in _RANDOM_FILLS or (name.endswith("_") and name[:-1] in _ELEMENTWISE):
            return args[0]  # in place: same shape, and a meta tensor has no values to change
        if name in _ELEMENTWISE or name in _CONCATENATE:
            return _abstract(func, name, args, kwargs)
        return func(*args, **kwargs)


def _tensors(tree: Any) -> Iterator[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        yield tree
    elif isinstance(tree, (list, tuple)):
        for x in tree:
            yield from _tensors(x)
    elif isinstance(tree, dict):
        for x in tree.values():
            yield from _tensors(x)


def _stand_in(tree: Any) -> Any:
    """`tree` with each tensor replaced by a one-element CPU tensor of its dtype and rank."""
    if isinstance(tree, torch.Tensor):
        return torch.zeros((1,) * tree.dim(), dtype=tree.dtype, device="cpu")
    if isinstance(tree, (list, tuple)):
        return type(tree)(_stand_in(x) for x in tree)
    if isinstance(tree, dict):
        return {k: _stand_in(v) for k, v in tree.items()}
    return tree


def _abstract(func: Any, name: str, args: tuple, kwargs: dict) -> torch.Tensor:
    """The meta result of an elementwise op or a concatenation: its dtype from running it on
    one-element CPU stand-ins, its shape by the broadcasting or concatenation rule."""
    dtype = func(*_stand_in(args), **_stand_in(kwargs)).dtype
    if name in _CONCATENATE:
        parts = [t for t in args[0] if tuple(t.shape) != (0,)]  # cat skips legacy empty ones
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0) % parts[0].dim()
        shape = list(parts[0].shape)
        shape[dim] = sum(t.shape[dim] for t in parts)
    else:
        shape = _broadcast(*(tuple(t.shape) for t in _tensors((args, kwargs))))
    return torch.empty(shape, dtype=dtype, device="meta")


def _int_range(args: tuple, kwargs: dict) -> range | None:
    """The Python range of `torch.arange(*args, **kwargs)` where it is exactly one: one to
    three plain int bounds (positional, or start / end / step by name), an int64 result (no
    dtype, or torch.int64), no other option (requires_grad, out, layout, ...). Else None: the
    call runs as torch runs it."""
    rest = {k: v for k, v in kwargs.items() if k != "device"}
    if rest.pop("dtype", None) not in (None, torch.int64):
        return None
    names = ("end",) if len(args) == 1 else ("start", "end", "step")[: len(args)]
    given = dict(zip(names, args, strict=False))
    for k in ("start", "end", "step"):
        if k in rest:
            if k in given:
                return None
            given[k] = rest.pop(k)
    if rest or "end" not in given or len(args) > 3:
        return None
    if not all(type(v) is int for v in given.values()):  # not bool, float or a tensor
        return None
    start, end, step = given.get("start", 0), given["end"], given.get("step", 1)
    if step == 0 or (end - start) * step < 0:
        return None  # torch refuses these, in its own words
    return range(start, end, step)


def _broadcast(*shapes: tuple[int, ...]) -> list[int]:
    """The shape `shapes` broadcast to (torch's rule, in Python: no kernel runs)."""
    out: list[int] = []
    n = max((len(s) for s in shapes), default=0)
    for i in range(1, n + 1):
        sizes = {s[-i] for s in shapes if len(s) >= i} - {1}
        if len(sizes) > 1:
            raise RuntimeError(f"shapes {shapes} do not broadcast")
        out.insert(0, sizes.pop() if sizes else 1)
    return out


@contextlib.contextmanager
def shape_skeleton() -> Iterator[None]:
    """Build a model to read its state dict's names and shapes only: on the meta device (no
    memory is allocated, whatever the config claims), with nothing initialised and without
    importing torch._dynamo or sympy (`_ShapeOnly`). Floating tensors get the default dtype, as
    in any build: only shapes are compared (`check_state_shapes`). Thread safety: the meta device
    and `_ShapeOnly` are torch-function modes, which are per thread, so a model another thread
    builds meanwhile is real and initialised."""
    with torch.device("meta"), _ShapeOnly():
        yield


def load_checkpoint(
    path: str | Path | None = None,
    device: str | torch.device = "cpu",
    vae: str | Path | None = None,
    vae_setting: str | None = None,
) -> tuple[DepthART, dict[str, Any]]:
    """Build the model from the stored config and load its weights strictly, in float32 whatever
    the default dtype. Thread-safe, and nothing process-wide is changed: the default dtype is
    not set (the model is built in it, then converted), and torch's global RNG is not drawn
    from (`_NoInit`), so another thread's random stream goes on as if no model were loaded.

    `vae`: VAR's `vae_ch160v4096z32.pth`, only for an authors' file saved without the VQ-VAE.
    `vae_setting`: what the user sets `vae` with, as errors name it (`refuse_vae`): the CLI's
    --vae, the node's parameter; None (the default) for a caller with no such setting (replay,
    parity, training), whose missing-VQ-VAE error only says to put the file beside the checkpoint.
    """
    path = resolve_checkpoint(path)
    info = read_checkpoint_info(path)
    try:  # a bad or oversized config (config.MAX_COUNTS) named with the file it came from
        cfg = ModelConfig.from_dict(info["config"])
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{path}: its config is refused: {exc}") from exc
    if info["layout"] != AUTHORS_LAYOUT:  # before the model is built: a small file claiming a
        with shape_skeleton():  # huge config is refused without allocating it
            skeleton = DepthART(cfg)
        with open_safetensors(path) as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in _kept(f.keys(), info)}
        own = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
        check_state_shapes(own, shapes, str(path))
    with _NoInit():  # every weight is loaded below: no init, nothing drawn from the global RNG
        model = DepthART(cfg)
    # float32 whatever the default dtype (float64 weights would refuse the float32 input):
    # parameters and buffers, persistent or not
    model.float()
    state = {}
    with open_safetensors(path) as f:
        for k in _kept(f.keys(), info):
            t = f.get_tensor(k)
            state[k] = t.float() if t.is_floating_point() else t
    if info["layout"] == AUTHORS_LAYOUT:
        vae_state = None
        refuse_vae(vae, info, path, vae_setting)  # one given for a file that holds its own
        if not authors_layout.has_tokenizer(state):
            # no setting named: the caller's `vae` argument if one was given (the Python API),
            # else the caller has none (replay, parity, training), so only the file's place
            setting = vae_setting or ("vae" if vae else None)
            vae = _expand(vae) if vae else path.parent / authors_layout.VAE_FILE_NAME
            if not vae.is_file():
                name = authors_layout.VAE_FILE_NAME
                way = f"pass VAR's {name} ({setting}) or put it" if setting else f"put VAR's {name}"
                raise FileNotFoundError(
                    f"{path} holds no VQ-VAE weights and {vae} does not exist: {way} beside the "
                    "checkpoint"
                )
            vae_state = _torch_load(vae)
            info["metadata"]["vae"] = str(vae)
        load_authors_state(model, state, vae_state, what=str(path))
    else:
        refuse_vae(vae, info, path, vae_setting)
        load_state_dict_strict(model, state, what=str(path))
    info["path"] = str(path)
    info["sha256"] = file_sha256(path)
    return model.to(device).eval(), info


def refuse_vae(
    vae: str | Path | None, info: dict[str, Any], path: str | Path, setting: str | None = None
) -> None:
    """A VQ-VAE given (`vae`) for a checkpoint that holds its own (`info`, its
    `read_checkpoint_info`): ours, or an authors' file saved with it. The file given would be
    ignored, so it is refused. Raises naming `setting`, what the user gave it with: the CLI's
    --vae, or the ROS node's `vae` parameter (as `check_device` takes its advice); None (no
    setting named): the `vae` argument, as a Python caller gave it."""
    if vae is None:
        return
    setting = setting or "vae"
    if info["layout"] != AUTHORS_LAYOUT:
        raise ValueError(f"{setting} {vae} is only for the authors' checkpoint; {path} is complete")
    with open_safetensors(path) as f:
        if authors_layout.has_tokenizer(f.keys()):  # the file's own VQ-VAE would be used
            raise ValueError(
                f"{setting} {vae}: {path} holds its own VQ-VAE, which is what loads; drop {setting}"
            )


def _kept(keys: Any, info: dict[str, Any]) -> list[str]:
    """The tensors of a checkpoint its model loads: all, less a head not its own (`copied_head`:
    dropped by name, so the rest still loads strictly)."""
    copied = "uncertainty_dropped" in info
    return [k for k in keys if not (copied and k.startswith(HEAD_PREFIX))]


def file_sha256(path: str | Path) -> str:
    """sha256 of a checkpoint file, hashed once per process while the file stays the same one
    (same inode, size and mtime: `save_checkpoint` replaces files, so a rewrite is a new key)."""
    p = Path(path).resolve()
    st = p.stat()
    return _sha256_of(str(p), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _sha256_of(path: str, inode: int, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def refuse_tokenizer_only(info: dict[str, Any], path: str | Path) -> None:
    """A stage-1 (tokenizer) checkpoint holds a transformer that never trained: as a depth
    model it would give depth from random weights. Raises naming the file."""
    if info.get("metadata", {}).get("stage") == "tokenizer":
        raise ValueError(
            f"{path} is a stage-1 (tokenizer) checkpoint: its transformer never trained, so it "
            "gives no depth; give a stage-2 checkpoint (train's transformer stage, or finetune's)"
        )


class CheckpointFile:
    """One depth model's checkpoint (a stage-1 tokenizer checkpoint is refused): resolved and
    hashed when made, its model loaded (on the CPU) at most once.

    Every backend `runtime.get_backend` tries gets the same one, so the `auto` fallback from
    TensorRT to ONNX Runtime to PyTorch never reads, hashes or loads the file twice.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        vae: str | Path | None = None,
        vae_setting: str | None = None,
    ) -> None:
        self.default = path is None  # none named: the shipped one (or $DEPTHART_CHECKPOINT)
        self.path = resolve_checkpoint(path)
        self.vae = vae  # VAR's VQ-VAE, only for an authors' checkpoint saved without it
        self.vae_setting = vae_setting  # what errors call `vae` (`load_checkpoint`)
        _refuse_pickle(self.path)  # before any backend tries it, so `auto` fails once, clearly
        self._info: dict[str, Any] | None = None
        refuse_tokenizer_only(self.info(), self.path)  # every user of it wants depth from it
        # here, not at `load`: a cached graph skips it
        refuse_vae(vae, self.info(), self.path, vae_setting)
        # hashed only once the header says it is a checkpoint: a big file that is not one is
        # refused at once, not after reading all of it
        self.sha256 = file_sha256(self.path)
        self._loaded: tuple[DepthART, dict[str, Any]] | None = None

    @functools.cached_property
    def model_sha256(self) -> str:
        """The identity of the model this file loads as: `sha256`, or, for an authors' file
        without the VQ-VAE, the hash of its sha256 and the VAE file's that `load` reads with it
        (another VAE is another model). What exported graphs and engines are keyed and stamped
        with."""
        vae = self._vae_file()
        if vae is None:
            return self.sha256
        return hashlib.sha256(f"{self.sha256}+vae:{file_sha256(vae)}".encode()).hexdigest()

    def _vae_file(self) -> Path | None:
        """The separate VQ-VAE file `load` reads (as `load_checkpoint` picks it), else None."""
        if self.info()["layout"] != AUTHORS_LAYOUT:
            return None
        with open_safetensors(self.path) as f:
            if authors_layout.has_tokenizer(f.keys()):
                return None
        vae = _expand(self.vae) if self.vae else self.path.parent / authors_layout.VAE_FILE_NAME
        return vae if vae.is_file() else None  # missing: `load` names it

    def info(self) -> dict[str, Any]:
        """Config and metadata (`read_checkpoint_info`), without loading weights."""
        if self._info is None:
            self._info = read_checkpoint_info(self.path)
        return self._info

    def load(self) -> tuple[DepthART, dict[str, Any]]:
        """`load_checkpoint(path)`, the first time only: the same model object every call."""
        if self._loaded is None:
            self._loaded = load_checkpoint(self.path, vae=self.vae, vae_setting=self.vae_setting)
        return self._loaded


def load_authors_state(
    model: DepthART,
    state: dict[str, torch.Tensor],
    vae_state: dict[str, torch.Tensor] | None = None,
    what: str = "checkpoint",
) -> None:
    """Strictly load a state dict in the authors' layout (plus VAR's VQ-VAE state if separate)."""
    mapped = authors_layout.authors_to_ours(state, model.cfg, vae_state, what=what)
    load_state_dict_strict(model, mapped, what=what)


def convert_authors_checkpoint(
    src: str | Path, out: str | Path, vae: str | Path | None = None, overwrite: bool = False
) -> Path:
    """Write the authors' checkpoint as ours (safetensors + JSON config) for faster start-up.
    Never over an input; over an existing file (or its .json) only with `overwrite`."""
    out = Path(out)
    inputs = {Path(x).resolve() for x in (src, vae) if x is not None}
    if {out.resolve(), out.with_suffix(".json").resolve()} & inputs:
        raise ValueError(f"--out {out} would write over an input of the conversion")
    taken = [p for p in (out, out.with_suffix(".json")) if p.exists()]
    if taken and not overwrite:
        raise ValueError(f"{taken[0]} exists: pass --overwrite to replace it")
    model, info = load_checkpoint(src, vae=vae, vae_setting="--vae")  # as --out, --overwrite
    if info["layout"] != AUTHORS_LAYOUT:
        raise ValueError(f"{src} is already a DepthART-ROS checkpoint; nothing to convert")
    meta = {
        "converted_from": str(src),
        "source_layout": AUTHORS_LAYOUT,
        "source_sha256": info["sha256"],
    }
    if "vae" in info["metadata"]:  # which VQ-VAE made this model (another is another model)
        vae_file = info["metadata"]["vae"]
        meta |= {"vae": str(Path(vae_file).resolve()), "vae_sha256": file_sha256(vae_file)}
    return save_checkpoint(out, model, metadata=meta)


def _shipped_candidates() -> list[Path]:
    """Where the shipped checkpoint can be, in order: the repository (a source checkout or an
    editable install), then the `share/depthart_ros/checkpoints` that setup.py's data_files
    install under the environment's prefix (a pip install into a venv or `--prefix`; the
    package's own prefix, `sys.prefix`, the user base of `pip install --user`, and the folder of
    `pip install --target`)."""
    package_dir = Path(__file__).resolve().parent
    repo = package_dir.parent / "checkpoints" / DEFAULT_CHECKPOINT_NAME
    # <prefix>/lib/pythonX.Y/site-packages/depthart_core -> <prefix>; `pip install --target DIR`
    # puts the package and share/ side by side in DIR
    prefixes = [
        *package_dir.parents[3:4],
        Path(sys.prefix),
        Path(site.getuserbase()),
        package_dir.parent,
    ]
    shares = [
        p / "share" / "depthart_ros" / "checkpoints" / DEFAULT_CHECKPOINT_NAME for p in prefixes
    ]
    return [repo, *dict.fromkeys(shares)]


def default_checkpoint_path() -> Path:
    """$DEPTHART_CHECKPOINT, else the shipped checkpoint: in the repository, under the install
    prefix (`_shipped_candidates`), or in a colcon install's ament share directory. Where none
    exists, the repository's path (the error names it)."""
    env = os.environ.get(ENV_CHECKPOINT)
    if env:
        return _expand(env)
    candidates = _shipped_candidates()
    for path in candidates:
        if path.is_file():
            return path
    try:  # optional dependency: ament_index_python exists only in a colcon-installed ROS 2
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory("depthart_ros"))
        return share / "checkpoints" / DEFAULT_CHECKPOINT_NAME
    except Exception:
        return candidates[0]


def resolve_checkpoint(path: str | Path | None) -> Path:
    if path is None:
        default = default_checkpoint_path()
        if not default.is_file() and not os.environ.get(ENV_CHECKPOINT):
            looked = ", ".join(str(p) for p in _shipped_candidates())
            raise FileNotFoundError(
                f"checkpoint not found: the shipped {DEFAULT_CHECKPOINT_NAME} is in none of "
                f"{looked}: pass a checkpoint or set {ENV_CHECKPOINT}"
            )
        return _existing(default)
    return _existing(path)


def _expand(path: str | Path) -> Path:
    """`path` with a leading `~` expanded (`$DEPTHART_CHECKPOINT`, the node's `checkpoint`
    parameter and YAML values get no shell to do it); as given where no home is known."""
    try:
        return Path(path).expanduser()
    except RuntimeError:  # HOME unset and no passwd entry: the "not found" names it as given
        return Path(path)


def _existing(path: str | Path) -> Path:
    p = _expand(path)
    if p.is_dir():
        inside = p / "checkpoint.safetensors"  # a run folder (train, finetune) names it so
        hint = f": the run's model is {inside}" if inside.is_file() else ""
        raise ValueError(f"checkpoint {p} is a directory, not a file{hint}")
    if not p.is_file():
        if p.exists():  # a FIFO, a device (a link to /dev/zero), a socket
            raise ValueError(
                f"checkpoint {p} is not a regular file (a device, FIFO or socket): give a file"
            )
        raise FileNotFoundError(f"checkpoint not found: {p}")
    return p


_PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".pkl")


def _refuse_pickle(path: Path) -> None:
    """A pickled PyTorch file gets a message saying why it is not loaded and how to convert it,
    instead of a safetensors header error. Recognised by its first bytes: a zip archive
    (torch.save since 1.6) or a pickle PROTO opcode (0x80, protocol 2-5), whatever its suffix; a
    file that starts otherwise (text, a damaged file) is never called pickled, even named .pth,
    and gets the safetensors reader's own reason. A safetensors file (an 8-byte little-endian
    header length, then the JSON header's "{") is never refused, even when its length's first
    byte happens to be 0x80."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head[8:9] == b"{":
        return
    pickle_proto = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    if head[:4] == b"PK\x03\x04" or pickle_proto:
        raise ValueError(
            f"{path} is a pickled PyTorch checkpoint: DepthART loads only .safetensors, because "
            "unpickling can run arbitrary code. Convert it once: VAR's var_d16.pth / vae_*.pth "
            "with `depthart train --set var_pth=... --set vae_pth=...`; a DepthART state dict as "
            "in README 'Converting a .pth checkpoint'"
        )


def load_official_var(
    model: DepthART, var_pth: str | Path | None, vae_pth: str | Path | None
) -> None:
    """Initialise a `d16` model from VAR's released `var_d16.pth` / `vae_ch160v4096z32.pth`.

    Both load strictly; the only keys ignored are VAR's two buffers shaped for its own 680-token
    sequence (`lvl_1L`, `attn_bias_for_masking`), which DepthART rebuilds for its 2L sequence,
    and, for a model with plain dot-product attention (`d16_authors`), each block's cosine-
    attention scale `attn.scale_mul_1H11`, which such a model has no use for: the authors'
    training loaded var_d16.pth into that model with strict=False, dropping exactly these (a log
    line counts them). VAR's class 1000 (its unconditional embedding) is our null condition, so
    the class table loads as is.
    """
    if vae_pth is not None:
        state = _torch_load(vae_pth)
        load_state_dict_strict(model.tokenizer, state, what=str(vae_pth))
    if var_pth is not None:
        state = {k: v for k, v in _torch_load(var_pth).items() if k not in REBUILT_VAR_BUFFERS}
        if not model.cfg.transformer.attn_l2_norm:
            unused = [k for k in state if k.endswith(COSINE_ATTENTION_SCALE)]
            if unused:
                log.info(
                    "%s: %d cosine-attention scales (%s) left out: this model's attention is "
                    "plain dot-product at tau %g, as the DepthART authors trained it",
                    var_pth,
                    len(unused),
                    COSINE_ATTENTION_SCALE,
                    model.cfg.transformer.tau,
                )
            state = {k: v for k, v in state.items() if k not in unused}
        load_state_dict_strict(model.transformer, state, what=str(var_pth))


def _torch_load(path: str | Path) -> dict[str, torch.Tensor]:
    p = _existing(path)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError (a refused global), EOFError, RuntimeError (zip)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{p} is not a loadable state dict ({reason})") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{p} does not hold a state dict (got {type(state).__name__})")
    return state
