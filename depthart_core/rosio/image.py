"""sensor_msgs/Image <-> NumPy, without rclpy.

Works on any object with the fields of `sensor_msgs/msg/Image` (height, width, encoding, step,
is_bigendian, data): rclpy messages, `rosbags` messages, or a `types.SimpleNamespace`. Encoding
names follow `sensor_msgs/image_encodings.hpp`; rows are read through `step` (padding allowed) and
multi-byte pixels honour `is_bigendian`. Depth follows REP 117/118: 32FC1 in metres with
non-finite = invalid, 16UC1 in millimetres with 0 = invalid.

Colour conventions are the ones cv_bridge and rosbags-image use: `yuv422` is UYVY and
`yuv422_yuy2` is YUYV (BT.601, OpenCV's `COLOR_YUV2RGB_*`); Bayer names give the top-left 2x2
pattern, which OpenCV names by the pattern one pixel down-right (`bayer_rggb8` -> `BayerBG`).
`8UC3` carries OpenCV's BGR order.
"""

from __future__ import annotations

import array
import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


class ImageDecodeError(ValueError):
    """A message that cannot be read. `cause` is a short stable key for counting in diagnostics."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class EncodingInfo:
    dtype: np.dtype
    channels: int

    @property
    def bytes_per_pixel(self) -> int:
        return self.dtype.itemsize * self.channels


def _enc(dtype: str, channels: int) -> EncodingInfo:
    return EncodingInfo(np.dtype(dtype), channels)


_BAYER_TO_CV = {  # ROS name -> OpenCV demosaic code (OpenCV names the pattern at pixel (1, 1))
    "rggb": cv2.COLOR_BayerBG2RGB,
    "bggr": cv2.COLOR_BayerRG2RGB,
    "gbrg": cv2.COLOR_BayerGR2RGB,
    "grbg": cv2.COLOR_BayerGB2RGB,
}

ENCODINGS: dict[str, EncodingInfo] = {
    "rgb8": _enc("u1", 3),
    "bgr8": _enc("u1", 3),
    "rgba8": _enc("u1", 4),
    "bgra8": _enc("u1", 4),
    "mono8": _enc("u1", 1),
    "mono16": _enc("u2", 1),
    "8UC1": _enc("u1", 1),
    "8UC3": _enc("u1", 3),
    "16UC1": _enc("u2", 1),
    "32FC1": _enc("f4", 1),
    "yuv422": _enc("u1", 2),
    "uyvy": _enc("u1", 2),
    "yuv422_yuy2": _enc("u1", 2),
    "yuyv": _enc("u1", 2),
    **{f"bayer_{p}8": _enc("u1", 1) for p in _BAYER_TO_CV},
    **{f"bayer_{p}16": _enc("u2", 1) for p in _BAYER_TO_CV},
}

# What `image_to_rgb` turns into an RGB frame, and what `depth_image_to_metres` reads.
RGB_ENCODINGS = frozenset(
    ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "8UC3", "yuv422", "uyvy"]
    + ["yuv422_yuy2", "yuyv"]
    + [e for e in ENCODINGS if e.startswith("bayer_")]
)
DEPTH_ENCODINGS = frozenset(["32FC1", "16UC1", "mono16"])
_YUV_TO_CV = {
    "yuv422": cv2.COLOR_YUV2RGB_UYVY,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2,
    "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}


def _data_len(data: Any) -> int:
    return data.nbytes if isinstance(data, np.ndarray) else len(data)


def _as_buffer(data: Any) -> Any:
    """bytes, array.array('B') and uint8 ndarrays pass through; a list of ints is converted."""
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return data


def check_image(
    msg: Any, accepted: frozenset[str] = RGB_ENCODINGS, min_size: int = 2
) -> EncodingInfo:
    """Validate the header fields of an image message in O(1). Raises `ImageDecodeError`."""
    h, w, enc, step = int(msg.height), int(msg.width), str(msg.encoding), int(msg.step)
    if h == 0 or w == 0:
        raise ImageDecodeError("empty", f"image is {h}x{w} ({enc!r}): no pixels")
    if enc not in accepted:
        raise ImageDecodeError(
            "unknown_encoding", f"encoding {enc!r} is not supported; use one of {sorted(accepted)}"
        )
    if h < min_size or w < min_size:
        raise ImageDecodeError(
            "too_small", f"image is {h}x{w}: at least {min_size}x{min_size} pixels are needed"
        )
    info = ENCODINGS[enc]
    row = w * info.bytes_per_pixel
    if step < row:
        raise ImageDecodeError(
            "bad_step", f"step {step} < width {w} x {info.bytes_per_pixel} bytes/pixel ({enc!r})"
        )
    n = _data_len(msg.data)
    if n < h * step:
        raise ImageDecodeError(
            "short_data", f"data has {n} bytes, fewer than height {h} x step {step} = {h * step}"
        )
    if enc in _YUV_TO_CV and w % 2:
        raise ImageDecodeError("odd_width", f"{enc!r} packs 2 pixels per 4 bytes; width {w} is odd")
    return info


def image_to_array(msg: Any, accepted: frozenset[str] = frozenset(ENCODINGS)) -> np.ndarray:
    """The pixels as HxW or HxWxC in native byte order (a read-only view where possible).

    Packed YUV 4:2:2 comes back as HxWx2 bytes, as OpenCV expects it.
    """
    info = check_image(msg, accepted, min_size=1)
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    buf = np.frombuffer(_as_buffer(msg.data), dtype=np.uint8, count=h * step)
    rows_HS = buf.reshape(h, step)[:, : w * info.bytes_per_pixel]
    px = rows_HS.view(info.dtype.newbyteorder(">" if msg.is_bigendian else "<"))
    px = px.reshape((h, w, info.channels) if info.channels > 1 else (h, w))
    if px.dtype.byteorder not in ("=", "|") and px.dtype.itemsize > 1:
        px = px.astype(info.dtype.newbyteorder("="))  # swap to native
    return px


def _to_u8(px: np.ndarray) -> np.ndarray:
    """uint16 full range -> uint8 (v * 255 / 65535, rounded), as cv_bridge scales mono16."""
    if px.dtype == np.uint8:
        return px
    return ((px.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def image_to_rgb(msg: Any) -> np.ndarray:
    """Any supported colour/mono/YUV/Bayer image message -> HxWx3 uint8 RGB (a fresh array)."""
    enc = str(msg.encoding)
    check_image(msg, RGB_ENCODINGS, min_size=2)
    px = image_to_array(msg, RGB_ENCODINGS)
    if enc == "rgb8":
        rgb = px
    elif enc in ("bgr8", "8UC3"):
        rgb = px[..., ::-1]
    elif enc == "rgba8":
        rgb = px[..., :3]
    elif enc == "bgra8":
        rgb = px[..., 2::-1]
    elif enc in ("mono8", "mono16"):
        rgb = cv2.cvtColor(np.ascontiguousarray(_to_u8(px)), cv2.COLOR_GRAY2RGB)
    elif enc in _YUV_TO_CV:
        rgb = cv2.cvtColor(np.ascontiguousarray(px), _YUV_TO_CV[enc])
    else:  # bayer_<pattern><bits>
        code = _BAYER_TO_CV[enc[len("bayer_") : len("bayer_") + 4]]
        rgb = _to_u8(cv2.cvtColor(np.ascontiguousarray(px), code))
    return np.array(rgb, dtype=np.uint8, order="C", copy=True)


def depth_image_to_metres(msg: Any, min_m: float = 0.0, max_m: float = float("inf")) -> np.ndarray:
    """32FC1 (m) or 16UC1/mono16 (mm) depth -> HxW float32 metres, NaN where invalid or out of
    [min_m, max_m] (0 and non-finite values are invalid, REP 117)."""
    px = image_to_array(msg, DEPTH_ENCODINGS)
    if str(msg.encoding) == "32FC1":
        depth = px.astype(np.float32, copy=True)
    else:
        depth = px.astype(np.float32) * np.float32(1e-3)
    return invalid_to_nan(depth, min_m, max_m)


def invalid_to_nan(depth: np.ndarray, min_m: float = 0.0, max_m: float = np.inf) -> np.ndarray:
    """REP 117's reading of a float32 depth map in metres, in place: NaN where non-finite, <= 0
    (a 0 "no return" included) or outside [min_m, max_m]."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(depth) | (depth <= 0) | (depth < min_m) | (depth > max_m)
    depth[bad] = np.nan
    return depth


