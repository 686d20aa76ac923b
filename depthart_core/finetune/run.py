"""`depthart finetune`: from RGB-D bags to a fine-tuned checkpoint and a before/after report.

Order of work, so that a bad input leaves nothing behind: every bag is scanned (topics,
encodings, stamp pairs), split by time and decoded in memory first; only then is the run folder
claimed (`rundir.claim_run_dir`: refused if it holds a run or report, unless --resume or
--overwrite) and written:

    RUN/frames/train.safetensors     training frames at the model resolution (sensor mask)
    RUN/frames/heldout.safetensors   the held-out block at the model resolution (sensor mask)
    RUN/finetune.json                the settings, frame counts, split and each process's seconds
    RUN/teacher/labels.safetensors   only with --teacher: the teacher's labels (`teacher`)
    RUN/tokenizer/                   only with --adapt-tokenizer: the stage-1 run
    RUN/checkpoint.safetensors       the fine-tuned model (the `Trainer`'s, loads anywhere)
    RUN/train_state.safetensors, metrics.jsonl, config.json, progress.png   (the `Trainer`'s)
    RUN/report.md, report.json, figure.png

Training is the project's `Trainer` (stage 2, DepthART objective by default) started from every
weight of the base checkpoint, with the tokenizer frozen; `adapt_tokenizer` > 0 first runs that
many stage-1 steps on the bag's RGB and depth. With a teacher (`finetune.teacher`) the frames'
depth is the teacher's label, and sensor depth, where given, only scores. Under `torchrun` every
rank reads the bags (and labels them), rank 0 writes, the ranks train data-parallel, and rank 0
evaluates and reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm import tqdm

from depthart_core.checkpoint import (
    file_sha256,
    read_checkpoint_info,
    refuse_tokenizer_only,
    resolve_checkpoint,
)
from depthart_core.config import PRESETS
from depthart_core.fileutil import atomic_write
from depthart_core.finetune import report as rep
from depthart_core.finetune.frames import (
    BagScan,
    Counts,
    FinetuneInputError,
    Frame,
    FrameConfig,
    check_split,
    decode_frames,
    recordings,
    scan_bag,
    split_by_time,
)
from depthart_core.finetune.prepare import (
    SmallFrame,
    available_memory,
    evenly_spaced,
    memory_warning,
    stack,
    to_model_size,
)
from depthart_core.finetune.teacher import Labeler, TeacherConfig
from depthart_core.rosio.bags import bag_files
from depthart_core.rundir import (
    CKPT_NAME,
    REPORT_MARKERS,
    RUN_MARKERS,
    STATE_NAME,
    RunDirError,
    RunLock,
    check_out_is_not_input,
    claim_run_dir,
    describe_contents,
    load_safetensors,
    read_train_state,
)
from depthart_core.runtime.torch_backend import DepthEstimator
from depthart_core.sampling import describe_sampling
from depthart_core.training.config import DataConfig, OptimConfig, TrainConfig
from depthart_core.training.distributed import barrier, init_distributed
from depthart_core.training.trainer import Trainer, resumed_changes

log = logging.getLogger(__name__)

SETTINGS_NAME = "finetune.json"

# the base checkpoint's sha256 in RUN/finetune.json: a --resume refuses a base replaced at the
# same path (`_check_resumed_base`); a run recorded without it (older) is not compared
BASE_SHA_KEY = "base_checkpoint_sha256"

# The version of the frame preparation (bags -> RUN/frames/*.safetensors: decoding and depth
# mapping in `frames`, resizing to the model size in `prepare` and the teacher's `Labeler.frame`),
# recorded in RUN/finetune.json as "frames_version". Bump it with every change that gives other
# frame tensors for the same bags and options (an interpolation, a mask rule): a --resume whose
# frames differ then says that an upgrade changed them, not the user (`_refuse_older_frames`).
# 1: every run recorded before the version was (no "frames_version"); 2: since it is recorded.
FRAMES_VERSION = 2
FRAMES_VERSION_KEY = "frames_version"


@dataclass(frozen=True)
class FinetuneConfig:
    frames: FrameConfig
    checkpoint: str = ""  # the base model ("" = the shipped default)
    steps: int = 100
    batch_size: int = 16
    lr: float = 1e-4
    mode: str = "depthart"  # the stage-2 objective: depthart | teacher_forcing
    adapt_tokenizer: int = 0  # > 0: stage-1 steps on the bag before stage 2 (tokenizer frozen: 0)
    tokenizer_lr: float = 2e-5
    eval_frames: int = 100  # held-out frames scored at full size (evenly spaced)
    sparse_points: int = 100  # metric scores: sensor pixels each frame's scale is fitted to
    seed: int = 0
    device: str = "auto"
    ckpt_every: int = 100
    teacher: TeacherConfig | None = None  # label the frames with it; sensor depth only scores

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_frames", "sparse_points", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.adapt_tokenizer < 0:
            raise ValueError(f"adapt_tokenizer must be >= 0 steps, got {self.adapt_tokenizer}")
        for name in ("lr", "tokenizer_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if (self.teacher is not None) != self.frames.sensor_scores_only:
            raise ValueError("frames.sensor_scores_only goes with a teacher, and only with one")


@dataclass
class Prepared:
    """Everything read from the bags, before anything is written."""

    scans: list[BagScan]
    counts: list[Counts]
    train: list[SmallFrame]
    heldout: list[SmallFrame]
    scored: list[Frame]  # full-size held-out frames to score
    scored_rows: list[int] = field(default_factory=list)  # each one's index in `heldout`
    scored_labels: list[np.ndarray] = field(default_factory=list)  # the teacher's, full size
    # the bags split together, as indices into `scans` (one drive in several bags: one split)
    recordings: list[list[int]] = field(default_factory=list)


def prepare(
    bag_paths: Sequence[str | Path],
    cfg: FinetuneConfig,
    size: int,
    progress: bool = True,
    labeler: Labeler | None = None,
) -> Prepared:
    """Scan, pair, split and decode every bag, labelling each frame with `labeler` when given;
    raises `FinetuneInputError` (one line) on input that cannot be fine-tuned on. Writes
    nothing."""
    if not bag_paths:
        raise FinetuneInputError("no bag given")
    scans = [scan_bag(p, cfg.frames) for p in bag_paths]
    # every kept frame stays in memory until the frame files are written: said before decoding
    images = [s.index.n_frames for s in scans]
    # and the held-out frames scored at the images' full size (the largest first image)
    image_wh = max(
        (s.image_wh for s in scans if s.image_wh), key=lambda wh: wh[0] * wh[1], default=None
    )
    note = memory_warning(
        images,
        cfg.frames.stride,
        size,
        available_memory(),
        eval_frames=cfg.eval_frames,
        image_wh=image_wh,
        heldout=cfg.frames.heldout,
        teacher=labeler is not None,
    )
    if note is not None:
        log.warning(note)
    if labeler is not None:
        labeler.start(scans, cfg.frames, cfg.eval_frames, size)
    out = Prepared(scans, [], [], [], [])
    total = sum(s.index.n_frames for s in scans)
    bar = tqdm(total=total, desc="read bags", unit="img", disable=not progress)
    for group, span_ns in recordings(scans, cfg.frames):  # one drive in several bags: one split
        out.recordings.append(group)
        for b in group:
            split_by_time(scans[b], cfg.frames, span_ns)
    # --eval-frames for the run, spread evenly over every bag's held-out frames
    held = [
        (b, i) for b, s in enumerate(scans) for i, blk in enumerate(s.block) if blk == "heldout"
    ]
    chosen = [held[k] for k in evenly_spaced(len(held), cfg.eval_frames)]
    for b, scan in enumerate(scans):
        picks = sorted(i for pb, i in chosen if pb == b)
        next_pick, owed = 0, 0  # owed: picks rejected so far, passed on to the next frames
        counts = Counts()
        done = 0
        for f in decode_frames(scan, b, cfg.frames, counts):
            bar.update(f.index + 1 - done)
            done = f.index + 1
            if f.block == "gap":
                continue
            while next_pick < len(picks) and picks[next_pick] < f.index:  # rejected in decoding
                next_pick, owed = next_pick + 1, owed + 1
            is_pick = next_pick < len(picks) and picks[next_pick] == f.index
            next_pick += int(is_pick)
            keep = f.block == "heldout" and (is_pick or owed > 0)
            owed -= int(keep and not is_pick)  # scored in the place of a rejected pick
            label = None
            if labeler is not None:
                small, label = labeler.frame(f, size, scored=keep)
            else:
                small = to_model_size(f, size)
            if small is None:
                owed += int(keep)  # the next held-out frame is scored instead
                counts.paired -= 1
                counts.blocks[f.block] -= 1
                what = "teacher label" if labeler is not None else "depth"
                counts.rejected[f"no valid {what} at the model resolution"] += 1
                continue
            (out.train if f.block == "train" else out.heldout).append(small)
            if keep:
                out.scored.append(f)
                out.scored_rows.append(len(out.heldout) - 1)
                if label is not None:
                    out.scored_labels.append(label)
        bar.update(scan.index.n_frames - done)
        out.counts.append(counts)
    bar.close()
    check_split(out.counts, cfg.frames)
    if not out.scored:
        raise FinetuneInputError("no held-out frame could be decoded for scoring")
    return out


# the stage-2 objective terms a fine-tune carries over from the base's own training run
OBJECTIVE_KEYS = ("soft_rollout", "soft_latent", "aux_latent", "detach_embedding")


def _base_objective(base: Path, mode: str) -> dict[str, Any]:
    """The base's DepthART objective terms (soft rollout, soft latent, auxiliary latent) when
    the fine-tune keeps its mode: a model trained to refine from soft reconstructions keeps
    being trained that way. Empty for another mode or a checkpoint without its train config."""
    train = read_checkpoint_info(base).get("metadata", {}).get("train_config", {})
    if mode != "depthart" or train.get("mode") != "depthart":
        return {}
    return {k: train[k] for k in OBJECTIVE_KEYS if k in train}


def _model_config(base: Path) -> tuple[str, dict[str, Any], int]:
    """(preset name, the full model config as overrides, image size) of a checkpoint."""
    info = read_checkpoint_info(base)
    cfg = info["config"]
    preset = info.get("metadata", {}).get("preset", "")
    return (preset if preset in PRESETS else next(iter(PRESETS))), cfg, int(cfg["image_size"])


def _summary(
    bags: Sequence[str | Path],
    cfg: FinetuneConfig,
    base: Path,
    prep: Prepared,
    base_sha256: str | None = None,
) -> dict[str, Any]:
    total = Counts()
    for c in prep.counts:
        total.images += c.images
        total.depth_images += c.depth_images
        total.paired += c.paired
        total.unmatched += c.unmatched
        total.rejected.update(c.rejected)
        total.blocks.update(c.blocks)
        total.no_sensor.update(c.no_sensor)
        total.mapping.update(c.mapping)
        total.strided += c.strided
    return {
        "bags": [str(b) for b in bags],
        "topics": {"image": cfg.frames.image_topic, "depth": cfg.frames.depth_topic},
        "depth_encodings": sorted({s.depth_encoding for s in prep.scans if s.depth_encoding}),
        "image_encodings": sorted({s.image_encoding for s in prep.scans}),
        "max_dt_s": cfg.frames.max_dt_s,
        "base_checkpoint": str(base),
        BASE_SHA_KEY: base_sha256,
        FRAMES_VERSION_KEY: FRAMES_VERSION,
        "counts": {"total": total.to_dict(), "per_bag": [c.to_dict() for c in prep.counts]},
        "split": {
            "train": len(prep.train),
            "gap": total.blocks.get("gap", 0),
            "heldout": len(prep.heldout),
            "scored": len(prep.scored),
            "gap_s": cfg.frames.gap_s,
            "heldout_share": cfg.frames.heldout,
            # bags split together as one recording (their stamps overlap or nearly touch)
            "recordings": prep.recordings,
        },
        "settings": _settings(cfg),
    }


def _with_model_paths(cfg: FinetuneConfig) -> FinetuneConfig:
    """`cfg` with the base (resolved: the shipped default, or DEPTHART_CHECKPOINT, when none is
    given) and the teacher as absolute paths."""
    base = os.path.abspath(resolve_checkpoint(cfg.checkpoint or None))
    teacher = cfg.teacher
    if teacher is not None:
        teacher = dataclasses.replace(teacher, checkpoint=os.path.abspath(teacher.checkpoint))
    return dataclasses.replace(cfg, checkpoint=base, teacher=teacher)


def _settings(cfg: FinetuneConfig) -> dict[str, Any]:
    """The options a run records (and a --resume must repeat), as JSON would give them back."""
    settings = {k: v for k, v in asdict(cfg).items() if k != "frames"}
    return json.loads(json.dumps(settings | {"frames": asdict(cfg.frames)}))


def _held_finetune(run: Path) -> str | None:
    """What fine-tune `run` holds, in words, or None: a stage-2 run, a run stopped in its
    `--adapt-tokenizer` stage (RUN/tokenizer), or one that wrote its settings and no step yet."""
    held = describe_contents(run)
    if held is None and (run / "tokenizer").is_dir():
        tok = describe_contents(run / "tokenizer")
        held = f"a fine-tune stopped in its tokenizer stage ({tok})" if tok else None
    if held is None and (run / SETTINGS_NAME).is_file():
        held = f"a fine-tune that saved no step yet ({SETTINGS_NAME})"
    return held


def _check_claim(run: Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before any bag is read or labelled, a folder holding a fine-tune (unless --resume
    or --overwrite) or another command's report (unless --overwrite)."""
    if overwrite or not run.is_dir():
        return
    held = _held_finetune(run)
    if held is not None and not resume:
        raise RunDirError(f"{run} holds {held}: pass --resume, or --overwrite, or another --out")
    if held is None:
        report = describe_contents(run, REPORT_MARKERS)
        if report is not None:
            raise RunDirError(f"{run} holds {report}: pass --overwrite or another --out")


