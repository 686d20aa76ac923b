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
  depth = depthParam[0] / (v - depthParam[1]), v = 0 invalid. The plugin's "rvl" codec ("...;
  compressedDepth rvl") carries the same 16-bit values as uint32 width and height, then Wilson's
  RVL stream (run lengths of zeros and non-zeros, zigzag deltas in 3-bit variable-length nibbles,
  packed eight to a little-endian 32-bit word from its top nibble down).

Errors are `ImageDecodeError`s with a short cause, as for raw images, so the node counts them the
same way.
"""

from __future__ import annotations

import struct
from typing import Any

import cv2
import numpy as np

from depthart_core.image_header import png_jpeg_size
from depthart_core.rosio.image import (
    _BAYER_TO_CV,
    DEPTH_ENCODINGS,
    ImageDecodeError,
    _to_u8,
    invalid_to_nan,
)

COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
TRANSPORT_SUFFIX = {"compressed": "/compressed", "compressedDepth": "/compressedDepth"}
_HEADER = struct.Struct("<iff")  # compressed_depth_image_transport's ConfigHeader, 12 bytes
_INV_DEPTH = 0  # its compressionFormat enum: INV_DEPTH (the only value it writes)
_MAX_PIXELS = 1 << 30  # OpenCV's imdecode limit (CV_IO_MAX_IMAGE_PIXELS), for RVL too
DEPTH_MAX_PIXELS = 1 << 26  # no depth sensor comes near; a header claiming more is not decoded
# (height, width) from a PNG's or JPEG's header without decoding it (None when neither header is
# readable), so a huge image can be refused before it is decompressed: the check that predict
# and the dataset readers make, under the name the node calls
encoded_size = png_jpeg_size


def is_compressed(msg: Any) -> bool:
    """Whether `msg` is a CompressedImage (has `format` and `data`, no `encoding`)."""
    return hasattr(msg, "format") and not hasattr(msg, "encoding")


def _data(msg: Any) -> np.ndarray:
    data = msg.data
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)


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


def _file_holds_rgb(fmt: str) -> bool:
    """Whether a `compressed` frame's file holds its colours in RGB order. The plugin writes
    "ENC; CODEC compressed TARGET": the file holds TARGET's order (bgr8 for JPEG and PNG, so
    BGR); its TIFF codec writes no TARGET and the camera's buffer as it is, so ENC's order (an
    rgb8 camera: RGB). A publisher that encoded an rgb8 buffer unconverted says "compressed rgb8".
    A format without ";" (older publishers: "jpeg") is BGR, as OpenCV writes files."""
    enc, _, rest = fmt.lower().partition(";")
    if not rest:
        return False
    target = rest.split("compressed", 1)[1].strip() if "compressed" in rest else ""
    return (target or enc.strip()).startswith("rgb")


def compressed_to_rgb(msg: Any, min_size: int = 2, max_pixels: int | None = None) -> np.ndarray:
    """A `compressed` CompressedImage -> HxWx3 uint8 RGB (16-bit PNGs scaled as mono16 is).
    `max_pixels` refuses a larger frame (cause "too_large") whose header `encoded_size` could
    not read beforehand."""
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
    if max_pixels is not None and h * w > max_pixels:
        raise ImageDecodeError("too_large", f"image is {w}x{h}: {h * w} pixels > {max_pixels}")
    if px.dtype not in (np.uint8, np.uint16):  # a float or signed TIFF: no colour scale known
        raise ImageDecodeError(
            "unknown_encoding", f"CompressedImage ({fmt!r}) decodes to {px.dtype} pixels; "
            "colour frames must be 8- or 16-bit unsigned"
        )  # fmt: skip
    px = _to_u8(px)
    enc = fmt.partition(";")[0].strip().lower() if ";" in fmt else ""
    if enc.startswith("bayer_") and px.ndim == 2:  # the plugin compresses the raw mosaic
        pattern = enc[len("bayer_") : len("bayer_") + 4]
        if pattern not in _BAYER_TO_CV:
            raise ImageDecodeError("unknown_encoding", f"unknown Bayer pattern in {fmt!r}")
        return np.ascontiguousarray(cv2.cvtColor(px, _BAYER_TO_CV[pattern]))
    if px.ndim == 2:
        return cv2.cvtColor(px, cv2.COLOR_GRAY2RGB)
    if _file_holds_rgb(fmt):  # OpenCV's decode, read as BGR, gives the RGB back as it is
        return np.ascontiguousarray(px[:, :, :3])
    code = cv2.COLOR_BGRA2RGB if px.shape[2] == 4 else cv2.COLOR_BGR2RGB  # OpenCV's order
    return np.ascontiguousarray(cv2.cvtColor(px, code))


def compressed_depth_to_metres(
    msg: Any, min_m: float = 0.0, max_m: float = float("inf")
) -> np.ndarray:
    """A `compressedDepth` CompressedImage -> HxW float32 metres, NaN where invalid or outside
    [min_m, max_m], as `depth_image_to_metres` gives for a raw one."""
    encoding, method = depth_format(str(msg.format))
    hw = compressed_depth_size(msg)  # from the header: a bomb is refused before decoding
    if hw is not None and hw[0] * hw[1] > DEPTH_MAX_PIXELS:
        raise ImageDecodeError(
            "too_large", f"compressedDepth image reports {hw[1]}x{hw[0]} pixels, more than "
            f"{DEPTH_MAX_PIXELS} (8192x8192)"
        )  # fmt: skip
    data = _data(msg)
    if data.size <= _HEADER.size:
        raise ImageDecodeError(
            "short_data", f"compressedDepth data has {data.size} bytes, no more than its "
            f"{_HEADER.size}-byte header"
        )  # fmt: skip
    _, quant_a, quant_b = _HEADER.unpack(data[: _HEADER.size].tobytes())
    body = data[_HEADER.size :]
    px = rvl_decode(body) if method == "rvl" else _decode(body, str(msg.format))
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
    return invalid_to_nan(depth, min_m, max_m)


def depth_format(fmt: str) -> tuple[str, str]:
    """A compressedDepth `format` ("16UC1; compressedDepth png") -> (encoding, codec), or an
    `ImageDecodeError` ("unknown_encoding") naming what is wrong with it."""
    encoding, _, codec = (part.strip() for part in fmt.partition(";"))
    if "compressedDepth" not in codec:
        raise ImageDecodeError(
            "unknown_encoding", f"format {fmt!r} is not a compressedDepth image (expected "
            "'16UC1; compressedDepth png' or '32FC1; compressedDepth png')"
        )  # fmt: skip
    method = codec.split("compressedDepth", 1)[1].strip() or "png"  # older: png, unnamed
    if method not in ("png", "rvl"):
        raise ImageDecodeError(
            "unknown_encoding", f"format {fmt!r}: compressedDepth codec {method!r} is not one "
            "of png, rvl"
        )  # fmt: skip
    if encoding not in DEPTH_ENCODINGS:
        raise ImageDecodeError(
            "unknown_encoding", f"compressedDepth encoding {encoding!r} is not a depth encoding; "
            f"use one of {sorted(DEPTH_ENCODINGS)}"
        )  # fmt: skip
    return encoding, method


def compressed_depth_size(msg: Any) -> tuple[int, int] | None:
    """(height, width) of a `compressedDepth` image from its PNG header or its RVL size words,
    without decoding it, or None when neither can be read. Its format must pass `depth_format`."""
    body = _data(msg)[_HEADER.size : _HEADER.size + 65536]
    if depth_format(str(msg.format))[1] == "rvl" and body.size >= 8:
        w, h = (int(v) for v in np.frombuffer(body[:8].tobytes(), "<u4"))
        return h, w
    return encoded_size(body)


def rvl_decode(data: np.ndarray) -> np.ndarray:
    """uint32 width, uint32 height, then an RVL stream -> HxW uint16 (the plugin's `rvl` body).
    The nibbles are unpacked and summed into values with NumPy; one Python step per run pair
    (zeros, then non-zeros) finds where each run's values start, with integer arithmetic only,
    and the values are undone from their zigzag deltas and placed in one vectorized pass."""
    data = np.asarray(data, dtype=np.uint8)
    if data.size < 8:
        raise ImageDecodeError("short_data", f"RVL data has {data.size} bytes, no size header")
    w, h = (int(v) for v in np.frombuffer(data[:8].tobytes(), "<u4"))
    n = w * h
    body = data[8:]
    # The plugin's own decoder also refuses n > 5 x the bytes ("4x at best"), which mostly-empty
    # depth (a projected LiDAR scan, one long run of zeros per gap) beats by far; here a header
    # that lies is caught by the walk below, which must account for all n pixels before the
    # output is allocated.
    if n == 0 or n > _MAX_PIXELS:
        raise ImageDecodeError(
            "not_decodable", f"RVL image reports {w}x{h} pixels (1 to {_MAX_PIXELS} can be read)"
        )
    # little-endian 32-bit words, read from their top nibble down: bytes 3, 2, 1, 0, high first
    word_bytes = body[: body.size // 4 * 4].reshape(-1, 4)[:, ::-1]
    nib = np.stack([word_bytes >> 4, word_bytes & 0xF], axis=-1).ravel()
    ends = np.flatnonzero((nib & 8) == 0)  # each value's final nibble
    if ends.size == 0:
        raise ImageDecodeError("not_decodable", f"RVL stream ends after 0 of {n} pixels")
    nib, starts = nib[: ends[-1] + 1], np.r_[0, ends[:-1] + 1]
    length = ends - starts + 1
    longest = max(6, -(-n.bit_length() // 3))  # a zigzag delta needs 18 bits, a run count n's
    if length.size and length.max() > longest:
        raise ImageDecodeError(
            "not_decodable", f"RVL stream has a value of {length.max()} nibbles; a {w}x{h} image "
            f"needs at most {longest}"
        )  # fmt: skip
    pos = np.arange(nib.size) - np.repeat(starts, length)
    payload = (nib & 7).astype(np.int64) << (3 * pos)
    vals = np.add.reduceat(payload, starts)  # exact in int64: at most 3 * longest bits
    runs = _rvl_runs(vals.tolist(), n)  # (first pixel, first value, count) per non-zero run
    out = np.zeros(n, np.uint16)
    if runs:
        first_px, first_val, count = np.asarray(runs, np.int64).T
        total = int(count.sum())
        offset = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        z = vals[np.repeat(first_val, count) + offset]
        delta = (z >> 1) ^ -(z & 1)  # zigzag back to signed
        # the previous value carries across runs of zeros, so one running sum serves them all;
        # unsigned short arithmetic, as in the plugin's C++
        out[np.repeat(first_px, count) + offset] = np.cumsum(delta) & 0xFFFF
    return out.reshape(h, w)


def _rvl_runs(vals: list[int], n: int) -> list[tuple[int, int, int]]:
    """Walk an RVL stream's values (zeros count, non-zeros count, that many deltas, ...) to `n`
    pixels: (first pixel, index of its first delta, count) for each run of non-zeros."""
    runs = []
    k = i = 0
    size = len(vals)
    while k < n:
        if i + 2 > size:
            raise ImageDecodeError("not_decodable", f"RVL stream ends after {k} of {n} pixels")
        k += vals[i]
        nonzeros = vals[i + 1]
        i += 2
        if k + nonzeros > n or i + nonzeros > size:
            raise ImageDecodeError("not_decodable", f"RVL run overruns the {n} pixels")
        if nonzeros:
            runs.append((k, i, nonzeros))
            k += nonzeros
            i += nonzeros
    return runs


def rvl_encode(px: np.ndarray) -> bytes:
    """HxW uint16 -> the plugin's `rvl` body (uint32 width, height, the RVL stream)."""
    px = np.ascontiguousarray(px, dtype=np.uint16)
    flat = px.ravel().astype(np.int64)
    values: list[int] = []
    k, prev, n = 0, 0, flat.size
    while k < n:
        j = k
        while j < n and flat[j] == 0:
            j += 1
        values.append(j - k)  # zeros
        m = j
        while m < n and flat[m] != 0:
            m += 1
        values.append(m - j)  # non-zeros
        for v in flat[j:m]:
            d = int(v) - prev
            values.append((d << 1) ^ (d >> 31))  # zigzag
            prev = int(v)
        k = m
    nibbles: list[int] = []
    for v in values:
        while True:
            nibble, v = v & 7, v >> 3
            nibbles.append(nibble | (8 if v else 0))
            if not v:
                break
    nibbles += [0] * (-len(nibbles) % 8)  # the last word is padded with zero nibbles
    words = np.asarray(nibbles, np.uint64).reshape(-1, 8) << np.arange(28, -1, -4, dtype=np.uint64)
    h, w = px.shape
    size = struct.pack("<II", w, h)
    return size + words.sum(axis=1).astype("<u4").tobytes()


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
    codec: str = "png",
) -> tuple[str, bytes]:
    """(format, data) of a depth map in metres (invalid: NaN or <= 0) as
    compressed_depth_image_transport publishes it (`codec` png or rvl), with its default
    `depth_max` and `depth_quantization`. Depth beyond `depth_max` is written as invalid, as it
    does (32FC1: at or beyond it; 16UC1: millimetres above depth_max * 1000)."""
    if codec not in ("png", "rvl"):
        raise ValueError(f"codec must be 'png' or 'rvl', got {codec!r}")
    depth_m = np.asarray(depth_m, dtype=np.float32)
    ok = np.isfinite(depth_m) & (depth_m > 0)
    if encoding in ("16UC1", "mono16"):  # the plugin keeps millimetres up to depth_max exactly
        mm = np.rint(np.where(ok, depth_m, 0.0) * 1000.0)
        keep = mm <= min(65535, int(depth_max * 1000))
        px = np.where(keep, mm, 0).astype(np.uint16)
        quant_a = quant_b = 0.0
    elif encoding == "32FC1":
        quant_a = depth_quantization * (depth_quantization + 1.0)
        quant_b = 1.0 - quant_a / depth_max
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(ok & (depth_m < depth_max), quant_a / depth_m + quant_b, 0.0)
        px = np.clip(inv, 0, 65535).astype(np.uint16)  # C++'s float -> ushort truncation
    else:
        raise ValueError(f"depth encoding must be 16UC1, mono16 or 32FC1, got {encoding!r}")
    if codec == "rvl":
        body = rvl_encode(px)
    else:
        good, buf = cv2.imencode(".png", px)
        if not good:
            raise ValueError(f"OpenCV could not encode a {px.shape} depth map as PNG")
        body = buf.tobytes()
    header = _HEADER.pack(_INV_DEPTH, np.float32(quant_a), np.float32(quant_b))
    return f"{encoding}; compressedDepth {codec}", header + body
