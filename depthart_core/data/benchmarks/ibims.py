"""iBims-1 (Koch et al. 2018), the `ibims1_core_raw` PNG release.

Layout: `<root>/imagelist.txt` (one image name per line), and for each NAME
    rgb/NAME.png           8-bit colour, 640 x 480
    depth/NAME.png         16-bit; metres = value * 50 / 65535
    mask_invalid/NAME.png  nonzero = usable depth (zero marks invalid measurements)
    mask_transp/NAME.png   nonzero = usable (zero marks transparent objects)
    calib/NAME.txt         optional, one line "fx,fy,cx,cy"
The mask convention (nonzero = keep) is the one DepthART's reader applies (`mde/datasets/eval/
ibims1.py`: `mask = range & mask_invalid > 0 & mask_transp > 0`) and the official iBims-1 code.

Valid range (1e-2, 50] m, DepthART's `IBIMS1Dataset(near=1e-2, far=50.0)` (paper sec. 6). No crop.
The planar/edge masks for pe-fla / pe-ori are not read (the paper's eval config reports only
delta1, AbsRel and MAE).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depthart_core.data.benchmarks._io import (
    BenchmarkDataset,
    check_range,
    intrinsics,
    make_sample,
    read_list_file,
    read_mask_png,
    read_png_u16,
    read_rgb,
    require_dir,
)
from depthart_core.data.sample import DepthSample


def read_calib(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    text = path.read_text().strip().splitlines()
    try:
        fx, fy, cx, cy = (float(v) for v in text[0].split(","))
    except (IndexError, ValueError) as exc:
        raise ValueError(f"{path}: expected one line 'fx,fy,cx,cy': {exc}") from exc
    return intrinsics(fx, fy, cx, cy)


class IBims1(BenchmarkDataset):
    name = "ibims1"

    def __init__(self, root: str | Path, min_depth: float = 1e-2, max_depth: float = 50.0) -> None:
        super().__init__()
        self.root = require_dir(Path(root), "iBims-1 root")
        check_range(min_depth, max_depth)
        self.min_depth, self.max_depth = min_depth, max_depth
        self.names = [row[0] for row in read_list_file(self.root / "imagelist.txt", 1)]
        if not self.names:
            raise ValueError(f"{self.root / 'imagelist.txt'} lists no image")

    def _items(self) -> list:
        return self.names

    def _load(self, index: int) -> DepthSample:
        name = self.names[index]
        rgb = read_rgb(self.root / "rgb" / f"{name}.png")
        png = read_png_u16(self.root / "depth" / f"{name}.png")
        depth = (png * 50.0 / 65535.0).astype(np.float32)  # float64 first: 65535 -> exactly 50 m
        masks = [
            read_mask_png(self.root / d / f"{name}.png") for d in ("mask_invalid", "mask_transp")
        ]
        for m, d in zip(masks, ("mask_invalid", "mask_transp"), strict=True):
            if m.shape != depth.shape:
                raise ValueError(
                    f"{self.root / d / name}.png: shape {m.shape} vs depth {depth.shape}"
                )
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f"iBims-1 {name}: depth {depth.shape} vs RGB {rgb.shape[:2]}")
        valid = self.range_mask(depth) & masks[0] & masks[1]
        K = read_calib(self.root / "calib" / f"{name}.txt")
        return make_sample(rgb, depth, valid, name, K)
