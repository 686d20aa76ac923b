r"""Depth on real photographs that ship inside installed packages (none is a training texture):
scikit-image's Middlebury "motorcycle" stereo pair (left and right views; the left view has
ground-truth disparity), matplotlib's "grace_hopper" portrait, and scikit-learn's "china" (a
pagoda behind trees, a lake and sky) and "flower" (a dahlia in front of a blurred garden). Writes
a figure with one row per photograph (RGB | each checkpoint's depth | ground truth where known)
and prints, next to the mean-depth-map, ramp and constant priors:
- for the motorcycle's left view, each checkpoint's AbsRel and delta1_bad against
  depth = 1 / disparity under the DepthART protocol (median scale), and its ordinal agreement
  (the fraction of pixel pairs whose depths differ by more than 1.25x that it orders the right
  way; 0.5 is a constant map), on all pairs and on pairs within 2 % of the image height of each
  other (where "lower is nearer" does not help: the ground-plane ramp scores 0.5 there);
- for the flower, its figure-ground score: the fraction of (flower pixel, other pixel) pairs in
  which the flower is nearer (0.5 is a constant map). The flower's pixels are its orange ones
  (`flower_mask`: hue 5-25 of OpenCV's 0-180, saturation > 80, value > 120, in connected parts
  of at least 1 % of the image), which the figure's last panel shows.
A model name is its checkpoint's parent folder when the file is called checkpoint.safetensors.

    git show daeb85f:checkpoints/depthart_tiny.safetensors > runs/prev_default.safetensors
    python training/real_photos.py runs/prev_default.safetensors \
        checkpoints/depthart_tiny_cnn.safetensors --out docs/real_photos.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np


def photos() -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, HxWx3 uint8 RGB, ground-truth depth or None) of each bundled photograph."""
    import matplotlib
    import skimage
    import sklearn

    sk = Path(skimage.__path__[0]) / "data"
    mpl = Path(matplotlib.get_data_path()) / "sample_data"
    skl = Path(sklearn.__path__[0]) / "datasets" / "images"

    def rgb(path: Path) -> np.ndarray:
        return read_color(path)[:, :, ::-1].copy()

    disp = np.load(sk / "motorcycle_disp.npz")["arr_0"]
    valid = np.isfinite(disp) & (disp > 0)
    depth = np.where(valid, 1.0 / np.where(valid, disp, 1.0), 0.0).astype(np.float32)
    return [
        ("motorcycle (left)", rgb(sk / "motorcycle_left.png"), depth),
        ("motorcycle (right)", rgb(sk / "motorcycle_right.png"), None),
        ("grace_hopper", rgb(mpl / "grace_hopper.jpg"), None),
        ("china", rgb(skl / "china.jpg"), None),
        ("flower", rgb(skl / "flower.jpg"), None),
    ]


def read_color(path: Path) -> np.ndarray:
    """HxWx3 uint8 BGR of the image file `path` (`cv2.IMREAD_COLOR`). The bytes are read here
    and decoded by `cv2.imdecode`: `cv2.imread` crashes the process on a path that is not UTF-8
    (an environment under a Latin-1 folder name)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FileNotFoundError(
            f"bundled photograph not readable: {path} ({exc.strerror})"
        ) from exc
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise FileNotFoundError(f"bundled photograph not readable: {path}")
    return img


def write_image(path: str | Path, bgr: np.ndarray) -> None:
    """Write `bgr` to `path` in the format its suffix names (as `cv2.imwrite` would), encoded by
    `cv2.imencode` and written by Python: `cv2.imwrite` crashes on a path that is not UTF-8."""
    path = Path(path)
    try:
        ok, buf = cv2.imencode(path.suffix, bgr)
    except cv2.error:
        ok = False
    if not ok:
        raise ValueError(f"cannot write {path}: no image format for the suffix {path.suffix!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.tobytes())


def flower_mask(rgb: np.ndarray) -> np.ndarray:
    """HxW bool: the orange petals of scikit-learn's "flower" (its only object in focus)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    orange = ((h >= 5) & (h <= 25) & (s > 80) & (v > 120)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(orange, connectivity=8)
    big = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 0.01 * orange.size]
    return np.isin(labels, big)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "checkpoints", nargs="+", help="checkpoint files; PATH+flip runs that one flip-averaged"
    )
    p.add_argument("--out", default="real_photos.png")
    p.add_argument("--flip-average", action="store_true", help="run every checkpoint flip-averaged")
    args = p.parse_args(argv)

    from depthart_core.colormap import colorize
    from depthart_core.evaluation.metrics import figure_ground, ordinal_agreement
    from depthart_core.evaluation.protocols import evaluate
    from depthart_core.evaluation.runner import (
        constant_baseline,
        mean_depth_baseline,
        ramp_baseline,
    )
    from depthart_core.runtime import get_backend

    models = []
    for spec in args.checkpoints:  # PATH, or PATH+flip for that one flip-averaged
        path, flip = spec.removesuffix("+flip"), spec.endswith("+flip") or args.flip_average
        label = _label(path) + ("+flip" if flip else "")
        models.append((label, get_backend("torch", path, flip_average=flip).predict))
    priors = [
        ("mean-depth prior", mean_depth_baseline),
        ("ramp (floor only)", ramp_baseline),
        ("constant", constant_baseline),
    ]
    rows = []
    for name, img, gt in photos():
        preds = [predict(img) for _, predict in models]
        panels = [img] + [colorize(_norm(d)) for d in preds]
        if gt is not None:
            valid = gt > 0
            panels.append(colorize(_norm(np.where(valid, gt, np.nan)), valid=valid))
            for label, predict in models + priors:
                pred = predict(img)
                m = evaluate(pred, gt, valid, protocol="depthart")
                order = ordinal_agreement(pred, gt, valid)
                gap = max(1, gt.shape[0] // 50)  # rows within 2 % of the height
                in_rows = ordinal_agreement(pred, gt, valid, max_row_gap=gap)
                print(
                    f"{name}: {label}: AbsRel {m['abs_rel']:.3f}  delta1_bad {m['delta1_bad']:.3f}"
                    f"  ordinal {order:.3f}  ordinal within rows {in_rows:.3f}"
                )
        if name == "flower":
            figure = flower_mask(img)
            shown = img.copy()
            shown[~figure] //= 4
            panels.append(shown)
            for label, predict in models + priors:
                score = figure_ground(predict(img), figure)
                print(f"{name}: {label}: figure-ground {score:.3f}")
        h = 180
        panels = [cv2.resize(x, (int(x.shape[1] * h / x.shape[0]), h)) for x in panels]
        row = np.concatenate(panels, axis=1)
        rows.append(row)
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    fig = np.concatenate(rows, axis=0)
    write_image(args.out, fig[:, :, ::-1])
    labels = " | ".join(
        ["RGB"] + [n for n, _ in models] + ["ground truth (1/disparity) or the flower's mask"]
    )
    print(f"wrote {args.out}: {labels}")
    return 0


def _label(path: str) -> str:
    p = Path(path)
    return p.parent.name if p.stem == "checkpoint" else p.stem


def _norm(d: np.ndarray) -> np.ndarray:
    lo, hi = np.nanpercentile(d, 2), np.nanpercentile(d, 98)
    return np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1)


if __name__ == "__main__":
    sys.exit(main())
