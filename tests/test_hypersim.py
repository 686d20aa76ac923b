"""Hypersim reader on a fixture written in the dataset's own layout: tonemap JPEGs, depth_meters
HDF5 files (float16 ray distances with NaNs) and a split CSV shaped like
metadata_images_split_scene_v1.csv."""

from __future__ import annotations

import csv
import logging
import math

import cv2
import h5py
import numpy as np
import pytest

from depthart_core.data.benchmarks._io import BadFrameError
from depthart_core.data.hypersim import HypersimDataset, distance_to_planar

H, W = 12, 16  # f = 8 / tan(30 deg), so f^2 = 192 exactly; cx = 7.5, cy = 5.5

ROWS = [  # scene, camera, frame, public, split, what is on disk
    ("ai_001_001", "cam_00", 0, "True", "train", "ok"),
    ("ai_001_001", "cam_00", 1, "True", "train", "corrupt_hdf5"),
    ("ai_001_001", "cam_00", 3, "False", "train", "ok"),  # not in the public release
    ("ai_001_001", "cam_00", 2, "True", "val", "ok"),
    ("ai_001_002", "cam_01", 0, "True", "test", "ok"),
    ("ai_001_002", "cam_01", 1, "True", "test", "no_jpeg"),
]


def _distance(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.5, 9.0, (H, W)).astype(np.float16)
    d[3, 4] = np.nan
    d[0, 15] = np.nan
    return d


def _write_fixture(root) -> None:
    for scene, cam, frame, _, _, state in ROWS:
        img = root / scene / "images"
        pre, geo = img / f"scene_{cam}_final_preview", img / f"scene_{cam}_geometry_hdf5"
        pre.mkdir(parents=True, exist_ok=True)
        geo.mkdir(parents=True, exist_ok=True)
        if state != "no_jpeg":
            rgb = np.full((H, W, 3), (40 * frame) % 255, np.uint8)
            assert cv2.imwrite(str(pre / f"frame.{frame:04d}.tonemap.jpg"), rgb)
        h5 = geo / f"frame.{frame:04d}.depth_meters.hdf5"
        if state == "corrupt_hdf5":
            h5.write_bytes(b"this is not an HDF5 file")
        else:
            with h5py.File(h5, "w") as f:
                f.create_dataset("dataset", data=_distance(frame + 10 * len(scene + cam)))
    with open(root / "metadata_images_split_scene_v1.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "scene_name",
                "camera_name",
                "frame_id",
                "included_in_public_release",
                "exclude_reason",
                "split_partition_name",
            ]
        )
        for scene, cam, frame, public, split, _ in ROWS:
            w.writerow([scene, cam, frame, public, "", split])


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    r = tmp_path_factory.mktemp("hypersim")
    _write_fixture(r)
    return r


def test_planar_depth_matches_hand_computation(root):
    ds = HypersimDataset(root, split="val")
    assert len(ds) == 1 and ds.name == "hypersim"
    s = ds[0]
    assert s.name == "ai_001_001/cam_00/frame.0002"
    assert s.rgb.shape == (H, W, 3) and s.rgb.dtype == np.uint8
    dist = _distance(2 + 10 * len("ai_001_001cam_00")).astype(np.float64)
    f = math.sqrt(192.0)
    for v, u in [(0, 0), (5, 7), (11, 15), (2, 9)]:
        expected = dist[v, u] * f / math.sqrt((u - 7.5) ** 2 + (v - 5.5) ** 2 + 192.0)
        assert s.depth[v, u] == pytest.approx(expected, rel=1e-6)
        assert s.valid[v, u]
    # corner pixel (0, 0): sqrt(192 / (7.5^2 + 5.5^2 + 192)) = 0.830306, clearly not distance
    assert s.depth[0, 0] == pytest.approx(dist[0, 0] * 0.830306, rel=2e-6)
    np.testing.assert_allclose(s.intrinsics, [[f, 0, 7.5], [0, f, 5.5], [0, 0, 1]], rtol=1e-9)


def test_nan_pixels_are_invalid_with_zero_depth(root):
    s = HypersimDataset(root, split="val")[0]
    assert not s.valid[3, 4] and not s.valid[0, 15]
    assert s.depth[3, 4] == 0.0 and s.depth[0, 15] == 0.0
    assert np.isfinite(s.depth).all() and s.valid.sum() == H * W - 2


