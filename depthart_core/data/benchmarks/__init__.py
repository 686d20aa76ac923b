"""Benchmark dataset readers behind one registry: `get_dataset(name, root, **kw)`.

Each reader reads its dataset's published on-disk format and returns `DepthSample`s (metres, valid
mask = the dataset's valid range AND its crop AND its own masks); each module's docstring states
the format, range and crop with their source. The first four are the DepthART paper's benchmarks
(paper sec. 6), in its table's column order. `hypersim` and `synthetic` are imported only when
asked for (their modules live in `depthart_core.data` and `depthart_core.data.synthetic`).

    name       reader                                    valid range (m)   crop
    eth3d      eth3d.ETH3D(root)                         (1e-4, 72]        -
    tum        tum.TUM(root)                             (1e-2, 10]        -
    nyuv2      nyu.NYUv2(root, split="test")             (1e-8, 10]        8 px cut (or Eigen)
    ibims1     ibims.IBims1(root)                        (1e-2, 50]        - (+ invalid/transp.)
    kitti      kitti.KITTIEigen(root, split_file)        (1e-3, 80)        Garg (or Eigen)
    diode      diode.DIODE(root)                         (0.6, 350]        - (+ depth mask)
    scannet    scannet.ScanNet(root)                     (1e-3, 10)        -
    hypersim   depthart_core.data.hypersim.HypersimDataset(root, split="val")
    synthetic  depthart_core.data.synthetic.set.SyntheticSet(root)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from depthart_core.data.sample import DepthDataset

DATASETS = ("eth3d", "tum", "nyuv2", "ibims1", "kitti", "diode", "scannet", "hypersim", "synthetic")

# Column headers as the DepthART results table writes them.
DISPLAY_NAMES = {
    "eth3d": "ETH3D",
    "tum": "TUM",
    "nyuv2": "NYU",
    "ibims1": "iBims-1",
    "kitti": "KITTI",
    "diode": "DIODE",
    "scannet": "ScanNet",
    "hypersim": "Hypersim",
    "synthetic": "Synthetic",
}

ALIASES = {"nyu": "nyuv2", "ibims": "ibims1", "kitti_eigen": "kitti", "eth": "eth3d"}

_READERS = {
    "eth3d": ("depthart_core.data.benchmarks.eth3d", "ETH3D"),
    "tum": ("depthart_core.data.benchmarks.tum", "TUM"),
    "nyuv2": ("depthart_core.data.benchmarks.nyu", "NYUv2"),
    "ibims1": ("depthart_core.data.benchmarks.ibims", "IBims1"),
    "kitti": ("depthart_core.data.benchmarks.kitti", "KITTIEigen"),
    "diode": ("depthart_core.data.benchmarks.diode", "DIODE"),
    "scannet": ("depthart_core.data.benchmarks.scannet", "ScanNet"),
    "hypersim": ("depthart_core.data.hypersim", "HypersimDataset"),
    "synthetic": ("depthart_core.data.synthetic.set", "SyntheticSet"),
}
_DEFAULT_KW = {"hypersim": {"split": "val"}}


def canonical_name(name: str) -> str:
    """'iBims-1' -> 'ibims1', 'NYU' -> 'nyuv2'; raises for an unknown name."""
    key = name.strip().lower().replace("-", "").replace(" ", "")
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}")
    return key


def reader_class(name: str) -> Callable[..., DepthDataset]:
    key = canonical_name(name)
    module_name, cls_name = _READERS[key]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise RuntimeError(
                f"dataset {key!r} needs {module_name}, which this build does not include"
            ) from exc
        raise
    return getattr(module, cls_name)


def get_dataset(name: str, root: str | Path, **kw) -> DepthDataset:
    """The reader for `name` on `root`; extra keywords go to the reader (see its docstring)."""
    key = canonical_name(name)
    return reader_class(key)(root, **{**_DEFAULT_KW.get(key, {}), **kw})


__all__ = ["DATASETS", "DISPLAY_NAMES", "canonical_name", "get_dataset", "reader_class"]
