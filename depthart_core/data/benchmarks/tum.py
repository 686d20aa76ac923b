"""TUM RGB-D (Sturm et al. 2012), raw sequences or DepthART's HDF5 evaluation copy.

Raw sequence format (https://cvg.cit.tum.de/data/datasets/rgbd-dataset/file_formats): a sequence
folder holds `rgb.txt` and `depth.txt`, lines "timestamp filename" ('#' comments), `rgb/*.png`
8-bit colour 640x480 and `depth/*.png` 16-bit, registered to the colour camera, 5000 units per
metre, 0 = missing. Colour and depth are not synchronised; pairs are formed as the benchmark's
`associate.py` does: candidates with |t_rgb - t_depth| < 0.02 s, taken greedily by smallest
difference, each frame used once. A depth frame with no colour partner is a known gap of these
recordings: it is skipped, counted in `skipped` and logged. `root` may be one sequence or a folder
of sequences. `stride` keeps every k-th pair (30 Hz video is highly redundant).

DepthART copy (`mde/datasets/eval/tum.py`): `<root>/samples_test.pth` lists HDF5 files under
`<root>/data/`, each with `image` (H, W, 3 uint8) and `depth` (H, W float, metres).

Valid range (1e-2, 10] m, DepthART's `TUMDataset(near=1e-2, far=10.0)` (paper sec. 6). No crop.
Intrinsics: the published per-camera values (freiburg1/2/3) for raw sequences, from the folder name.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import h5py
import numpy as np

from depthart_core.data.benchmarks._io import (
    BadFrameError,
    BenchmarkDataset,
    check_range,
    intrinsics,
    load_pth_list,
    make_sample,
    read_list_file,
    read_png_u16,
    read_rgb,
    require_dir,
    require_file,
)
from depthart_core.data.sample import DepthSample
from depthart_core.image_header import MAX_PIXELS

DEPTH_SCALE = 5000.0  # PNG units per metre
MAX_DT = 0.02  # s, associate.py's default --max_difference
CAMERAS = {  # fx, fy, cx, cy of the colour cameras, TUM "file formats" page
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
}


def read_timestamps(path: Path) -> list[tuple[float, str]]:
    rows = read_list_file(path, 2)
    try:
        return [(float(t), f) for t, f in rows]
    except ValueError as exc:
        raise ValueError(f"{path}: bad timestamp: {exc}") from exc


def associate(
    rgb: list[tuple[float, str]], depth: list[tuple[float, str]], max_dt: float = MAX_DT
) -> list[tuple[int, int]]:
    """One-to-one (rgb index, depth index) pairs closer than `max_dt`, greedy by time difference."""
    order = sorted(range(len(rgb)), key=lambda i: rgb[i][0])
    times = [rgb[i][0] for i in order]
    candidates = []
    for j, (t, _) in enumerate(depth):
        k = bisect.bisect_left(times, t - max_dt)
        while k < len(times) and times[k] < t + max_dt:
            dt = abs(times[k] - t)
            if dt < max_dt:
                candidates.append((dt, order[k], j))
            k += 1
    candidates.sort()
    used_rgb, used_depth, pairs = set(), set(), []
    for _, i, j in candidates:
        if i not in used_rgb and j not in used_depth:
            used_rgb.add(i)
            used_depth.add(j)
            pairs.append((i, j))
    return sorted(pairs, key=lambda p: depth[p[1]][0])


class TUM(BenchmarkDataset):
    name = "tum"

    def __init__(
        self,
        root: str | Path,
        partition: str = "test",
        stride: int = 1,
        max_dt: float = MAX_DT,
        min_depth: float = 1e-2,
        max_depth: float = 10.0,
    ) -> None:
        super().__init__()
        root = require_dir(Path(root), "TUM root")
        check_range(min_depth, max_depth)
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.min_depth, self.max_depth = min_depth, max_depth
        self.frames: list[tuple] = []
        pth = root / f"samples_{partition}.pth"
        if pth.is_file():
            self.layout = "h5"
            self.frames = [(root / "data" / str(f),) for f in sorted(load_pth_list(pth))]
        else:
            self.layout = "raw"
            seqs = (
                [root]
                if (root / "rgb.txt").is_file()
                else sorted(p for p in root.iterdir() if (p / "rgb.txt").is_file())
            )
            if not seqs:
                raise FileNotFoundError(f"no TUM sequence (rgb.txt) or {pth.name} under {root}")
            for seq in seqs:
                self.frames += self._sequence(seq, max_dt)[::stride]
        if not self.frames:
            raise ValueError(f"TUM: no usable frame under {root}")

    def _sequence(self, seq: Path, max_dt: float) -> list[tuple]:
        rgb = read_timestamps(seq / "rgb.txt")
        depth = read_timestamps(require_file(seq / "depth.txt", "TUM depth.txt"))
        pairs = associate(rgb, depth, max_dt)
        matched = {j for _, j in pairs}
        for j, (t, f) in enumerate(depth):
            if j not in matched:
                self._skip(f"{seq.name}/{f} (t={t:.6f}): no rgb frame within {max_dt} s")
        cam = next((v for k, v in CAMERAS.items() if k in seq.name), None)
        return [
            (seq / rgb[i][1], seq / depth[j][1], cam, f"{seq.name}/{rgb[i][0]:.6f}")
            for i, j in pairs
        ]

    def _items(self) -> list:
        return self.frames

    def _load(self, index: int) -> DepthSample:
        if self.layout == "h5":
            return self._load_h5(self.frames[index][0])
        rgb_path, depth_path, cam, name = self.frames[index]
        rgb = read_rgb(rgb_path)
        depth = read_png_u16(depth_path).astype(np.float32) / DEPTH_SCALE
        if depth.shape != rgb.shape[:2]:
            raise BadFrameError(
                f"{depth_path}: depth {depth.shape} vs RGB {rgb.shape[:2]} ({rgb_path})"
            )
        K = intrinsics(*cam) if cam else None
        return make_sample(rgb, depth, self.range_mask(depth), name, K, depth_path=str(depth_path))

    def _load_h5(self, path: Path) -> DepthSample:
        """One HDF5 frame; its datasets' declared shapes and types are checked before they are
        read (a file of a few KB can declare a 100000 x 100000 dataset, chunked and empty)."""
        require_file(path, "TUM HDF5 frame")
        try:
            with h5py.File(path, "r") as f:
                image, depth = (f.get(key) for key in ("image", "depth"))
                for key, d in (("image", image), ("depth", depth)):
                    if not isinstance(d, h5py.Dataset):
                        raise BadFrameError(f"{path} has no dataset {key!r}; found {sorted(f)}")
                _check_h5_frame(path, image, depth)
                rgb, depth = np.asarray(image), np.asarray(depth, dtype=np.float32)
        except OSError as exc:  # not HDF5, cut short, a damaged chunk: this frame only
            raise BadFrameError(f"cannot read TUM HDF5 frame {path}: {exc}") from exc
        return make_sample(rgb, depth, self.range_mask(depth), path.stem)


def _check_h5_frame(path: Path, image: h5py.Dataset, depth: h5py.Dataset) -> None:
    """Raises BadFrameError unless `image` is (H, W, 3) uint8 and `depth` (H, W) numbers with at
    most MAX_PIXELS pixels: from the datasets' headers, before anything is read."""
    shape = image.shape
    if (
        image.dtype != np.uint8
        or len(shape) != 3
        or shape[2] != 3
        or depth.dtype.kind not in "fiu"
        or depth.shape != shape[:2]
    ):
        raise BadFrameError(
            f"{path}: image {image.dtype} {shape} / depth {depth.dtype} {depth.shape} malformed"
        )
    if shape[0] * shape[1] > MAX_PIXELS:
        raise BadFrameError(
            f"{path}: image {shape[1]}x{shape[0]} declares more than {MAX_PIXELS:,} pixels; "
            "not read"
        )
