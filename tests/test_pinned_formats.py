"""Unit and format conversions a robot's numbers depend on, pinned to values worked out by hand
from each format's public spec (not from the code under test). Each test names the spec it
follows; mutation testing found these conversions otherwise unchecked."""

from __future__ import annotations

import math
import struct
import zlib
from types import SimpleNamespace

import cv2
import h5py
import numpy as np
import pytest

from depthart_core.data.benchmarks import get_dataset
from depthart_core.data.benchmarks._io import read_rgb
from depthart_core.data.benchmarks.tum import associate
from depthart_core.pointcloud import project_rays
from depthart_core.rosio import camera_info
from depthart_core.rosio import image as ros_image
from depthart_core.rosio.compressed import compressed_depth_to_metres, encode_depth
from depthart_core.rosio.image import ImageDecodeError


def _msg(pixels: np.ndarray, encoding: str, step: int | None = None) -> SimpleNamespace:
    """A sensor_msgs/Image-like message holding little-endian `pixels`, rows `step` bytes."""
    pixels = np.ascontiguousarray(pixels.astype(pixels.dtype.newbyteorder("<")))
    h, w = pixels.shape[:2]
    row = pixels.reshape(h, -1).view(np.uint8)
    step = row.shape[1] if step is None else step
    data = np.zeros((h, max(step, row.shape[1])), np.uint8)
    data[:, : row.shape[1]] = row
    return SimpleNamespace(
        height=h, width=w, encoding=encoding, is_bigendian=0, step=step,
        data=data[:, :step].tobytes(),
    )  # fmt: skip


# --- sensor_msgs/Image (REP 117, REP 118) -------------------------------------------------------


def test_16bit_depth_is_millimetres_for_16uc1_and_mono16():
    # REP 118: "16UC1 ... in millimeters"; 0 = no return (REP 117). mono16 is read the same way
    # (drivers such as openni publish depth as mono16 millimetres).
    mm = np.array([[0, 1, 1500, 65535]] * 2, np.uint16)
    want = [math.nan, 0.001, 1.5, 65.535]
    for enc in ("16UC1", "mono16"):
        got = ros_image.depth_image_to_metres(_msg(mm, enc))
        np.testing.assert_allclose(got[0], want, rtol=1e-6, err_msg=enc)


def test_32fc1_non_finite_and_non_positive_depth_is_invalid():
    # REP 118: 32FC1 in metres; REP 117: NaN, +Inf, -Inf and 0 are not measurements.
    m = np.array([[np.inf, -np.inf, np.nan, 0.0, -1.0, 2.5]] * 2, np.float32)
    got = ros_image.depth_image_to_metres(_msg(m, "32FC1"))
    assert np.isnan(got[0, :5]).all() and got[0, 5] == np.float32(2.5)


def test_the_depth_range_is_closed_at_both_ends():
    # depth_image_to_metres: NaN outside [min_m, max_m]; the bounds themselves are measurements.
    m = np.array([[0.5, 1.0, 2.0, 2.5]] * 2, np.float32)
    got = ros_image.depth_image_to_metres(_msg(m, "32FC1"), min_m=1.0, max_m=2.0)
    np.testing.assert_array_equal(got[0], [np.nan, 1.0, 2.0, np.nan])


def test_a_step_shorter_than_a_row_of_16bit_pixels_is_refused():
    # sensor_msgs/Image: step = full row length in *bytes*; a 16UC1 row of 4 pixels is 8 bytes.
    msg = _msg(np.ones((2, 4), np.uint16), "16UC1")
    msg.step = 4  # width x channels, not width x bytes/pixel
    with pytest.raises(ImageDecodeError) as err:
        ros_image.depth_image_to_metres(msg)
    assert err.value.cause == "bad_step"


def test_mono16_colour_is_scaled_by_255_over_65535_rounded():
    # cv_bridge converts mono16 -> 8 bit with convertTo(alpha = 255 / 65535), which rounds:
    # 128 / 257 = 0.498 -> 0, 129 / 257 = 0.502 -> 1, 32896 / 257 = 128, 65535 / 257 = 255.
    px = np.array([[0, 128, 129, 32896, 65535]] * 2, np.uint16)
    got = ros_image.image_to_rgb(_msg(px, "mono16"))
    assert got[0, :, 0].tolist() == [0, 0, 1, 128, 255]
    assert (got[..., 0] == got[..., 2]).all()


