"""ETH3D high-resolution multi-view (Schöps et al. 2017), as the evaluation copies lay it out.

Two copies are in use and both are read here; the sample list decides which:

1. DepthART / MiDaS-style copy (DepthART `mde/datasets/eval/eth3d.py`): `<root>/samples_test.pth`
   is a `torch.save`d list of (rgb, depth) path pairs relative to `<root>/data/`; depth is a
   16-bit PNG in millimetres (value / 1000 = metres, 0 = missing). The list is loaded with
   `torch.load(weights_only=True)`, which rebuilds strings and lists only.
2. Marigold copy (`data_split/eth3d/eth3d_filename_list.txt`): `<root>/eth3d_filename_list.txt`,
   rows "rgb/<scene>/images/dslr_images/DSC_xxxx.JPG depth/<scene>_dslr_depth/<scene>/
   ground_truth_depth/dslr_images/DSC_xxxx.JPG" relative to `<root>`. The depth "JPG" is ETH3D's
   raw ground truth: little-endian float32, row-major, the RGB image's H x W (4032 x 6048), in
   metres, +inf where there is no measurement.

A depth path ending in `.png` is read as millimetre PNG; anything else as raw float32. A plain
`list_file` with two columns may be given instead (paths relative to `base_dir`, default `<root>`).

Valid range: (1e-4, 72] m, DepthART's `ETH3DDataset(near=1e-4, far=72.0)` (paper sec. 6). No crop.
A millimetre PNG cannot hold more than 65.535 m, so in the DepthART copy the 72 m cap never acts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depthart_core.data.benchmarks._io import (
    BadFrameError,
    BenchmarkDataset,
    check_range,
    load_pth_list,
    make_sample,
    read_list_file,
    read_png_u16,
    read_rgb,
    require_dir,
    require_file,
)
from depthart_core.data.sample import DepthSample

MARIGOLD_LIST = "eth3d_filename_list.txt"


def read_raw_float_depth(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """ETH3D raw ground truth: H*W little-endian float32 values; inf/NaN become 0 (missing)."""
    path = require_file(path, "ETH3D depth")
    data = np.fromfile(path, dtype="<f4")
    h, w = shape
    if data.size != h * w:
        raise BadFrameError(
            f"{path}: {data.size} float32 values, but its RGB image is {h}x{w} ({h * w} values)"
        )
    depth = data.reshape(h, w).astype(np.float32)
    depth[~np.isfinite(depth)] = 0.0
    return depth


class ETH3D(BenchmarkDataset):
    name = "eth3d"

    def __init__(
        self,
        root: str | Path,
        partition: str = "test",
        list_file: str | Path | None = None,
        base_dir: str | Path | None = None,
        min_depth: float = 1e-4,
        max_depth: float = 72.0,
    ) -> None:
        super().__init__()
        root = require_dir(Path(root), "ETH3D root")
        check_range(min_depth, max_depth)
        self.min_depth, self.max_depth = min_depth, max_depth
        pth, txt = root / f"samples_{partition}.pth", root / MARIGOLD_LIST
        if list_file is not None:
            rows = read_list_file(Path(list_file), 2)
            base = Path(base_dir) if base_dir is not None else root
        elif pth.is_file():
            rows = [self._pair(item, pth) for item in load_pth_list(pth)]
            base = root / "data"
            rows.sort()  # DepthART sorts its list
        elif txt.is_file():
            rows = read_list_file(txt, 2)
            base = root
        else:
            raise FileNotFoundError(f"no ETH3D sample list: neither {pth} nor {txt} exists")
        if not rows:
            raise ValueError(f"ETH3D sample list under {root} is empty")
        self.pairs = [(base / r, base / d, r) for r, d in rows]

    @staticmethod
    def _pair(item, where: Path) -> list[str]:
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            raise ValueError(f"{where}: each sample must be an (rgb, depth) pair, got {item!r}")
        return [str(item[0]), str(item[1])]

    def _items(self) -> list:
        return self.pairs

    def _load(self, index: int) -> DepthSample:
        rgb_path, depth_path, rel = self.pairs[index]
        rgb = read_rgb(rgb_path)
        if depth_path.suffix.lower() == ".png":
            depth = read_png_u16(depth_path).astype(np.float32) / 1000.0
        else:
            depth = read_raw_float_depth(depth_path, rgb.shape[:2])
        if depth.shape != rgb.shape[:2]:
            raise BadFrameError(
                f"{depth_path}: depth {depth.shape} vs RGB {rgb.shape[:2]} ({rgb_path})"
            )
        return make_sample(rgb, depth, self.range_mask(depth), rel, rgb_path=str(rgb_path))
