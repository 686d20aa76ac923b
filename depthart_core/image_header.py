"""An image file's size from its header, read before anything is decoded.

A small file can claim a huge image (a decompression bomb: a 1 MB PNG of 20000x20000 pixels
decodes to 1.2 GB, an 8 KB WebP to 5 GB). Whatever reads an image file that a user was given
asks `image_size` first and refuses a claim above `MAX_PIXELS` undecoded: `depthart predict`
(`cli.predict.read_rgb`) and every dataset image `depthart eval` and `train` read
(`data.benchmarks._io._imread`). Both also refuse a JPEG cut short (`truncated_jpeg`), which
OpenCV would decode with its missing rows grey; the ROS node reads a CompressedImage's size with
`png_jpeg_size` (`rosio.compressed.encoded_size`).
"""

from __future__ import annotations

import io
import struct
from typing import Any

MAX_PIXELS = 200_000_000  # a 16384x12208 photo; decoding takes 0.6 GB, the outputs 2 GB more
TRUNCATED_JPEG = "truncated JPEG (no end-of-image marker after its last scan)"


def png_jpeg_size(data: Any) -> tuple[int, int] | None:
    """(height, width) from a PNG's IHDR or a JPEG's first start-of-frame, or None when `data`
    (bytes, or any buffer: a uint8 array, a message's data) starts with neither header (or it
    is cut short)."""
    buf = bytes(memoryview(data)[:65536])
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


def image_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) that an image file's header claims, read without decoding its pixels: a
    PNG's or JPEG's by `png_jpeg_size`, any other format's (WebP, TIFF, GIF, BMP, ...) by
    Pillow's lazy open, where Pillow is installed; None where neither reads it (OpenCV judges)."""
    hw = png_jpeg_size(data)
    if hw is not None:
        return hw
    try:
        from PIL import Image
    except ImportError:  # optional: without it only PNG and JPEG sizes are checked
        return None
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # MAX_PIXELS rules, not its own
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except Exception:  # unidentified or malformed, in one of many exception types: OpenCV judges
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return h, w


def too_many_pixels(data: bytes) -> str | None:
    """Why `data` is not decoded, from its header ("WxH pixels, more than 200,000,000 (...)"),
    or None when its header claims no more than `MAX_PIXELS` (or cannot be read)."""
    hw = image_size(data)
    if hw is None or hw[0] * hw[1] <= MAX_PIXELS:
        return None
    return (
        f"{hw[1]}x{hw[0]} pixels, more than {MAX_PIXELS:,} (resize it first; a small file "
        "claiming that many is a decompression bomb)"
    )


def truncated_jpeg(data: bytes) -> bool:
    """Whether `data` is a JPEG cut short (an interrupted copy): its segments, walked from the
    start by their lengths and through each scan's entropy-coded data (where 0xFF is always
    stuffed, a restart marker or fill), end before the end-of-image marker. Whatever follows
    that marker is not read: a phone's Motion Photo appends a whole video, whose bytes hold
    start-of-scan patterns by chance. Bytes that are not a marker where one must be are left
    to the decoder to judge. (OpenCV decodes a cut JPEG with its missing rows grey.)"""
    if not data.startswith(b"\xff\xd8"):
        return False
    i, n = 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:
            return False  # not a JPEG this walk understands: the decoder decides
        marker = data[i + 1]
        if marker == 0xFF:  # fill before a marker
            i += 1
            continue
        if marker == 0xD9:  # end of image
            return False
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length field
            i += 2
            continue
        if i + 4 > n:
            return True
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker != 0xDA:
            continue
        while True:  # a scan's data: up to the next marker that is not stuffing or a restart
            j = data.find(b"\xff", i)
            if j < 0 or j + 1 >= n:
                return True
            follower = data[j + 1]
            if follower == 0x00 or 0xD0 <= follower <= 0xD7:
                i = j + 2
            elif follower == 0xFF:
                i = j + 1
            else:
                i = j
                break
    return True