def test_scaled_intrinsics_scales_each_axis_by_its_own_factor():
    # 640x480 -> 320x120: sx = 0.5, sy = 0.25. fx' = fx sx, fy' = fy sy; pixel centres as
    # cv2.resize maps them: c' = (c + 0.5) s - 0.5; P's Tx = -fx' B and Ty = -fy' B scale too.
    k = [600.0, 0.0, 319.5, 0.0, 600.0, 239.5, 0.0, 0.0, 1.0]
    p = [600.0, 0.0, 319.5, -60.0, 0.0, 600.0, 239.5, -30.0, 0.0, 0.0, 1.0, 0.0]
    k2, p2 = ros_image.scaled_intrinsics(k, p, (640, 480), (320, 120))
    assert k2 == [300.0, 0.0, 159.5, 0.0, 150.0, 59.5, 0.0, 0.0, 1.0]
    assert p2 == [300.0, 0.0, 159.5, -30.0, 0.0, 150.0, 59.5, -7.5, 0.0, 0.0, 1.0, 0.0]


# --- benchmark readers ---------------------------------------------------------------------------


def _write_png(path, arr) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), arr)


@pytest.mark.parametrize(
    ("folder", "fx_fy_cx_cy"),
    [  # TUM "File Formats" page, "Intrinsic Camera Calibration of the Kinect", colour cameras
        ("rgbd_dataset_freiburg1_xyz", (517.3, 516.5, 318.6, 255.3)),
        ("rgbd_dataset_freiburg2_desk", (520.9, 521.0, 325.1, 249.7)),
        ("rgbd_dataset_freiburg3_long_office_household", (535.4, 539.2, 320.1, 247.6)),
    ],
)
def test_tum_depth_is_5000_units_per_metre_with_the_sequences_camera(tmp_path, folder, fx_fy_cx_cy):
    # TUM: "The depth images are scaled by a factor of 5000, i.e., a pixel value of 5000 in the
    # depth image corresponds to a distance of 1 meter from the camera"; 0 = no data.
    seq = tmp_path / folder
    _write_png(seq / "rgb/1.png", np.zeros((2, 3, 3), np.uint8))
    _write_png(seq / "depth/1.png", np.array([[0, 5000, 12345]] * 2, np.uint16))
    (seq / "rgb.txt").write_text("# color images\n1.000000 rgb/1.png\n")
    (seq / "depth.txt").write_text("# depth maps\n1.001000 depth/1.png\n")
    s = get_dataset("tum", tmp_path)[0]
    np.testing.assert_allclose(s.depth[0], [0.0, 1.0, 2.469], rtol=1e-6)
    assert s.valid[0].tolist() == [False, True, True]
    fx, fy, cx, cy = fx_fy_cx_cy
    np.testing.assert_array_equal(s.intrinsics, [[fx, 0, cx], [0, fy, cy], [0, 0, 1]])


def test_tum_association_does_not_assume_a_sorted_rgb_list():
    # associate.py matches by timestamp alone; the order of the lines in rgb.txt is irrelevant.
    rgb = [(2.0, "late.png"), (1.0, "early.png")]
    depth = [(1.001, "d1.png"), (2.001, "d2.png")]
    assert associate(rgb, depth) == [(1, 0), (0, 1)]


def test_nyu_intrinsics_are_the_toolboxs_rgb_camera_made_0_based(tmp_path):
    # NYU Depth v2 toolbox camera_params.m: fx_rgb = 5.1885790117450188e+02, fy_rgb =
    # 5.1946961112127485e+02, cx_rgb = 3.2558244941119034e+02, cy_rgb = 2.5373616633400465e+02
    # (MATLAB, 1-based); DepthART's crop cuts 8 px from each border, so cx, cy - 1 - 8.
    h, w = 20, 24
    mat = tmp_path / "nyu_depth_v2_labeled.mat"
    with h5py.File(mat, "w") as f:  # MATLAB v7.3 = HDF5, axes reversed: (N, 3, W, H), (N, W, H)
        f["images"] = np.zeros((1, 3, w, h), np.uint8)
        f["rawDepths"] = np.full((1, w, h), 2.0, np.float32)
        f["depths"] = np.full((1, w, h), 2.0, np.float32)
    s = get_dataset("nyuv2", mat, split="all")[0]
    want = [[518.85790117450188, 0, 325.58244941119034 - 9], [0, 519.46961112127485, 0], [0, 0, 1]]
    want[1][2] = 253.73616633400465 - 9
    np.testing.assert_allclose(s.intrinsics, want, rtol=1e-12)
    assert s.depth.shape == (h - 16, w - 16)


