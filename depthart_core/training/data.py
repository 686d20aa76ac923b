"""Deterministic, resumable training batches: batch `step` of rank r is a pure function of
(seed, step, rank, world), so `--resume` continues at exactly the same data position.

Sources: our synthetic scenes rendered on the fly, a written synthetic set, Hypersim, or frames
prepared at the model resolution in one safetensors file (`FramePool`, used by finetune). Dataset
frames are resized to the model resolution as the paper does (aspect ratio not preserved): RGB
with area/bicubic interpolation, depth and its valid mask with nearest neighbour.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import save_file
from tqdm import tqdm

from depthart_core.data.benchmarks._io import FRAME_ERRORS
from depthart_core.data.hypersim import HypersimDataset
from depthart_core.data.sample import DepthDataset, DepthSample
from depthart_core.data.synthetic.config import SynthConfig
from depthart_core.data.synthetic.render import generator_digest, render_batch
from depthart_core.data.synthetic.set import SyntheticSet
from depthart_core.fileutil import (
    CACHE_TEMP_STALE_S,
    ENV_CACHE,
    WriteError,
    atomic_write,
    cache_root,
    cache_unwritable,
    describe_os_error,
    fd_name,
    private_cache_folder,
    read_json,
    untrusted_cache_file,
    warn_shared_cache_folder,
)
from depthart_core.procutil import available_cpus, die_with_parent
from depthart_core.rundir import load_safetensors, open_safetensors
from depthart_core.training.config import DataConfig

log = logging.getLogger(__name__)


def resize_sample(s: DepthSample, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, w = s.depth.shape
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_CUBIC
    rgb = cv2.resize(s.rgb, (size, size), interpolation=interp)
    # nearest with pixel centres (OpenCV's INTER_NEAREST takes floor(dst * scale): a depth
    # target shifted up-left of the RGB, which INTER_AREA/CUBIC resize about pixel centres)
    depth = cv2.resize(s.depth, (size, size), interpolation=cv2.INTER_NEAREST_EXACT)
    valid = cv2.resize(
        s.valid.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST_EXACT
    )
    valid = valid.astype(bool) & np.isfinite(depth) & (depth > 0)
    return rgb, np.where(valid, depth, 0).astype(np.float32), valid


def collate(items: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, torch.Tensor]:
    return {
        "rgb": torch.from_numpy(np.stack([i[0] for i in items])).permute(0, 3, 1, 2).contiguous(),
        "depth": torch.from_numpy(np.stack([i[1] for i in items])),
        "valid": torch.from_numpy(np.stack([i[2] for i in items])),
    }


def synth_config(size: int, overrides: dict | None = None) -> SynthConfig:
    """The generator's settings at the model resolution, with `data.synth` overrides; an unknown
    key or a bad range raises naming it."""
    return SynthConfig.from_dict({**(overrides or {}), "size": [size, size]})


def synth_tag(overrides: dict | None) -> str:
    """Short stable tag of non-empty overrides for cache names ("" for the defaults)."""
    if not overrides or synth_config(1, overrides) == synth_config(1, None):  # the defaults
        return ""
    cfg, default = synth_config(1, overrides).to_dict(), synth_config(1, None).to_dict()
    for k, v in cfg.items():  # [1, 2] and [1.0, 2.0] of a range in metres: one pool
        if isinstance(v, list) and any(isinstance(x, float) for x in default[k]):
            cfg[k] = [float(x) for x in v]
    canon = json.dumps(cfg, sort_keys=True)
    return "_" + hashlib.sha256(canon.encode()).hexdigest()[:10]


class SyntheticBatches:
    def __init__(
        self,
        seed: int,
        size: int,
        batch: int,
        rank: int = 0,
        world: int = 1,
        synth: dict | None = None,
    ) -> None:
        self.seed, self.batch, self.rank, self.world = seed, batch, rank, world
        self.cfg = synth_config(size, synth)

    def indices(self, step: int) -> list[int]:
        start = (step * self.world + self.rank) * self.batch
        return list(range(start, start + self.batch))

    def batch_at(self, step: int) -> dict[str, torch.Tensor]:
        out = render_batch(self.seed, self.indices(step), self.cfg)
        return {"rgb": out["rgb"], "depth": out["depth"], "valid": out["valid"]}


def _render_span(span: tuple[int, int, int, int, dict]) -> dict[str, torch.Tensor]:
    """Frames [start, stop) of `seed` at `size` (a process-pool task: one torch thread)."""
    seed, start, stop, size, synth = span
    torch.set_num_threads(1)
    out = render_batch(seed, list(range(start, stop)), synth_config(size, synth))
    return {k: out[k] for k in ("rgb", "depth", "valid")}


MAX_RENDER_WORKERS = 16
WORKER_STOP_S = 5.0  # how long a stopped render worker may take to exit before SIGKILL
# how long a SIGKILLed worker may take to be reaped: it always dies, but a loaded kernel took
# longer than 1 s once (a fresh clone's run found a worker alive after the stop)
KILLED_WORKER_S = 10.0


def render_workers() -> int:
    """The processes a pool render starts by default: one per CPU this process may run on, at
    most 16, at least 1. Under torchrun the machine's ranks render at once (each its own pool:
    the trainer's ranks do not wait in a collective for one rank's render, which would meet the
    process group's timeout), so each takes its share: the CPUs over LOCAL_WORLD_SIZE."""
    cpus = available_cpus()
    ranks = os.environ.get("LOCAL_WORLD_SIZE", "").strip()
    if ranks.isdigit() and int(ranks) > 1:
        cpus //= int(ranks)
    return max(1, min(MAX_RENDER_WORKERS, cpus))


