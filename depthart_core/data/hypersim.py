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

Per-scene cameras. Many scenes were rendered with tilt-shift camera settings (ml-hypersim
contrib/mikeroberts3000, `metadata_camera_parameters.csv`: each scene's `M_cam_from_uv`, which
maps (u, v, 1), u and v in [-1, 1] at pixel centres with v up, to the ray in camera coordinates,
x right, y up, z backward). For those the standard camera is off by up to about 12 % in depth
and in its principal point. With that CSV (`camera_csv`, or ROOT/metadata_camera_parameters.csv
when present) every frame is converted with its scene's camera: the pixel-from-ray projection
A M^-1 diag(1, -1, -1) (A: normalised to pixel coordinates; the last factor turns x-right y-down
z-forward rays into Hypersim's) is split by an RQ decomposition into K (upper triangular, the
returned intrinsics) and a rotation R, and depth is the distance along each ray projected on R's
optical axis: the planar depth of the pinhole camera K that the image is, so back-projection
through K gives the scene's 3D shape. On a standard scene this is exactly the conversion above
(R = I). Without the CSV every scene uses the standard camera (`camera_mode` says which).

Frames come from the split CSV (ml-hypersim `evermotion_dataset/analysis/
metadata_images_split_scene_v1.csv`: scene_name, camera_name, frame_id, ...,
split_partition_name), keeping rows of the requested split and, when the column exists, with
included_in_public_release true. `csv=None` reads ROOT/metadata_images_split_scene_v1.csv;
`split=None` ignores any CSV and takes every frame found on disk.

Valid pixels are finite, positive and inside (min_depth, max_depth]; NaN/inf pixels are invalid
and their depth is set to 0, so no loss or metric ever sees a NaN. A row (of the split, or found
on disk) of which neither file is there (a scene not downloaded) is skipped, counted in
`skipped` and in one warning. Every other row is a frame of the dataset: one whose JPEG or HDF5
is missing, or does not start with its format's signature, raises a frame error naming the file
when read (FileNotFoundError or `BadFrameError`; `depthart eval` lists it as unreadable), and so
does one damaged further in, or an HDF5 whose depth dataset declares another size than the RGB,
or more than `image_header.MAX_PIXELS` pixels: found from its header, before it is read.
"""

from __future__ import annotations

import csv as csv_mod
import logging
import math
from pathlib import Path

import numpy as np

from depthart_core.data.benchmarks._io import (
    BadFrameError,
    BenchmarkDataset,
    check_range,
    make_sample,
    read_rgb,
    require_dir,
    require_file,
)
from depthart_core.data.sample import DepthSample
from depthart_core.fileutil import describe_os_error
from depthart_core.image_header import MAX_PIXELS

SPLITS = ("train", "val", "test")
FOV_X_DEG = 60.0
CSV_NAME = "metadata_images_split_scene_v1.csv"
CAMERA_CSV_NAME = "metadata_camera_parameters.csv"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8"

log = logging.getLogger(__name__)


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


def read_camera_csv(path: str | Path) -> dict[str, np.ndarray]:
    """scene name -> its 3x3 `M_cam_from_uv` from ml-hypersim's metadata_camera_parameters.csv."""
    path = require_file(Path(path), "Hypersim camera parameters CSV")
    cols = [f"M_cam_from_uv_{i}{j}" for i in range(3) for j in range(3)]
    out = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv_mod.DictReader(f)
        missing = [c for c in ("scene_name", *cols) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing[:3]}")
        for lineno, r in enumerate(reader, start=2):
            try:
                m = np.array([float(r[c]) for c in cols]).reshape(3, 3)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: bad M_cam_from_uv ({exc})") from exc
            if not np.isfinite(m).all() or abs(np.linalg.det(m)) < 1e-12:
                raise ValueError(f"{path}:{lineno}: M_cam_from_uv of {r['scene_name']} is singular")
            out[r["scene_name"].strip()] = m
    return out


def scene_camera(M_cam_from_uv: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, R) of the pinhole camera a scene's `M_cam_from_uv` renders at h x w: pixel ~ K R x
    for a point x in OpenCV camera coordinates (x right, y down, z forward)."""
    A = np.array([[w / 2.0, 0.0, w / 2.0 - 0.5], [0.0, -h / 2.0, h / 2.0 - 0.5], [0.0, 0.0, 1.0]])
    import scipy.linalg  # the `train` extra; imported here: `train` on other data needs none

    P = A @ np.linalg.inv(M_cam_from_uv) @ np.diag([1.0, -1.0, -1.0])
    K, R = scipy.linalg.rq(P)
    D = np.diag(np.sign(np.diag(K)))  # positive focal lengths and K[2, 2]
    K, R = K @ D, D @ R
    if np.linalg.det(R) < 0:
        raise ValueError("M_cam_from_uv does not describe a right-handed camera")
    return K / K[2, 2], R


def distance_to_planar_exact(
    distance: np.ndarray, M_cam_from_uv: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ray distance (H, W) -> (planar depth of the scene's pinhole camera, float32; its K)."""
    h, w = distance.shape
    K, R = scene_camera(M_cam_from_uv, h, w)
    u = np.linspace(-1 + 1 / w, 1 - 1 / w, w)
    v = np.linspace(1 - 1 / h, -1 + 1 / h, h)  # top row first: v points up
    uv1 = np.stack(np.broadcast_arrays(u[None, :], v[:, None], 1.0), axis=-1)
    rays_cv = (uv1 @ M_cam_from_uv.T) * np.array([1.0, -1.0, -1.0])
    along = (rays_cv @ R[2]) / np.linalg.norm(rays_cv, axis=-1)
    return (distance.astype(np.float64) * along).astype(np.float32), K


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
    with open(path, newline="", encoding="utf-8") as f:
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


