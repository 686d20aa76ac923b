"""Teacher labels for `depthart finetune --teacher`: fine-tuning a robot without a depth sensor.

A teacher is any checkpoint `runtime.get_backend` loads (a larger model on a GPU such as the
authors' d16, a model fine-tuned on another robot's RGB-D bag of the same building, or any model
run with flip averaging or the paper's sampling). It predicts each frame at the image's full size
through the node's own pre- and post-processing; that relative depth map, resized to the student
as sensor depth is (`prepare.to_model_size`), is the training target. The trainer then normalises
it exactly as it does sensor depth (the DepthART codec's q98, `tokenizer.codec.encode_depth`), so
the teacher's scale never matters, and neither do its input size or tokenizer: labels are depth
maps, not tokens. What cannot teach is refused in one line: a file that is no DepthART checkpoint,
and a stage-1 checkpoint (its transformer never trained).

Labels are cached in RUN/teacher/labels.safetensors (atomic write): the student-size label of
every training and held-out frame, and the full-size label of every scored frame. The file is
keyed by the teacher file's sha256, the teacher's decoding, the bags' image stamps (not their
paths: the same bag copied elsewhere keeps its labels), the frame settings and the student's
input size, and holds each frame's image digest, checked when the label is used; a re-run with
the same key (`--resume`, `--overwrite`, or a fresh run into the folder) reuses it without
running the teacher, and any other key labels again. The file names its teacher, so `--teacher`
may also be a labels file: labels made on a GPU workstation (`--labels-only`) train the student
on the robot; a refused file is told which part of its key differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from depthart_core.checkpoint import CheckpointFile, read_checkpoint_info
from depthart_core.fileutil import atomic_write
from depthart_core.finetune.frames import BagScan, FinetuneInputError, Frame, FrameConfig
from depthart_core.finetune.prepare import SmallFrame, resize_rgb, to_model_size
from depthart_core.rundir import load_safetensors, open_safetensors
from depthart_core.runtime import check_device, get_backend
from depthart_core.runtime.base import Backend
from depthart_core.sampling import SAMPLING_NAMES, sampling_setting
from depthart_core.training.distributed import local_rank

LABELS_NAME = Path("teacher") / "labels.safetensors"
# 2: keyed by the bags' stamps, not their paths, with each frame's image digest checked on use
LABELS_FORMAT = "depthart-teacher-labels-2"


@dataclass(frozen=True)
class TeacherConfig:
    checkpoint: str  # a DepthART checkpoint, or a labels file a `--labels-only` run wrote
    sampling: str = "soft"  # greedy | soft | paper
    seed: int = 0  # of the paper's sampling
    flip_average: bool = False
    device: str = "auto"  # auto: CUDA where there is one

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLING_NAMES:
            raise ValueError(
                f"teacher sampling must be one of {SAMPLING_NAMES}, got {self.sampling!r}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"teacher device must be auto, cpu or cuda, got {self.device!r}")
        if self.device == "cuda":
            check_device("cuda", flag="--teacher-device")


def teacher_device(name: str) -> str:
    """The device a teacher set to `name` (auto | cpu | cuda) runs on: auto is CUDA where there
    is one. Under `torchrun` CUDA is this process's GPU (LOCAL_RANK, as the student's): labels
    are made before the student's device is set, when plain `cuda` is GPU 0 in every process."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"cuda:{local_rank()}"
    return name


def _read_labels_meta(path: Path) -> dict[str, str] | None:
    """The metadata of a labels file, None when `path` is some other safetensors file."""
    try:
        with open_safetensors(path) as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for damaged headers
        raise FinetuneInputError(f"--teacher {path} is not a readable safetensors file") from exc
    fmt = meta.get("format", "")
    if fmt.startswith("depthart-teacher-labels-") and fmt != LABELS_FORMAT:
        raise FinetuneInputError(
            f"--teacher {path} holds labels in an older format ({fmt}); make them again with "
            "--labels-only"
        )
    return meta if fmt == LABELS_FORMAT else None


