"""sensor_msgs/CompressedImage <-> NumPy, without rclpy or image_transport.

Robots rarely record raw camera images: a 640x480 RGB stream is 9 MB/s, so bags and remote links
carry image_transport's `compressed` topics (`<camera>/image_raw/compressed`, JPEG or PNG) and
`compressedDepth` topics (`<camera>/depth/image_raw/compressedDepth`, PNG). This module reads
both the way the C++ plugins of ros-perception/image_transport_plugins write them, and writes
them the same way (for fixtures and synthetic bags):

- **compressed** (`compressed_image_transport`): `format` is "<original encoding>; jpeg
  compressed <bgr8|mono8>" or "...; png compressed <bgr8|bgr16|mono8|mono16>"; cameras that
  publish CompressedImage themselves often write just "jpeg" or "png". The data is a JPEG or PNG
  file of OpenCV's channel order (BGR), so every variant decodes the same way.
- **compressedDepth** (`compressed_depth_image_transport`): `format` is "<16UC1|32FC1>;
  compressedDepth png" (older versions: "...; compressedDepth"). The data starts with a 12-byte
  `ConfigHeader` (int32 format, float32 depthParam[2], little-endian on every platform ROS runs
  on), then a 16-bit PNG. 16UC1 is millimetres (0 = invalid). 32FC1 is quantised inverse depth:
  depth = depthParam[0] / (v - depthParam[1]), v = 0 invalid. The plugin's newer "rvl" codec is
  refused with how to get PNG instead.

Errors are `ImageDecodeError`s with a short cause, as for raw images, so the node counts them the
same way.
"""

from __future__ import annotations

import struct
from typing import Any

import cv2
import numpy as np

from depthart_core.rosio.image import DEPTH_ENCODINGS, ImageDecodeError, _to_u8

COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
TRANSPORT_SUFFIX = {"compressed": "/compressed", "compressedDepth": "/compressedDepth"}
_HEADER = struct.Struct("<iff")  # compressed_depth_image_transport's ConfigHeader, 12 bytes
_INV_DEPTH = 0  # its compressionFormat enum: INV_DEPTH (the only value it writes)


