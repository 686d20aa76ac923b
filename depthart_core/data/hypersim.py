"""Hypersim (Roberts et al., ICCV 2021) reader: tone-mapped RGB and planar depth in metres.

Layout (apple/ml-hypersim README, "Dataset structure"):

    ROOT/<scene>/images/scene_<cam>_final_preview/frame.NNNN.tonemap.jpg
    ROOT/<scene>/images/scene_<cam>_geometry_hdf5/frame.NNNN.depth_meters.hdf5

`depth_meters` (HDF5 dataset "dataset", float16 or float32) is the Euclidean distance from the
camera centre to the surface along each pixel's ray, in metres, NaN where no surface was hit.
It becomes planar depth with the standard Hypersim camera (horizontal field of view 60 degrees,
square pixels, principal point at the image centre; 1024 x 768): f = W / 2 / tan(30 deg) and

    depth = distance * f / sqrt((u - cx)^2 + (v - cy)^2 + f^2)

at pixel centres (u, v integer, cx = (W - 1) / 2, cy = (H - 1) / 2), as in ml-hypersim issue #9.
Some scenes deviate slightly from this camera (exact per-scene intrinsics are in ml-hypersim's
contrib/mikeroberts3000/metadata_camera_parameters.csv); they are converted with the standard
camera too.

Frames come from the split CSV (ml-hypersim `evermotion_dataset/analysis/
metadata_images_split_scene_v1.csv`: scene_name, camera_name, frame_id, ...,
split_partition_name), keeping rows of the requested split and, when the column exists, with
included_in_public_release true. `csv=None` reads ROOT/metadata_images_split_scene_v1.csv;
`split=None` ignores any CSV and takes every frame found on disk.

Valid pixels are finite, positive and inside (min_depth, max_depth]; NaN/inf pixels are invalid
and their depth is set to 0, so no loss or metric ever sees a NaN. A frame whose JPEG or HDF5
is missing, or does not start with its format's signature, is skipped when the dataset is built
(logged, counted in `skipped`); one damaged further in raises a ValueError naming the file when
read.
"""

from __future__ import annotations

import csv as csv_mod
import math
from pathlib import Path

import h5py
import numpy as np

from depthart_core.data.benchmarks._io import (
    BenchmarkDataset,
    check_range,
    make_sample,
    read_rgb,
    require_dir,
    require_file,
)
from depthart_core.data.sample import DepthSample

SPLITS = ("train", "val", "test")
FOV_X_DEG = 60.0
CSV_NAME = "metadata_images_split_scene_v1.csv"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8"


def focal_length(width: int, fov_x_deg: float = FOV_X_DEG) -> float:
    return width / 2.0 / math.tan(math.radians(fov_x_deg) / 2.0)


def distance_to_planar(distance: np.ndarray, fov_x_deg: float = FOV_X_DEG) -> np.ndarray:
    """Ray distance (H, W) -> planar z-depth, float32; NaNs stay NaN."""
    h, w = distance.shape
    f = focal_length(w, fov_x_deg)
    u = np.arange(w, dtype=np.float64) - (w - 1) / 2.0
    v = np.arange(h, dtype=np.float64) - (h - 1) / 2.0
    scale = f / np.sqrt(u[None, :] ** 2 + v[:, None] ** 2 + f * f)
    return (distance.astype(np.float64) * scale).astype(np.float32)


def _paths(root: Path, scene: str, cam: str, frame: int) -> tuple[Path, Path]:
    img = root / scene / "images"
    return (
        img / f"scene_{cam}_final_preview" / f"frame.{frame:04d}.tonemap.jpg",
        img / f"scene_{cam}_geometry_hdf5" / f"frame.{frame:04d}.depth_meters.hdf5",
    )


