"""NYU Depth v2, labeled subset: `nyu_depth_v2_labeled.mat` and the official `splits.mat`.

On-disk format (Silberman et al. 2012; https://cs.nyu.edu/~fergus/datasets/nyu_depth_v2.html):
the labeled file is a MATLAB v7.3 file, i.e. HDF5 read with h5py, which shows MATLAB's
column-major arrays with their axes reversed:
    images     (N, 3, W, H) uint8     -> frame i is images[i].transpose(2, 1, 0), H x W x 3
    depths     (N, W, H)    float32   in metres, inpainted (dense)
    rawDepths  (N, W, H)    float32   in metres, projected to the RGB frame, 0 = missing
with N = 1449, H x W = 480 x 640. `splits.mat` (a MATLAB v5 file) holds `testNdxs` (654) and
`trainNdxs` (795), 1-based indices into N. It is read by the small MAT v5 parser below (MathWorks
"MAT-File Format", level 5: 128-byte header, tagged data elements, optional zlib `miCOMPRESSED`),
so no SciPy is needed; a v7.3 (HDF5) split file or a text file of 1-based indices works too.

Protocol details, DepthART (paper sec. 6; `mde/datasets/eval/nyu.py`): valid range (1e-8, 10] m on
the *raw* depth, after cutting 8 px from every border of the 480 x 640 frame (RGB and depth are
both cut, so the network never sees the white border) -> `crop="depthart"`, `depth_key=
"rawDepths"`, the defaults. `crop="eigen"` instead masks (does not cut) rows 45:471, cols 41:601,
the Eigen et al. 2014 evaluation crop used by most later work.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import h5py
import numpy as np

from depthart_core.data.benchmarks._io import (
    BenchmarkDataset,
    border_crop,
    check_range,
    intrinsics,
    make_sample,
    require_file,
)
from depthart_core.data.sample import DepthSample
from depthart_core.image_header import MAX_PIXELS

# RGB camera intrinsics from the NYU toolbox `camera_params.m`. Its principal point is in MATLAB's
# 1-based pixels (project_depth_map.m indexes the image with round(X fx / Z + cx)); samples give
# K in 0-based pixel coordinates (numpy, OpenCV, ROS CameraInfo), so cx - 1, cy - 1.
NYU_FX, NYU_FY = 5.1885790117450188e02, 5.1946961112127485e02
NYU_CX, NYU_CY = 3.2558244941119034e02, 2.5373616633400465e02
DEPTHART_BORDER = 8
EIGEN_CROP = (45, 471, 41, 601)  # rows top:bottom, cols left:right
CROPS = ("depthart", "eigen", "none")
SPLIT_KEYS = {"test": "testNdxs", "train": "trainNdxs"}

# ---------------------------------------------------------------------------------------------
# MAT v5 reader (numeric arrays only): enough for splits.mat.
_MI_DTYPES = {
    1: "i1",
    2: "u1",
    3: "i2",
    4: "u2",
    5: "i4",
    6: "u4",
    7: "f4",
    9: "f8",
    12: "i8",
    13: "u8",
}
_MI_MATRIX, _MI_COMPRESSED = 14, 15
_NUMERIC_CLASSES = set(range(6, 16))  # mxDOUBLE_CLASS .. mxUINT64_CLASS


def _elements(buf: bytes, endian: str, where: str):
    """Yield (type, payload) for each tagged data element in `buf`."""
    pos = 0
    while pos + 8 <= len(buf):
        a, b = struct.unpack_from(endian + "II", buf, pos)
        if a >> 16:  # small data element: 2-byte size, 2-byte type, 4 bytes of data
            mtype, n = a & 0xFFFF, a >> 16
            yield mtype, buf[pos + 4 : pos + 4 + n]
            pos += 8
            continue
        mtype, n = a, b
        if pos + 8 + n > len(buf):
            raise ValueError(f"{where}: truncated MAT element (type {mtype}, {n} bytes)")
        yield mtype, buf[pos + 8 : pos + 8 + n]
        pos += 8 + n
        if mtype != _MI_COMPRESSED:
            pos += -n % 8  # uncompressed elements are padded to 8 bytes


def _matrix(payload: bytes, endian: str, where: str) -> tuple[str, np.ndarray] | None:
    subs = list(_elements(payload, endian, where))
    if len(subs) < 4:
        return None
    flags = np.frombuffer(subs[0][1], dtype=endian + "u4")
    if int(flags[0]) & 0xFF not in _NUMERIC_CLASSES:
        return None  # cells, structs, chars, sparse: not needed here
    dims = tuple(int(d) for d in np.frombuffer(subs[1][1], dtype=endian + "i4"))
    name = subs[2][1].decode("ascii", errors="replace")
    dtype = _MI_DTYPES.get(subs[3][0])
    if dtype is None:
        raise ValueError(f"{where}: variable {name!r} has unsupported MAT data type {subs[3][0]}")
    data = np.frombuffer(subs[3][1], dtype=endian + dtype)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{where}: variable {name!r} holds {data.size} values for dims {dims}")
    return name, data.reshape(dims, order="F")


def read_mat_v5(path: str | Path) -> dict[str, np.ndarray]:
    """Numeric variables of a MATLAB level-5 MAT-file (compressed or not)."""
    path = require_file(Path(path), "MAT file")
    raw = path.read_bytes()
    if len(raw) < 128 or raw[126:128] not in (b"IM", b"MI"):
        raise ValueError(f"{path} is not a MATLAB v5 MAT-file (bad header)")
    endian = "<" if raw[126:128] == b"IM" else ">"
    out: dict[str, np.ndarray] = {}
    stack = [raw[128:]]
    while stack:
        for mtype, payload in _elements(stack.pop(), endian, str(path)):
            if mtype == _MI_COMPRESSED:
                try:
                    stack.append(zlib.decompress(payload))
                except zlib.error as exc:
                    raise ValueError(f"{path}: corrupt compressed MAT element: {exc}") from exc
            elif mtype == _MI_MATRIX:
                var = _matrix(payload, endian, str(path))
                if var is not None:
                    out[var[0]] = var[1]
    return out


def read_split_indices(path: str | Path, key: str) -> np.ndarray:
    """0-based indices: variable `key` of `splits.mat` (v5 or v7.3), or a text file (1-based)."""
    path = require_file(Path(path), "NYUv2 split file")
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            if key not in f:
                raise ValueError(f"{path} has no variable {key!r}; found {sorted(f.keys())}")
            idx = np.asarray(f[key]).ravel()
    elif path.suffix.lower() == ".mat":
        variables = read_mat_v5(path)
        if key not in variables:
            raise ValueError(f"{path} has no variable {key!r}; found {sorted(variables)}")
        idx = variables[key].ravel()
    else:
        idx = np.array(path.read_text(encoding="utf-8").split(), dtype=np.float64)
    if idx.size == 0 or np.any(idx != np.round(idx)) or idx.min() < 1:
        raise ValueError(f"{path}:{key}: expected 1-based integer indices")
    return idx.astype(np.int64) - 1


class NYUv2(BenchmarkDataset):
    """The labeled NYUv2 frames of one split, in metres, with the chosen crop."""

    name = "nyuv2"

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        split_file: str | Path | None = None,
        mat_file: str = "nyu_depth_v2_labeled.mat",
        depth_key: str = "rawDepths",
        crop: str = "depthart",
        min_depth: float = 1e-8,
        max_depth: float = 10.0,
    ) -> None:
        super().__init__()
        root = Path(root)
        self.mat_path = require_file(root if root.is_file() else root / mat_file, "NYUv2 .mat")
        folder = self.mat_path.parent
        if crop not in CROPS:
            raise ValueError(f"unknown NYUv2 crop {crop!r}; choose one of {CROPS}")
        if depth_key not in ("depths", "rawDepths"):
            raise ValueError(f"depth_key must be 'depths' or 'rawDepths', got {depth_key!r}")
        check_range(min_depth, max_depth)
        self.crop, self.depth_key = crop, depth_key
        self.min_depth, self.max_depth = min_depth, max_depth
        if not h5py.is_hdf5(self.mat_path):
            raise ValueError(f"{self.mat_path} is not a MATLAB v7.3 (HDF5) file")
        with h5py.File(self.mat_path, "r") as f:
            for key in ("images", depth_key):
                if key not in f:
                    raise ValueError(f"{self.mat_path} has no dataset {key!r}; found {sorted(f)}")
            shape = f["images"].shape
            if len(shape) != 4 or shape[1] != 3 or f[depth_key].shape != (shape[0], *shape[2:]):
                raise ValueError(
                    f"{self.mat_path}: images {shape} and {depth_key} "
                    f"{f[depth_key].shape} are not (N, 3, W, H) and (N, W, H)"
                )
            n = shape[0]
            if shape[2] * shape[3] > MAX_PIXELS:  # from the header: each frame is read whole
                raise ValueError(
                    f"{self.mat_path}: images {shape} declare frames of more than "
                    f"{MAX_PIXELS:,} pixels"
                )
        if split == "all":
            self.indices = np.arange(n)
        elif split in SPLIT_KEYS:
            path = Path(split_file) if split_file is not None else folder / "splits.mat"
            self.indices = read_split_indices(path, SPLIT_KEYS[split])
            if self.indices.max() >= n:
                raise ValueError(f"{path}: index {self.indices.max() + 1} > {n} frames in the .mat")
        else:
            raise ValueError(f"unknown NYUv2 split {split!r}; choose test, train or all")

    def _items(self) -> np.ndarray:
        return self.indices

    def _load(self, index: int) -> DepthSample:
        i = int(self.indices[index])
        with h5py.File(self.mat_path, "r") as f:
            rgb = np.asarray(f["images"][i]).transpose(2, 1, 0)  # (3, W, H) -> (H, W, 3)
            depth = np.asarray(f[self.depth_key][i], dtype=np.float32).T  # (W, H) -> (H, W)
        cx, cy = NYU_CX - 1.0, NYU_CY - 1.0  # 1-based (toolbox) -> 0-based
        keep = np.ones(depth.shape, dtype=bool)
        if self.crop == "depthart":
            b = DEPTHART_BORDER
            rgb, depth = rgb[b:-b, b:-b], depth[b:-b, b:-b]
            keep = keep[b:-b, b:-b]
            cx, cy = cx - b, cy - b
        elif self.crop == "eigen":
            keep = border_crop(depth.shape, *EIGEN_CROP)
        valid = keep & self.range_mask(depth)
        K = intrinsics(NYU_FX, NYU_FY, cx, cy)
        return make_sample(rgb, depth, valid, f"nyuv2_{i + 1:04d}", K, index_1based=i + 1)
