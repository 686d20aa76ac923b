"""Training configuration: frozen dataclasses, YAML overrides, `--set key=value` overrides.

A YAML file in training/configs/ overrides fields of `TrainConfig`; an unknown key, a value of
the wrong type, or an integer setting out of its range (`POSITIVE_INTS`, `ZERO_MEANS_OFF`) raises
with its dotted name, before a run folder is touched.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Every integer setting of TrainConfig, by dotted name, is in exactly one of these (a test walks
# the fields): counts, sizes and periods that must be >= 1 (a period of 0 would divide by zero);
# those where 0 means "off" or "the default", which must be >= 0; and seeds, which may be any.
POSITIVE_INTS = (
    "batch_size",
    "grad_accum",
    "steps",
    "ckpt_every",
    "val_every",
    "log_every",
    "data.val_count",
    "optim.step_size",
)
ZERO_MEANS_OFF = (
    "epochs",  # 0: `steps` decides
    "restart_dead_every",  # 0: no dead-code restarts (finetune keeps the vocabulary fixed)
    "data.render_size",  # 0: render at the model resolution
    "data.pool_size",  # 0: a stream of fresh frames
    "optim.warmup",  # 0: no warm-up
)
SEEDS = ("seed", "data.seed", "data.val_seed")


@dataclass(frozen=True)
class DataConfig:
    source: str = "synthetic"  # synthetic | synthetic_set | hypersim | frames
    root: str = ""  # for synthetic_set / hypersim; frames: the training frame file
    # the held-out data validation reads: frames: a frame file ("" = root itself);
    # synthetic_set: another set ("" = frames rendered from val_seed)
    val_root: str = ""
    split: str = "train"
    seed: int = 0  # synthetic stream seed (training); validation uses val_seed
    val_seed: int = 10_000
    val_count: int = 32
    render_size: int = 0  # 0 (or the model's image size): render at the model resolution
    pool_size: int = 0  # >0: train on a fixed pool of this many synthetic frames, rendered once
    pool_cache: str = ""  # where the pool is cached ("" = ~/.cache/depthart/synth/...)
    # synthetic training frames: SynthConfig overrides (e.g. camera_height: [0.3, 1.9]); empty =
    # the generator's defaults. Validation frames always use the defaults (the eval distribution).
    synth: dict = field(default_factory=dict)
    # Dataset frames (hypersim, synthetic_set) with more invalid pixels than this are dropped from
    # training, as the authors' Hypersim split keeps only frames with < 1000 NaN of 1024 x 768.
    max_invalid_fraction: float = 1000 / (1024 * 768)


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    schedule: str = "step"  # none | step | cosine
    step_size: int = 5000  # StepLR period (the paper: x0.8 every 5,000 iterations)
    gamma: float = 0.8
    warmup: int = 0
    grad_clip: float = 0.0  # 0: off (the paper configures none)


@dataclass(frozen=True)
class TrainConfig:
    stage: str = "transformer"  # tokenizer | transformer
    mode: str = "depthart"  # depthart | teacher_forcing (stage 2)
    last_scale_gumbel: bool = False  # the released config's rec_loss variant; off by default
    # depthart mode: build the rollout's f_hat from the probability-weighted mean of the code
    # embeddings (the `soft` decoding) instead of the argmax code; off by default
    soft_rollout: bool = False
    # depthart mode: weight of the mean over scales of MSE(f_hat_<k + soft update_k, f_D); 0 = off
    soft_latent: float = 0.0
    # depthart mode: detach the rollout's next input after its word/level/position embeddings, as
    # the authors' code does (those embeddings then learn only where the image prefix and the
    # start token use them); off: detached before them, as every shipped leg was trained
    detach_embedding: bool = False
    # stage 2 with image_prefix "cnn": weight of MSE(encoder's f_D estimate, f_D); 0 = off
    aux_latent: float = 0.0
    augment: bool = False  # stage 2: photometric augmentation of the RGB (training/augment.py)
    white_balance: float = 0.0  # with augment: per-channel gains from [1 - w, 1 + w]; 0 = off
    hflip: float = 0.0  # stage 2, "cnn" prefix: mirror each frame (RGB and depth) with this chance
    tokenizer_inputs: str = "both"  # stage 1: train on "both" RGB and depth, or "depth" only
    preset: str = "tiny"
    model_overrides: dict = field(default_factory=dict)
    init_checkpoint: str = ""  # a DepthART checkpoint (e.g. the stage-1 tokenizer run)
    # stage 2 trains on a frozen tokenizer, so it needs one with weights (init_checkpoint or
    # vae_pth) and is refused without; true allows a random one (a smoke test, a unit test)
    random_tokenizer_ok: bool = False
    init_tokenizer_only: bool = True  # take only tokenizer weights from init_checkpoint
    # init_checkpoint may have another image_size / tokenizer.patch_nums than the preset: its
    # per-scale tensors are carried to the new pyramid (depthart_core/training/resize.py); the rest
    # must match
    init_resize: bool = False
    # init_checkpoint may have fewer transformer blocks than the model: its blocks load in order
    # and the extra ones start as identities (depthart_core/training/grow.py); the rest must match
    init_grow: bool = False
    # a checkpoint whose transformer (image encoder included) starts this run, while the tokenizer
    # comes from init_checkpoint (init_tokenizer_only=true): a warm start for a new tokenizer
    init_transformer_from: str = ""
    var_pth: str = ""  # official var_d16.pth (d16 only)
    vae_pth: str = ""  # official vae_ch160v4096z32.pth (d16 only)
    batch_size: int = 8  # per process
    grad_accum: int = 1
    steps: int = 200
    # >0, finite dataset: steps = epochs * len / (batch * grad_accum * world); refused on the
    # endless synthetic stream (data.pool_size 0)
    epochs: int = 0
    precision: str = "fp32"  # fp32 | bf16 (autocast, CUDA or CPU) | fp16 (autocast, CUDA only)
    ema: float = 0.0  # 0: off; else EMA decay of the trainable weights
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    ckpt_every: int = 100
    val_every: int = 100
    log_every: int = 10
    restart_dead_every: int = 50  # stage 1 dead-code restarts
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        checks = {
            "stage": (self.stage, ("tokenizer", "transformer")),
            "mode": (self.mode, ("depthart", "teacher_forcing")),
            "precision": (self.precision, ("fp32", "bf16", "fp16")),
            "tokenizer_inputs": (self.tokenizer_inputs, ("both", "depth")),
            "data.source": (
                self.data.source,
                ("synthetic", "synthetic_set", "hypersim", "frames"),
            ),
            "optim.schedule": (self.optim.schedule, ("none", "step", "cosine")),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {list(allowed)}")
        for names, low in ((POSITIVE_INTS, 1), (ZERO_MEANS_OFF, 0)):
            for name in names:
                if self._dotted(name) < low:
                    raise ValueError(f"{name} must be >= {low}, got {self._dotted(name)}")
        if self.epochs > 0 and self.data.source == "synthetic" and self.data.pool_size == 0:
            raise ValueError(
                f"epochs={self.epochs} needs a finite dataset, and data.source synthetic with "
                "data.pool_size 0 is an endless stream of new frames: set steps instead (and "
                "epochs=0), or data.pool_size=N to train on a fixed pool of N frames"
            )
        if not 0.0 <= self.hflip <= 1.0:
            raise ValueError(f"hflip must be a probability in [0, 1], got {self.hflip}")
        if not 0.0 <= self.white_balance < 1.0:
            raise ValueError(f"white_balance must be in [0, 1), got {self.white_balance}")
        if self.white_balance > 0 and not self.augment:
            raise ValueError(f"white_balance={self.white_balance} needs augment=true")
        for name in ("soft_latent", "aux_latent"):  # weights of loss terms; NaN is not >= 0
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.data.max_invalid_fraction <= 1.0:
            raise ValueError(
                f"data.max_invalid_fraction must be in [0, 1], got {self.data.max_invalid_fraction}"
            )
        if not 0.0 <= self.ema < 1.0:  # 1 would never move the weights, above 1 extrapolate
            raise ValueError(f"ema must be 0 (off) or a decay in (0, 1), got {self.ema}")
        o = self.optim
        for name, value, ok in (
            ("optim.lr", o.lr, o.lr > 0),
            ("optim.weight_decay", o.weight_decay, o.weight_decay >= 0),
            ("optim.beta1", o.beta1, 0 <= o.beta1 < 1),
            ("optim.beta2", o.beta2, 0 <= o.beta2 < 1),
            ("optim.eps", o.eps, o.eps > 0),
            ("optim.gamma", o.gamma, o.gamma > 0),
            ("optim.grad_clip", o.grad_clip, o.grad_clip >= 0),
        ):
            if not (ok and math.isfinite(value)):
                raise ValueError(f"{name}={value!r} is out of range")
        if (
            self.soft_rollout or self.soft_latent > 0 or self.detach_embedding
        ) and self.mode != "depthart":
            raise ValueError(
                "soft_rollout / soft_latent / detach_embedding shape the DepthART rollout; "
                f"mode={self.mode!r} has none"
            )

    def _dotted(self, name: str) -> Any:
        node: Any = self
        for part in name.split("."):
            node = getattr(node, part)
        return node

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# settings that name a file or folder: a leading `~` in them is expanded as they are read (YAML
# and `--set data.root=~/x` get no shell to do it), and a --resume compares them as the path
# they resolve to (trainer.resumed_changes), so one spelled otherwise (relative, absolute, from
# another directory) is the same run; a relative one the run recorded resolves against the
# working directory
PATH_SETTINGS = frozenset(
    {
        "data.root",
        "data.val_root",
        "data.pool_cache",
        "init_checkpoint",
        "init_transformer_from",
        "var_pth",
        "vae_pth",
    }
)


def _coerce(cls: type, values: dict[str, Any], prefix: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    kwargs = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if key not in fields:
            raise ValueError(f"unknown config key {name!r}; valid: {sorted(fields)}")
        default = getattr(defaults, key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise TypeError(f"{name} must be a mapping, got {value!r}")
            value = _coerce(type(default), value, f"{name}.")
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be true/false, got {value!r}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a number, got {value!r}")
            value = float(value)
        elif isinstance(default, str):
            if value is None and default == "":  # `--set init_checkpoint=`, `root:` (nothing)
                value = ""
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a string, got {value!r}")
            if name in PATH_SETTINGS:  # `--set data.root=~/x`: the shell leaves that ~ alone
                value = os.path.expanduser(value)
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                raise TypeError(f"{name} must be a mapping, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_set(items: list[str]) -> dict[str, Any]:
    """`--set optim.lr=3e-4 --set steps=50` -> nested dict; values parsed as YAML 1.2 scalars
    (`Yaml12Loader`: 3e-4 a number, 010 ten). A key given twice keeps its last value."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                section = ".".join(parts[: i + 1])
                raise ValueError(f"--set {key}: {section} was given a value, not keys")
        if isinstance(node.get(parts[-1]), dict):
            raise ValueError(f"--set {key}: {key.strip()} was given keys, not a value")
        try:
            node[parts[-1]] = _scalar(raw)
        except yaml.YAMLError as exc:
            one_line = "\n" not in raw
            raise ValueError(f"--set {item!r}: {_yaml_problem(exc, one_line)}") from None
    return out


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's numbers: 3e-4 is a float (1.1: a string), 010 is
    10 (1.1: octal 8), 08 is 8 (1.1: a string), 1:30 is a string (1.1: base-60 90); 0x1F and
    0o17 stay hex and octal. For --set values and config files alike, nested ones included."""


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
Yaml12Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _yaml12_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = loader.construct_scalar(node)
    body = text.lstrip("+-")
    base = 16 if body.startswith("0x") else 8 if body.startswith("0o") else 10
    return int(text.replace("0x", "").replace("0o", ""), base)


Yaml12Loader.add_constructor(_INT, _yaml12_int)


def _scalar(raw: str) -> Any:
    """A --set value as YAML 1.2 reads it (`Yaml12Loader`)."""
    return yaml.load(raw, Loader=Yaml12Loader)  # noqa: S506 (a safe loader)


def _yaml_problem(exc: yaml.YAMLError, value: bool = False) -> str:
    """The reason of a YAML error, where it is 1-based ("invalid YAML at line 3, column 1: ...");
    `value`: a one-line --set value, whose column alone is said."""
    mark = getattr(exc, "problem_mark", None)
    where = ""
    if mark is not None:
        line = "" if value else f"line {mark.line + 1}, "
        where = f" at {line}column {mark.column + 1}" + (" of the value" if value else "")
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    return f"invalid YAML{where}: {f'{context}, ' if context else ''}{what}"


def load_train_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"training config not found: {p}")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"training config {p}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
        try:
            loaded = yaml.load(text, Loader=Yaml12Loader) or {}  # noqa: S506 (safe)
        except yaml.YAMLError as exc:
            raise ValueError(f"training config {p}: {_yaml_problem(exc)}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"{p} must hold a mapping at the top level")
        values = loaded
    values = _merge(values, parse_set(overrides or []))
    return _coerce(TrainConfig, values, "")
