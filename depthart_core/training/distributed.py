"""Process-level helpers of the trainer: `torchrun` data parallel and the device it runs on.

Ranks start from rank 0's weights (`broadcast`) and average gradients with one all-reduce per step
(`allreduce_grads`), which works for the DepthART rollout's many forward passes per step (DDP's
forward hooks assume one). gloo on CPU, NCCL on GPU (`process_group_backend`).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def process_group_backend(device: str | torch.device) -> str:
    """The process group's backend for a run on `device` (a setting: auto | cpu | cuda | cuda:N):
    NCCL for CUDA where this PyTorch has it, else gloo. By the training device, not by whether
    the machine has a GPU: a device=cpu run on a GPU machine broadcasts CPU tensors, which NCCL
    cannot; JetPack's PyTorch has no NCCL (gloo also reduces CUDA tensors)."""
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    cuda = name.split(":")[0] == "cuda" and torch.cuda.is_available()
    return "nccl" if cuda and dist.is_nccl_available() else "gloo"


def init_distributed(device: str | torch.device = "auto") -> tuple[int, int]:
    """(rank, world) of a `torchrun` run (a process group for `device`, the run's device
    setting), (0, 1) without one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = process_group_backend(device)
        if backend == "nccl":  # NCCL's barrier runs on the current GPU: this rank's, not GPU 0
            torch.cuda.set_device(_rank_gpu(device))
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def _rank_gpu(device: str | torch.device) -> int:
    """The GPU index this rank trains on: the setting's own (cuda:N), else its local rank, as
    `pick_device` chooses."""
    index = torch.device("cuda" if str(device) == "auto" else device).index
    return local_rank() if index is None else index


def local_rank(rank: int | None = None) -> int:
    """This process's index on its machine (torchrun's LOCAL_RANK; else `rank`, else RANK): the
    GPU its plain `cuda` runs on."""
    fallback = rank if rank is not None else os.environ.get("RANK", "0")
    return int(os.environ.get("LOCAL_RANK", fallback))


def pick_device(name: str, rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device=cuda requested but CUDA is not available")
        local = local_rank(rank)
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device(name)


def broadcast(params: list[torch.Tensor], world: int) -> None:
    if world > 1:
        for p in params:
            dist.broadcast(p.data, src=0)


def average_buffers(tensors: list[torch.Tensor], world: int) -> None:
    """Average tensors that each rank updates from its own batch (the tokenizer's code-hit
    statistics), so the replicas stay identical."""
    if world > 1:
        for t in tensors:
            dist.all_reduce(t.data)
            t.data /= world


def gather_rng_states(world: int, device: torch.device | None = None) -> list[torch.Tensor]:
    """Every rank's torch RNG state, on every rank (a collective: all ranks call it): the CPU
    generator's, or with a CUDA `device` that device's generator's (each rank its own GPU's)."""
    cuda = device is not None and device.type == "cuda"
    state = torch.cuda.get_rng_state(device) if cuda else torch.get_rng_state()
    if world <= 1:
        return [state]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, state)
    return out


def allreduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    """Average the gradients over the ranks with one all-reduce. A parameter no rank gave a
    gradient keeps none (AdamW then skips it, weight decay too, as in one process); one that
    some ranks gave a gradient gets the mean with zeros for the others."""
    if world <= 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    had = [1.0 if p.grad is not None else 0.0 for p in params]  # counted in the same reduce
    flat = torch.cat([g.flatten() for g in grads] + [grads[0].new_tensor(had)])
    dist.all_reduce(flat)
    ranks_with_grad = flat[-len(params) :].tolist()
    flat = flat[: -len(params)] / world
    offset = 0
    for p, g, n_ranks in zip(params, grads, ranks_with_grad, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone() if n_ranks > 0 else None
        offset += n


def barrier(world: int) -> None:
    """Wait for every rank (e.g. until rank 0 has written a file the others read)."""
    if world > 1:
        dist.barrier()
