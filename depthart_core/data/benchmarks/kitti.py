"""KITTI, Eigen test split with the annotated (Uhrig et al. 2017) ground truth.

Ground truth: `data_depth_annotated` 16-bit PNGs, metres = value / 256, 0 = no measurement (KITTI
depth devkit `readme.txt`). The split file (BTS `eigen_test_files_with_gt.txt`, Marigold
`data_split/kitti/*.txt`) has rows "rgb_path depth_path [focal]": rgb relative to `root` (the raw
data, e.g. `2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png`), depth relative to
`gt_root` (default `root`). Rows whose depth is "None" are frames the annotated set does not cover:
a known gap, skipped, counted and logged. Without a `split_file` (as `depthart eval --dataset
kitti --root R` reads it) the split is `R/eigen_test_files_with_gt.txt` and both paths are
relative to `R`: put the split file there, and the raw data and the annotated depth below it (or
links to them).

Crops, as fractions of the frame (Monodepth / BTS evaluation code):
  garg  rows 0.40810811 H : 0.99189189 H, cols 0.03594771 W : 0.96405229 W  (Garg et al. 2016)
  eigen rows 0.3324324 H : 0.91351351 H,  cols 0.0359477 W : 0.96405229 W   (Eigen et al. 2014)
Both are applied to `valid` only. Valid range (1e-3, 80) m: the 80 m cap of the Eigen protocol,
open as BTS's evaluation (`gt_depth < max_depth_eval`) and Marigold's valid mask have it.
The DepthART paper does not evaluate KITTI (its KITTI reader is missing from the release).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depthart_core.data.benchmarks._io import (
    BadFrameError,
    BenchmarkDataset,
    border_crop,
    check_range,
    make_sample,
    read_list_file,
    read_png_u16,
    read_rgb,
    require_dir,
)
from depthart_core.data.sample import DepthSample

DEPTH_SCALE = 256.0  # PNG units per metre
DEFAULT_SPLIT = "eigen_test_files_with_gt.txt"  # BTS's name, looked for in the root
CROPS = {
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    "eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
}


def crop_mask(shape: tuple[int, int], crop: str) -> np.ndarray:
    if crop == "none":
        return np.ones(shape, dtype=bool)
    if crop not in CROPS:
        raise ValueError(f"unknown KITTI crop {crop!r}; choose one of {[*CROPS, 'none']}")
    h, w = shape
    t, b, l, r = CROPS[crop]
    return border_crop(shape, int(t * h), int(b * h), int(l * w), int(r * w))


class KITTIEigen(BenchmarkDataset):
    name = "kitti"
    upper_closed = False  # the protocol's depth < max

    def __init__(
        self,
        root: str | Path,
        split_file: str | Path | None = None,
        gt_root: str | Path | None = None,
        crop: str = "garg",
        min_depth: float = 1e-3,
        max_depth: float = 80.0,
    ) -> None:
        super().__init__()
        self.root = require_dir(Path(root), "KITTI raw-data root")
        self.gt_root = (
            require_dir(Path(gt_root), "KITTI ground-truth root") if gt_root else self.root
        )
        check_range(min_depth, max_depth)
        if crop != "none" and crop not in CROPS:
            raise ValueError(f"unknown KITTI crop {crop!r}; choose one of {[*CROPS, 'none']}")
        self.crop, self.min_depth, self.max_depth = crop, min_depth, max_depth
        if split_file is None:
            split_file = self.root / DEFAULT_SPLIT
            if not split_file.is_file():
                raise FileNotFoundError(
                    f"no KITTI split file {split_file}: put BTS's {DEFAULT_SPLIT} (rows "
                    "'rgb_path depth_path [focal]', relative to the root) there, or pass split_file"
                )
        self.rows = []
        for cols in read_list_file(Path(split_file), 2, 3):
            if cols[1] == "None":
                self._skip(f"{cols[0]}: the split file lists no ground truth")
                continue
            focal = float(cols[2]) if len(cols) == 3 else None
            self.rows.append((cols[0], cols[1], focal))
        if not self.rows:
            raise ValueError(f"{split_file}: no row with ground truth")

    def _items(self) -> list:
        return self.rows

    def _load(self, index: int) -> DepthSample:
        rgb_rel, depth_rel, focal = self.rows[index]
        rgb = read_rgb(self.root / rgb_rel)
        depth = read_png_u16(self.gt_root / depth_rel).astype(np.float32) / DEPTH_SCALE
        if depth.shape != rgb.shape[:2]:
            raise BadFrameError(
                f"{self.gt_root / depth_rel}: depth {depth.shape} vs RGB {rgb.shape[:2]}"
            )
        valid = self.range_mask(depth) & crop_mask(depth.shape, self.crop)
        return make_sample(rgb, depth, valid, rgb_rel, focal=focal)
