"""Shared pieces of the benchmark readers: image/PNG/list-file I/O, range and crop masks, skips.

Every reader returns `DepthSample`s (depth in metres, `valid` = the dataset's range AND its crop
AND its own masks) and follows `DepthDataset`: `name`, `skipped`, `__len__`, `__getitem__`, plus
`min_depth` / `max_depth` (the valid range, open below and closed above: lo < d <= hi, as
DepthART's readers test it) that protocols with range clipping use.

A frame whose files are bad raises `BadFrameError` (cannot be decoded, a JPEG cut short, not the
kind of image the reader expects, RGB and depth of different sizes, a header that claims more
pixels than `image_header.MAX_PIXELS` or more data than its file holds: refused before anything
that size is allocated or decoded) or `FileNotFoundError` (missing); one too large for this
machine's memory raises `MemoryError`, which `BenchmarkDataset` turns into a `BadFrameError`
naming the frame. Together they are `FRAME_ERRORS`, what `depthart eval` skips (named, counted,
listed) while it scores the rest.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from depthart_core.data.sample import DepthSample
from depthart_core.fileutil import describe_os_error
from depthart_core.image_header import (
    MAX_PIXELS,
    TRUNCATED_JPEG,
    too_many_pixels,
    truncated_jpeg,
)

log = logging.getLogger(__name__)


class BadFrameError(ValueError):
    """One frame's files are bad (not decodable, the wrong kind of image, RGB and depth of
    different sizes): that frame cannot be used, the dataset's others may. A ValueError, so a
    caller that does not skip frames reports it as it reports any bad input."""


# what a reader's __getitem__ raises for one frame whose files are bad or missing, or that is
# too large for this machine (`BenchmarkDataset` turns that MemoryError into a BadFrameError
# naming the frame; another reader's may arrive as it is)
FRAME_ERRORS: tuple[type[Exception], ...] = (BadFrameError, FileNotFoundError, MemoryError)


class BenchmarkDataset:
    """Base for the readers: an item list, a valid range and a counted, logged skip."""

    name = "benchmark"
    min_depth = 0.0
    max_depth = float("inf")

    def __init__(self) -> None:
        self.skipped = 0

    def __len__(self) -> int:
        return len(self._items())

    def __getitem__(self, index: int) -> DepthSample:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"{self.name}: index {index} out of range for {n} samples")
        try:
            return self._load(index % n)
        except MemoryError as exc:  # that frame's failure only: the others may still be read
            raise BadFrameError(
                f"{self.name} frame {index % n} ({self._describe(index % n)}): out of memory "
                f"reading it ({exc})"
            ) from exc

    def readable(self, indices: Iterable[int] | None = None) -> Iterator[tuple[int, DepthSample]]:
        """(index, sample) for each frame that can be read, of `indices` (default: every frame)
        in their order, read lazily, one at a time. A frame whose read raises a frame error
        (`FRAME_ERRORS`: a file missing, cut short, not the image it should be) is left out with
        one warning naming it and why, and recorded in `unreadable_read` (index -> why, over
        every pass of this dataset; set by the first call): what a script that reads a set
        frame by frame skips, as training's `DatasetBatches` does."""
        unreadable: dict[int, str] = vars(self).setdefault("unreadable_read", {})

        def frames() -> Iterator[tuple[int, DepthSample]]:
            for i in range(len(self)) if indices is None else indices:
                try:
                    sample = self[i]
                except FRAME_ERRORS as exc:  # this frame's files only: left out, named, counted
                    unreadable[i] = str(exc) or type(exc).__name__
                    log.warning("%s: skipped frame %d (unreadable): %s", self.name, i,
                                unreadable[i])  # fmt: skip
                    continue
                yield i, sample

        return frames()

    def _describe(self, index: int) -> str:
        """The files (or name) of item `index`, for a message."""
        item = self._items()[index]
        if isinstance(item, (tuple, list)):
            return ", ".join(str(x) for x in item if isinstance(x, (str, Path))) or repr(item)
        return str(item)

    def _items(self) -> list:
        raise NotImplementedError

    def _load(self, index: int) -> DepthSample:
        raise NotImplementedError

    def _skip(self, reason: str) -> None:
        self.skipped += 1
        log.warning("%s: skipped %s", self.name, reason)

    upper_closed = True  # (min, max]; False: (min, max), as the KITTI and ScanNet protocols

    def range_mask(self, depth_m: np.ndarray) -> np.ndarray:
        below = depth_m <= self.max_depth if self.upper_closed else depth_m < self.max_depth
        return np.isfinite(depth_m) & (depth_m > self.min_depth) & below


