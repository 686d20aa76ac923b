"""Perceptual colormaps for depth visualisation, with no matplotlib at runtime.

Each map is stored as every 5th entry (52 of 256) of its 8-bit lookup table and expanded to 256
entries by linear interpolation, which reproduces the full table to within 1/255 per channel.
Sources: Turbo (Mikhailov, Google AI Blog 2019, Apache-2.0) and viridis / inferno / magma (van der
Walt & Smith, matplotlib `_cm_listed.py`, CC0), sampled from matplotlib's 256-entry tables.

`colorize` returns RGB (for PNGs and the CLI); `colorize_bgr` returns the same image in the `bgr8`
order a ROS `depth/colored` topic carries. Near is drawn with the bright/warm end of the map.
"""

from __future__ import annotations

from functools import cache

import numpy as np

# fmt: off
_ANCHORS_RGB8: dict[str, tuple[tuple[int, int, int], ...]] = {
    "turbo": (
        (48, 18, 59), (54, 33, 95), (59, 47, 128), (63, 62, 156), (66, 75, 181), (69, 89, 203),
        (70, 102, 221), (71, 115, 235), (70, 128, 246), (69, 140, 253), (64, 153, 255),
        (56, 165, 251), (47, 178, 244), (39, 190, 233), (31, 201, 221), (26, 212, 208),
        (24, 221, 194), (26, 228, 182), (34, 235, 170), (47, 241, 155), (63, 246, 138),
        (82, 250, 122), (101, 253, 105), (121, 254, 89), (139, 255, 75), (156, 254, 64),
        (169, 251, 57), (183, 247, 53), (195, 241, 52), (208, 234, 52), (219, 226, 54),
        (229, 217, 56), (238, 207, 58), (245, 197, 58), (250, 186, 57), (253, 174, 53),
        (254, 161, 48), (254, 147, 42), (252, 132, 35), (249, 117, 29), (244, 102, 23),
        (239, 88, 17), (232, 75, 12), (225, 65, 9), (216, 55, 6), (206, 45, 4), (195, 37, 3),
        (183, 29, 2), (169, 22, 1), (155, 15, 1), (139, 9, 2), (122, 4, 3),
    ),
    "viridis": (
        (68, 1, 84), (70, 8, 92), (71, 16, 99), (72, 23, 105), (72, 29, 111), (72, 36, 117),
        (71, 42, 122), (70, 48, 126), (69, 55, 129), (67, 61, 132), (65, 66, 135), (63, 72, 137),
        (61, 78, 138), (58, 83, 139), (56, 89, 140), (53, 94, 141), (51, 99, 141), (49, 104, 142),
        (46, 109, 142), (44, 113, 142), (42, 118, 142), (41, 123, 142), (39, 128, 142),
        (37, 132, 142), (35, 137, 142), (33, 142, 141), (32, 146, 140), (31, 151, 139),
        (30, 156, 137), (31, 161, 136), (33, 165, 133), (36, 170, 131), (40, 174, 128),
        (46, 179, 124), (53, 183, 121), (61, 188, 116), (70, 192, 111), (80, 196, 106),
        (90, 200, 100), (101, 203, 94), (112, 207, 87), (124, 210, 80), (137, 213, 72),
        (149, 216, 64), (162, 218, 55), (176, 221, 47), (189, 223, 38), (202, 225, 31),
        (216, 226, 25), (229, 228, 25), (241, 229, 29), (253, 231, 37),
    ),
    "inferno": (
        (0, 0, 4), (2, 2, 12), (5, 4, 23), (10, 7, 34), (16, 9, 45), (22, 11, 57), (30, 12, 69),
        (38, 12, 81), (47, 10, 91), (56, 9, 98), (64, 10, 103), (73, 11, 106), (81, 14, 108),
        (89, 16, 110), (97, 19, 110), (105, 22, 110), (113, 25, 110), (120, 28, 109),
        (128, 31, 108), (136, 34, 106), (144, 37, 104), (152, 39, 102), (160, 42, 99),
        (168, 46, 95), (176, 49, 91), (183, 53, 87), (191, 57, 82), (198, 61, 77), (204, 66, 72),
        (211, 71, 67), (217, 77, 61), (223, 83, 55), (228, 90, 49), (233, 97, 43), (237, 105, 37),
        (241, 113, 31), (244, 121, 24), (247, 130, 18), (249, 139, 11), (250, 148, 7),
        (251, 157, 7), (252, 166, 12), (252, 176, 20), (251, 186, 31), (250, 196, 42),
        (248, 205, 55), (246, 215, 70), (244, 225, 86), (242, 234, 105), (242, 242, 125),
        (245, 249, 146), (252, 255, 164),
    ),
    "magma": (
        (0, 0, 4), (2, 2, 11), (5, 4, 22), (9, 7, 32), (14, 11, 43), (20, 14, 54), (26, 16, 66),
        (33, 17, 78), (41, 17, 90), (49, 17, 101), (57, 15, 110), (66, 15, 117), (74, 16, 121),
        (82, 19, 124), (90, 22, 126), (98, 25, 128), (106, 28, 129), (114, 31, 129),
        (121, 34, 130), (129, 37, 129), (137, 40, 129), (145, 43, 129), (153, 45, 128),
        (161, 48, 126), (170, 51, 125), (178, 53, 123), (186, 56, 120), (194, 59, 117),
        (202, 62, 114), (210, 66, 111), (217, 70, 107), (224, 76, 103), (231, 82, 99),
        (236, 88, 96), (241, 96, 93), (244, 105, 92), (247, 114, 92), (249, 123, 93),
        (251, 133, 96), (252, 142, 100), (253, 152, 105), (254, 161, 110), (254, 170, 116),
        (254, 180, 123), (254, 189, 130), (254, 198, 138), (254, 207, 146), (254, 216, 154),
        (253, 226, 163), (253, 235, 172), (252, 244, 182), (252, 253, 191),
    ),
}
# fmt: on
_ANCHOR_STEP = 5  # anchors sit at LUT indices 0, 5, ..., 255