def test_split_filtering_and_damaged_frames_raised_when_read(root, caplog):
    """Frame 3 is not in the public release: not in the split. A frame with a file on disk is in
    it: one whose other file is missing or not what it should be is not skipped when the dataset
    is opened but raises a frame error naming the file when read (`depthart eval` lists it)."""
    with caplog.at_level(logging.WARNING):
        train = HypersimDataset(root, split="train")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert len(train) == 2 and train.skipped == 0
    assert train[0].name == "ai_001_001/cam_00/frame.0000"
    geo = root / "ai_001_001" / "images" / "scene_cam_00_geometry_hdf5"
    with pytest.raises(BadFrameError) as bad:  # frame 1's HDF5 is corrupt
        train[1]
    assert str(bad.value) == f"{geo / 'frame.0001.depth_meters.hdf5'} is not a HDF5 file"
    test = HypersimDataset(root, split="test", csv=root / "metadata_images_split_scene_v1.csv")
    assert len(test) == 2 and test.skipped == 0
    assert test[0].name == "ai_001_002/cam_01/frame.0000"
    pre = root / "ai_001_002" / "images" / "scene_cam_01_final_preview"
    with pytest.raises(FileNotFoundError) as missing:  # frame 1 has no JPEG
        test[1]
    assert str(missing.value) == f"{pre / 'frame.0001.tonemap.jpg'} is missing"
    every = HypersimDataset(root, split=None)  # all frames on disk, no CSV
    assert len(every) == 6 and every.skipped == 0