def _render_worker_start(parent: int) -> None:
    """A render worker's set-up: Ctrl-C and a closed terminal are the parent's to handle (it
    stops the workers; a worker interrupted in the pool's queue hung the others and the parent's
    exit), and the worker dies with the parent, even one killed by SIGKILL (the OOM killer)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGHUP"):  # not on Windows
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    die_with_parent(parent)


def _stop_render_workers(pool: ProcessPoolExecutor) -> None:
    """Stop a render pool at once (an interrupt, an error): its queued chunks cancelled and its
    processes terminated and reaped, so that the interrupt reaches the caller now and no worker
    is left for multiprocessing's exit to wait on. A second Ctrl-C meanwhile (`timeout` sends
    one to the process and one to its group) does not cut this short: the first is already on
    its way."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # the executor's own
    _uninterrupted(pool.shutdown, False, cancel_futures=True)
    for p in procs:
        _uninterrupted(p.terminate)
    deadline = time.monotonic() + WORKER_STOP_S
    for p in procs:
        _uninterrupted(lambda p=p: p.join(max(0.0, deadline - time.monotonic())))
        if p.is_alive():
            _uninterrupted(p.kill)
            _uninterrupted(p.join, KILLED_WORKER_S)


def _uninterrupted(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)`, called again when a KeyboardInterrupt cut it short."""
    while True:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            continue


def _content_digest(path: Path) -> str:
    """sha256 (16 hex digits) of a safetensors file's content: its header with the keys sorted
    (safetensors writes the header's entries in no fixed order), then its data, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        h.update(json.dumps(header, sort_keys=True).encode())
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


class FramePool:
    """Frames prepared once at the model resolution, sampled by an epoch-wise seeded
    permutation: a safetensors file with rgb (N, 3, S, S) uint8, depth (N, S, S) float32 and
    valid (N, S, S) bool (`depthart finetune` writes one from a rosbag). Batches carry each
    frame's `index`, so the trainer can cache the frozen tokenizer's latents per file."""

    def __init__(
        self, path: str | Path, seed: int, batch: int, rank: int = 0, world: int = 1
    ) -> None:
        self.batch, self.rank, self.world, self.seed = batch, rank, world, seed
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"frame file not found: {self.path}")
        self._load(self.path)

    def _load(self, source: str | Path) -> None:
        """Take the frames of `self.path` from `source`: the file, or its open descriptor's
        name (/dev/fd/N) where it was checked as opened."""
        try:
            tensors = load_safetensors(source)
        except SafetensorError as exc:  # not safetensors at all, or cut short
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ValueError(
                f"frame file {self.path} is not a readable safetensors file ({reason}): give one "
                "with rgb, depth and valid tensors, as `depthart finetune` writes"
            ) from exc
        missing = [k for k in ("rgb", "depth", "valid") if k not in tensors]
        if missing:
            raise ValueError(f"frame file {self.path} lacks tensor(s) {missing}")
        # the file's content, not its name or bytes (safetensors writes its metadata in no fixed
        # order, so one pool rendered twice is two byte strings), keys the latents cached from it
        self.digest = _content_digest(Path(source))
        self.rgb, self.depth, self.valid = tensors["rgb"], tensors["depth"], tensors["valid"]
        self.stored = len(self.rgb)
        # a frame with no valid depth (a camera facing a window) has nothing to learn from and no
        # q98 to encode with: dropped here, once, so that every batch can be encoded
        keep_N = self.valid.flatten(1).any(1)
        self.dropped_empty = int((~keep_N).sum())
        if self.dropped_empty:
            log.warning(
                "frame file %s: %d of %d frames have no valid depth pixel; training skips them",
                self.path,
                self.dropped_empty,
                self.stored,
            )
            self.rgb, self.depth, self.valid = (
                self.rgb[keep_N],
                self.depth[keep_N],
                self.valid[keep_N],
            )
        if len(self.rgb) == 0:
            raise ValueError(f"frame file {self.path} holds no frames with valid depth")

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.rgb) // (self.batch * self.world))

    def batch_at(self, step: int) -> dict[str, torch.Tensor]:
        epoch, within = divmod(step, self.steps_per_epoch)
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self.rgb), generator=g)
        start = (within * self.world + self.rank) * self.batch
        idx = perm[(start + torch.arange(self.batch)) % len(perm)]
        return {
            "rgb": self.rgb[idx],
            "depth": self.depth[idx],
            "valid": self.valid[idx],
            "index": idx,
        }


class SyntheticPool(FramePool):
    """A fixed pool of `count` synthetic frames rendered once (cached on disk), then sampled by
    an epoch-wise seeded permutation. Rendering on the fly costs more than a CPU training step;
    the pool trades scene variety for throughput. Frame i of the pool is render_frame(seed, i)
    (with the `synth` overrides; their hash is part of the cache name).

    The file's metadata records what rendered it (the generator's source digest, seed, size,
    count, settings). A cached file that is unreadable or was rendered otherwise is rendered
    again, with a warning naming the file and the difference; it is never reused.

    As the ONNX cache's graphs (`runtime.onnx_cache`), a cached pool is used only if no other user
    could have written it (`fileutil.untrusted_cache_file`: yours or root's, writable by no one
    else; checked on the open file that is then read): a pool planted in a shared cache would
    become training data. One that is not trusted is rendered again with a warning naming the
    file, its owner and mode, and the pools written here are writable by their owner only. Where
    the pool's folder cannot be written (a read-only mount, another user's folder, another user's
    pool in a sticky folder: `fileutil.cache_unwritable`), the pool is rendered into a temp folder
    of the process's own, removed at exit (`fileutil.private_cache_folder`), with a warning.
    """

    def __init__(
        self,
        seed: int,
        size: int,
        count: int,
        batch: int,
        rank: int = 0,
        world: int = 1,
        cache: str = "",
        synth: dict | None = None,
        progress: bool = True,
    ) -> None:
        name = f"s{seed}{synth_tag(synth)}_{size}px_{count}.safetensors"
        path = Path(cache) if cache else cache_root() / "synth" / name
        setting = POOL_SETTING if cache else ENV_CACHE
        trust = POOL_TRUST_SETTING if cache else ENV_CACHE  # "set X to a folder only you can write"
        want = pool_metadata(seed, size, count, synth)
        warn_shared_cache_folder(path.parent, trust)
        problem = stale_pool(path, want, trust)
        if problem:
            if problem != ABSENT:
                log.warning("synthetic pool %s %s; rendering it again", path, problem)
            path = self._render(
                path,
                seed,
                size,
                count,
                synth=synth or {},
                metadata=want,
                progress=progress,
                setting=setting,
            )
        self.batch, self.rank, self.world, self.seed = batch, rank, world, seed
        self.path = path
        try:  # the file checked is the file read: one swapped in since is refused
            with open(path, "rb") as f:
                problem = _pool_problem(path, f.fileno(), want, trust)
                if problem:
                    raise ValueError(f"synthetic pool {path} {problem} (changed while in use)")
                self._load(fd_name(f.fileno(), path))
        except OSError as exc:
            raise ValueError(f"synthetic pool {describe_os_error(exc)}") from exc
        if self.stored != count:
            raise ValueError(f"synthetic pool cache {path} holds {self.stored} frames, not {count}")

    @staticmethod
    def _render(
        path: Path,
        seed: int,
        size: int,
        count: int,
        chunk: int = 32,
        workers: int = 0,
        synth: dict | None = None,
        metadata: dict[str, str] | None = None,
        progress: bool = True,
        setting: str = ENV_CACHE,
    ) -> Path:
        """Render frames 0..count-1 in chunks of `chunk`; with workers > 1 the chunks go to that
        many processes (one torch thread each; default `render_workers()`). Chunk boundaries do
        not depend on `workers`, so the cache holds the same frames either way. The workers leave
        Ctrl-C to this process, which stops them at once on an interrupt or an error, and they
        die with it, even by SIGKILL (`_render_worker_start`). Returns where the pool was
        written: `path`, writable by you only, or where `path` cannot be written
        (`cache_unwritable`) a file of its name in this process's own temp folder, with a warning
        saying why and that `setting` moves the cache."""
        workers = workers if workers > 0 else render_workers()
        starts = list(range(0, count, chunk))
        spans = [(seed, s, min(count, s + chunk), size, synth or {}) for s in starts]
        parts: dict[str, list[torch.Tensor]] = {"rgb": [], "depth": [], "valid": []}
        desc = f"render synthetic pool (seed {seed}, {workers} proc)"
        pool = None
        try:
            with tqdm(total=count, desc=desc, unit="img", disable=not progress) as bar:
                if workers == 1:
                    results = map(_render_span, spans)
                else:
                    pool = ProcessPoolExecutor(
                        workers,
                        mp_context=get_context("spawn"),
                        initializer=_render_worker_start,
                        initargs=(os.getpid(),),
                    )
                    results = pool.map(_render_span, spans)
                for out in results:
                    for k in parts:
                        parts[k].append(out[k])
                    bar.update(len(out["rgb"]))
            if pool is not None:
                pool.shutdown()  # every chunk is in: the workers are idle
        except BaseException:  # Ctrl-C, SIGTERM, a chunk's error: the workers stop now
            if pool is not None:
                _stop_render_workers(pool)
            raise
        tensors = {k: torch.cat(v).contiguous() for k, v in parts.items()}
        try:
            _write_pool(path, tensors, metadata)
            return path
        except WriteError as exc:
            if not cache_unwritable(exc):  # a full disk: the one-line error
                raise
            try:
                private = private_cache_folder("synth") / path.name
            except OSError as no_temp:  # no temp folder either: the cache's own error
                raise exc from no_temp
            log.warning(
                "synthetic pool cache %s cannot be used (%s): the pool is written to %s, a temp "
                "folder removed at exit; every run will render it again until %s names a place "
                "you can write",
                path,
                exc,
                private,
                setting,
            )
            _write_pool(private, tensors, metadata)
            return private


def _write_pool(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None) -> None:
    atomic_write(
        path,
        lambda tmp: save_file(tensors, tmp, metadata=metadata),
        stale_after_s=CACHE_TEMP_STALE_S,  # also removes a killed write's temp folder
        owner_only=True,  # trusted when read back, whatever the umask
    )


POOL_FORMAT = "depthart-pool/1"
POOL_SETTING = "data.pool_cache"  # what a warning about a pool given by its path says to set
# what an untrusted pool's reason says to move: "set data.pool_cache's folder to a folder ..."
POOL_TRUST_SETTING = f"{POOL_SETTING}'s folder"
# the same for latents cached beside a frames file (`data.source: frames`; finetune's RUN/frames)
FRAMES_TRUST_SETTING = "data.root's folder (finetune: --out)"
ABSENT = "does not exist"


def pool_metadata(seed: int, size: int, count: int, synth: dict | None) -> dict[str, str]:
    """What a synthetic pool file records about how it was rendered (safetensors metadata)."""
    settings = json.dumps(synth_config(size, synth).to_dict(), sort_keys=True)
    return {
        "format": POOL_FORMAT,
        "generator": generator_digest(),
        "seed": str(seed),
        "size": str(size),
        "count": str(count),
        "synth": settings,
    }


def stale_pool(path: Path, want: dict[str, str], setting: str = ENV_CACHE) -> str:
    """Why the pool file at `path` cannot be reused ("" when it can): absent, not trusted
    (`fileutil.untrusted_cache_file`; `setting` is what its reason says to set), unreadable, or
    rendered otherwise than `want` says."""
    try:
        if not path.is_file():
            return ABSENT
        with open(path, "rb") as f:
            return _pool_problem(path, f.fileno(), want, setting)
    except OSError as exc:  # a folder you cannot enter: nothing to reuse
        return f"cannot be read ({describe_os_error(exc, with_path=False)})"


def _pool_problem(path: Path, fd: int, want: dict[str, str], setting: str) -> str:
    """`stale_pool`'s reason for the pool file `path` open as `fd` (judged and read there)."""
    problem = untrusted_cache_file(path, fd, setting)
    if problem:
        return problem
    try:
        with open_safetensors(fd_name(fd, path)) as f:
            got = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception as e:  # truncated or not safetensors at all
        return f"is unreadable ({type(e).__name__}: {e})"
    for key, value in want.items():
        if got.get(key) != value:
            return f"was rendered with {key}={got.get(key)!r}, not {value!r}"
    count = int(want["count"])
    if any(shapes.get(k, (None,))[0] != count for k in ("rgb", "depth", "valid")):
        return f"holds tensors {shapes}, not {count} frames of rgb, depth and valid"
    return ""


class DatasetBatches:
    """Epoch-wise seeded permutation of a finite dataset; skips unreadable frames (counted).

    A frame whose invalid-pixel fraction exceeds `max_invalid_fraction` is dropped (the authors'
    Hypersim split rule): its slot takes the frame one batch-stride later in the permutation, so
    batches stay a pure function of (seed, step, rank, world). Dropped indices are in `dropped`.
    A frame whose files cannot be read (a frame error, `data.benchmarks._io.FRAME_ERRORS`: a file
    missing, cut short, not the image it should be) is dropped the same way, once, with a warning
    naming it and the reason; its index and that reason are also in `unreadable`. Only when no
    frame at all is usable is it an error, one line saying why.
    """

    def __init__(
        self,
        dataset: DepthDataset,
        seed: int,
        size: int,
        batch: int,
        rank: int = 0,
        world: int = 1,
        max_invalid_fraction: float = 1.0,
    ) -> None:
        if len(dataset) == 0:
            raise ValueError(f"dataset {dataset.name!r} has no frames")
        if not 0.0 <= max_invalid_fraction <= 1.0:
            raise ValueError(f"max_invalid_fraction must be in [0, 1], got {max_invalid_fraction}")
        self.ds, self.seed, self.size = dataset, seed, size
        self.batch, self.rank, self.world = batch, rank, world
        self.max_invalid_fraction = max_invalid_fraction
        self.dropped: set[int] = set()
        self.unreadable: dict[int, str] = {}  # dropped frames whose files cannot be read: why

    def _usable(self, i: int) -> DepthSample | None:
        if i in self.dropped:
            return None
        try:
            s = self.ds[i]
        except FRAME_ERRORS as exc:  # this frame's files only: skipped, named, the rest used
            self.unreadable[i] = str(exc) or type(exc).__name__
            self.dropped.add(i)
            log.warning("training skips %s frame %d (unreadable): %s", self.ds.name, i,
                        self.unreadable[i])  # fmt: skip
            return None
        if 1.0 - float(s.valid.mean()) > self.max_invalid_fraction:
            log.info("training drops %s: %.2f%% invalid pixels", s.name, 100 * (1 - s.valid.mean()))
            self.dropped.add(i)
            return None
        return s

    def _frame(self, perm: np.ndarray, j: int) -> DepthSample:
        """Frame `j` of the permutation, or where it is dropped the same slot of a later batch;
        where that walk cycles (the batch stride shares a factor with the set's size), the
        next frames in turn. An error only when no frame at all is usable."""
        stride, n = self.batch * self.world, len(perm)
        for k in range(n):
            s = self._usable(int(perm[(j + k * stride) % n]))
            if s is not None:
                return s
        for k in range(1, n):
            s = self._usable(int(perm[(j + k) % n]))
            if s is not None:
                return s
        if len(self.unreadable) == n:
            first = self.unreadable[min(self.unreadable)]
            raise ValueError(
                f"dataset {self.ds.name!r}: none of its {n} frames is readable (the first: {first})"
            )
        unread = f" ({len(self.unreadable)} of its {n} unreadable)" if self.unreadable else ""
        raise ValueError(
            f"dataset {self.ds.name!r}: no frame has at most "
            f"{100 * self.max_invalid_fraction:.3f}% invalid pixels{unread}"
        )

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.ds) // (self.batch * self.world))

    def batch_at(self, step: int) -> dict[str, torch.Tensor]:
        epoch, within = divmod(step, self.steps_per_epoch)
        # seeded by the pair: seed + epoch made seed s + 1's epoch e seed s's epoch e + 1
        perm = np.random.default_rng([self.seed, epoch]).permutation(len(self.ds))
        start = (within * self.world + self.rank) * self.batch
        frames = [self._frame(perm, start + i) for i in range(self.batch)]
        return collate([resize_sample(f, self.size) for f in frames])


def make_batches(
    cfg: DataConfig, size: int, batch: int, rank: int = 0, world: int = 1, progress: bool = True
):
    """The training batches of `cfg`; `progress`: a bar while a synthetic pool renders."""
    if cfg.source == "synthetic":
        if cfg.pool_size > 0:
            return SyntheticPool(
                cfg.seed,
                size,
                cfg.pool_size,
                batch,
                rank,
                world,
                cfg.pool_cache,
                cfg.synth,
                progress=progress,
            )
        return SyntheticBatches(cfg.seed, size, batch, rank, world, cfg.synth)
    if cfg.source == "frames":
        return FramePool(cfg.root, cfg.seed, batch, rank, world)
    ds = open_dataset(cfg, cfg.split)
    return DatasetBatches(ds, cfg.seed, size, batch, rank, world, cfg.max_invalid_fraction)


def open_dataset(cfg: DataConfig, split: str) -> DepthDataset:
    if cfg.source == "synthetic_set":
        return SyntheticSet(cfg.root)
    if cfg.source == "hypersim":
        return HypersimDataset(cfg.root, split=split)
    raise ValueError(f"data.source {cfg.source!r} is not a file dataset")


def _warn_same_seed(training_seed: Any, val_seed: int, what: str) -> None:
    """Frame i of a seed is one scene: validation from the training seed reads training frames."""
    if training_seed == val_seed:
        log.warning("data.val_seed %d is %s: validation renders the training frames, so its "
                    "val_loss is a training loss; give another data.val_seed", val_seed,
                    what)  # fmt: skip


def validation_batch(cfg: DataConfig, size: int) -> dict[str, torch.Tensor]:
    """A fixed held-out batch: synthetic frames from `val_seed`, else the dataset's val split.
    A `synthetic_set` validates on the set at `val_root`, or without one on frames rendered
    from `val_seed` (never on its own training frames). From a dataset, `val_count` frames
    picked by `val_seed`: one whose files cannot be read (a frame error) is left out with a
    warning naming it and the reason, and the set's next frame not picked stands in for it; one
    without valid depth is left out. An error, one line, only when no frame is left."""
    if cfg.source == "synthetic_set" and cfg.val_root:
        cfg = dataclasses.replace(cfg, root=cfg.val_root)
    elif cfg.source == "synthetic_set":
        log.info("validating on %d frames rendered from data.val_seed %d (data.val_root: a "
                 "held-out set instead)", cfg.val_count, cfg.val_seed)  # fmt: skip
        set_seed = read_json(Path(cfg.root) / "meta.json", "synthetic set metadata").get("seed")
        _warn_same_seed(set_seed, cfg.val_seed, f"the set {cfg.root}'s seed")
        cfg = dataclasses.replace(cfg, source="synthetic")
    elif cfg.source == "synthetic":
        _warn_same_seed(cfg.seed, cfg.val_seed, "data.seed")
    if cfg.source == "synthetic":
        out = render_batch(cfg.val_seed, list(range(cfg.val_count)), SynthConfig(size=(size, size)))
        return {"rgb": out["rgb"], "depth": out["depth"], "valid": out["valid"]}
    if cfg.source == "frames":  # the held-out file, its first val_count frames
        if not cfg.val_root:  # say so: its val_loss is then a training loss
            log.warning("data.val_root is empty: validating on the training frames (%s) "
                        "themselves; give a held-out frame file", cfg.root)  # fmt: skip
        pool = FramePool(cfg.val_root or cfg.root, cfg.val_seed, 1)
        n = min(cfg.val_count, len(pool.rgb))
        return {"rgb": pool.rgb[:n], "depth": pool.depth[:n], "valid": pool.valid[:n]}
    ds = open_dataset(cfg, "val" if cfg.source == "hypersim" else cfg.split)
    n = min(cfg.val_count, len(ds))
    pick = np.random.default_rng(cfg.val_seed).choice(len(ds), size=n, replace=False)
    frames, empty, unreadable = [], [], {}
    for i in _validation_order(pick, len(ds)):
        if len(frames) + len(empty) == n:
            break
        try:
            sample = ds[i]
        except FRAME_ERRORS as exc:  # this frame's files only: left out, named, the next taken
            unreadable[i] = str(exc) or type(exc).__name__
            log.warning("validation leaves out %s frame %d (unreadable): %s", ds.name, i,
                        unreadable[i])  # fmt: skip
            continue
        rgb_depth_valid = resize_sample(sample, size)
        # a frame with no valid depth (a window) cannot be scored: left out, named
        if rgb_depth_valid[2].any():
            frames.append(rgb_depth_valid)
        else:
            empty.append(getattr(sample, "name", str(i)))
    if empty:
        log.warning("validation leaves out %d frame(s) without valid depth: %s", len(empty),
                    ", ".join(empty[:5]))  # fmt: skip
    if len(unreadable) == len(ds):
        raise ValueError(
            f"no validation frame of {cfg.source} {cfg.root} is readable: none of its "
            f"{len(ds)} frames (the first: {unreadable[min(unreadable)]})"
        )
    if not frames:
        unread = f" ({len(unreadable)} unreadable)" if unreadable else ""
        raise ValueError(f"no validation frame of {cfg.source} {cfg.root} has valid depth{unread}")
    return collate(frames)


def _validation_order(pick: np.ndarray, count: int) -> Iterator[int]:
    """The frames validation reads, in turn: the `pick`ed ones, then (to stand in for one that
    cannot be read) the set's others in order."""
    picked = {int(i) for i in pick}
    yield from (int(i) for i in pick)
    yield from (i for i in range(count) if i not in picked)
