"""Checkpoints: safetensors weights with the model config and provenance in the file's metadata.

A checkpoint is one `.safetensors` file (self-contained: loading needs nothing else) plus a
human-readable `.json` sidecar with the same config and metadata. Loading is strict: every key and
shape must match, and a mismatch raises naming the keys. Nothing is ever unpickled; the one
exception is reading VAR's official `.pth` releases, done with `torch.load(weights_only=True)`.

The checkpoint as a file, which needs no torch, is `depthart_core.checkpoint_file`'s, re-exported
here: resolving one (`resolve_checkpoint`: the path given, else `$DEPTHART_CHECKPOINT`, else the
shipped one), hashing it (`file_sha256`, once per file version and process), reading its config
(`read_checkpoint_info`), and `CheckpointFile`, which carries one resolved checkpoint through
`runtime.get_backend`, so the `auto` fallback chain reads, hashes and loads it once (its model:
`load_model`, below). This module builds and loads the model (torch).

The DepthART authors' released `model.safetensors` (bulatko/DepthART) is accepted wherever a
checkpoint is: it is recognised by its keys and mapped in `depthart_core.authors_layout`; when it
lacks the VQ-VAE, VAR's `vae_ch160v4096z32.pth` is taken from `vae=` or from beside the file.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import save_file
from torch.overrides import TorchFunctionMode

from depthart_core import authors_layout
from depthart_core.checkpoint_file import _PICKLE_SUFFIXES as _PICKLE_SUFFIXES
from depthart_core.checkpoint_file import AUTHORS_LAYOUT as AUTHORS_LAYOUT
from depthart_core.checkpoint_file import DEFAULT_CHECKPOINT_NAME as DEFAULT_CHECKPOINT_NAME
from depthart_core.checkpoint_file import ENV_CHECKPOINT as ENV_CHECKPOINT
from depthart_core.checkpoint_file import FORMAT as FORMAT
from depthart_core.checkpoint_file import HEAD_PREFIX as HEAD_PREFIX
from depthart_core.checkpoint_file import CheckpointFile as CheckpointFile
from depthart_core.checkpoint_file import _existing as _existing
from depthart_core.checkpoint_file import _expand as _expand
from depthart_core.checkpoint_file import _refuse_pickle as _refuse_pickle
from depthart_core.checkpoint_file import _sha256_of as _sha256_of
from depthart_core.checkpoint_file import _shipped_candidates as _shipped_candidates
from depthart_core.checkpoint_file import copied_head as copied_head
from depthart_core.checkpoint_file import default_checkpoint_path as default_checkpoint_path
from depthart_core.checkpoint_file import file_sha256 as file_sha256
from depthart_core.checkpoint_file import read_checkpoint_info as read_checkpoint_info
from depthart_core.checkpoint_file import refuse_tokenizer_only as refuse_tokenizer_only
from depthart_core.checkpoint_file import refuse_vae as refuse_vae
from depthart_core.checkpoint_file import resolve_checkpoint as resolve_checkpoint
from depthart_core.config import ModelConfig
from depthart_core.fileutil import atomic_write
from depthart_core.fileutil import sha256_file as sha256_file
from depthart_core.model import DepthART
from depthart_core.rundir import open_safetensors
from depthart_core.transformer.var import COSINE_ATTENTION_SCALE, REBUILT_VAR_BUFFERS

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


def _kept(keys: Any, info: dict[str, Any]) -> list[str]:
    """The tensors of a checkpoint its model loads: all, less a head not its own (`copied_head`:
    dropped by name, so the rest still loads strictly)."""
    copied = "uncertainty_dropped" in info
    return [k for k in keys if not (copied and k.startswith(HEAD_PREFIX))]


def load_model(ckpt: CheckpointFile) -> tuple[DepthART, dict[str, Any]]:
    """(model, info) of `ckpt` (`load_checkpoint`), loaded the first time only: the same model
    object for every backend the `auto` fallback tries (kept in `ckpt.loaded`)."""
    if ckpt.loaded is None:
        ckpt.loaded = load_checkpoint(ckpt.path, vae=ckpt.vae, vae_setting=ckpt.vae_setting)
    return ckpt.loaded


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