def is_compressed(msg: Any) -> bool:
    """Whether `msg` is a CompressedImage (has `format` and `data`, no `encoding`)."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def _data(msg: Any) -> np.ndarray:
    data = msg.data
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


def encoded_size(data: Any) -> tuple[int, int] | None:
    """(height, width) from a PNG's or JPEG's header without decoding it, or None when neither
    header is readable, so a huge image can be refused before it is decompressed."""
    head = data[:65536] if isinstance(data, np.ndarray) else memoryview(data)[:65536]
    buf = bytes(head)
    if buf[:8] == b"\x89PNG\r\n\x1a\n" and len(buf) >= 24 and buf[12:16] == b"IHDR":
        w, h = struct.unpack(">II", buf[16:24])
        return h, w
    if buf[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(buf):  # walk the markers to the first start-of-frame
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        (length,) = struct.unpack(">H", buf[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
            h, w = struct.unpack(">HH", buf[i + 5 : i + 9])
            return h, w
        i += 2 + length
    return None


def _decode(payload: np.ndarray, fmt: str) -> np.ndarray:
    if payload.size == 0:
        raise ImageDecodeError("empty", f"CompressedImage ({fmt!r}) has no data")
    px = cv2.imdecode(payload, cv2.IMREAD_UNCHANGED)
    if px is None:
        raise ImageDecodeError(
            "not_decodable", f"CompressedImage data ({payload.size} bytes, format {fmt!r}) is "
            "not a readable JPEG or PNG"
        )  # fmt: skip
    return px


def compressed_to_rgb(msg: Any, min_size: int = 2) -> np.ndarray:
    """A `compressed` CompressedImage -> HxWx3 uint8 RGB (16-bit PNGs scaled as mono16 is)."""
    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower():
        raise ImageDecodeError(
            "unknown_encoding", f"format {fmt!r} is a compressedDepth depth image, not a colour one"
        )
    px = _decode(_data(msg), fmt)
    h, w = px.shape[:2]
    if h < min_size or w < min_size:
        raise ImageDecodeError(
            "too_small", f"image is {h}x{w}: at least {min_size}x{min_size} pixels are needed"
        )
    px = _to_u8(px)
    if px.ndim == 2:
        return cv2.cvtColor(px, cv2.COLOR_GRAY2RGB)
    code = cv2.COLOR_BGRA2RGB if px.shape[2] == 4 else cv2.COLOR_BGR2RGB  # OpenCV's order
    return np.ascontiguousarray(cv2.cvtColor(px, code))


def compressed_depth_to_metres(
    msg: Any, min_m: float = 0.0, max_m: float = float("inf")
) -> np.ndarray:
    """A `compressedDepth` CompressedImage -> HxW float32 metres, NaN where invalid or outside
    [min_m, max_m], as `depth_image_to_metres` gives for a raw one."""
    fmt = str(msg.format)
    encoding, _, codec = (part.strip() for part in fmt.partition(";"))
    if "compressedDepth" not in codec:
        raise ImageDecodeError(
            "unknown_encoding", f"format {fmt!r} is not a compressedDepth image (expected "
            "'16UC1; compressedDepth png' or '32FC1; compressedDepth png')"
        )  # fmt: skip
    if codec.split("compressedDepth", 1)[1].strip() not in ("", "png"):
        raise ImageDecodeError(
            "unknown_encoding", f"format {fmt!r}: only the PNG codec is read; record with the "
            "publisher's parameter format:=png, or decompress with `ros2 run image_transport "
            "republish` first"
        )  # fmt: skip
    if encoding not in DEPTH_ENCODINGS:
        raise ImageDecodeError(
            "unknown_encoding", f"compressedDepth encoding {encoding!r} is not a depth encoding; "
            f"use one of {sorted(DEPTH_ENCODINGS)}"
        )  # fmt: skip
    data = _data(msg)
    if data.size <= _HEADER.size:
        raise ImageDecodeError(
            "short_data", f"compressedDepth data has {data.size} bytes, no more than its "
            f"{_HEADER.size}-byte header"
        )  # fmt: skip
    _, quant_a, quant_b = _HEADER.unpack(data[: _HEADER.size].tobytes())
    px = _decode(data[_HEADER.size :], fmt)
    if px.dtype != np.uint16 or px.ndim != 2:
        raise ImageDecodeError(
            "not_decodable", f"compressedDepth PNG holds {px.dtype} x{px.shape[2:] or 1} "
            "channels, not one 16-bit channel"
        )  # fmt: skip
    if encoding == "32FC1":
        v = px.astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = np.where(px > 0, np.float32(quant_a) / (v - np.float32(quant_b)), np.nan)
        depth = depth.astype(np.float32)
    else:
        depth = px.astype(np.float32) * np.float32(1e-3)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(depth) | (depth <= 0) | (depth < min_m) | (depth > max_m)
    depth[bad] = np.nan
    return depth


def encode_rgb(rgb: np.ndarray, codec: str = "jpeg", quality: int = 95) -> tuple[str, bytes]:
    """(format, data) of an rgb8 frame as compressed_image_transport publishes it."""
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR)
    if codec == "jpeg":
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    elif codec == "png":
        ok, buf = cv2.imencode(".png", bgr)
    else:
        raise ValueError(f"codec must be 'jpeg' or 'png', got {codec!r}")
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape} frame as {codec}")
    return f"rgb8; {codec} compressed bgr8", buf.tobytes()


def encode_depth(
    depth_m: np.ndarray,
    encoding: str = "16UC1",
    depth_max: float = 10.0,
    depth_quantization: float = 100.0,
) -> tuple[str, bytes]:
    """(format, data) of a depth map in metres (invalid: NaN or <= 0) as
    compressed_depth_image_transport's PNG codec publishes it, with its default `depth_max` and
    `depth_quantization`. Depth at or beyond `depth_max` is written as invalid, as it does."""
    depth_m = np.asarray(depth_m, dtype=np.float32)
    ok = np.isfinite(depth_m) & (depth_m > 0) & (depth_m < depth_max)
    if encoding in ("16UC1", "mono16"):
        mm = np.rint(np.where(ok, depth_m, 0.0) * 1000.0)
        px = np.where(mm <= 65535, mm, 0).astype(np.uint16)
        quant_a = quant_b = 0.0
    elif encoding == "32FC1":
        quant_a = depth_quantization * (depth_quantization + 1.0)
        quant_b = 1.0 - quant_a / depth_max
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(ok, quant_a / depth_m + quant_b, 0.0)
        px = np.clip(inv, 0, 65535).astype(np.uint16)  # C++'s float -> ushort truncation
    else:
        raise ValueError(f"depth encoding must be 16UC1, mono16 or 32FC1, got {encoding!r}")
    good, buf = cv2.imencode(".png", px)
    if not good:
        raise ValueError(f"OpenCV could not encode a {px.shape} depth map as PNG")
    header = _HEADER.pack(_INV_DEPTH, np.float32(quant_a), np.float32(quant_b))
    return f"{encoding}; compressedDepth png", header + buf.tobytes()
