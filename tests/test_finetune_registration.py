"""`depthart finetune` on depth not registered to colour: --depth-info-topic needs
--camera-info-topic, a frame without a usable calibration on either side is rejected with the
cause (never resized), each depth image is mapped with the depth calibration in force at its
stamp, and the report says how the depth was mapped. Also: the "too few frames" error counts
the unmatched images, and 32FC1 depth in millimetres is warned about."""

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
    check_split,
    decode_frames,
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
            if i >= info_from:
                bag.write(TOPICS[3], messages.camera_info_msg(Kd, 12, 16, t, "depth"), log)
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
        "(same aspect ratio, no intrinsics); 18 reprojected through both cameras' intrinsics."
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