def teacher_identity(cfg: TeacherConfig) -> dict[str, Any]:
    """What the labels depend on from the teacher side: the checkpoint file's sha256 and the
    decoding. A labels file stands for the teacher it names. Refuses, in one line, what cannot
    teach."""
    path = Path(cfg.checkpoint)
    if not path.is_file():
        raise FinetuneInputError(f"--teacher {path}: no such file")
    meta = _read_labels_meta(path) if path.suffix == ".safetensors" else None
    if meta is not None:
        return json.loads(meta["teacher"]) | {"labels_file": str(path)}
    try:
        info = read_checkpoint_info(path)
    except (ValueError, OSError) as exc:
        raise FinetuneInputError(f"--teacher: {str(exc).splitlines()[0]}") from exc
    if info.get("metadata", {}).get("stage") == "tokenizer":
        raise FinetuneInputError(
            f"--teacher {path} is a stage-1 (tokenizer) checkpoint: its transformer never "
            "trained, so it cannot label depth; give a stage-2 checkpoint"
        )
    return {
        "checkpoint": str(path),
        "sha256": CheckpointFile(path).model_sha256,  # an authors' file: its VQ-VAE too
        "image_size": int(info["config"]["image_size"]),
        "sampling": cfg.sampling,
        "seed": cfg.seed if cfg.sampling == "paper" else 0,
        "flip_average": cfg.flip_average,
    }


def key_parts(
    teacher: dict[str, Any], scans: list[BagScan], frames: FrameConfig, eval_frames: int, size: int
) -> dict[str, Any]:
    """Everything the labels depend on, by name (the module docstring): the teacher, the frame
    settings, the student's input size and each bag's image stamps. Not the bags' paths: labels
    made on a workstation serve the same bag copied to the robot; that the images are the same
    is checked frame by frame (`image_digest`)."""
    bags = []
    for scan in scans:
        stamps = np.asarray(scan.index.image_stamps, dtype=np.int64)
        first, last = (int(stamps[0]), int(stamps[-1])) if len(stamps) else (0, 0)
        digest = hashlib.sha256(stamps.tobytes()).hexdigest()[:16]
        bags.append({"images": len(stamps), "first_stamp_ns": first, "last_stamp_ns": last,
                     "stamps_sha256": digest})  # fmt: skip
    return {
        "teacher": {k: teacher[k] for k in ("sha256", "sampling", "seed", "flip_average")},
        # --stride 1 (every image) is left out: labels made before the option still match
        "frames": {k: v for k, v in asdict(frames).items() if not (k == "stride" and v == 1)},
        "eval_frames": eval_frames,
        # which frames get a full-size label: a pick whose frame is rejected passes to the next
        "scored_picks": "evenly spaced, rejected passed on",
        "student_size": size,
        "bags": bags,
    }


def labels_key(parts: dict[str, Any]) -> str:
    """sha256 of the key parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _differs(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Which key parts differ, in words, for the refusal of a labels file."""
    out = []
    for name in ("teacher", "frames", "eval_frames", "student_size"):
        if old.get(name) != new.get(name):
            if isinstance(new.get(name), dict) and isinstance(old.get(name), dict):
                keys = sorted(k for k in new[name] if old[name].get(k) != new[name][k])
                what = ", ".join(f"{k} {old[name].get(k)!r} -> {new[name][k]!r}" for k in keys)
                out.append(f"{name} ({what})")
            else:
                out.append(f"{name} {old.get(name)!r} -> {new.get(name)!r}")
    was, now = old.get("bags", []), new.get("bags", [])
    if len(was) != len(now):
        out.append(f"bags: {len(was)} -> {len(now)}")
    else:
        out += [
            f"bag {b + 1}: {w['images']} images {w['first_stamp_ns']}..{w['last_stamp_ns']} ns -> "
            f"{n['images']} images {n['first_stamp_ns']}..{n['last_stamp_ns']} ns"
            for b, (w, n) in enumerate(zip(was, now, strict=True))
            if w != n
        ]
    return "; ".join(out) or "the key (no part recorded)"


def image_digest(rgb: np.ndarray) -> torch.Tensor:
    """32 bytes (sha256) of a frame's decoded image, stored beside its label."""
    digest = hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).digest()
    return torch.frombuffer(bytearray(digest), dtype=torch.uint8)


