"""Pre- and post-processing shared by every backend (PyTorch, ONNX Runtime, TensorRT).

In: an HxWx3 uint8 RGB array of any size >= 2x2 -> a (1, 3, S, S) float32 array in [-1, 1] at the
model resolution, either stretched (the paper's protocol: aspect ratio not preserved) or letterboxed
(aspect-preserving resize and centred zero padding, i.e. mid-grey). Out: the model's (S, S) relative
depth -> exact un-padding -> resize back to HxW float32. Kept in NumPy/OpenCV so every backend
shares it byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Geometry:
    """Where the image content lies inside the S x S model input."""

    in_h: int
    in_w: int
    size: int
    top: int
    left: int
    content_h: int
    content_w: int


def validate_rgb(rgb: np.ndarray, name: str = "rgb") -> np.ndarray:
    """Check an RGB frame and return it C-contiguous. Raises naming the bad property."""
    if not isinstance(rgb, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (HxWx3 uint8), got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise TypeError(f"{name} must have dtype uint8 (0-255 RGB), got {rgb.dtype}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{name} must have shape HxWx3 (RGB), got {rgb.shape}")
    h, w = rgb.shape[:2]
    if h < 2 or w < 2:
        raise ValueError(f"{name} is {h}x{w}: images must be at least 2x2 pixels")
    return np.ascontiguousarray(rgb)


def resize_image(img: np.ndarray, w: int, h: int) -> np.ndarray:
    """Area averaging along an axis that shrinks, bilinear along one that grows. Where one axis
    shrinks and the other grows (a 33x517 frame to the model's 64x64, and back), each gets its
    own pass: INTER_AREA on a growing axis repeats pixels in blocks."""
    H, W = img.shape[:2]
    if (w < W) != (h < H) and w != W and h != H:
        img = cv2.resize(img, (w, H) if w < W else (W, h), interpolation=cv2.INTER_AREA)
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    shrink = w < W or h < H
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def preprocess(
    rgb: np.ndarray, size: int, letterbox: bool = False, name: str = "rgb"
) -> tuple[np.ndarray, Geometry]:
    """HxWx3 uint8 -> ((1, 3, size, size) float32 in [-1, 1], geometry for postprocess); a bad
    frame is refused by `validate_rgb` under `name` ("frame 3" of a batch)."""
    rgb = validate_rgb(rgb, name)
    h, w = rgb.shape[:2]
    if letterbox:
        s = size / max(h, w)
        ch, cw = max(1, round(h * s)), max(1, round(w * s))
        top, left = (size - ch) // 2, (size - cw) // 2
        canvas = np.full((size, size, 3), 127.5, dtype=np.float32)
        canvas[top : top + ch, left : left + cw] = resize_image(rgb, cw, ch)
        img = canvas
    else:
        ch, cw, top, left = size, size, 0, 0
        img = resize_image(rgb, size, size).astype(np.float32)
    x_13SS = (img / 127.5 - 1.0).transpose(2, 0, 1)[None]
    geo = Geometry(h, w, size, top, left, ch, cw)
    return np.ascontiguousarray(x_13SS, dtype=np.float32), geo


def postprocess(depth_SS: np.ndarray, geo: Geometry) -> np.ndarray:
    """(S, S) model depth -> HxW float32 at the input size (crop the letterbox exactly first)."""
    if depth_SS.shape != (geo.size, geo.size):
        raise ValueError(f"model depth must be {geo.size}x{geo.size}, got {depth_SS.shape}")
    crop = depth_SS[geo.top : geo.top + geo.content_h, geo.left : geo.left + geo.content_w]
    crop = np.ascontiguousarray(crop, dtype=np.float32)
    if crop.shape == (geo.in_h, geo.in_w):
        return crop
    return resize_image(crop, geo.in_w, geo.in_h).astype(np.float32, copy=False)
