"""`depthart finetune` on depth not registered to colour: --depth-info-topic needs
--camera-info-topic, a frame without a usable calibration on either side is rejected with the
cause (never resized), each depth image is mapped with the depth calibration in force at its
stamp, and the report says how the depth was mapped; the mapping goes through both lens models
(K and the distortion D of a raw image, P of a rectified one), a change of D is a new
calibration, and CameraInfo frame_ids that differ are warned about. Also: the "too few frames"
error counts the unmatched images, and 32FC1 depth in millimetres is warned about."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from depthart_core.cli import main
from depthart_core.finetune.frames import (
    Counts,
    FinetuneInputError,
    FrameConfig,
    InfoTimeline,
    check_split,
    decode_frames,
    rectified_topic,
    scan_bag,
    split_by_time,
)
from depthart_core.rosio import messages
from depthart_core.rosio.bags import BagWriter

T0 = 1_700_000_000 * 1_000_000_000
PERIOD = 100_000_000  # 10 Hz
H, W = 24, 32  # the colour image
K_IMAGE = np.array([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]])
# two modes of a 12x16 depth stream: the full field of view at half resolution, and the centre
# crop at full resolution (the same size: only the CameraInfo tells them apart)
K_HALF = np.array([[15.0, 0, 7.5], [0, 15.0, 5.5], [0, 0, 1]])
K_CROP = np.array([[30.0, 0, 7.5], [0, 30.0, 5.5], [0, 0, 1]])
TOPICS = ("/cam/image", "/cam/depth", "/cam/info", "/cam/depth_info")


def _scene(K: np.ndarray, h: int, w: int) -> np.ndarray:
    """Depth in metres as a function of each pixel's ray: 2 + x + 0.5 y."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    x, y = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
    return 2.0 + x + 0.5 * y


def _write(
    path: Path,
    n: int,
    depth_K=lambda i: K_HALF,
    image_K=lambda i: K_IMAGE,
    info_from: int = 0,
    depth_encoding: str = "16UC1",
    scale: float = 1.0,
) -> Path:
    """n frames at 10 Hz: an image with its CameraInfo, and 5 ms later a 12x16 depth image of
    the scene seen through `depth_K(i)` with its CameraInfo (from frame `info_from` on)."""
    rng = np.random.default_rng(0)
    with BagWriter(path) as bag:
        for i in range(n):
            t = T0 + i * PERIOD
            rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            bag.write(TOPICS[2], messages.camera_info_msg(image_K(i), H, W, t, "cam"), t)
            bag.write(TOPICS[0], messages.image_msg(rgb, "rgb8", t, "cam"), t)
            Kd = depth_K(i)
            d = _scene(Kd if Kd.any() else K_HALF, 12, 16) * scale
            if depth_encoding == "16UC1":
                px = np.rint(d * 1000).astype(np.uint16)
            else:
                px = d.astype(np.float32)
            log = t + 5_000_000
            bag.write(TOPICS[1], messages.image_msg(px, depth_encoding, t, "depth"), log)
            if i >= info_from:  # a registered stream: the colour camera's optical frame
                bag.write(TOPICS[3], messages.camera_info_msg(Kd, 12, 16, t, "cam"), log)
    return path


def _decode(bag: Path, cfg: FrameConfig) -> tuple[list, Counts]:
    scan = scan_bag(bag, cfg)
    split_by_time(scan, cfg)
    counts = Counts()
    return list(decode_frames(scan, 0, cfg, counts)), counts


def _config(**kw) -> FrameConfig:
    return FrameConfig(*TOPICS, min_valid=0.1, min_train=1, min_heldout=1, **kw)