def test_errors_name_the_problem(root, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_root"):
        HypersimDataset(tmp_path / "missing_root")
    with pytest.raises(ValueError, match="trian"):
        HypersimDataset(root, split="trian")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        HypersimDataset(root, split="train", csv=tmp_path / "nope.csv")
    # a damaged HDF5 behind a valid signature fails at read time, naming the file
    good = root / "ai_001_002" / "images" / "scene_cam_01_geometry_hdf5"
    damaged = tmp_path / "damaged"
    _write_fixture(damaged)
    h5 = damaged / good.relative_to(root) / "frame.0000.depth_meters.hdf5"
    h5.write_bytes(h5.read_bytes()[:64])
    ds = HypersimDataset(damaged, split="test")
    with pytest.raises(ValueError, match="frame.0000.depth_meters.hdf5"):
        ds[0]


def test_distance_to_planar_keeps_centre_and_shrinks_corners():
    d = np.full((768, 1024), 2.0, np.float32)
    z = distance_to_planar(d)
    f = 512 / math.tan(math.radians(30))
    assert z[384, 512] == pytest.approx(2.0 * f / math.sqrt(0.25 + 0.25 + f * f), rel=1e-6)
    assert z[0, 0] == pytest.approx(2.0 * f / math.sqrt(511.5**2 + 383.5**2 + f * f), rel=1e-6)


# ml-hypersim contrib/mikeroberts3000/metadata_camera_parameters.csv: the standard camera, and
# scene ai_038_009's tilt-shift one (its principal point lies far below the centre)
M_STANDARD = np.diag([0.5773502886169104, 0.4330127164626828, -1.0])
M_TILT_SHIFT = np.array(
    [
        [0.6088745353317421, 0.0, -0.04870996173778685],
        [0.0, 0.42281668362380326, -0.11275110051191127],
        [0.0, -0.17251279495462457, -1.0546015951381162],
    ]
)


def _wall_distance(M: np.ndarray, h: int, w: int) -> np.ndarray:
    """Ray distances to the plane z = -3 of Hypersim's camera, rendered through `M` (pixel
    centres; u right, v up in [-1, 1]), as ml-hypersim's ray-casting notebook builds them."""
    u = np.linspace(-1 + 1 / w, 1 - 1 / w, w)
    v = np.linspace(1 - 1 / h, -1 + 1 / h, h)
    uu, vv = np.meshgrid(u, v)
    rays = np.stack([uu, vv, np.ones_like(uu)], -1) @ M.T
    return -3.0 / rays[..., 2] * np.linalg.norm(rays, axis=-1)


def test_per_scene_cameras_give_the_pinhole_depth_and_intrinsics_of_the_image():
    """A standard scene converts exactly as before. A tilt-shift scene: the returned depth,
    back-projected through the returned K, lies on one plane at the true distances (the
    standard camera bends the same wall by centimetres and misplaces the principal point)."""
    from depthart_core.data.hypersim import distance_to_planar_exact, focal_length

    h, w = 96, 128
    d = _wall_distance(M_STANDARD, h, w)
    depth, K = distance_to_planar_exact(d, M_STANDARD)
    np.testing.assert_allclose(depth, distance_to_planar(d.astype(np.float32)), rtol=1e-6)
    np.testing.assert_allclose(
        K, [[focal_length(w), 0, 63.5], [0, focal_length(w), 47.5], [0, 0, 1]]
    )
    d = _wall_distance(M_TILT_SHIFT, h, w)

    def off_plane(depth: np.ndarray, K: np.ndarray) -> tuple[float, float]:
        ys, xs = np.mgrid[0:h, 0:w]
        X = (np.stack([xs, ys, np.ones_like(xs)], -1) @ np.linalg.inv(K).T) * depth[..., None]
        flat = X.reshape(-1, 3) - X.reshape(-1, 3).mean(0)
        rms = np.linalg.svd(flat, compute_uv=False)[-1] / math.sqrt(len(flat))
        return rms, np.abs(np.linalg.norm(X, axis=-1) - d).max()

    depth, K_scene = distance_to_planar_exact(d, M_TILT_SHIFT)
    assert K_scene[1, 2] > 70  # the principal point far below the centre (47.5)
    rms, far = off_plane(depth, K_scene)
    assert rms < 1e-5 and far < 1e-4, (rms, far)
    rms, _ = off_plane(distance_to_planar(d.astype(np.float32)), K)  # the standard camera
    assert rms > 1e-3, rms  # bent by about 1.5 cm rms


def test_the_camera_csv_in_the_root_is_used_and_must_cover_every_scene(root, tmp_path):
    cols = [f"M_cam_from_uv_{i}{j}" for i in range(3) for j in range(3)]
    rows = [("ai_001_001", M_TILT_SHIFT), ("ai_001_002", M_STANDARD)]
    csv_path = tmp_path / "metadata_camera_parameters.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scene_name", "settings_output_img_height", *cols])
        for scene, M in rows:
            w.writerow([scene, 768.0, *M.reshape(-1)])
    standard = HypersimDataset(root, split="train")
    per_scene = HypersimDataset(root, split="train", camera_csv=csv_path)
    assert (standard.camera_mode, per_scene.camera_mode) == ("standard", "per-scene")
    a, b = standard[0], per_scene[0]
    assert b.intrinsics[1, 2] > a.intrinsics[1, 2] + 3  # ai_001_001 is tilt-shift here
    assert not np.allclose(a.depth[b.valid], b.depth[b.valid])
    test = HypersimDataset(root, split="test", camera_csv=csv_path)[0]  # a standard scene
    np.testing.assert_allclose(test.depth, HypersimDataset(root, split="test")[0].depth, rtol=1e-6)
    with open(csv_path, "w", newline="") as f:
        csv.writer(f).writerows([["scene_name", *cols], ["ai_009_009", *M_STANDARD.reshape(-1)]])
    with pytest.raises(ValueError, match="scene ai_001_001 is not in the camera parameters CSV"):
        HypersimDataset(root, split="train", camera_csv=csv_path)[0]


def test_validation_leaves_out_a_frame_without_valid_depth(tmp_path, monkeypatch, caplog):
    """A val frame that is all NaN (a camera facing a window) crashed training at its first
    validation ("depth image 1 has no valid pixel"), after the steps since the last save."""
    from depthart_core.training.config import DataConfig
    from depthart_core.training.data import validation_batch

    rows = [("ai_009_001", "cam_00", f, "True", "val", "ok") for f in range(3)]
    monkeypatch.setitem(globals(), "ROWS", rows)  # what _write_fixture writes
    _write_fixture(tmp_path)
    geo = tmp_path / "ai_009_001" / "images" / "scene_cam_00_geometry_hdf5"
    with h5py.File(geo / "frame.0001.depth_meters.hdf5", "w") as f:
        f.create_dataset("dataset", data=np.full((H, W), np.nan, np.float16))
    cfg = DataConfig(source="hypersim", root=str(tmp_path), val_count=3)
    with caplog.at_level(logging.WARNING):
        batch = validation_batch(cfg, 8)
    assert batch["valid"].shape[0] == 2 and bool(batch["valid"].flatten(1).any(1).all())
    assert "leaves out 1 frame(s) without valid depth" in caplog.text
