"""A frame a set declares whose file is missing (or not what it should be) is a damaged frame, as
README's `depthart eval` comment says: skipped with a warning naming it, listed in report.md and
report.json ("unreadable"), the rest scored, exit status 1. The synthetic and Hypersim readers
left such a frame out of their index instead (counted as "skipped by the reader", exit 0), where
every other reader raised it as a frame error. A synthetic frame of which no file at all is on
disk is still only counted, in one warning."""

from __future__ import annotations

import csv
import json
import logging
import shutil

import cv2
import h5py
import numpy as np
import pytest

from depthart_core.cli import main
from depthart_core.data.benchmarks._io import FRAME_ERRORS
from depthart_core.data.hypersim import HypersimDataset
from depthart_core.data.synthetic.set import SyntheticSet, write_synthetic_set


def _eval(dataset, root, out):
    argv = ["eval", "--baselines-only", "--baseline", "constant", "--dataset", dataset]
    return main([*argv, "--root", str(root), "--out", str(out), "--no-progress"])


def _reports(out):
    return json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("missing") / "set"
    write_synthetic_set(root, count=4, seed=5, size=(16, 24), progress=False)
    return root


def test_a_synthetic_frame_with_a_missing_file_is_unreadable_and_exit_1(
    synth_set, tmp_path, caplog
):
    root = tmp_path / "sv_miss"
    shutil.copytree(synth_set, root)
    (root / "rgb" / "000001.png").unlink()  # frame 1: its RGB only
    for sub, ext in (("rgb", "png"), ("depth", "png"), ("intrinsics", "json")):
        (root / sub / f"000003.{ext}").unlink()  # frame 3: none of its files, a counted skip
    with caplog.at_level(logging.WARNING):
        assert _eval("synthetic", root, tmp_path / "ev") == 1
    report, md = _reports(tmp_path / "ev")
    missing = f"{root / 'rgb' / '000001.png'} is missing"
    assert report["unreadable"] == [{"index": 1, "error": missing}]
    assert report["skipped_unreadable"] == 1 and report["skipped_reader"] == 1
    assert [p["name"] for p in report["per_image"]] == ["synth_5_000000", "synth_5_000002"]
    assert f"- frame 1: {missing}" in md and "could not be read: 1" in md
    assert missing in caplog.text
    assert "skipped 1 frame(s) with no file in rgb/, depth/ or intrinsics/: 000003" in caplog.text


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda r: (r / "depth" / "000002.png").write_bytes(b"not a png"), "is not a PNG file"),
        (lambda r: (r / "intrinsics" / "000002.json").write_text("{"), "is not valid JSON"),
        (lambda r: (r / "intrinsics" / "000002.json").write_text("{}"), "lacks one of the keys"),
    ],
)
def test_a_synthetic_frame_failing_the_cheap_checks_raises_when_read(
    synth_set, tmp_path, damage, why
):
    root = tmp_path / "set"
    shutil.copytree(synth_set, root)
    damage(root)
    ds = SyntheticSet(root)
    assert ds.frames == [0, 1, 2, 3] and ds.skipped == 0  # kept in the index, named when read
    with pytest.raises(FRAME_ERRORS, match=why):
        ds[2]
    assert ds[1].name == "synth_5_000001"


def test_a_huge_count_with_a_damaged_frame_still_looks_only_at_the_files(synth_set, tmp_path):
    root = tmp_path / "set"
    shutil.copytree(synth_set, root)
    meta = json.loads((root / "meta.json").read_text())
    (root / "meta.json").write_text(json.dumps(meta | {"count": 10**12}))
    (root / "depth" / "000000.png").unlink()
    ds = SyntheticSet(root)  # one listing per folder, never a look per frame of the count
    assert ds.frames == [0, 1, 2, 3] and ds.skipped == 10**12 - 4
    with pytest.raises(FileNotFoundError, match="depth/000000.png is missing"):
        ds[0]


def _hypersim(root):
    """Split "val": frame 0 whole, frame 1 without its JPEG, frame 2 with a depth that is not
    HDF5, and a frame of a scene not downloaded (neither file); frame 3 is in the train split."""
    img = root / "ai_001_001" / "images"
    pre, geo = img / "scene_cam_00_final_preview", img / "scene_cam_00_geometry_hdf5"
    pre.mkdir(parents=True)
    geo.mkdir(parents=True)
    for frame in range(4):
        if frame != 1:
            rgb = np.full((12, 16, 3), 40 * frame, np.uint8)
            assert cv2.imwrite(str(pre / f"frame.{frame:04d}.tonemap.jpg"), rgb)
        h5 = geo / f"frame.{frame:04d}.depth_meters.hdf5"
        if frame == 2:
            h5.write_bytes(b"this is not an HDF5 file")
        else:
            with h5py.File(h5, "w") as f:
                f["dataset"] = np.full((12, 16), 2.0 + frame, np.float16)
    with open(root / "metadata_images_split_scene_v1.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["scene_name", "camera_name", "frame_id", "split_partition_name"])
        for frame in range(4):
            w.writerow(["ai_001_001", "cam_00", frame, "val" if frame < 3 else "train"])
        w.writerow(["ai_002_001", "cam_00", 0, "val"])
    return pre, geo


def test_a_hypersim_row_with_a_missing_file_is_unreadable_and_exit_1(tmp_path, caplog):
    pre, geo = _hypersim(tmp_path / "hs")
    with caplog.at_level(logging.WARNING):
        ds = HypersimDataset(tmp_path / "hs", split="val")
    assert len(ds) == 3 and ds.skipped == 1
    assert (
        "skipped 1 frame(s) with neither a JPEG nor an HDF5 file: ai_002_001/cam_00/frame.0000"
        in caplog.text
    )
    assert _eval("hypersim", tmp_path / "hs", tmp_path / "ev") == 1
    report, md = _reports(tmp_path / "ev")
    missing = f"{pre / 'frame.0001.tonemap.jpg'} is missing"
    not_hdf5 = f"{geo / 'frame.0002.depth_meters.hdf5'} is not a HDF5 file"
    assert report["unreadable"] == [
        {"index": 1, "error": missing},
        {"index": 2, "error": not_hdf5},
    ]
    assert report["skipped_reader"] == 1 and report["n_images"] == 1
    assert f"- frame 1: {missing}" in md and f"- frame 2: {not_hdf5}" in md
