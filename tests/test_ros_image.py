"""depthart_core.rosio.image against an independent decoder (rosbags-image) and hand-made pixels."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

from depthart_core.rosio import image as ros_image
from depthart_core.rosio.image import ImageDecodeError

rosbags_image = pytest.importorskip("rosbags.image", reason="rosbags-image is the cross-check")
from rosbags.typesys import Stores, get_typestore  # noqa: E402

TS = get_typestore(Stores.ROS2_KILTED)
RbImage = TS.types["sensor_msgs/msg/Image"]
RbHeader = TS.types["std_msgs/msg/Header"]
RbTime = TS.types["builtin_interfaces/msg/Time"]

H, W = 30, 40
RNG = np.random.default_rng(0)


def rb_msg(pixels: np.ndarray, encoding: str, bigendian: bool = False) -> RbImage:
    """A rosbags sensor_msgs/Image holding `pixels` tightly packed."""
    if bigendian:
        pixels = pixels.astype(pixels.dtype.newbyteorder(">"))
    raw = np.ascontiguousarray(pixels).reshape(-1).view(np.uint8).copy()
    h, w = pixels.shape[:2]
    return RbImage(
        header=RbHeader(stamp=RbTime(sec=1, nanosec=2), frame_id="cam"),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=int(bigendian),
        step=raw.size // h,
        data=raw,
    )


def raw_pixels(encoding: str) -> np.ndarray:
    """Random but valid pixels for each encoding (any byte pattern is valid YUV or Bayer)."""
    info = ros_image.ENCODINGS[encoding]
    shape = (H, W) if info.channels == 1 else (H, W, info.channels)
    hi = 256 if info.dtype.itemsize == 1 else 65536
    return RNG.integers(0, hi, size=shape).astype(info.dtype)


COLOUR_ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16", "yuv422", "uyvy"]
COLOUR_ENCODINGS += ["yuv422_yuy2", "yuyv", "bayer_rggb8", "bayer_bggr8", "bayer_gbrg8"]
COLOUR_ENCODINGS += ["bayer_grbg8", "bayer_rggb16", "bayer_grbg16"]


@pytest.mark.parametrize("encoding", COLOUR_ENCODINGS)
def test_image_to_rgb_matches_rosbags_image(encoding: str) -> None:
    msg = rb_msg(raw_pixels(encoding), encoding)
    ours = ros_image.image_to_rgb(msg)
    ref = rosbags_image.message_to_cvimage(msg, "rgb8")
    assert ours.shape == (H, W, 3) and ours.dtype == np.uint8
    # 16-bit sources: rosbags truncates v*255/65535, we round -> at most 1 apart
    tol = 1 if ros_image.ENCODINGS[encoding].dtype.itemsize == 2 else 0
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= tol


def test_8uc3_is_bgr_like_opencv() -> None:
    px = raw_pixels("8UC3")
    ours = ros_image.image_to_rgb(rb_msg(px, "8UC3"))
    np.testing.assert_array_equal(ours, px[..., ::-1])
    ref_bgr = rosbags_image.message_to_cvimage(rb_msg(px, "8UC3"), "bgr8")
    np.testing.assert_array_equal(ours, ref_bgr[..., ::-1])


def test_bayer_pattern_names_put_red_where_ros_says() -> None:
    """A flat red scene mosaicked as RGGB must demosaic to red (catches a swapped OpenCV code)."""
    for pattern, red_at in {"rggb": (0, 0), "bggr": (1, 1), "grbg": (0, 1), "gbrg": (1, 0)}.items():
        mosaic = np.zeros((8, 8), np.uint8)
        mosaic[red_at[0] :: 2, red_at[1] :: 2] = 200  # only red sites are lit
        rgb = ros_image.image_to_rgb(rb_msg(mosaic, f"bayer_{pattern}8"))
        inner = rgb[2:-2, 2:-2].reshape(-1, 3).mean(axis=0)
        assert inner[0] > 150 and inner[1] < 30 and inner[2] < 30, (pattern, inner)


def _bt601_uyvy(rgb: np.ndarray) -> np.ndarray:
    """Independent RGB -> UYVY encoder (BT.601 limited range), shared with the node tests."""
    from ros_helpers.scenes import _uyvy

    return _uyvy(rgb)


def test_yuv422_decodes_known_colours() -> None:
    colours = np.array([[200, 30, 40], [20, 180, 60], [30, 60, 220], [128, 128, 128]], np.uint8)
    rgb = np.repeat(np.repeat(colours[None], 4, axis=0), 4, axis=1)  # 4 x 16, 2-pixel pairs equal
    uyvy = _bt601_uyvy(rgb)
    got = ros_image.image_to_rgb(rb_msg(uyvy, "yuv422"))
    assert np.abs(got.astype(int) - rgb.astype(int)).max() <= 4
    pairs = uyvy.reshape(4, 8, 4)  # U Y V Y per pixel pair
    yuyv = np.ascontiguousarray(pairs[..., [1, 0, 3, 2]]).reshape(4, 16, 2)  # Y U Y V
    got = ros_image.image_to_rgb(rb_msg(yuyv, "yuv422_yuy2"))
    assert np.abs(got.astype(int) - rgb.astype(int)).max() <= 4


def test_row_padding_and_big_endian() -> None:
    rgb = raw_pixels("rgb8")
    step = W * 3 + 7
    padded = RNG.integers(0, 256, size=(H, step), dtype=np.uint8)  # garbage in the padding
    padded[:, : W * 3] = rgb.reshape(H, W * 3)
    msg = SimpleNamespace(
        height=H, width=W, encoding="rgb8", step=step, is_bigendian=0, data=padded.tobytes()
    )
    np.testing.assert_array_equal(ros_image.image_to_rgb(msg), rgb)

    mono16 = raw_pixels("mono16")
    le = ros_image.image_to_array(rb_msg(mono16, "mono16"))
    be = ros_image.image_to_array(rb_msg(mono16, "mono16", bigendian=True))
    np.testing.assert_array_equal(le, mono16)
    np.testing.assert_array_equal(be, mono16)
    ref = rosbags_image.message_to_cvimage(rb_msg(mono16, "mono16", bigendian=True))
    np.testing.assert_array_equal(be, ref)


def test_mono16_scales_full_range_to_8_bit() -> None:
    px = np.array([[0, 257, 32896, 65535]], np.uint16).repeat(2, axis=0)
    rgb = ros_image.image_to_rgb(rb_msg(px, "mono16"))
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 128, 255])


def _ns(**over) -> SimpleNamespace:
    base = dict(height=H, width=W, encoding="rgb8", step=W * 3, is_bigendian=0)
    base.update(over)
    base.setdefault("data", bytes(base["height"] * base["step"]))
    return SimpleNamespace(**base)


@pytest.mark.parametrize(
    "cause,msg",
    [
        ("empty", _ns(height=0, width=0, step=0, data=b"")),
        ("too_small", _ns(height=1, width=1, step=3)),
        ("unknown_encoding", _ns(encoding="rgb9")),
        ("bad_step", _ns(step=W * 3 - 1)),
        ("short_data", _ns(data=bytes(H * W * 3 - 1))),
        ("odd_width", _ns(encoding="yuv422", width=W - 1, step=(W - 1) * 2)),
    ],
)
def test_bad_messages_raise_with_cause(cause: str, msg: SimpleNamespace) -> None:
    with pytest.raises(ImageDecodeError) as err:
        ros_image.image_to_rgb(msg)
    assert err.value.cause == cause
    assert str(msg.encoding) in str(err.value) or str(msg.height) in str(err.value)


def test_depth_image_to_metres_follows_rep117() -> None:
    f = np.array([[1.5, np.nan, 0.0], [-1.0, np.inf, 250.0]], np.float32)
    got = ros_image.depth_image_to_metres(rb_msg(f, "32FC1"), max_m=200.0)
    np.testing.assert_array_equal(np.isnan(got), [[False, True, True], [True, True, True]])
    assert got[0, 0] == np.float32(1.5)
    mm = np.array([[0, 1500], [65535, 20]], np.uint16)
    got = ros_image.depth_image_to_metres(rb_msg(mm, "16UC1"), min_m=0.05)
    assert np.isnan(got[0, 0]) and np.isnan(got[1, 1])
    np.testing.assert_allclose(got[0, 1], 1.5)
    np.testing.assert_allclose(got[1, 0], 65.535, rtol=1e-6)
    with pytest.raises(ImageDecodeError, match="rgb8"):
        ros_image.depth_image_to_metres(rb_msg(raw_pixels("rgb8"), "rgb8"))


def test_rep117_depth_marks_invalid_and_out_of_range() -> None:
    d = np.array([0.0, -2.0, np.nan, 0.5, 3.0, 9.0], np.float32)
    out = ros_image.rep117_depth(d, min_depth=1.0, max_depth=5.0)
    assert np.isnan(out[:3]).all()
    assert out[3] == -np.inf and out[4] == 3.0 and out[5] == np.inf
    np.testing.assert_array_equal(ros_image.rep117_depth(d[3:])[:], d[3:])
    # a metric fit's -inf (at or behind the camera: too close) and a +inf stay as they are: NaN
    # ("no return") would drop the nearest surfaces from a costmap, while the node counted them
    fitted = np.array([-np.inf, 0.4, np.inf], np.float32)
    for bounds in ((0.0, 0.0), (0.2, 5.0)):
        np.testing.assert_array_equal(ros_image.rep117_depth(fitted, *bounds), fitted)


def test_set_image_round_trip() -> None:
    depth = RNG.random((H, W), dtype=np.float32)
    msg = ros_image.set_image(SimpleNamespace(), depth, "32FC1")
    assert (msg.height, msg.width, msg.step, msg.encoding) == (H, W, W * 4, "32FC1")
    assert msg.is_bigendian == int(sys.byteorder == "big")
    np.testing.assert_array_equal(ros_image.image_to_array(msg), depth)
    bgr = raw_pixels("bgr8")
    msg = ros_image.set_image(SimpleNamespace(), bgr, "bgr8")
    np.testing.assert_array_equal(rosbags_image.message_to_cvimage(msg, "bgr8"), bgr)
    with pytest.raises(ValueError, match="float64"):
        ros_image.set_image(SimpleNamespace(), depth.astype(np.float64), "32FC1")


def test_rclpy_image_message_if_available() -> None:
    sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="needs ROS 2 message packages")
    px = raw_pixels("bgra8")
    msg = ros_image.set_image(sensor_msgs.Image(), px, "bgra8")
    np.testing.assert_array_equal(ros_image.image_to_rgb(msg), px[..., 2::-1])


def test_scaled_intrinsics_by_hand() -> None:
    k = [500.0, 0.0, 319.5, 0.0, 520.0, 239.5, 0.0, 0.0, 1.0]
    p = [500.0, 0.0, 319.5, -25.0, 0.0, 520.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    k2, p2 = ros_image.scaled_intrinsics(k, p, (640, 480), (320, 240))
    assert k2 == [250.0, 0.0, 159.5, 0.0, 260.0, 119.5, 0.0, 0.0, 1.0]
    assert p2 == [250.0, 0.0, 159.5, -12.5, 0.0, 260.0, 119.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert ros_image.scaled_intrinsics(k, p, (640, 480), (640, 480)) == (k, p)
    with pytest.raises(ValueError, match="positive"):
        ros_image.scaled_intrinsics(k, p, (0, 480), (320, 240))


def _info(width, height, k, p, binning=(0, 0), roi=(0, 0, 0, 0), upper=False):
    r = SimpleNamespace(x_offset=roi[0], y_offset=roi[1], width=roi[2], height=roi[3])
    mats = {"K": k, "P": p} if upper else {"k": k, "p": p}  # a ROS 1 bag's CameraInfo: K, P
    return SimpleNamespace(width=width, height=height, binning_x=binning[0],
                           binning_y=binning[1], roi=r, **mats)  # fmt: skip


def test_image_projection_applies_roi_binning_and_size_as_image_geometry_does() -> None:
    k = [1000.0, 0.0, 640.0, 0.0, 990.0, 480.0, 0.0, 0.0, 1.0]
    p = [1000.0, 0.0, 640.0, -50.0, 0.0, 990.0, 480.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    plain = _info(1280, 960, k, p)
    assert ros_image.image_projection(plain, (960, 1280)) == (k, p)  # nothing to adjust
    K, P = ros_image.image_projection(_info(1280, 960, k, p, binning=(2, 4)), (240, 640))
    assert K == [500.0, 0.0, 320.0, 0.0, 247.5, 120.0, 0.0, 0.0, 1.0]
    assert P == [500.0, 0.0, 320.0, -25.0, 0.0, 247.5, 120.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    # the ROI's offset first (full-resolution pixels), then the binning: cx' = (cx - x0) / b
    roi = _info(1280, 960, k, p, binning=(2, 2), roi=(100, 40, 600, 400), upper=True)
    K, P = ros_image.image_projection(roi, (200, 300))
    assert (K[2], K[5], P[2], P[6]) == (270.0, 220.0, 270.0, 220.0)
    assert (K[0], P[3]) == (500.0, -25.0)
    # an image of another size than the binned ROI: rescaled like any calibration
    K, P = ros_image.image_projection(roi, (100, 150))
    assert (K[0], K[2]) == (250.0, (270.0 + 0.5) * 0.5 - 0.5)
    # a driver that fills only K: P is [K | 0]
    K, P = ros_image.image_projection(_info(1280, 960, k, [0.0] * 12), (960, 1280))
    assert P == [*k[:3], 0.0, *k[3:6], 0.0, *k[6:], 0.0]