def _signature_problem(path: Path, signature: bytes) -> OSError | BadFrameError | None:
    """Why `path` cannot be this frame's file (checked cheaply: its first bytes), as the frame
    error to raise, or None."""
    if not path.is_file():
        return FileNotFoundError(f"{path} is missing")
    try:
        with open(path, "rb") as f:
            head = f.read(len(signature))
    except FileNotFoundError:  # removed since the look above
        return FileNotFoundError(f"{path} is missing")
    except OSError as exc:  # unreadable, an I/O error: this frame only
        return BadFrameError(f"cannot read {path}: {describe_os_error(exc, with_path=False)}")
    if head != signature:
        kind = "HDF5" if signature == _HDF5_SIGNATURE else "JPEG"
        return BadFrameError(f"{path} is not a {kind} file")
    return None


def _check_depth_dataset(path: Path, dataset, rgb_hw: tuple[int, ...]) -> None:
    """Raises BadFrameError naming `path` unless its `dataset` (an h5py.Dataset) is (H, W)
    numbers of the RGB's H x W and at most MAX_PIXELS: from the dataset's header, before
    anything is read (a file of a few KB can declare a 100000 x 100000 dataset, chunked and
    empty)."""
    shape = tuple(dataset.shape)
    if len(shape) == 2 and shape[0] * shape[1] > MAX_PIXELS:
        raise BadFrameError(
            f"{path}: depth {shape[1]}x{shape[0]} declares more than {MAX_PIXELS:,} pixels; "
            "not read"
        )
    if dataset.dtype.kind not in "fiu":
        raise BadFrameError(f"{path}: depth holds {dataset.dtype} values, not numbers")
    if shape != tuple(rgb_hw):
        raise BadFrameError(f"{path}: depth {shape} and RGB {tuple(rgb_hw)} differ in size")


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
        camera_csv: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.root = require_dir(Path(root), "Hypersim root")
        if camera_csv is None and (self.root / CAMERA_CSV_NAME).is_file():
            camera_csv = self.root / CAMERA_CSV_NAME
        self.cameras = read_camera_csv(camera_csv) if camera_csv is not None else None
        self.camera_mode = "per-scene" if self.cameras is not None else "standard"
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
        # a row with a file on disk is a frame: one of its files missing or of the wrong kind is
        # raised when read (a frame error: eval lists it as unreadable). A row with neither file
        # (a scene not downloaded) is only counted, in one warning
        self.rows: list[tuple[str, str, int]] = []
        absent: list[str] = []
        for scene, cam, frame in rows:
            if any(p.is_file() for p in _paths(self.root, scene, cam, frame)):
                self.rows.append((scene, cam, frame))
            else:
                absent.append(f"{scene}/{cam}/frame.{frame:04d}")
        if absent:
            self.skipped += len(absent)
            more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
            log.warning("%s: skipped %d frame(s) with neither a JPEG nor an HDF5 file: %s%s",
                        self.name, len(absent), ", ".join(absent[:5]), more)  # fmt: skip
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
        problem = _signature_problem(rgb_p, _JPEG_SIGNATURE) or _signature_problem(
            depth_p, _HDF5_SIGNATURE
        )
        if problem is not None:  # a frame error naming the file: eval lists the frame
            raise problem
        rgb = read_rgb(rgb_p)
        import h5py  # the `train` extra, imported here: finetune on a bag needs none

        try:
            with h5py.File(depth_p, "r") as f:
                dataset = f.get("dataset")
                if not isinstance(dataset, h5py.Dataset):
                    raise BadFrameError(
                        f"cannot read depth from {depth_p}: no dataset 'dataset'; found {sorted(f)}"
                    )
                _check_depth_dataset(depth_p, dataset, rgb.shape[:2])  # before it is read
                distance = np.asarray(dataset[()], dtype=np.float32)
        except OSError as exc:  # not HDF5, cut short, a damaged chunk: this frame only
            raise BadFrameError(f"cannot read depth from {depth_p}: {exc}") from exc
        h, w = distance.shape
        if self.cameras is not None:
            if scene not in self.cameras:
                raise ValueError(f"scene {scene} is not in the camera parameters CSV")
            depth, K = distance_to_planar_exact(distance, self.cameras[scene])
        else:
            depth, f = distance_to_planar(distance), focal_length(w)
            K = np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]])
        finite = np.isfinite(depth)
        depth = np.where(finite, depth, np.float32(0.0))
        valid = finite & (depth > 0) & self.range_mask(depth)
        return make_sample(rgb, depth, valid, f"{scene}/{cam}/frame.{frame:04d}", K)