def _claim(run: Path, resume: bool, overwrite: bool) -> RunLock:
    """The run folder (`_check_claim`); --overwrite moves aside a folder holding any of it."""
    _check_claim(run, resume, overwrite)
    # every stage writes SETTINGS_NAME before it trains: a tokenizer-stage run has it too
    markers = (*RUN_MARKERS, SETTINGS_NAME, *REPORT_MARKERS) if overwrite else RUN_MARKERS
    return claim_run_dir(run, resume, overwrite, markers=markers)


def _write_frames(run: Path, prep: Prepared, resume: bool) -> None:
    """The two frame files; on resume they must hold exactly what the bags give now (frames that
    another version of the preparation wrote are refused as such: `_refuse_older_frames`)."""
    paths = _frame_files(run)
    for path, frames in ((paths[0], prep.train), (paths[1], prep.heldout)):
        tensors = stack(frames)
        if resume and path.is_file():
            try:
                old = load_safetensors(path)
            except Exception as exc:  # safetensors raises its own error type on damage
                raise FinetuneInputError(
                    f"--resume: {path} is damaged ({str(exc).splitlines()[0]}); start a new --out"
                ) from exc
            if any(not torch.equal(old.get(k, torch.empty(0)), t) for k, t in tensors.items()):
                _refuse_older_frames(run)
                raise FinetuneInputError(
                    f"--resume: {path} differs from what the bags and settings give now; "
                    "resume with the same bags and options, or start a new --out"
                )
            continue
        atomic_write(path, lambda tmp, t=tensors: save_file(t, tmp))


