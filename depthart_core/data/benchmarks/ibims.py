"""iBims-1 (Koch et al. 2018), the `ibims1_core_raw` PNG release.

Layout: `<root>/imagelist.txt` (one image name per line), and for each NAME
    rgb/NAME.png           8-bit colour, 640 x 480
    depth/NAME.png         16-bit; metres = value * 50 / 65535
    mask_invalid/NAME.png  nonzero = usable depth (zero marks invalid measurements)
    mask_transp/NAME.png   nonzero = usable (zero marks transparent objects)
    calib/NAME.txt         optional, one line "fx,fy,cx,cy"
    mask_{table,floor,wall}/NAME.png, NAME.txt   optional planes: labels 1..n, one row
                           "7 comma-separated values" per plane (the normal in columns 4:7)
The mask convention (nonzero = keep) is the one DepthART's reader applies (`mde/datasets/eval/
ibims1.py`: `mask = range & mask_invalid > 0 & mask_transp > 0`) and the official iBims-1 code.

Valid range (1e-2, 50] m, DepthART's `IBIMS1Dataset(near=1e-2, far=50.0)` (paper sec. 6). No crop.
Where calib and plane masks exist they go to `extras` ("calib": (fx, fy, cx, cy), "planes":
{type: (labels, params)}) for the planarity errors pe-fla / pe-ori (`evaluation.planarity`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depthart_core.data.benchmarks._io import (
    BadFrameError,
    BenchmarkDataset,
    _imread,
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
    text = path.read_text(encoding="utf-8").strip().splitlines()
    try:
        fx, fy, cx, cy = (float(v) for v in text[0].split(","))
    except (IndexError, ValueError) as exc:
        raise BadFrameError(f"{path}: expected one line 'fx,fy,cx,cy': {exc}") from exc
    return intrinsics(fx, fy, cx, cy)


def _read_labels(path: Path) -> np.ndarray:
    """A plane-label PNG -> HxW int (0 = no plane, j + 1 = plane j)."""
    _, img = _imread(path, "plane mask PNG")
    return (img if img.ndim == 2 else img[:, :, 0]).astype(np.int64)


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
                raise BadFrameError(
                    f"{self.root / d / name}.png: shape {m.shape} vs depth {depth.shape}"
                )
        if depth.shape != rgb.shape[:2]:
            raise BadFrameError(f"iBims-1 {name}: depth {depth.shape} vs RGB {rgb.shape[:2]}")
        valid = self.range_mask(depth) & masks[0] & masks[1]
        calib = read_calib(self.root / "calib" / f"{name}.txt")  # 1-based pixels, as the
        K = None  # official evaluation back-projects them; the sample's K is 0-based
        if calib is not None:
            K = intrinsics(calib[0, 0], calib[1, 1], calib[0, 2] - 1.0, calib[1, 2] - 1.0)
        sample = make_sample(rgb, depth, valid, name, K)
        planes = self._planes(name, depth.shape)
        if calib is not None and planes:  # the planarity error uses the file's own convention
            sample.extras["calib"] = (calib[0, 0], calib[1, 1], calib[0, 2], calib[1, 2])
            sample.extras["planes"] = planes
        return sample

    def _planes(self, name: str, shape: tuple[int, ...]) -> dict:
        planes = {}
        for kind in ("table", "floor", "wall"):
            png, txt = (self.root / f"mask_{kind}" / f"{name}{ext}" for ext in (".png", ".txt"))
            if not (png.is_file() and txt.is_file()):
                continue
            labels = _read_labels(png)
            if labels.shape != shape:
                raise BadFrameError(f"{png}: shape {labels.shape} vs depth {shape}")
            text = txt.read_text(encoding="utf-8")
            rows = [line.split(",") for line in text.split("\n") if line.strip()]
            try:
                params = np.array(rows, dtype=np.float64).reshape(-1, 7)
            except ValueError as exc:
                raise BadFrameError(
                    f"{txt}: expected rows of 7 comma-separated numbers: {exc}"
                ) from exc
            planes[kind] = (labels, params)
        return planes
