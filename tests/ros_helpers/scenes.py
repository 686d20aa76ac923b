"""Synthetic camera frames in every input encoding the node accepts, made without the node's codec.

The encoders here (RGB -> BGR/RGBA/mono/UYVY/YUYV/Bayer) are written independently of
`depthart_core.rosio.image`, so a test that decodes them with the node and with rosbags-image
checks the codec instead of repeating it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

H, W = 480, 640
K = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
P = [525.0, 0.0, 319.5, 0.0, 0.0, 525.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]


def scene_rgb(h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    """A smooth, textured HxWx3 uint8 scene: gradient floor, a few boxes and discs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([60 + 120 * yy / h, 80 + 100 * xx / w, 200 - 120 * yy / h], axis=-1)
    for _ in range(6):
        y0, x0 = rng.integers(0, h - h // 4), rng.integers(0, w - w // 4)
        img[y0 : y0 + h // 5, x0 : x0 + w // 6] = rng.integers(0, 256, 3)
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(h // 20, h // 6)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(0, 256, 3)
    img += 12 * np.sin(xx / 7.0)[..., None] * np.cos(yy / 11.0)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _uyvy(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range UYVY, U and V averaged over each horizontal pixel pair."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    out = np.empty(rgb.shape[:2] + (2,), np.uint8)
    out[..., 1] = np.clip(np.rint(y), 0, 255)
    out[:, 0::2, 0] = np.clip(np.rint((u[:, 0::2] + u[:, 1::2]) / 2), 0, 255)
    out[:, 1::2, 0] = np.clip(np.rint((v[:, 0::2] + v[:, 1::2]) / 2), 0, 255)
    return out


def encode(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """RGB -> the pixel array a camera would send in `encoding` (native byte order)."""
    h, w = rgb.shape[:2]
    if encoding == "rgb8":
        return rgb.copy()
    if encoding in ("bgr8", "8UC3"):
        return np.ascontiguousarray(rgb[..., ::-1])
    alpha = np.full((h, w, 1), 255, np.uint8)
    if encoding == "rgba8":
        return np.concatenate([rgb, alpha], axis=-1)
    if encoding == "bgra8":
        return np.concatenate([rgb[..., ::-1], alpha], axis=-1)
    if encoding == "mono8":
        return np.clip(np.rint(_luma(rgb)), 0, 255).astype(np.uint8)
    if encoding == "mono16":
        return (np.clip(np.rint(_luma(rgb)), 0, 255).astype(np.uint16) * 257).astype(np.uint16)
    if encoding == "yuv422":
        return _uyvy(rgb)
    if encoding == "yuv422_yuy2":
        pairs = _uyvy(rgb).reshape(h, w // 2, 4)  # U Y0 V Y1
        return np.ascontiguousarray(pairs[..., [1, 0, 3, 2]]).reshape(h, w, 2)  # Y0 U Y1 V
    if encoding == "bayer_rggb8":
        out = np.empty((h, w), np.uint8)
        out[0::2, 0::2] = rgb[0::2, 0::2, 0]
        out[0::2, 1::2] = rgb[0::2, 1::2, 1]
        out[1::2, 0::2] = rgb[1::2, 0::2, 1]
        out[1::2, 1::2] = rgb[1::2, 1::2, 2]
        return out
    raise ValueError(f"no test encoder for {encoding!r}")


@dataclass(frozen=True)
class Variant:
    """One way a camera might send a frame: encoding plus row padding and byte order."""

    name: str
    encoding: str
    pad: int = 0
    bigendian: bool = False


VARIANTS: tuple[Variant, ...] = (
    *(Variant(e, e) for e in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "8UC3")),
    Variant("yuv422", "yuv422"),
    Variant("yuv422_yuy2", "yuv422_yuy2"),
    Variant("bayer_rggb8", "bayer_rggb8"),
    Variant("rgb8_padded", "rgb8", pad=64),
    Variant("mono16_bigendian", "mono16", bigendian=True),
)


def wire_fields(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> dict:
    """sensor_msgs/Image fields (height, width, encoding, is_bigendian, step, data bytes)."""
    h = pixels.shape[0]
    if bigendian and pixels.dtype.itemsize > 1:
        pixels = pixels.astype(pixels.dtype.newbyteorder(">"))
    rows = np.ascontiguousarray(pixels).reshape(h, -1).view(np.uint8)
    if pad:
        rows = np.concatenate([rows, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    return {
        "height": h,
        "width": pixels.shape[1],
        "encoding": encoding,
        "is_bigendian": int(bigendian or (sys.byteorder == "big" and pixels.dtype.itemsize > 1)),
        "step": rows.shape[1],
        "data": rows.tobytes(),
    }
