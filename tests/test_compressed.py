"""image_transport's `compressed` and `compressedDepth` messages: the codecs against the plugins'
byte layout (built here by hand, not by our encoder), their errors, and bags recorded that way
through `replay` and `finetune`'s scan as raw bags go."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from depthart_core.finetune.frames import FinetuneInputError, FrameConfig, scan_bag
from depthart_core.replay.frames import ReplayConfig, index_bag, iter_frames
from depthart_core.replay.offline import replay_offline
from depthart_core.rosio import bags, messages
from depthart_core.rosio.compressed import (
    COMPRESSED_IMAGE_TYPE,
    compressed_depth_to_metres,
    compressed_to_rgb,
    encode_depth,
    encode_rgb,
    encoded_size,
    is_compressed,
    rvl_decode,
    rvl_encode,
)
from depthart_core.rosio.image import ImageDecodeError

SIZE = (24, 32)


def _msg(fmt: str, data: bytes) -> SimpleNamespace:
    return SimpleNamespace(format=fmt, data=np.frombuffer(data, np.uint8))


def _rgb(h: int = 30, w: int = 40) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 6, y * 8, (x + y) * 3], axis=-1).astype(np.uint8)


def test_colour_decodes_every_variant_the_plugin_and_cameras_write():
    rgb = _rgb()
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    for fmt in ("rgb8; png compressed bgr8", "bgr8; png compressed bgr8", "png"):
        assert np.array_equal(compressed_to_rgb(_msg(fmt, png.tobytes())), rgb), fmt
    ok, as_is = cv2.imencode(".png", rgb)  # a publisher that encoded its rgb8 buffer unswapped
    out = compressed_to_rgb(_msg("rgb8; png compressed rgb8", as_is.tobytes()))
    assert np.array_equal(out, rgb)  # as image_transport reads it (it swaps for "bgr" only)
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = compressed_to_rgb(_msg("jpeg", jpg.tobytes()))
    assert out.shape == rgb.shape and np.abs(out.astype(int) - rgb).mean() < 3
    fmt, data = encode_rgb(rgb, "jpeg")  # what synth-bag --compressed writes
    assert fmt == "rgb8; jpeg compressed bgr8"
    assert np.abs(compressed_to_rgb(_msg(fmt, data)).astype(int) - rgb).mean() < 3
    gray = rgb[..., 1]
    ok, g = cv2.imencode(".png", gray)
    assert np.array_equal(compressed_to_rgb(_msg("mono8; png compressed mono8", g.tobytes())),
                          np.repeat(gray[..., None], 3, axis=2))  # fmt: skip
    deep = (rgb.astype(np.uint16) * 257)[..., ::-1]  # bgr16: scaled to 8 bits as mono16 is
    ok, d = cv2.imencode(".png", np.ascontiguousarray(deep))
    assert np.array_equal(compressed_to_rgb(_msg("rgb16; png compressed bgr16", d.tobytes())), rgb)
    assert is_compressed(_msg("png", b"")) and not is_compressed(SimpleNamespace(encoding="rgb8"))


def test_a_bayer_mosaic_on_the_compressed_transport_is_demosaiced_as_the_raw_one():
    """The plugin compresses a Bayer camera's raw mosaic ("bayer_rggb8; png compressed "): it is
    demosaiced exactly as the raw bayer_rggb8 image is, not passed on as a grey frame."""
    from depthart_core.rosio.image import image_to_rgb

    rgb = _rgb(32, 40)
    mosaic = np.empty(rgb.shape[:2], np.uint8)  # RGGB: R at (0, 0), B at (1, 1)
    mosaic[0::2, 0::2], mosaic[1::2, 1::2] = rgb[0::2, 0::2, 0], rgb[1::2, 1::2, 2]
    mosaic[0::2, 1::2], mosaic[1::2, 0::2] = rgb[0::2, 1::2, 1], rgb[1::2, 0::2, 1]
    ok, png = cv2.imencode(".png", mosaic)
    out = compressed_to_rgb(_msg("bayer_rggb8; png compressed ", png.tobytes()))
    raw = SimpleNamespace(encoding="bayer_rggb8", height=32, width=40, step=40,
                          is_bigendian=0, data=mosaic.tobytes())  # fmt: skip
    assert np.array_equal(out, image_to_rgb(raw))
    assert not np.array_equal(out[..., 0], out[..., 2])  # colour, not grey


def test_a_float_or_signed_colour_frame_is_refused_not_black():
    frame = (_rgb() / 255.0).astype(np.float32)
    ok, tiff = cv2.imencode(".tiff", frame)
    with pytest.raises(ImageDecodeError, match="float32 pixels") as err:
        compressed_to_rgb(_msg("32FC3; tiff compressed", tiff.tobytes()))
    assert err.value.cause == "unknown_encoding"


def test_compressed_depth_16uc1_is_lossless_millimetres():
    mm = np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 11
    mm[0, :5] = 0  # no return
    ok, png = cv2.imencode(".png", mm)
    header = struct.pack("<iff", 0, 0.0, 0.0)  # ConfigHeader as the plugin writes it for 16 bits
    for fmt in ("16UC1; compressedDepth png", "16UC1; compressedDepth", "mono16; compressedDepth"):
        depth = compressed_depth_to_metres(_msg(fmt, header + png.tobytes()))
        assert np.isnan(depth[0, :5]).all()
        np.testing.assert_array_equal(depth[mm > 0], mm[mm > 0].astype(np.float32) * 1e-3)
    fmt, data = encode_depth(np.where(mm > 0, mm * 1e-3, np.nan), "16UC1")
    assert fmt == "16UC1; compressedDepth png" and data[:12] == header
    np.testing.assert_array_equal(compressed_depth_to_metres(_msg(fmt, data))[mm > 0],
                                  mm[mm > 0].astype(np.float32) * 1e-3)  # fmt: skip


def test_tiff_frames_keep_the_cameras_channel_order():
    """The plugin's TIFF codec writes "ENC; tiff compressed " (no target) and the camera's
    buffer unconverted: an rgb8 camera's file holds RGB (it was read swapped)."""
    rgb = _rgb()
    ok, as_is = cv2.imencode(".tiff", rgb)
    for fmt in ("rgb8; tiff compressed ", "rgba8; tiff compressed"):
        assert np.array_equal(compressed_to_rgb(_msg(fmt, as_is.tobytes())), rgb), fmt
    ok, bgr = cv2.imencode(".tiff", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert np.array_equal(compressed_to_rgb(_msg("bgr8; tiff compressed ", bgr.tobytes())), rgb)


def test_compressed_depth_16uc1_keeps_depth_max_as_the_plugin_does():
    """The plugin zeroes 16-bit values above depth_max * 1000 mm only: 10.000 m stays."""
    depth = np.array([[0.5, 9.999, 10.0, 10.001, 20.0, np.nan]], np.float32)
    fmt, data = encode_depth(np.repeat(depth, 2, axis=0), "16UC1")
    back = compressed_depth_to_metres(_msg(fmt, data))[0]
    np.testing.assert_allclose(back[:3], [0.5, 9.999, 10.0], rtol=1e-6)
    assert np.isnan(back[3:]).all()


def test_compressed_depth_32fc1_is_the_plugins_inverse_depth():
    depth = np.linspace(0.3, 9.5, 24 * 32, dtype=np.float32).reshape(24, 32)
    depth[3, 3] = np.nan
    depth[4, 4] = 12.0  # beyond depth_max 10 m: the plugin writes it as invalid
    q, dmax = 100.0, 10.0  # the plugin's default depth_quantization and depth_max
    a = np.float32(q * (q + 1.0))
    b = np.float32(1.0 - a / dmax)
    with np.errstate(invalid="ignore"):
        inv = np.where(np.isfinite(depth) & (depth < dmax), a / depth + b, 0.0)
    ok, png = cv2.imencode(".png", inv.astype(np.uint16))  # float -> ushort truncates, as in C++
    data = struct.pack("<iff", 0, a, b) + png.tobytes()
    out = compressed_depth_to_metres(_msg("32FC1; compressedDepth png", data))
    assert np.isnan(out[3, 3]) and np.isnan(out[4, 4])
    good = np.isfinite(depth) & (depth < dmax)
    step = depth[good] ** 2 / a  # one quantisation step of inverse depth, in metres
    assert np.all(np.abs(out[good] - depth[good]) <= 1.05 * step + 1e-6)
    assert np.abs(out[good] - depth[good]).max() > 0  # it is quantised, not passed through
    fmt, mine = encode_depth(depth, "32FC1")
    assert fmt == "32FC1; compressedDepth png" and mine[:12] == data[:12]
    np.testing.assert_array_equal(compressed_depth_to_metres(_msg(fmt, mine)), out)


SIZE_2X2 = struct.pack("<II", 2, 2)
# pixels 0 0 5 7 by the RVL rules, worked by hand: run values 2 zeros, 2 non-zeros, zigzag deltas
# 10 (+5) and 4 (+2); as 3-bit nibbles with a continuation bit: 2, 2, A 1, 4; packed from the
# top nibble of one 32-bit word, zero-padded: 0x22A14000, little-endian on the wire
RVL_2X2 = SIZE_2X2 + bytes([0x00, 0x40, 0xA1, 0x22])


def test_compressed_depth_rvl_reads_the_plugins_stream():
    header = struct.pack("<iff", 0, 0.0, 0.0)
    depth = compressed_depth_to_metres(_msg("16UC1; compressedDepth rvl", header + RVL_2X2))
    assert np.isnan(depth[0]).all() and depth[1].tolist() == pytest.approx([0.005, 0.007])
    rng = np.random.default_rng(0)
    mm = rng.integers(200, 12000, (31, 45)).astype(np.uint16)
    mm[rng.random(mm.shape) < 0.2] = 0
    mm[5:9] = 0  # a long run of holes
    metres = np.where(mm > 0, mm * 1e-3, np.nan)
    for enc in ("16UC1", "32FC1"):
        png = compressed_depth_to_metres(_msg(*encode_depth(metres, enc, depth_max=13.0)))
        fmt, data = encode_depth(metres, enc, depth_max=13.0, codec="rvl")
        assert fmt == f"{enc}; compressedDepth rvl"
        np.testing.assert_array_equal(compressed_depth_to_metres(_msg(fmt, data)), png)
    lie = header + struct.pack("<II", 4000, 4000) + RVL_2X2[8:]
    with pytest.raises(ImageDecodeError, match="ends after 4 of 16000000 pixels"):
        compressed_depth_to_metres(_msg("16UC1; compressedDepth rvl", lie))
    # 16384x16384 of zeros in 14 bytes of runs: refused from its size words, before the 2 GB
    # a decode allocates (replay and finetune read ground truth through here)
    zeros = rvl_encode(np.zeros((1, 1), np.uint16))[8:]
    bomb = header + struct.pack("<II", 16384, 16384) + zeros
    with pytest.raises(ImageDecodeError, match="reports 16384x16384 pixels, more than") as err:
        compressed_depth_to_metres(_msg("16UC1; compressedDepth rvl", bomb))
    assert err.value.cause == "too_large"


def test_rvl_round_trips_wraparound_and_counts_longer_than_a_delta():
    """Deltas that wrap the unsigned short (1 <-> 65535), holes scattered pixel by pixel, a run
    longer than 2**21 pixels (its count takes 8 nibbles; a delta never needs over 6), and a
    mostly-empty frame that compresses far beyond the plugin's 10:1 sanity bound."""
    rng = np.random.default_rng(3)
    px = np.where(rng.random((48, 64)) < 0.5, 65535, 1).astype(np.uint16)
    px[rng.random(px.shape) < 0.3] = 0
    np.testing.assert_array_equal(rvl_decode(np.frombuffer(rvl_encode(px), np.uint8)), px)
    long_run = np.full((1, 2**21 + 5), 1234, np.uint16)  # one run of non-zeros: 22-bit count
    stream = np.frombuffer(rvl_encode(long_run), np.uint8)
    np.testing.assert_array_equal(rvl_decode(stream), long_run)
    sparse = np.zeros((480, 640), np.uint16)  # a projected scan: 1 % of pixels, 30x smaller
    sparse.flat[rng.choice(sparse.size, sparse.size // 100, replace=False)] = 2345
    stream = np.frombuffer(rvl_encode(sparse), np.uint8)
    assert stream.size * 10 < sparse.nbytes  # the plugin's subscriber would refuse it; not here
    np.testing.assert_array_equal(rvl_decode(stream), sparse)
    huge = struct.pack("<II", 65535, 65535) + b"\0" * 4  # 4.3 G pixels of zeros: refused
    with pytest.raises(ImageDecodeError, match="65535x65535 pixels"):
        rvl_decode(np.frombuffer(huge, np.uint8))
    # a 2x2 image: 6 nibbles at most; seven (six continued, then a final 0) is a broken stream
    too_long = SIZE_2X2 + struct.pack("<I", 0x0FFFFFF0)  # value 0, then 7 nibbles F x6, 0
    with pytest.raises(ImageDecodeError, match="value of 7 nibbles; a 2x2 image needs at most 6"):
        rvl_decode(np.frombuffer(too_long, np.uint8))


@pytest.mark.parametrize(
    "fmt, data, cause, words",
    [
        ("16UC1; compressedDepth zstd", b"\0" * 40, "unknown_encoding", "not one of png, rvl"),
        ("16UC1; compressedDepth rvl", b"\0" * 16, "short_data", "no size header"),
        ("16UC1; compressedDepth rvl", b"\0" * 12 + SIZE_2X2 + b"\0" * 4, "not_decodable", "ends"),
        ("16UC1; compressedDepth rvl", b"\0" * 12 + SIZE_2X2, "not_decodable", "after 0 of 4"),
        (
            "16UC1; compressedDepth rvl",
            b"\0" * 12 + SIZE_2X2 + b"\xff" * 4,
            "not_decodable",
            "after 0 of 4",
        ),
        ("rgb8; jpeg compressed bgr8", b"\0" * 40, "unknown_encoding", "not a compressedDepth"),
        ("rgb8; compressedDepth png", b"\0" * 40, "unknown_encoding", "not a depth encoding"),
        ("16UC1; compressedDepth png", b"\0" * 12, "short_data", "12-byte header"),
        ("16UC1; compressedDepth png", b"\0" * 40, "not_decodable", "not a readable JPEG or PNG"),
    ],
)
def test_depth_that_cannot_be_read_says_why(fmt, data, cause, words):
    with pytest.raises(ImageDecodeError, match=words) as err:
        compressed_depth_to_metres(_msg(fmt, data))
    assert err.value.cause == cause


def test_colour_that_cannot_be_read_says_why():
    with pytest.raises(ImageDecodeError, match="not a readable JPEG or PNG") as err:
        compressed_to_rgb(_msg("jpeg", b"not a jpeg at all"))
    assert err.value.cause == "not_decodable"
    with pytest.raises(ImageDecodeError, match="compressedDepth depth image"):
        compressed_to_rgb(_msg("16UC1; compressedDepth png", b"\0" * 40))
    with pytest.raises(ImageDecodeError, match="no data"):
        compressed_to_rgb(_msg("jpeg", b""))
    ok, one = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ImageDecodeError, match="at least 2x2") as err:
        compressed_to_rgb(_msg("png", one.tobytes()))
    assert err.value.cause == "too_small"
    ok, small = cv2.imencode(".png", np.zeros((6, 7, 3), np.uint8))
    with pytest.raises(ImageDecodeError, match=r"7x6: 42 pixels > 41") as err:
        compressed_to_rgb(_msg("png", small.tobytes()), max_pixels=41)
    assert err.value.cause == "too_large"
    assert compressed_to_rgb(_msg("png", small.tobytes()), max_pixels=42).shape == (6, 7, 3)


def test_encoded_size_reads_headers_without_decoding():
    img = np.zeros((37, 53, 3), np.uint8)
    assert encoded_size(cv2.imencode(".png", img)[1]) == (37, 53)
    assert encoded_size(cv2.imencode(".jpg", img)[1]) == (37, 53)
    progressive = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1]
    assert encoded_size(progressive) == (37, 53)
    assert encoded_size(np.frombuffer(b"GIF89a and more bytes here", np.uint8)) is None
    assert encoded_size(np.zeros(0, np.uint8)) is None


@pytest.fixture(scope="module")
def bag_pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("compressed")
    kw = dict(frames=4, seed=3, size=SIZE, depth_encoding="16UC1")
    bags.write_synthetic_bag(root / "raw", **kw)
    bags.write_synthetic_bag(root / "compressed", compressed=True, **kw)
    return root / "raw", root / "compressed"


RAW = ReplayConfig("/camera/image_raw", "/camera/depth", "/camera/camera_info")
COMP = ReplayConfig(
    "/camera/image_raw/compressed", "/camera/depth/compressedDepth", "/camera/camera_info"
)


def test_a_compressed_bag_gives_the_raw_bags_frames(bag_pair):
    raw, comp = bag_pair
    topics = bags.list_topics(comp)
    assert topics["/camera/image_raw/compressed"].msgtype == "sensor_msgs/msg/CompressedImage"
    assert "/camera/image_raw" not in topics
    pairs = zip(
        iter_frames(raw, RAW, index_bag(raw, RAW)),
        iter_frames(comp, COMP, index_bag(comp, COMP)),
        strict=True,
    )
    for a, b in pairs:
        assert a.image.stamp_ns == b.image.stamp_ns
        np.testing.assert_array_equal(a.gt[0], b.gt[0])  # 16UC1 in PNG: lossless
        np.testing.assert_array_equal(a.gt[1], b.gt[1])
        rgb_a = messages.image_to_rgb(a.image.msg)
        rgb_b = messages.image_to_rgb(b.image.msg)
        assert np.abs(rgb_a.astype(int) - rgb_b).mean() < 4  # JPEG at quality 95


def test_replay_scores_a_compressed_bag_like_its_raw_twin(bag_pair, tiny_checkpoint, tmp_path):
    from depthart_core.runtime.torch_backend import DepthEstimator

    backend = DepthEstimator.from_checkpoint(tiny_checkpoint)
    raw, comp = bag_pair
    a = replay_offline(raw, tmp_path / "a", RAW, backend)
    b = replay_offline(comp, tmp_path / "b", COMP, backend)
    assert a["counts"] == b["counts"] and b["counts"]["evaluated"] == 4
    assert b["aggregate"]["abs_rel"] == pytest.approx(a["aggregate"]["abs_rel"], abs=0.02)


def test_finetune_scan_takes_compressed_topics_and_names_what_it_cannot_read(bag_pair, tmp_path):
    _, comp = bag_pair
    cfg = FrameConfig(
        image_topic="/camera/image_raw/compressed", depth_topic="/camera/depth/compressedDepth"
    )
    scan = scan_bag(comp, cfg)
    assert scan.depth_encoding == "16UC1; compressedDepth png"
    assert scan.image_encoding == "rgb8; jpeg compressed bgr8"
    odd = tmp_path / "zstd"
    with bags.BagWriter(odd) as w:
        for i in range(2):
            t = 1_700_000_000 * 10**9 + i * 10**8
            fmt, data = encode_rgb(_rgb())
            w.write("/img/compressed", messages.compressed_msg(fmt, data, t, "cam"), t)
            w.write(
                "/depth/compressedDepth",
                messages.compressed_msg("16UC1; compressedDepth zstd", b"\0" * 64, t, "cam"),
                t,
            )
    cfg = FrameConfig(image_topic="/img/compressed", depth_topic="/depth/compressedDepth")
    with pytest.raises(FinetuneInputError, match=r"depth topic '/depth/compressedDepth'.*format"):
        scan_bag(odd, cfg)


def test_live_replay_needs_image_transports_name_for_a_compressed_topic(tmp_path):
    from depthart_ros.replay.process import LiveConfig, node_command

    cfg = ReplayConfig("/cam/img/compressed", None, None)
    cmd = node_command(cfg, LiveConfig(), tmp_path / "m.safetensors", COMPRESSED_IMAGE_TYPE)
    assert "image_transport:=compressed" in cmd and "image:=/cam/img" in cmd
    odd = ReplayConfig("/cam/jpeg_frames", None, None)
    with pytest.raises(ValueError, match=r"reads <base>/compressed.*without --live"):
        node_command(odd, LiveConfig(), tmp_path / "m.safetensors", COMPRESSED_IMAGE_TYPE)
    assert "image:=/cam/jpeg_frames" in node_command(odd, LiveConfig(), tmp_path / "m")


@pytest.mark.ros
def test_live_replay_feeds_a_compressed_topic_to_the_nodes_image_transport(
    bag_pair, tiny_checkpoint, tmp_path
):
    pytest.importorskip("rclpy", reason="live replay needs rclpy")
    from ros_helpers.harness import replay_live_as_the_cli, unique_domain_id

    from depthart_core.runtime.torch_backend import DepthEstimator
    from depthart_core.sampling import DEFAULT_DECODING
    from depthart_ros.replay.process import LiveConfig

    _, comp = bag_pair
    live = LiveConfig(
        tiny_checkpoint,
        domain_id=unique_domain_id(),
        node_args=("-p", f"sampling:={DEFAULT_DECODING}"),
        startup_timeout_s=90,
        drain_timeout_s=3,
    )
    report = replay_live_as_the_cli(comp, tmp_path / "live", COMP, live)
    lv = report["live"]
    assert report["status"].startswith("complete") and lv["published"] == 4 and lv["returned"] >= 1
    # the node decoded the same JPEG bytes: the frames that came back score as offline
    offline = replay_offline(comp, tmp_path / "off", COMP, DepthEstimator.from_checkpoint(
        tiny_checkpoint))  # fmt: skip
    evaluated = [r for r in report["rows"] if r["status"] == "evaluated"]
    assert evaluated
    for r in evaluated:
        assert r["metrics"] == pytest.approx(offline["rows"][r["index"]]["metrics"], rel=1e-6)