def _refuse_older_frames(run: Path) -> None:
    """Frames that differ from what the bags give now, in a run whose preparation version
    (FRAMES_VERSION) is not this code's, were changed by an upgrade, not by the user: refused in
    those words, with the way on from the run's weights. A run without RUN/finetune.json (stopped
    before its Trainer started) cannot tell: the caller's message stands."""
    path = run / SETTINGS_NAME
    if not path.is_file():
        return
    was = _read_recorded(path).get(FRAMES_VERSION_KEY, 1)  # none: from before it was recorded
    if was == FRAMES_VERSION:
        return
    older = "a newer" if isinstance(was, int) and was > FRAMES_VERSION else "an older"
    weights = run / CKPT_NAME  # none yet if it stopped before its first save
    go_on = (
        f"go on from its weights in a new run with --checkpoint {weights} --out NEW"
        if weights.is_file()
        else "start a new --out"
    )
    raise FinetuneInputError(
        f"--resume: {run}'s frames were prepared by {older} depthart (frames version {was}, "
        f"now {FRAMES_VERSION}), so training cannot go on from the same frames: {go_on}"
    )


def _train_config(
    cfg: FinetuneConfig,
    base: Path,
    frames: tuple[Path, Path],
    size: int,
    stage: str,
    init: Path | None = None,
) -> TrainConfig:
    """Stage `stage` on the frame files, from `init` (default: `base`; the adapted tokenizer's
    checkpoint after --adapt-tokenizer), with the base's model and DepthART objective."""
    preset, model_cfg, _ = _model_config(base)
    # the uncertainty head reads the depth that fine-tuning changes: a copy of the base's would
    # claim the base's errors, so the result has none (the trainer warns; README says how to
    # train one for it)
    model_cfg = {**model_cfg, "uncertainty_width": 0, "uncertainty_context": False}
    steps = cfg.adapt_tokenizer if stage == "tokenizer" else cfg.steps
    return TrainConfig(
        stage=stage,
        mode=cfg.mode,
        preset=preset,
        model_overrides=model_cfg,
        init_checkpoint=str(init or base),
        init_tokenizer_only=False,
        batch_size=cfg.batch_size,
        steps=steps,
        seed=cfg.seed,
        device=cfg.device,
        ckpt_every=min(cfg.ckpt_every, steps),
        val_every=max(1, steps // 4),
        log_every=max(1, min(10, steps // 10)),
        restart_dead_every=0,  # re-seeding codes would break the transformer's vocabulary
        **(_base_objective(base, cfg.mode) if stage == "transformer" else {}),
        data=DataConfig(
            source="frames", root=str(frames[0]), val_root=str(frames[1]), seed=cfg.seed
        ),
        optim=OptimConfig(
            lr=cfg.tokenizer_lr if stage == "tokenizer" else cfg.lr,
            schedule="cosine",
            warmup=max(1, steps // 20),
        ),
    )


def run_finetune(
    bags: Sequence[str | Path],
    cfg: FinetuneConfig,
    out: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    labels_only: bool = False,
) -> dict[str, Any] | None:
    """The whole command; returns the report (None on ranks other than 0). `labels_only`: stop
    once the teacher's labels are in RUN/teacher/ (returns the frame summary and the teacher)."""
    # resolved: the run records its frame files' paths, and a --resume that spells the folder
    # otherwise (relative, absolute, from another directory) is the same run
    run = Path(out).resolve()
    # the models as absolute paths, the default's too (DEPTHART_CHECKPOINT, the shipped one): the
    # check below sees every model, and the run records paths a --resume from elsewhere matches
    cfg = _with_model_paths(cfg)
    base = Path(cfg.checkpoint)
    models = [base] + ([cfg.teacher.checkpoint] if cfg.teacher else [])
    check_out_is_not_input(run, (*bags, *models))  # --overwrite would move a model aside
    # a bag given twice, also as its folder and one of its files: some frames would count twice
    files = [bag_files(b) for b in bags]
    repeated = sorted(
        {str(b) for i, b in enumerate(bags) for j, f in enumerate(files) if j != i and files[i] & f}
    )
    if repeated:
        raise FinetuneInputError(f"bag given more than once: {', '.join(repeated)}")
    rank, world = init_distributed(cfg.device)
    try:  # a tokenizer-stage base would train for hours, then fail at its first evaluation
        refuse_tokenizer_only(read_checkpoint_info(base), base)
    except ValueError as exc:
        raise FinetuneInputError(f"--checkpoint {exc}") from exc
    _, _, size = _model_config(base)
    base_sha256 = file_sha256(base)  # recorded; a --resume refuses a base replaced since
    labeler = Labeler(cfg.teacher, run) if cfg.teacher is not None else None
    if labels_only and labeler is None:
        raise FinetuneInputError("--labels-only needs --teacher")
    if not labels_only:  # refused before hours of decoding or labelling, nothing rewritten
        _check_claim(run, resume, overwrite)
        if resume:
            _check_resumed_settings(run, _settings(cfg), base_sha256)
            # a base of another architecture at the same path: the Trainer's message names it
            _check_resumed_training(run, cfg, base, size)
            _check_resumed_base(run, base, base_sha256)
    prep = prepare(bags, cfg, size, progress=progress and rank == 0, labeler=labeler)
    summary = _summary(bags, cfg, base, prep, base_sha256)
    if labels_only:
        if rank == 0:
            lock = _claim(run, resume, overwrite)
            _save_labels(lock, labeler)
            lock.release()
        return summary | {"teacher": labeler.describe()}
    lock = _start(run, base, prep, summary, resume, overwrite, labeler) if rank == 0 else None
    # each process's training seconds: the run's earlier ones (RUN/finetune.json), then this one's
    earlier = _earlier_seconds(run, resume) if lock is not None else []
    accepted: list[bool] = []

    def accept() -> None:  # rank 0, once a Trainer accepted the run: the settings, no time yet
        _record(run, summary, [*earlier, None])
        accepted.append(True)

    barrier(world)
    t0 = time.perf_counter()
    try:
        trainer = _train(
            run, cfg, base, size, resume, progress, world, accept if lock is not None else None
        )
    except BaseException:
        if accepted:  # stopped (Ctrl-C) or failed while training: its seconds count too
            with contextlib.suppress(OSError):
                _record(run, summary, [*earlier, time.perf_counter() - t0])
        raise
    seconds = time.perf_counter() - t0
    if lock is None:
        return None
    spent = [*earlier, seconds]
    _record(run, summary, spent)
    tokenizer = f"adapted ({cfg.adapt_tokenizer} steps)" if cfg.adapt_tokenizer else "frozen"
    train = {
        "steps": trainer.step,
        "seconds": sum(s for s in spent if s is not None),  # every process's of the run
        "seconds_per_process": spent,
        "world": world,
        "tokenizer": tokenizer,
    }
    summary = summary | {"train": train | {"objective": cfg.mode}}
    if labeler is not None:
        summary["teacher"] = labeler.describe()
    report = _evaluate(run, cfg, base, prep, summary)
    lock.release()
    return report


def _record(run: Path, summary: dict[str, Any], seconds: list[float | None]) -> None:
    """RUN/finetune.json: the summary and each process's training seconds (None: a process that
    recorded none, killed while training or from before this record)."""
    text = json.dumps(summary | {"train_seconds": seconds}, indent=2) + "\n"
    atomic_write(run / SETTINGS_NAME, text.encode())


def _save_labels(lock: RunLock, labeler: Labeler) -> None:
    try:
        labeler.save()
    except BaseException:
        lock.abandon()
        raise


def _start(
    run: Path,
    base: Path,
    prep: Prepared,
    summary: dict[str, Any],
    resume: bool,
    overwrite: bool,
    labeler: Labeler | None = None,
) -> RunLock:
    """Claim the folder, check a resumed run's options, write the labels and frames. The settings
    (RUN/finetune.json) wait for the `Trainer` to accept the run (`run_finetune`): a refused
    --resume leaves them as they were."""
    lock = _claim(run, resume, overwrite)
    try:
        if resume:  # again under the lock: `run_finetune` checked before reading the bags
            _check_resumed_settings(run, summary["settings"], summary[BASE_SHA_KEY])
            _check_resumed_base(run, base, summary[BASE_SHA_KEY])
    except BaseException:
        lock.abandon()
        raise
    if labeler is not None:
        _save_labels(lock, labeler)
    try:
        _write_frames(run, prep, resume)
    except BaseException:
        lock.abandon()  # a refused start leaves no folder holding only a lock
        raise
    return lock


# what a resumed fine-tune may change (as `depthart train --resume`): more steps, another device
RESUME_MAY_CHANGE = ("steps", "device", "ckpt_every", "teacher.device")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out |= _flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


# the options that name a model: compared as the file they resolve to (a run records them
# absolute; an older one as given, which resolves against the working directory)
MODEL_PATHS = ("checkpoint", "teacher.checkpoint")


def _changed_settings(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key old -> new' for each recorded option given otherwise now; an option the run did not
    record (added since) and those of RESUME_MAY_CHANGE are not compared."""
    was, now = _flat(old), _flat(new)
    return [
        f"{k} {was[k]!r} -> {now.get(k)!r}"
        for k in sorted(was)
        if k not in RESUME_MAY_CHANGE and not _same_setting(k, was[k], now.get(k))
    ]


def _same_setting(key: str, was: Any, now: Any) -> bool:
    if was == now:
        return True
    paths = key in MODEL_PATHS and all(isinstance(v, str) and v for v in (was, now))
    return paths and Path(was).resolve() == Path(now).resolve()


def _check_resumed_settings(
    run: Path, settings: dict[str, Any], base_sha256: str | None = None
) -> None:
    """Refuse a --resume whose options differ from those the run recorded (RESUME_MAY_CHANGE
    aside). A base at another path whose sha256 (`base_sha256`) is the one the run recorded is
    the same base (the original kept elsewhere after the shipped one was replaced)."""
    if not (run / SETTINGS_NAME).is_file():
        return
    changed = _changed_settings(_read_settings(run / SETTINGS_NAME), settings)
    if base_sha256 and _read_recorded(run / SETTINGS_NAME).get(BASE_SHA_KEY) == base_sha256:
        changed = [c for c in changed if not c.startswith("checkpoint ")]
    if changed:
        raise FinetuneInputError(
            f"--resume with other options than {run / SETTINGS_NAME} records "
            f"({'; '.join(changed)}); only --steps, --device and --teacher-device may change: "
            "give the same ones, or start a new --out"
        )


def _check_resumed_base(run: Path, base: Path, sha256: str) -> None:
    """Refuse a --resume whose base (the same path: `_check_resumed_settings`) is another file
    than the run started from (sha256 `sha256` now): replaced, as a `git pull` may replace the
    shipped one, it would be scored as the report's "before". A run recorded without the hash
    (an older depthart's) is not compared."""
    path = run / SETTINGS_NAME
    if not path.is_file():
        return
    was = _read_recorded(path).get(BASE_SHA_KEY)
    if isinstance(was, str) and was and was != sha256:
        raise FinetuneInputError(
            f"--resume: the base checkpoint {base} changed since {run} started (sha256 "
            f"{was[:12]}... -> {sha256[:12]}...): give the original base with --checkpoint, "
            "or start a new --out"
        )


def _read_recorded(path: Path) -> dict[str, Any]:
    """RUN/finetune.json as recorded; damage raises naming the file."""
    try:
        recorded = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(recorded, dict):
            raise ValueError(f"a JSON {type(recorded).__name__}, not an object")
    except ValueError as exc:  # bad JSON or UTF-8, or not an object
        raise FinetuneInputError(f"--resume: {path} is damaged ({exc}); start a new --out") from exc
    return recorded


def _read_settings(path: Path) -> dict[str, Any]:
    """The settings a run recorded; damage raises naming the file."""
    recorded = _read_recorded(path)
    settings = recorded.get("settings", {})
    if settings.get("checkpoint") == "" and recorded.get("base_checkpoint"):
        # recorded before the base was recorded by path: the default it resolved to then
        settings = settings | {"checkpoint": recorded["base_checkpoint"]}
    return settings


def _earlier_seconds(run: Path, resume: bool) -> list[float | None]:
    """The training seconds of each earlier process of the run that RUN/finetune.json records;
    [None] for a run recorded before these were (its time unknown)."""
    path = run / SETTINGS_NAME
    if not resume or not path.is_file():
        return []
    try:
        seconds = json.loads(path.read_bytes().decode("utf-8")).get("train_seconds", [None])
    except (ValueError, AttributeError):  # `_read_settings` checked it under the lock
        return [None]
    ok = isinstance(seconds, list)
    return [s if isinstance(s, (int, float)) else None for s in seconds] if ok else [None]


# what the `Trainer` leaves to the fine-tune on a --resume: the frame files are the run's own
# (checked against the bags by content, `_write_frames`; a moved or renamed run has them at
# another path), and the base is finetune.json's `checkpoint` (`_check_resumed_settings`, its
# content by sha256: `_check_resumed_base`) or, after --adapt-tokenizer, the run's own adapted
# tokenizer
CHECKED_BY_FINETUNE = frozenset({"data.root", "data.val_root", "init_checkpoint"})


def _frame_files(run: Path) -> tuple[Path, Path]:
    return run / "frames" / "train.safetensors", run / "frames" / "heldout.safetensors"


def _stages(
    run: Path, cfg: FinetuneConfig, base: Path, size: int, resume: bool = False
) -> list[tuple[Path, TrainConfig]]:
    """(folder, training config) of each `Trainer` the fine-tune runs, in order; on a resume,
    each stage that saved a state keeps the warmup it recorded (`_recorded_warmup`)."""
    frames = _frame_files(run)
    if not cfg.adapt_tokenizer:
        stages = [(run, _train_config(cfg, base, frames, size, "transformer"))]
    else:
        tok = run / "tokenizer"
        stages = [
            (tok, _train_config(cfg, base, frames, size, "tokenizer")),
            (run, _train_config(cfg, base, frames, size, "transformer", init=tok / CKPT_NAME)),
        ]
    return [(f, _recorded_warmup(f, c)) for f, c in stages] if resume else stages


def _recorded_warmup(folder: Path, train_cfg: TrainConfig) -> TrainConfig:
    """`train_cfg` with the warmup of the state saved in `folder`, where there is one: the
    warmup follows `--steps` (a twentieth), which a resume may change ("train longer"), and it
    was refused as a changed setting finetune has no option for."""
    if not (folder / STATE_NAME).is_file():
        return train_cfg
    meta, _ = read_train_state(folder, tensors=False)
    warmup = json.loads(meta["config"]).get("optim", {}).get("warmup")
    if not isinstance(warmup, int) or isinstance(warmup, bool):
        return train_cfg  # an odd record: the Trainer's comparison names it
    return dataclasses.replace(train_cfg, optim=dataclasses.replace(train_cfg.optim, warmup=warmup))


def _check_resumed_training(run: Path, cfg: FinetuneConfig, base: Path, size: int) -> None:
    """Refuse, before the bags are read, a --resume whose training settings (the base's model,
    its objective) the `Trainer` would refuse."""
    for folder, train_cfg in _stages(run, cfg, base, size, resume=True):
        if (folder / STATE_NAME).is_file():
            meta, _ = read_train_state(folder, tensors=False)
            saved = json.loads(meta["config"])
            _refuse_headed_run(run, saved, train_cfg)
            resumed_changes(saved, train_cfg, CHECKED_BY_FINETUNE)


# the DepthART date since which a fine-tune leaves the base's uncertainty head out (`_train_config`)
HEAD_LEFT_OUT = "2026-12-06 11:44 UTC, commit eca7b8a"


def _refuse_headed_run(run: Path, saved: dict[str, Any], train_cfg: TrainConfig) -> None:
    """A run started before fine-tunes left out the base's uncertainty head records a model with
    it; this code builds none, so the `Trainer` would refuse the resume as other settings (keys
    finetune has no option for). Refused here in words, when the head is all that differs."""
    overrides = saved.get("model_overrides")
    now = train_cfg.model_overrides
    if not isinstance(overrides, dict) or not overrides.get("uncertainty_width"):
        return
    if now.get("uncertainty_width") or now.get("uncertainty_context"):
        return
    headless = {**overrides, "uncertainty_width": 0, "uncertainty_context": False}
    try:
        resumed_changes(saved | {"model_overrides": headless}, train_cfg, CHECKED_BY_FINETUNE)
    except ValueError:
        return  # more differs: the Trainer's message names it
    weights = run / CKPT_NAME  # none yet if it stopped in its --adapt-tokenizer stage
    go_on = f", or go on from its weights with --checkpoint {weights}" if weights.is_file() else ""
    raise FinetuneInputError(
        f"{run} was started by a depthart from before fine-tunes left out the uncertainty head "
        f"({HEAD_LEFT_OUT}), and cannot be resumed by this one: start a new --out{go_on}"
    )


def _train(
    run: Path,
    cfg: FinetuneConfig,
    base: Path,
    size: int,
    resume: bool,
    progress: bool,
    world: int,
    accepted: Callable[[], None] | None = None,
) -> Trainer:
    """Optionally stage 1 on the bag's frames (RUN/tokenizer), then stage 2 into RUN;
    `accepted` is called once the first `Trainer` has accepted the run, before it trains."""
    *tokenizer, (_, tf_cfg) = _stages(run, cfg, base, size, resume=resume)
    for folder, tok_cfg in tokenizer:
        tok = Trainer(
            tok_cfg,
            folder,
            resume=resume and folder.is_dir(),
            progress=progress,
            checked_elsewhere=CHECKED_BY_FINETUNE,
        )
        if accepted is not None:
            accepted()
            accepted = None
        tok.fit(progress=progress)
        barrier(world)
    trainer = Trainer(
        tf_cfg,
        run,
        # a stage that logged steps but never saved starts from step 0 (Trainer says so)
        resume=resume and describe_contents(run) is not None,
        progress=progress,
        checked_elsewhere=CHECKED_BY_FINETUNE,
    )
    if accepted is not None:
        accepted()
    trainer.fit(progress=progress)
    return trainer


def _evaluate(
    run: Path, cfg: FinetuneConfig, base: Path, prep: Prepared, summary: dict[str, Any]
) -> dict[str, Any]:
    """Score base and fine-tuned model on the held-out frames; write the report and figure."""
    if cfg.teacher is not None:
        return _evaluate_taught(run, cfg, base, prep, summary)
    base_est, tuned_est = (  # threads: as --threads set them
        DepthEstimator.from_checkpoint(p, threads=None) for p in (base, run / CKPT_NAME)
    )
    before, preds_b = rep.score(base_est, prep.scored, cfg.sparse_points, cfg.seed)
    after, preds_a = rep.score(tuned_est, prep.scored, cfg.sparse_points, cfg.seed)
    report = summary | {
        "checkpoint": str(run / CKPT_NAME),
        "decoding": describe_sampling(tuned_est.sampling),
        "uncertainty": _head_note(base_est, tuned_est),
        "sparse_points": cfg.sparse_points,
        "before": before,
        "after": after,
        "change": rep.relative_change(before, after),
        "baseline_mean_depth": rep.score_prior(rep.mean_depth_prior(prep.train), prep.scored),
    }
    rep.write_report(run, report, rep.figure(prep.scored, preds_b, preds_a))
    return report


def _head_note(base: DepthEstimator, tuned: DepthEstimator) -> str:
    """What became of the base's uncertainty head (`_train_config` leaves it out)."""
    if not base.has_uncertainty:
        return "none (the base checkpoint has no uncertainty head)"
    if tuned.has_uncertainty:
        return "carried over"
    return (
        "not carried over: the base's head reads the base's depth, which fine-tuning changed; "
        "train one for this checkpoint with training/uncertainty_head.py (README, Adapt to "
        "your robot, No uncertainty head)"
    )


def _evaluate_taught(
    run: Path, cfg: FinetuneConfig, base: Path, prep: Prepared, summary: dict[str, Any]
) -> dict[str, Any]:
    """Teacher mode: base and student against the teacher's labels, and against sensor depth
    on the scored frames that have it (`report.score_taught`)."""
    backends = [DepthEstimator.from_checkpoint(p, threads=None) for p in (base, run / CKPT_NAME)]
    scores, fig = rep.score_taught(
        backends, prep.scored, prep.scored_labels, prep.train, cfg.sparse_points, cfg.seed
    )
    report = summary | {"checkpoint": str(run / CKPT_NAME), "sparse_points": cfg.sparse_points}
    report |= {"decoding": describe_sampling(backends[1].sampling)}
    report |= {"uncertainty": _head_note(*backends)} | scores
    rep.write_report(run, report, fig)
    return report