def rep117_depth(depth: np.ndarray, min_depth: float = 0.0, max_depth: float = 0.0) -> np.ndarray:
    """Final 32FC1 values: NaN where invalid (NaN, or finite and <= 0), -inf below `min_depth`
    and +inf above `max_depth` (each check off when its bound is 0); an incoming -inf or +inf is
    kept (REP 117's too close and too far: a metric fit's pixels at or behind the camera,
    `metric_scale.ScaleFit.apply`). Returns a new float32 array."""
    out = np.array(depth, dtype=np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        bad = np.isnan(out) | (np.isfinite(out) & (out <= 0))
        if min_depth > 0:
            out[out < min_depth] = -np.inf
        if max_depth > 0:
            out[out > max_depth] = np.inf
    out[bad] = np.nan
    return out


def set_image(msg: Any, pixels: np.ndarray, encoding: str) -> Any:
    """Fill an image message from HxW / HxWxC pixels (tightly packed, native byte order)."""
    info = ENCODINGS.get(encoding)
    if info is None:
        raise ValueError(f"cannot write encoding {encoding!r}; known: {sorted(ENCODINGS)}")
    want_ndim = 2 if info.channels == 1 else 3
    if (
        pixels.dtype != info.dtype
        or pixels.ndim != want_ndim
        or (want_ndim == 3 and pixels.shape[2] != info.channels)
    ):
        raise ValueError(
            f"{encoding!r} needs {info.channels}-channel {info.dtype} pixels, "
            f"got {pixels.dtype} with shape {pixels.shape}"
        )
    pixels = np.ascontiguousarray(pixels)
    data = array.array("B")
    data.frombytes(pixels.reshape(-1).view(np.uint8))
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = int(sys.byteorder == "big" and info.dtype.itemsize > 1)
    msg.step = int(pixels.shape[1] * info.bytes_per_pixel)
    msg.data = data
    return msg


def scaled_intrinsics(
    k: Any, p: Any, in_size: tuple[int, int], out_size: tuple[int, int]
) -> tuple[list[float], list[float]]:
    """Rescale a CameraInfo K (3x3) and P (3x4) from in_size to out_size (both (width, height)).

    Pixel centres are mapped the way `cv2.resize` maps them: u' = (u + 0.5) * s - 0.5.
    """
    (w0, h0), (w1, h1) = in_size, out_size
    if min(w0, h0, w1, h1) <= 0:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    sx, sy = w1 / w0, h1 / h0
    K = np.asarray(k, dtype=np.float64).reshape(3, 3).copy()
    P = np.asarray(p, dtype=np.float64).reshape(3, 4).copy()
    for M in (K, P):
        M[0, 0], M[0, 1], M[1, 1] = M[0, 0] * sx, M[0, 1] * sx, M[1, 1] * sy
        M[0, 2] = (M[0, 2] + 0.5) * sx - 0.5
        M[1, 2] = (M[1, 2] + 0.5) * sy - 0.5
    P[0, 3] *= sx  # Tx = -fx' * B
    P[1, 3] *= sy
    return K.reshape(-1).tolist(), P.reshape(-1).tolist()


def image_projection(info: Any, shape: tuple[int, ...]) -> tuple[list[float], list[float]]:
    """K (3x3) and P (3x4), flat, for the pixels of an image of `shape` (h, w, ...) that a
    CameraInfo `info` describes.

    A CameraInfo keeps the full-resolution calibration and states a region of interest and a
    binning separately (REP 104); consumers adjust for them, as image_geometry's
    PinholeCameraModel does: the ROI's offset is subtracted from the principal point, then the
    x row is divided by binning_x and the y row by binning_y. A size that still differs from the
    image's (a calibration for another resolution) is rescaled with `scaled_intrinsics`. A P of
    zeros (a driver that fills only K) is taken as [K | 0].
    """
    K = camera_info_field(info, "k").reshape(3, 3).copy()
    P = camera_info_field(info, "p").reshape(3, 4).copy()
    if not P.any():
        P[:, :3] = K
    w0, h0 = int(info.width), int(info.height)
    roi = info.roi
    if roi.width and roi.height:
        for M in (K, P):
            M[0, 2] -= roi.x_offset
            M[1, 2] -= roi.y_offset
        w0, h0 = int(roi.width), int(roi.height)
    bx, by = max(int(info.binning_x), 1), max(int(info.binning_y), 1)
    if bx > 1 or by > 1:
        K[0], P[0] = K[0] / bx, P[0] / bx
        K[1], P[1] = K[1] / by, P[1] / by
        w0, h0 = w0 // bx, h0 // by
    h, w = int(shape[0]), int(shape[1])
    if w0 > 0 and h0 > 0 and (w0, h0) != (w, h):
        return scaled_intrinsics(K, P, (w0, h0), (w, h))
    return K.reshape(-1).tolist(), P.reshape(-1).tolist()


def described_size(info: Any) -> tuple[int, int]:
    """(width, height) of the image a CameraInfo describes: its size, or its ROI's, divided by
    its binning (as `image_projection` reduces it); (0, 0) for an uncalibrated size."""
    w0, h0 = int(info.width), int(info.height)
    if info.roi.width and info.roi.height:
        w0, h0 = int(info.roi.width), int(info.roi.height)
    return w0 // max(int(info.binning_x), 1), h0 // max(int(info.binning_y), 1)


def camera_info_field(info: Any, name: str) -> np.ndarray:
    """CameraInfo matrix `name` ("k", "p", "d", "r") of a ROS 2 (lower case) or ROS 1 (upper
    case: a ROS 1 bag read by rosbags) message, as float64."""
    value = getattr(info, name, None)
    return np.asarray(getattr(info, name.upper()) if value is None else value, dtype=np.float64)