COLORMAPS: tuple[str, ...] = (*_ANCHORS_RGB8, "gray")


@cache
def colormap_lut(name: str) -> np.ndarray:
    """The (256, 3) uint8 RGB lookup table of a colormap (read-only)."""
    if name == "gray":
        lut = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    elif name in _ANCHORS_RGB8:
        anchors = np.asarray(_ANCHORS_RGB8[name], dtype=np.float64)
        idx = np.arange(len(anchors)) * _ANCHOR_STEP
        assert idx[-1] == 255, f"{name}: anchors must end at LUT index 255"
        grid = np.arange(256)
        lut = np.stack([np.interp(grid, idx, anchors[:, c]) for c in range(3)], axis=1)
        lut = np.rint(lut).astype(np.uint8)
    else:
        raise ValueError(f"unknown colormap {name!r}; available: {list(COLORMAPS)}")
    lut.setflags(write=False)
    return lut


def depth_range(
    depth: np.ndarray, valid: np.ndarray, percentiles: tuple[float, float] = (2.0, 98.0)
) -> tuple[float, float]:
    """Robust (lo, hi) of the valid depths: the given percentiles, on at most ~65k samples."""
    values = depth[valid]
    if values.size == 0:
        return 0.0, 1.0
    stride = max(1, values.size // 65536)
    lo, hi = np.percentile(values[::stride], percentiles)
    return float(lo), float(hi)


def colorize(
    depth: np.ndarray,
    valid: np.ndarray | None = None,
    cmap: str = "turbo",
    lo: float | None = None,
    hi: float | None = None,
    near_bright: bool = True,
    invalid_rgb: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """HxW depth -> HxWx3 uint8 RGB. Pixels that are non-finite or outside `valid` get
    `invalid_rgb`. The range defaults to the 2nd-98th percentile of the valid depths."""
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be HxW, got shape {depth.shape}")
    lut = colormap_lut(cmap)
    ok = np.isfinite(depth)
    if valid is not None:
        if valid.shape != depth.shape:
            raise ValueError(f"valid mask {valid.shape} does not match depth {depth.shape}")
        ok &= valid.astype(bool)
    if lo is None or hi is None:
        auto_lo, auto_hi = depth_range(depth, ok)
        lo = auto_lo if lo is None else lo
        hi = auto_hi if hi is None else hi
    span = hi - lo if hi > lo else 1.0
    t = np.where(ok, depth, lo).astype(np.float32)
    t = np.clip((t - np.float32(lo)) / np.float32(span), 0.0, 1.0)
    if near_bright:
        t = 1.0 - t
    rgb = lut[np.rint(t * 255).astype(np.uint8)]
    rgb[~ok] = invalid_rgb
    return rgb


def colorize_bgr(depth: np.ndarray, valid: np.ndarray | None = None, **kwargs) -> np.ndarray:
    """`colorize` in OpenCV/ROS `bgr8` channel order (C-contiguous)."""
    return np.ascontiguousarray(colorize(depth, valid, **kwargs)[..., ::-1])
