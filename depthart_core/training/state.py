"""The training state: everything `--resume` needs to continue a run exactly, in one file.

`train_state.safetensors` holds the weights (`model.*`), the AdamW moments (`opt.<i>.<name>`),
the EMA copies (`ema.<i>`) and the torch RNG state (`rng.torch`, and `rng.torch.<rank>` for the
other ranks of a data-parallel run; a run on a GPU also that GPU's generator, which the noise
drawn there comes from: `rng.cuda`, `rng.cuda.<rank>`); its metadata holds the step (which is
also the data position), the training config, the optimizer's param groups and, with fp16 on a
GPU, the loss scaler's state. It is written through `fileutil.atomic_write`, so a kill at any
moment leaves the previous state whole and only a temp folder that the next start removes
(`rundir`). `ema_weights` swaps the EMA copies into the model for validation and for the
user-facing checkpoint.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from depthart_core.fileutil import atomic_write
from depthart_core.rundir import STATE_NAME, read_train_state

log = logging.getLogger(__name__)


def save_train_state(
    run_dir: Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    ema: list[torch.Tensor] | None,
    step: int,
    config: dict[str, Any],
    rng_states: list[torch.Tensor] | None = None,
    scaler: torch.amp.GradScaler | None = None,
    *,
    device: torch.device | None = None,
    cuda_rng_states: list[torch.Tensor] | None = None,
) -> None:
    """Atomically write `run_dir/train_state.safetensors`. `rng_states`: every rank's torch RNG
    state (data parallel: `distributed.gather_rng_states`); None: this process's. With a CUDA
    `device` (the run's) also its generator's: `cuda_rng_states` every rank's
    (`distributed.gather_rng_states(world, device)`), None: this process's."""
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    opt_state = opt.state_dict()
    for i, st in opt_state["state"].items():
        for name, t in st.items():
            tensors[f"opt.{i}.{name}"] = torch.as_tensor(t).detach().cpu().contiguous()
    for i, e in enumerate(ema or []):
        tensors[f"ema.{i}"] = e.detach().cpu().contiguous()
    rng_states = rng_states or [torch.get_rng_state()]
    tensors["rng.torch"] = rng_states[0]
    for rank, s in enumerate(rng_states[1:], start=1):  # each rank goes on with its own draws
        tensors[f"rng.torch.{rank}"] = s
    if device is not None and device.type == "cuda":  # a CPU run's file stays as it was
        cuda_rng_states = cuda_rng_states or [torch.cuda.get_rng_state(device)]
        tensors["rng.cuda"] = cuda_rng_states[0]
        for rank, s in enumerate(cuda_rng_states[1:], start=1):
            tensors[f"rng.cuda.{rank}"] = s
    meta = {
        "step": str(step),
        "config": json.dumps(config),
        "param_groups": json.dumps(opt_state["param_groups"]),
    }
    if scaler is not None and scaler.is_enabled():  # fp16: the loss scale it had reached
        meta["grad_scaler"] = json.dumps(scaler.state_dict())
    atomic_write(run_dir / STATE_NAME, lambda tmp: save_file(tensors, tmp, metadata=meta))


def restore_train_state(
    run_dir: Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    ema: list[torch.Tensor] | None,
    stage: str,
    preset: str,
    device: torch.device,
    rank: int = 0,
    scaler: torch.amp.GradScaler | None = None,
) -> int:
    """Load `run_dir`'s state into `model`, `opt`, `ema` and the torch RNG (`rank`'s own; a
    rank the run did not have, with another world size, gets a seed of its own), on a CUDA
    `device` also its generator (a state written on CPU, or by a version that did not save it,
    has none: that one goes on from where start-up left it); return its step. A damaged file, or
    one written for another stage or preset, raises naming the file."""
    path = run_dir / STATE_NAME
    meta, tensors = read_train_state(run_dir)
    saved = json.loads(meta["config"])
    if saved.get("stage") != stage or saved.get("preset") != preset:
        raise ValueError(
            f"--resume: {path} was written for stage/preset "
            f"{saved.get('stage')}/{saved.get('preset')}, not {stage}/{preset}"
        )
    model_sd = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_sd, strict=True)
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v.to(device)
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    for i, e in enumerate(ema or []):
        e.copy_(tensors[f"ema.{i}"])
    if scaler is not None and scaler.is_enabled() and "grad_scaler" in meta:
        scaler.load_state_dict(json.loads(meta["grad_scaler"]))  # not 65536 again: no overflows
    key = f"rng.torch.{rank}" if rank else "rng.torch"
    if key in tensors:
        torch.set_rng_state(tensors[key])
    else:  # not rank 0's draws again: identical Gumbel noise and restarts on every rank
        torch.manual_seed(int(saved.get("seed", 0)) + 1000 * rank + int(meta["step"]))
    if device.type == "cuda":  # after manual_seed, which reseeds the GPUs' generators too
        cuda_key = f"rng.cuda.{rank}" if rank else "rng.cuda"
        if cuda_key in tensors:
            torch.cuda.set_rng_state(tensors[cuda_key], device)
        elif rank == 0:  # one line per run (a rank the run did not have was seeded above)
            log.warning(
                "--resume: %s holds no CUDA RNG state (written on CPU or by an older version): "
                "the draws made on the GPU do not continue those of the run",
                path,
            )
    return int(meta["step"])


@contextmanager
def ema_weights(params: list[torch.nn.Parameter], ema: list[torch.Tensor] | None) -> Iterator[None]:
    """Within the block the trainable parameters hold their EMA copies (no-op without EMA)."""
    if ema is None:
        yield
        return
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p, e in zip(params, ema, strict=True):
            p.copy_(e)
    try:
        yield
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)