def check_range(min_depth: float, max_depth: float) -> None:
    if not 0.0 <= min_depth < max_depth:
        raise ValueError(
            f"valid depth range must satisfy 0 <= min < max, got ({min_depth}, {max_depth}]"
        )


def require_file(path: Path, what: str = "file") -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def require_dir(path: Path, what: str = "dataset root") -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found (not a directory): {path}")
    return path


def _imread(path: Path, what: str) -> tuple[Path, np.ndarray]:
    """Decode a file as stored (no conversion); raises naming the file if missing or corrupt,
    if its header claims more than `MAX_PIXELS` pixels, or if it is a JPEG cut short (then it is
    not decoded: OpenCV would return it with its missing rows grey).

    The bytes are read here and decoded with `cv2.imdecode` (the same decoders and flags as
    `cv2.imread`): OpenCV's own file opening takes the path as UTF-8 and crashes the process
    (SIGSEGV) on a name that is not (Latin-1 bytes from an old USB stick: '\\udce9' in Python)."""
    path = require_file(path, what)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:  # a folder of it unreadable, an I/O error: that frame is unusable
        raise BadFrameError(
            f"cannot read {what} {path}: {describe_os_error(exc, with_path=False)}"
        ) from exc
    too_large = too_many_pixels(data)  # from the header: a decompression bomb is never decoded
    if too_large:
        raise BadFrameError(f"{what} {path} not decoded: {too_large}")
    if truncated_jpeg(data):  # OpenCV would decode it with the missing rows grey
        raise BadFrameError(f"{what} {path} not decoded: {TRUNCATED_JPEG}")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if img is None:
        raise BadFrameError(f"cannot decode {what} {path}")
    return path, img


def read_npy(path: Path, what: str) -> np.ndarray:
    """A plain `.npy` array (no pickled objects); raises naming the file if it is missing, not
    such a file, or its header declares more data than the file holds or an H x W of more than
    `MAX_PIXELS`: both found from the header, before anything of that size is allocated."""
    path = require_file(path, what)
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            try:
                version = fmt.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = fmt.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = fmt.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
            except ValueError as exc:
                raise BadFrameError(f"{path}: not a plain numpy array file: {exc}") from exc
            if dtype.hasobject:
                raise BadFrameError(f"{path}: not a plain numpy array file: it holds objects")
            need = math.prod(shape) * dtype.itemsize
            held = os.fstat(f.fileno()).st_size - f.tell()
            if need > held:
                raise BadFrameError(
                    f"{path}: its header declares a {shape} {dtype} array ({need:,} bytes), "
                    f"but the file holds {held:,} bytes of data"
                )
            if math.prod(shape[:2]) > MAX_PIXELS:
                raise BadFrameError(
                    f"{path}: its header declares a {shape} array, more than {MAX_PIXELS:,} "
                    "pixels; not read"
                )
            f.seek(0)
            try:
                return fmt.read_array(f, allow_pickle=False)
            except ValueError as exc:
                raise BadFrameError(f"{path}: not a plain numpy array file: {exc}") from exc
    except FileNotFoundError:
        raise
    except OSError as exc:  # unreadable, an I/O error: that frame is unusable
        raise BadFrameError(
            f"cannot read {what} {path}: {describe_os_error(exc, with_path=False)}"
        ) from exc