def test_diode_depth_mask_removes_in_range_depth(tmp_path):
    # DIODE "File structure": NAME_depth.npy (H, W, 1) float32 metres and NAME_depth_mask.npy,
    # 1 = valid: a 0 in the mask drops a depth even inside the scanner's (0.6, 350] m.
    scan = tmp_path / "indoors/scene_00019/scan_00183"
    _write_png(scan / "v.png", np.zeros((2, 2, 3), np.uint8))
    np.save(scan / "v_depth.npy", np.array([[[1.0], [2.0]], [[3.0], [4.0]]], np.float32))
    np.save(scan / "v_depth_mask.npy", np.array([[1, 0], [1, 1]], np.float32))
    s = get_dataset("diode", tmp_path)[0]
    assert s.valid.tolist() == [[True, False], [True, True]]
    assert s.depth.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def _png8(px: np.ndarray) -> bytes:
    """A PNG written by hand from the PNG spec (ISO/IEC 15948): IHDR colour type 0 = grey or
    6 = RGBA, 8 bits per sample, each row prefixed by filter byte 0, chunks as length, type,
    data, CRC."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    h, w = px.shape[:2]
    raw = b"".join(b"\x00" + px[r].tobytes() for r in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if px.ndim == 2 else 6, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(raw))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def test_rgba_and_grey_pngs_are_read_as_their_rgb(tmp_path):
    # PNG colour type 6 stores R, G, B, A: the reader returns R, G, B (alpha dropped); colour
    # type 0 stores one grey sample: R = G = B = that sample.
    rgba = np.array([[[30, 20, 10, 40], [200, 100, 50, 255]]] * 2, np.uint8)
    (tmp_path / "rgba.png").write_bytes(_png8(rgba))
    assert read_rgb(tmp_path / "rgba.png").tolist() == rgba[..., :3].tolist()
    (tmp_path / "grey.png").write_bytes(_png8(np.array([[0, 200]] * 2, np.uint8)))
    assert read_rgb(tmp_path / "grey.png").tolist() == [[[0] * 3, [200] * 3]] * 2


def test_ibims_masks_keep_every_nonzero_value(tmp_path):
    # iBims-1 (and DepthART's reader): mask_invalid / mask_transp nonzero = usable, whatever the
    # value; depth PNG: metres = value * 50 / 65535, so 13107 -> 10 m.
    (tmp_path / "imagelist.txt").write_text("x\n")
    (tmp_path / "rgb").mkdir()
    (tmp_path / "rgb/x.png").write_bytes(_png8(np.zeros((2, 2), np.uint8)))
    _write_png(tmp_path / "depth/x.png", np.full((2, 2), 13107, np.uint16))
    for d in ("mask_invalid", "mask_transp"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "x.png").write_bytes(_png8(np.array([[1, 255], [1, 1]], np.uint8)))
    (tmp_path / "mask_transp/x.png").write_bytes(_png8(np.array([[1, 255], [0, 1]], np.uint8)))
    s = get_dataset("ibims1", tmp_path)[0]
    assert s.valid.tolist() == [[True, True], [False, True]]
    np.testing.assert_allclose(s.depth, 10.0, rtol=1e-6)


def test_scannet_colour_is_area_averaged_to_the_depth_size(tmp_path):
    # The reader's documented contract: colour stored larger than depth is resized to the depth
    # frame with an area filter. Each 2x2 block below holds 0 and 200 in equal parts -> 100.
    color = np.zeros((4, 4, 3), np.uint8)
    color[:, 1::2] = 200
    jpg = tmp_path / "scene0000_00/color/000000.jpg"
    jpg.parent.mkdir(parents=True)
    jpg.write_bytes(cv2.imencode(".png", color)[1].tobytes())  # PNG bytes: lossless, decoded alike
    _write_png(tmp_path / "scene0000_00/depth/000000.png", np.full((2, 2), 1000, np.uint16))
    s = get_dataset("scannet", tmp_path)[0]
    assert s.rgb.tolist() == [[[100] * 3] * 2] * 2
    assert s.depth.tolist() == [[1.0, 1.0], [1.0, 1.0]]  # 16-bit millimetres (SensReader)


# --- CameraInfo (REP 104: full-resolution K and P, binning and ROI stated separately) ------------


def _info(width, height, k, p, binning=(0, 0), roi=(0, 0, 0, 0)) -> SimpleNamespace:
    r = SimpleNamespace(x_offset=roi[0], y_offset=roi[1], width=roi[2], height=roi[3])
    r.do_rectify = False
    return SimpleNamespace(
        width=width, height=height, binning_x=binning[0], binning_y=binning[1], roi=r, k=k,
        p=p, d=[0.0] * 5, r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], distortion_model="plumb_bob",
    )  # fmt: skip


K640 = [600.0, 0.0, 319.5, 0.0, 600.0, 239.5, 0.0, 0.0, 1.0]
P640 = [600.0, 0.0, 319.5, 0.0, 0.0, 600.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_binning_divides_each_axis_by_its_own_factor():
    # REP 104: the image is width / binning_x by height / binning_y pixels.
    info = _info(1280, 960, K640, P640, binning=(2, 4))
    assert ros_image.described_size(info) == (640, 240)
    assert camera_info.aspect_problem(info, (240, 640)) is None


def test_republished_camera_info_states_the_size_its_k_was_scaled_to():
    # A 640x480 calibration beside a 320x240 depth image: K and P halved (centres as cv2.resize
    # maps them: (319.5 + 0.5) * 0.5 - 0.5 = 159.5), and width/height those of the depth image,
    # or a consumer (image_geometry) would rescale the already scaled K a second time.
    out = camera_info.depth_camera(_info(640, 480, K640, P640), (240, 320))
    assert (out["width"], out["height"]) == (320, 240)
    assert out["k"] == [300.0, 0.0, 159.5, 0.0, 300.0, 119.5, 0.0, 0.0, 1.0]
    assert out["p"] == [300.0, 0.0, 159.5, 0.0, 0.0, 300.0, 119.5, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_a_calibration_of_another_aspect_ratio_is_refused_but_rounding_is_not():
    # 640x480 (4:3) cannot describe 640x512 pixels without stretching them by 6.7 %;
    # 1280x720 -> 518x294 (a network's multiple-of-14 size) differs by 0.9 % only.
    assert camera_info.aspect_problem(_info(640, 480, K640, P640), (512, 640)) is not None
    assert camera_info.aspect_problem(_info(1280, 720, K640, P640), (294, 518)) is None


def test_the_node_republishes_a_kept_roi_with_its_full_resolution_k():
    # REP 104: K stays the full sensor's and the ROI says where the image sits in it; a depth
    # image of the ROI's size keeps both, so dropping the ROI would shift the principal point
    # by (x_offset, y_offset) = (100, 50) px for every consumer.
    pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 sensor_msgs package")
    from depthart_ros.calibration import camera_info_for

    info = _info(640, 480, K640, P640, roi=(100, 50, 320, 240))
    out = camera_info_for(info, SimpleNamespace(), (240, 320))
    roi = (out.roi.x_offset, out.roi.y_offset, out.roi.width, out.roi.height)
    assert roi == (100, 50, 320, 240) and list(out.k) == K640


# --- compressed_depth_image_transport (codec.cpp, ConfigHeader) ---------------------------------


def test_compressed_depth_32fc1_writes_the_plugins_inverse_depth():
    # compressed_depth_image_transport codec.cpp: depthQuantA = q (q + 1), depthQuantB =
    # 1 - depthQuantA / depth_max; a depth d < depth_max (and != 0) is stored as
    # (ushort)(depthQuantA / d + depthQuantB), anything else as 0; the 12-byte ConfigHeader is
    # int32 format (INV_DEPTH = 0), float32 depthParam[2] = {A, B}, little-endian.
    # q = 100, depth_max = 10: A = 10100, B = -1009; 5 m -> 2020 - 1009 = 1011; 10 m -> 0.
    fmt, data = encode_depth(np.array([[5.0, 10.0, 0.0]] * 2, np.float32), "32FC1", 10.0, 100.0)
    assert fmt == "32FC1; compressedDepth png"
    assert data[:12] == struct.pack("<iff", 0, 10100.0, -1009.0)
    png = cv2.imdecode(np.frombuffer(data[12:], np.uint8), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png[0].tolist() == [1011, 0, 0]
    # decode: depth = A / (v - B): 10100 / (1011 + 1009) = 5 m; v = 0 -> invalid
    got = compressed_depth_to_metres(SimpleNamespace(format=fmt, data=data))
    assert got[0, 0] == 5.0 and np.isnan(got[0, 1:]).all()


# --- project_rays (OpenCV pinhole + plumb_bob: x_d = x (1 + k1 r^2), u = fx x_d + cx) ----------


def test_project_rays_by_hand_with_a_fold_on_either_axis():
    # k1 = -0.5: r_d = r (1 - 0.5 r^2) peaks at r = sqrt(2/3) = 0.816 and turns back; a ray past
    # that fold lands where a nearer ray does, so the camera does not see it there: NaN. Before
    # it, r = 0.5 -> 0.5 * (1 - 0.125) = 0.4375 -> 100 * 0.4375 from the principal point.
    K = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 40.0], [0.0, 0.0, 1.0]])
    D = np.array([-0.5, 0.0, 0.0, 0.0, 0.0])
    rays = np.array([[0.5, 0.0], [0.0, 0.5], [1.0, 0.0], [0.0, 1.0], [np.nan, np.nan]])
    px = project_rays(rays, K, D, "plumb_bob")
    np.testing.assert_allclose(px[:2], [[93.75, 40.0], [50.0, 83.75]], atol=1e-9)
    assert np.isnan(px[2:]).all(), px[2:]  # past the fold (x and y axes), and a non-finite ray