def _truthy(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes")


def read_split_csv(path: Path, split: str) -> list[tuple[str, str, int]]:
    """(scene, camera, frame) rows of one split partition, in file order."""
    path = require_file(Path(path), "Hypersim split CSV")
    with open(path, newline="") as f:
        reader = csv_mod.DictReader(f)
        cols = reader.fieldnames or []
        need = ("scene_name", "camera_name", "frame_id", "split_partition_name")
        missing = [c for c in need if c not in cols]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {cols}")
        public = "included_in_public_release" in cols
        rows = []
        for lineno, r in enumerate(reader, start=2):
            if r["split_partition_name"].strip() != split:
                continue
            if public and not _truthy(r["included_in_public_release"]):
                continue
            try:
                frame = int(r["frame_id"])
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: bad frame_id {r['frame_id']!r}") from exc
            rows.append((r["scene_name"].strip(), r["camera_name"].strip(), frame))
    return rows


def _scan(root: Path) -> list[tuple[str, str, int]]:
    rows = []
    for p in sorted(root.glob("*/images/scene_*_geometry_hdf5/frame.*.depth_meters.hdf5")):
        cam = p.parent.name[len("scene_") : -len("_geometry_hdf5")]
        rows.append((p.parents[2].name, cam, int(p.name.split(".")[1])))
    return rows


def _signature_problem(path: Path, signature: bytes) -> str | None:
    if not path.is_file():
        return f"{path} is missing"
    with open(path, "rb") as f:
        if f.read(len(signature)) != signature:
            return f"{path} is not a {'HDF5' if signature == _HDF5_SIGNATURE else 'JPEG'} file"
    return None


class HypersimDataset(BenchmarkDataset):
    """Hypersim frames of one split (DepthDataset protocol); see the module docstring."""

    name = "hypersim"

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        csv: str | Path | None = None,
        min_depth: float = 0.0,
        max_depth: float = float("inf"),
    ) -> None:
        super().__init__()
        self.root = require_dir(Path(root), "Hypersim root")
        check_range(min_depth, max_depth)
        self.min_depth, self.max_depth = min_depth, max_depth
        if split is None:
            rows = _scan(self.root)
        elif split not in SPLITS:
            raise ValueError(f"unknown Hypersim split {split!r}; choose one of {SPLITS} or None")
        else:
            csv_path = Path(csv) if csv is not None else self.root / CSV_NAME
            if not csv_path.is_file():
                raise FileNotFoundError(
                    f"Hypersim split CSV not found: {csv_path} (pass csv=..., or split=None)"
                )
            rows = read_split_csv(csv_path, split)
        self.rows: list[tuple[str, str, int]] = []
        for scene, cam, frame in rows:
            rgb_p, depth_p = _paths(self.root, scene, cam, frame)
            problem = _signature_problem(rgb_p, _JPEG_SIGNATURE) or _signature_problem(
                depth_p, _HDF5_SIGNATURE
            )
            if problem:
                self._skip(problem)
            else:
                self.rows.append((scene, cam, frame))
        if not self.rows:
            raise ValueError(
                f"no readable Hypersim frame for split {split!r} under {self.root} "
                f"({len(rows)} listed, {self.skipped} skipped)"
            )

    def _items(self) -> list:
        return self.rows

    def _load(self, index: int) -> DepthSample:
        scene, cam, frame = self.rows[index]
        rgb_p, depth_p = _paths(self.root, scene, cam, frame)
        rgb = read_rgb(rgb_p)
        try:
            with h5py.File(depth_p, "r") as f:
                distance = np.asarray(f["dataset"][()], dtype=np.float32)
        except (OSError, KeyError) as exc:
            raise ValueError(f"cannot read depth from {depth_p}: {exc}") from exc
        if distance.shape != rgb.shape[:2]:
            raise ValueError(
                f"{depth_p}: depth {distance.shape} and RGB {rgb.shape[:2]} differ in size"
            )
        depth = distance_to_planar(distance)
        finite = np.isfinite(depth)
        depth = np.where(finite, depth, np.float32(0.0))
        valid = finite & (depth > 0) & self.range_mask(depth)
        h, w = depth.shape
        f = focal_length(w)
        K = np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]])
        return make_sample(rgb, depth, valid, f"{scene}/{cam}/frame.{frame:04d}", K)