def read_rgb(path: Path) -> np.ndarray:
    """Any 8-bit colour or grey image file -> HxWx3 uint8 RGB."""
    path, img = _imread(path, "image")
    if img.dtype != np.uint8:
        raise BadFrameError(f"{path}: expected an 8-bit image, got {img.dtype}")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1])  # OpenCV decodes BGR


def read_png_u16(path: Path) -> np.ndarray:
    """A single-channel 16-bit PNG as HxW uint16; raises naming the file if it is anything else."""
    path, img = _imread(path, "depth PNG")
    if img.dtype != np.uint16 or img.ndim != 2:
        raise BadFrameError(
            f"{path}: expected a single-channel 16-bit PNG, got {img.dtype} shape {img.shape}"
        )
    return img


def read_mask_png(path: Path) -> np.ndarray:
    """An 8- or 16-bit mask PNG -> HxW bool (nonzero = set)."""
    path, img = _imread(path, "mask PNG")
    if img.ndim == 3:
        img = img[:, :, 0]
    return img > 0


def check_same_size(
    depth_shape: tuple[int, ...], rgb_shape: tuple[int, ...], where: object
) -> None:
    """Raises BadFrameError naming `where` (the depth file) when depth and RGB differ in size."""
    if tuple(depth_shape[:2]) != tuple(rgb_shape[:2]):
        raise BadFrameError(
            f"{where}: depth {tuple(depth_shape[:2])} and RGB {tuple(rgb_shape[:2])} differ in size"
        )


def read_list_file(path: Path, min_cols: int, max_cols: int | None = None) -> list[list[str]]:
    """Whitespace-separated rows; '#' comments and blank lines ignored; column count checked."""
    path = require_file(path, "list file")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        cols = line.split()
        hi = max_cols if max_cols is not None else min_cols
        if not min_cols <= len(cols) <= hi:
            raise ValueError(
                f"{path}:{lineno}: expected {min_cols}..{hi} columns, got {len(cols)}: {line!r}"
            )
        rows.append(cols)
    return rows


def load_pth_list(path: Path) -> list:
    """A list (of strings or string tuples) saved with torch.save, loaded without unpickling code.

    DepthART's evaluation copies list their samples in `samples_<partition>.pth`;
    `torch.load(weights_only=True)` only rebuilds plain containers and strings.
    """
    path = require_file(path, "sample list")
    try:
        items = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError/RuntimeError for foreign content
        raise ValueError(f"{path} is not a plain list saved by torch.save: {exc}") from exc
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"{path}: expected a list of samples, got {type(items).__name__}")
    return list(items)


def border_crop(shape: tuple[int, int], top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Bool mask, True inside rows [top, bottom) and cols [left, right)."""
    h, w = shape
    if not (0 <= top < bottom <= h and 0 <= left < right <= w):
        raise ValueError(
            f"crop rows {top}:{bottom} cols {left}:{right} does not fit a {h}x{w} frame"
        )
    m = np.zeros((h, w), dtype=bool)
    m[top:bottom, left:right] = True
    return m


def resize_rgb_to(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize RGB to (H, W) when a dataset stores colour and depth at different sizes."""
    h, w = shape
    if rgb.shape[:2] == (h, w):
        return rgb
    shrink = w < rgb.shape[1]
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def make_sample(
    rgb: np.ndarray,
    depth_m: np.ndarray,
    valid: np.ndarray,
    name: str,
    K: np.ndarray | None = None,
    **extras,
) -> DepthSample:
    return DepthSample(
        rgb=np.ascontiguousarray(rgb, dtype=np.uint8),
        depth=np.ascontiguousarray(depth_m, dtype=np.float32),
        valid=np.ascontiguousarray(valid, dtype=bool),
        name=name,
        intrinsics=K,
        extras=dict(extras),
    )
