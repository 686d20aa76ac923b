"""DIODE (Vasiljevic et al. 2019), the official validation release.

Layout (https://diode-dataset.org, "File structure"): `<root>/{indoors,outdoor}/scene_*/scan_*/`
holds for each view NAME
    NAME.png              8-bit RGB, 1024 x 768
    NAME_depth.npy        float32 (H, W, 1), metres
    NAME_depth_mask.npy   float32 (H, W), 1 = valid laser return
Views are found by globbing `*_depth.npy` (sorted), or read from a Marigold-style list file
(`data_split/diode/diode_val_all_filename_list.txt`: "rgb depth mask" per row, relative to `root`).
`subset` keeps only "indoors" or "outdoor".

Valid range (0.6, 350] m: the scanner's range (DIODE paper, sec. 3; Marigold's DIODE config uses
the same bounds), AND the depth mask. No crop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depthart_core.data.benchmarks._io import (
    BadFrameError,
    BenchmarkDataset,
    check_range,
    make_sample,
    read_list_file,
    read_npy,
    read_rgb,
    require_dir,
)
from depthart_core.data.sample import DepthSample

SUBSETS = ("indoors", "outdoor")


class DIODE(BenchmarkDataset):
    name = "diode"

    def __init__(
        self,
        root: str | Path,
        subset: str | None = None,
        list_file: str | Path | None = None,
        min_depth: float = 0.6,
        max_depth: float = 350.0,
    ) -> None:
        super().__init__()
        self.root = require_dir(Path(root), "DIODE root")
        check_range(min_depth, max_depth)
        if subset is not None and subset not in SUBSETS:
            raise ValueError(f"unknown DIODE subset {subset!r}; choose one of {SUBSETS}")
        self.min_depth, self.max_depth = min_depth, max_depth
        if list_file is not None:
            rows = [tuple(r) for r in read_list_file(Path(list_file), 3)]
        else:
            rows = []
            for d in sorted(self.root.rglob("*_depth.npy")):
                rel = d.relative_to(self.root).as_posix()
                stem = rel[: -len("_depth.npy")]
                rows.append((f"{stem}.png", rel, f"{stem}_depth_mask.npy"))
        if subset is not None:
            rows = [r for r in rows if r[0].split("/")[0] == subset]
        if not rows:
            raise FileNotFoundError(f"no DIODE view (*_depth.npy) under {self.root}")
        self.rows = rows

    def _items(self) -> list:
        return self.rows

    def _load(self, index: int) -> DepthSample:
        rgb_rel, depth_rel, mask_rel = self.rows[index]
        rgb = read_rgb(self.root / rgb_rel)
        depth = read_npy(self.root / depth_rel, "DIODE .npy")
        if depth.ndim == 3 and depth.shape[2] == 1:
            depth = depth[:, :, 0]
        mask = read_npy(self.root / mask_rel, "DIODE .npy")
        if depth.shape != rgb.shape[:2] or mask.shape != depth.shape:
            raise BadFrameError(
                f"{self.root / depth_rel}: depth {depth.shape}, mask {mask.shape} and RGB "
                f"{rgb.shape[:2]} must share H x W"
            )
        depth = depth.astype(np.float32)
        valid = self.range_mask(depth) & (mask > 0)
        return make_sample(rgb, depth, valid, rgb_rel[: -len(".png")])
