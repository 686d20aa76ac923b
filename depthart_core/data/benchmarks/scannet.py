"""ScanNet v2 (Dai et al. 2017), the 800-frame validation subset used by Marigold.

Layout, as exported by ScanNet's `SensReader` and listed in Marigold's
`data_split/scannet_depth/scannet_val_sampled_list_800_1.txt` ("color depth" per row):
    <root>/sceneXXXX_XX/color/NNNNNN.jpg    8-bit colour (1296 x 968 raw export, or 640 x 480)
    <root>/sceneXXXX_XX/depth/NNNNNN.png    16-bit, millimetres (value / 1000 = metres), 640 x 480
    <root>/sceneXXXX_XX/intrinsic/intrinsic_depth.txt   optional 4x4 matrix of the depth camera
    (one that is not 16 numbers makes its scene's frames unreadable: skipped, named, the rest
    scored)
The list file is `list_file`, else `<root>/scannet_val_sampled_list_800_1.txt`, else every
`*/color/*.jpg` with a matching depth PNG. When colour is stored larger than depth, it is resized
to the depth frame (area filter), so that evaluation runs at the ground truth's resolution.

Valid range (1e-3, 10) m (Marigold's ScanNet config; its valid mask is depth < max_depth). No
crop.
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
    read_png_u16,
    read_rgb,
    require_dir,
    resize_rgb_to,
)
from depthart_core.data.sample import DepthSample
from depthart_core.fileutil import describe_os_error

DEFAULT_LIST = "scannet_val_sampled_list_800_1.txt"


def read_intrinsic_txt(path: Path) -> np.ndarray | None:
    """The 3x3 K of a scene's `intrinsic_depth.txt` (a 4x4 matrix), or None where the scene has
    none; a file that is not 16 finite numbers in text, or cannot be read, is a `BadFrameError`
    naming it: the frames of that scene are skipped, the others scored."""
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadFrameError(
            f"{path}: expected a 4x4 matrix of numbers in text, not bytes that are not UTF-8 "
            f"(byte {exc.start})"
        ) from exc
    except OSError as exc:  # unreadable, an I/O error: the scene's frames are unusable
        raise BadFrameError(
            f"cannot read {path}: {describe_os_error(exc, with_path=False)}"
        ) from exc
    words = text.split()
    bad = next((w for w in words if not _is_number(w)), None)
    if bad is not None:
        raise BadFrameError(f"{path}: expected a 4x4 matrix of numbers, found {bad[:40]!r}")
    M = np.array([float(w) for w in words], dtype=np.float64)
    if M.size != 16:
        raise BadFrameError(f"{path}: expected 16 numbers (4x4 matrix), got {M.size}")
    if not np.isfinite(M).all():
        raise BadFrameError(f"{path}: expected 16 finite numbers (4x4 matrix), got {M.tolist()}")
    return M.reshape(4, 4)[:3, :3].copy()


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


class ScanNet(BenchmarkDataset):
    name = "scannet"
    upper_closed = False  # the protocol's depth < max

    def __init__(
        self,
        root: str | Path,
        list_file: str | Path | None = None,
        min_depth: float = 1e-3,
        max_depth: float = 10.0,
    ) -> None:
        super().__init__()
        self.root = require_dir(Path(root), "ScanNet root")
        check_range(min_depth, max_depth)
        self.min_depth, self.max_depth = min_depth, max_depth
        if list_file is None and (self.root / DEFAULT_LIST).is_file():
            list_file = self.root / DEFAULT_LIST
        if list_file is not None:
            self.rows = [tuple(r) for r in read_list_file(Path(list_file), 2)]
        else:
            self.rows = []
            for c in sorted(self.root.glob("*/color/*.jpg")):
                d = c.parent.parent / "depth" / f"{c.stem}.png"
                if d.is_file():
                    self.rows.append(
                        (c.relative_to(self.root).as_posix(), d.relative_to(self.root).as_posix())
                    )
        if not self.rows:
            raise FileNotFoundError(
                f"no ScanNet frame (scene*/color/*.jpg + depth/*.png) under {self.root}"
            )

    def _items(self) -> list:
        return self.rows

    def _load(self, index: int) -> DepthSample:
        rgb_rel, depth_rel = self.rows[index]
        depth = read_png_u16(self.root / depth_rel).astype(np.float32) / 1000.0
        rgb = resize_rgb_to(read_rgb(self.root / rgb_rel), depth.shape)
        scene = rgb_rel.split("/")[0]
        K = read_intrinsic_txt(self.root / scene / "intrinsic" / "intrinsic_depth.txt")
        return make_sample(rgb, depth, self.range_mask(depth), rgb_rel[: -len(".jpg")], K)