class Labeler:
    """Labels frames with the teacher, or takes them from a labels file with the same key."""

    def __init__(self, cfg: TeacherConfig, run: Path) -> None:
        self.cfg = cfg
        self.run = Path(run)
        self.teacher = teacher_identity(cfg)
        self.key = ""
        self._cached: dict[str, torch.Tensor] | None = None
        self._new: dict[str, torch.Tensor] = {}
        self._backend: Backend | None = None
        self.seconds = 0.0
        self.labelled = 0

    def start(self, scans: list[BagScan], frames: FrameConfig, eval_frames: int, size: int) -> None:
        """Compute the key and look for labels made with it: the `--teacher` labels file (which
        must match), else this run folder's cache (used when it matches)."""
        self.parts = key_parts(self.teacher, scans, frames, eval_frames, size)
        self.key = labels_key(self.parts)
        self.paths = [str(scan.path) for scan in scans]
        given = self.teacher.get("labels_file")
        if given is not None:
            self._cached = self._load(Path(given))
            if self._cached is None:
                old = json.loads(_read_labels_meta(Path(given)).get("parts", "{}"))
                raise FinetuneInputError(
                    f"--teacher {given} holds labels for other bags or settings: "
                    f"{_differs(old, self.parts)}; make labels for these with --labels-only"
                )
            return
        if (self.run / LABELS_NAME).is_file():
            self._cached = self._load(self.run / LABELS_NAME)

    @property
    def from_cache(self) -> bool:
        return self._cached is not None

    def _load(self, path: Path) -> dict[str, torch.Tensor] | None:
        meta = _read_labels_meta(path)
        if meta is None or meta.get("key") != self.key:
            return None
        return load_safetensors(path)

    def _teacher(self) -> Backend:
        if self._backend is None:
            name = self.cfg.sampling
            self._backend = get_backend(
                "torch",
                checkpoint=self.cfg.checkpoint,
                device=teacher_device(self.cfg.device),
                sampling=sampling_setting(name, self.cfg.seed),
                flip_average=self.cfg.flip_average,
            )
        return self._backend

    def frame(
        self, frame: Frame, size: int, scored: bool
    ) -> tuple[SmallFrame | None, np.ndarray | None]:
        """`frame` at the student's size with the teacher's label as its depth (None when no
        label pixel is valid), and for a scored frame the label at the image's full size."""
        small_key, full_key = f"small/{frame.bag}/{frame.index}", f"full/{frame.bag}/{frame.index}"
        if self._cached is not None:
            if small_key not in self._cached or (scored and full_key not in self._cached):
                raise FinetuneInputError(
                    f"teacher labels lack frame {frame.index} of bag {frame.bag}: a damaged "
                    "labels file; delete it to label again"
                )
            digest_key = f"image/{frame.bag}/{frame.index}"
            if not torch.equal(
                self._cached.get(digest_key, torch.empty(0)), image_digest(frame.rgb)
            ):
                raise FinetuneInputError(
                    f"the teacher labels were made for other images: frame {frame.index} of "
                    f"{self.paths[frame.bag]} has the stamps the labels were made for, other "
                    "pixels; make labels for this bag with --labels-only"
                )
            d = self._cached[small_key].numpy()
            full = self._cached[full_key].numpy() if scored else None
        else:
            t0 = time.perf_counter()
            full = np.asarray(self._teacher().predict(frame.rgb), dtype=np.float32)
            self.seconds += time.perf_counter() - t0
            self.labelled += 1
            small = to_model_size(replace(frame, depth=full, valid=label_valid(full)), size)
            d = small.depth if small is not None else np.zeros((size, size), np.float32)
            self._new[small_key] = torch.from_numpy(d)
            self._new[f"image/{frame.bag}/{frame.index}"] = image_digest(frame.rgb)
            if scored:
                self._new[full_key] = torch.from_numpy(full)
        ok = label_valid(d)
        if not ok.any():
            return None, None
        return SmallFrame(resize_rgb(frame.rgb, size), d, ok), (full if scored else None)

    def save(self) -> None:
        """Write the labels into RUN/teacher/ (inside the claimed folder) unless it holds them."""
        target = self.run / LABELS_NAME
        if target.is_file() and self._load(target) is not None:
            return
        tensors = self._cached if self._cached is not None else self._new
        teacher = {k: v for k, v in self.teacher.items() if k != "labels_file"}
        meta = {"format": LABELS_FORMAT, "key": self.key, "teacher": json.dumps(teacher)}
        meta["parts"] = json.dumps(self.parts)
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        atomic_write(target, lambda tmp: save_file(tensors, tmp, metadata=meta))

    def describe(self) -> dict[str, Any]:
        return self.teacher | {
            "labels": "cached" if self.from_cache else "computed",
            "labelled_frames": self.labelled,
            "label_seconds": round(self.seconds, 2),
            "backend": self._backend.describe() if self._backend is not None else None,
        }


def label_valid(label: np.ndarray) -> np.ndarray:
    """Where a teacher label counts: finite and > 0 (0 is the decoder's clamp; the codec fills
    those pixels from their nearest valid neighbour, as it fills a sensor's holes)."""
    return np.isfinite(label) & (label > 0)