def test_depth_info_topic_needs_camera_info_topic(tmp_path, capsys):
    with pytest.raises(ValueError, match="'/cam/depth_info' needs a camera info topic"):
        FrameConfig("/cam/image", "/cam/depth", None, "/cam/depth_info")
    bag = _write(tmp_path / "bag", 4)
    args = ["finetune", str(bag), "--image-topic", "/cam/image", "--depth-topic", "/cam/depth"]
    args += ["--depth-info-topic", "/cam/depth_info", "--out", str(tmp_path / "run")]
    assert main(args + ["--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "depthart finetune: error: --depth-info-topic /cam/depth_info needs "
        "--camera-info-topic: depth is mapped through both cameras' intrinsics"
    )
    assert not (tmp_path / "run").exists()


def test_finetune_help_names_ros1_bags(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    assert "ROS 1 .bag" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("side", "kw"),
    [
        ("depth", {"depth_K": lambda i: np.zeros((3, 3))}),
        ("colour", {"image_K": lambda i: 0 * K_IMAGE}),
    ],
)
def test_an_uncalibrated_side_rejects_the_frame_instead_of_resizing(tmp_path, side, kw):
    """12x16 depth has the image's aspect ratio, so the old reader quietly resized it."""
    frames, counts = _decode(_write(tmp_path / "bag", 6, **kw), _config())
    assert frames == [] and counts.paired == 0 and counts.mapping == Counter()
    assert counts.rejected == {f"{side} camera_info uncalibrated (K = 0)": 6}


def test_a_depth_image_before_any_depth_calibration_is_rejected(tmp_path):
    """Where the depth camera's calibration changes in the bag, an image recorded before its
    first calibration is rejected; with one calibration throughout, every image takes it."""
    changing = _write(
        tmp_path / "bag", 6, info_from=2, depth_K=lambda i: K_HALF if i < 4 else K_CROP
    )
    frames, counts = _decode(changing, _config())
    assert [f.index for f in frames] == [2, 3, 4, 5]
    assert counts.rejected == {"no depth camera_info stamped at or before the depth image": 2}
    frames, counts = _decode(_write(tmp_path / "bag2", 6, info_from=2), _config())
    assert [f.index for f in frames] == list(range(6)) and not counts.rejected


def test_a_depth_stream_reconfigured_mid_bag_is_mapped_with_each_images_calibration(tmp_path):
    """Frames 0-9 at half resolution, 10-19 cropped: each mapped with its own CameraInfo (the
    old reader took the bag's last one for all, misplacing the first half by up to 0.27 m)."""
    bag = _write(tmp_path / "bag", 20, depth_K=lambda i: K_HALF if i < 10 else K_CROP)
    frames, counts = _decode(bag, _config())
    assert [f.index for f in frames] == list(range(20))
    truth = _scene(K_IMAGE, H, W)
    for f in frames:
        err = np.abs(f.depth[f.valid] - truth[f.valid]).max()
        assert err <= 1.5 * 0.5 / 15.0 + 2e-3, (f.index, err)  # nearest neighbour, 1 mm steps
        share = f.valid.mean()
        assert share == 1.0 if f.index < 10 else 0.2 <= share <= 0.3, (f.index, share)
    assert counts.mapping == {"reprojected": 20} and counts.to_dict()["mapping"] == {
        "reprojected": 20
    }


def test_the_report_says_how_the_depth_was_mapped():
    from depthart_core.finetune.report import _frames_lines
    from depthart_core.finetune.run import FinetuneConfig, Prepared, _summary

    a = Counts(paired=18, mapping=Counter(reprojected=18))
    b = Counts(paired=2, mapping=Counter(resized=2))
    cfg = FinetuneConfig(_config())
    s = _summary(["a", "b"], cfg, Path("base"), Prepared([], [a, b], [], [], []))
    assert s["counts"]["total"]["mapping"] == {"resized": 2, "reprojected": 18}
    assert s["counts"]["per_bag"][1]["mapping"] == {"resized": 2}
    text = "\n".join(_frames_lines(s))
    assert (
        "Depth onto the image grid (CameraInfo: `/cam/info`, `/cam/depth_info`): 2 resized "
        "(same aspect ratio, no intrinsics); 18 reprojected through both cameras' lens models."
    ) in text


def test_too_few_frames_counts_the_images_without_depth_within_max_dt():
    bags = [Counts(paired=3, unmatched=5, blocks=Counter(train=3)), Counts(unmatched=2)]
    bags[0].rejected["depth not decodable"] += 1
    with pytest.raises(FinetuneInputError) as exc:
        check_split(bags, FrameConfig("/i", "/d", max_dt_s=0.01))
    assert str(exc.value).endswith(
        "; rejected 1: 1 depth not decodable; 7 images had no depth stamp within --max-dt "
        "0.01 s (raise --max-dt or check the sync)"
    )
    with pytest.raises(FinetuneInputError) as exc:
        check_split([Counts(paired=3, blocks=Counter(train=3))], FrameConfig("/i", "/d"))
    assert "no depth stamp" not in str(exc.value)


@pytest.mark.parametrize(("scale", "warned"), [(1.0, False), (1000.0, True)])
def test_32fc1_depth_in_millimetres_is_warned_about_once_per_bag(tmp_path, caplog, scale, warned):
    bag = _write(tmp_path / "bag", 8, depth_encoding="32FC1", scale=scale)
    cfg = FrameConfig(*TOPICS[:2], min_valid=0.1, min_train=1, min_heldout=1)
    with caplog.at_level(logging.WARNING, logger="depthart_core.finetune.frames"):
        frames, _ = _decode(bag, cfg)
    assert len(frames) == 8
    said = [r.getMessage() for r in caplog.records if "32FC1" in r.getMessage()]
    assert len(said) == int(warned)
    if warned:
        median = np.median(_scene(K_HALF, 12, 16) * scale)
        assert f"'/cam/depth' in {bag}: 32FC1 with a median of {median:.1f} m" in said[0]
        assert "32FC1 must be metres" in said[0]


# ------------------------------------------------------------------------------------------------
# Lens distortion: the depth camera's D (and the colour camera's), and CameraInfo frame_ids

CH, CW = 48, 64  # the colour image of the lens tests
K_COLOUR = np.array([[40.0, 0, 31.5], [0, 40.0, 23.5], [0, 0, 1]])
DH, DW = 60, 80  # a raw (unrectified) depth camera, a little narrower
K_RAW = np.array([[45.0, 0, 39.5], [0, 45.0, 29.5], [0, 0, 1]])
PLUMB_BOB = ("plumb_bob", np.array([-0.3, 0.08, 0.001, -0.0005, 0.0]))
EQUIDISTANT = ("equidistant", np.array([-0.05, 0.01, 0.002, -0.001]))


def _info(K, h, w, t, frame, model="plumb_bob", d=(0.0,) * 5, P=None):
    msg = messages.camera_info_msg(K, h, w, t, frame)
    msg.distortion_model, msg.d = model, np.asarray(d, dtype=np.float64)
    if P is not None:
        msg.p = np.asarray(P, dtype=np.float64).reshape(12)
    return msg


def _distort(x: np.ndarray, y: np.ndarray, model: str, d: np.ndarray) -> tuple:
    """By hand, as sensor_msgs/CameraInfo defines the models: a ray (x, y) -> distorted (x, y)."""
    if model == "equidistant":
        r = np.hypot(x, y)
        th = np.arctan(r)
        th_d = th * (1 + d[0] * th**2 + d[1] * th**4 + d[2] * th**6 + d[3] * th**8)
        s = np.where(r > 0, th_d / np.where(r > 0, r, 1), 1.0)
        return x * s, y * s
    k1, k2, p1, p2, k3 = d
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    return (
        x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
        y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y,
    )


def _rays(K: np.ndarray, h: int, w: int, lens=("", None)) -> tuple:
    """Each pixel's ray (x, y), the hand-written model inverted by damped fixed-point steps (the
    scene and the truth, not the code under test)."""
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    xd, yd = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
    if lens[1] is None:
        return xd, yd
    x, y = xd.copy(), yd.copy()
    for _ in range(400):
        fx, fy = _distort(x, y, *lens)
        x, y = x - 0.8 * (fx - xd), y - 0.8 * (fy - yd)
    fx, fy = _distort(x, y, *lens)
    assert max(np.abs(fx - xd).max(), np.abs(fy - yd).max()) < 1e-12  # the rays are solved
    return x, y


def _raw_depth(lens: tuple[str, np.ndarray]) -> np.ndarray:
    """32FC1 depth of the raw depth camera: 2 + x + 0.5 y along each pixel's ray."""
    x, y = _rays(K_RAW, DH, DW, lens)
    return (2.0 + x + 0.5 * y).astype(np.float32)


def _lens_bag(
    path, n, depth_lens=lambda i: PLUMB_BOB, colour=None, frames=("cam", "cam"), image=TOPICS[0]
):
    """n frames at 10 Hz: a CWxCH image on `image` with `colour(t)` its CameraInfo (a pinhole
    K_COLOUR by default) and a raw DWxDH 32FC1 depth image through `depth_lens(i)` with its
    CameraInfo; `frames`: the two CameraInfo frame_ids."""
    colour = colour or (lambda t: _info(K_COLOUR, CH, CW, t, frames[0]))
    rng = np.random.default_rng(0)
    with BagWriter(path) as bag:
        for i in range(n):
            t = T0 + i * PERIOD
            model, d = depth_lens(i)
            bag.write(TOPICS[2], colour(t), t)
            rgb = rng.integers(0, 256, (CH, CW, 3), dtype=np.uint8)
            bag.write(image, messages.image_msg(rgb, "rgb8", t, frames[0]), t)
            depth = _raw_depth((model, d))
            bag.write(TOPICS[1], messages.image_msg(depth, "32FC1", t, "depth"), t + 5_000_000)
            info = _info(K_RAW, DH, DW, t, frames[1], model, d)
            bag.write(TOPICS[3], info, t + 5_000_000)
    return path


def _expected(colour_rays: tuple, lens: tuple[str, np.ndarray]) -> tuple:
    """By hand: the depth each colour pixel must get (the depth image at the nearest pixel to
    where the depth lens sees its ray) and where that is well inside (no rounding tie)."""
    x, y = colour_rays
    xd, yd = _distort(x, y, *lens)
    u, v = K_RAW[0, 0] * xd + K_RAW[0, 2], K_RAW[1, 1] * yd + K_RAW[1, 2]
    inside = (u > -0.45) & (u < DW - 0.55) & (v > -0.45) & (v < DH - 0.55)
    clear = inside & (np.abs(u % 1 - 0.5) > 0.01) & (np.abs(v % 1 - 0.5) > 0.01)
    ui = np.clip(np.rint(u), 0, DW - 1).astype(int)
    vi = np.clip(np.rint(v), 0, DH - 1).astype(int)
    return _raw_depth(lens)[vi, ui], inside, clear


@pytest.mark.parametrize("lens", [PLUMB_BOB, EQUIDISTANT], ids=["plumb_bob", "equidistant"])
def test_a_distorted_depth_camera_is_mapped_through_its_lens_model(tmp_path, lens):
    """A raw depth camera with a strong barrel (k1 = -0.3): each colour pixel gets the depth of
    the depth pixel that sees its ray. Through K alone (the old mapping) the corners were ~17
    colour px off and their depth up to 23 % off."""
    frames, counts = _decode(_lens_bag(tmp_path / "bag", 4, lambda i: lens), _config())
    assert len(frames) == 4 and counts.mapping == {"reprojected": 4} and not counts.rejected
    rays = _rays(K_COLOUR, CH, CW)
    want, inside, clear = _expected(rays, lens)
    f = frames[0]
    assert clear.mean() > 0.9 and (f.valid == inside)[clear].all()
    np.testing.assert_array_equal(f.depth[clear], want[clear])  # the hand-computed pixel
    truth = 2.0 + rays[0] + 0.5 * rays[1]  # the scene along each colour ray
    err = np.abs(f.depth - truth)[f.valid]
    assert np.median(err) < 0.01 and err.max() < 0.04, (np.median(err), err.max())


def test_the_colour_cameras_lens_is_honoured_raw_by_k_and_d_rectified_by_p(tmp_path):
    """A raw colour topic undistorts its pixels with K and D; one named image_rect is already
    rectified and projects through P, its CameraInfo's D ignored (as the node's points.image)."""
    d_colour = np.array([-0.1, 0.02, 0.0, 0.0, 0.0])
    K_wide = np.array([[36.0, 0, 31.5], [0, 36.0, 23.5], [0, 0, 1]])
    P_rect = np.hstack([K_wide, np.zeros((3, 1))])

    def colour(t):
        return _info(K_COLOUR, CH, CW, t, "cam", "plumb_bob", d_colour, P_rect)

    bag = _lens_bag(tmp_path / "bag", 2, colour=colour)
    raw, _ = _decode(bag, _config())
    rect_cfg = FrameConfig("/cam/image_rect", *TOPICS[1:], min_valid=0.1, min_train=1,
                           min_heldout=1)  # fmt: skip
    rect_bag = _lens_bag(tmp_path / "rect", 2, colour=colour, image="/cam/image_rect")
    rect, _ = _decode(rect_bag, rect_cfg)
    undistorted = _rays(K_COLOUR, CH, CW, ("plumb_bob", d_colour))
    for got, rays in ((raw[0], undistorted), (rect[0], _rays(K_wide, CH, CW))):
        want, _, clear = _expected(rays, PLUMB_BOB)
        sure = clear & got.valid
        assert sure.mean() > 0.8
        np.testing.assert_array_equal(got.depth[sure], want[sure])


def test_a_distortion_change_mid_bag_is_a_new_calibration(tmp_path):
    """The depth camera's D switches on at frame 5 with K unchanged: a new calibration (the old
    key left D out and folded both into the first), each frame mapped with its own."""
    lenses = lambda i: ("plumb_bob", np.zeros(5)) if i < 5 else PLUMB_BOB  # noqa: E731
    bag = _lens_bag(tmp_path / "bag", 10, lenses)
    timeline = InfoTimeline.read(bag, TOPICS[3])
    assert len(timeline.usable) == 2
    assert not np.any(timeline.at(T0 + 4 * PERIOD + 5_000_000)[0].d)
    np.testing.assert_array_equal(timeline.at(T0 + 5 * PERIOD + 5_000_000)[0].d, PLUMB_BOB[1])
    frames, counts = _decode(bag, _config())
    assert len(frames) == 10 and not counts.rejected
    for f in frames:
        want, _, clear = _expected(_rays(K_COLOUR, CH, CW), lenses(f.index))
        np.testing.assert_array_equal(f.depth[clear & f.valid], want[clear & f.valid])


def test_differing_camera_frame_ids_are_warned_about_once_per_bag_and_reported(tmp_path, caplog):
    """A depth camera in another optical frame (a RealSense's depth/image_rect_raw, ~15 mm from
    the colour camera): mapped as if they shared an optical centre, which is said once per bag
    and in the report; the same or an empty frame_id is not warned about."""
    from depthart_core.finetune.report import _frames_lines
    from depthart_core.finetune.run import FinetuneConfig, Prepared, _summary

    apart = _lens_bag(tmp_path / "apart", 6, frames=("color_optical", "depth_optical"))
    with caplog.at_level(logging.WARNING, logger="depthart_core.finetune.frames"):
        _, counts = _decode(apart, _config())
    said = [r.getMessage() for r in caplog.records if "frame_id" in r.getMessage()]
    assert said == [
        f"{apart}: depth camera_info frame_id 'depth_optical' is not the colour camera_info's "
        "'color_optical': the extrinsics between the cameras are not applied (the depth is "
        "assumed to share the colour camera's optical centre); register the depth to the "
        "colour camera for exact training depth"
    ]
    assert counts.mapping == {"reprojected_apart": 6}
    s = _summary(["a"], FinetuneConfig(_config()), Path("base"), Prepared([], [counts], [], [], []))
    assert (
        "6 reprojected through both cameras' lens models, their CameraInfo frame_ids differing "
        "(extrinsics not applied: one optical centre assumed)."
    ) in "\n".join(_frames_lines(s))
    for ids in (("cam", "cam"), ("cam", "")):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="depthart_core.finetune.frames"):
            _, counts = _decode(_lens_bag(tmp_path / f"b{ids[1]}", 2, frames=ids), _config())
        assert counts.mapping == {"reprojected": 2} and "frame_id" not in caplog.text


def test_a_distortion_model_that_cannot_be_projected_rejects_the_frame(tmp_path):
    bag = _lens_bag(tmp_path / "bag", 3, lambda i: ("fisheye62", np.array([0.1, 0, 0, 0, 0])))
    frames, counts = _decode(bag, _config())
    assert frames == [] and counts.rejected == {
        "depth camera_info unusable (distortion model 'fisheye62'; supported: plumb_bob, "
        "rational_polynomial, equidistant)": 3
    }


def test_rectified_topics_are_told_by_name():
    for topic in ("/cam/image_rect", "/cam/image_rect_color/compressed", "/d/image_rect_raw"):
        assert rectified_topic(topic), topic
    for topic in ("/cam/image_raw", "/camera/direction/image", "/cam/depth", None):
        assert not rectified_topic(topic), topic
