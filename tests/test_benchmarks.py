"""Benchmark readers: each test writes a tiny dataset in the real on-disk layout and reads it back.

Depth values sit on both sides of each dataset's valid range so that the masks are checked, not
just the decoding.
"""

from __future__ import annotations

import struct

import cv2
import h5py
import numpy as np
import pytest
import torch

from depthart_core.data import benchmarks
from depthart_core.data.benchmarks import get_dataset
from depthart_core.data.benchmarks.nyu import read_mat_v5, read_split_indices
from depthart_core.data.benchmarks.tum import associate


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _write_rgb(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])


def _write_u16(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.asarray(arr, dtype=np.uint16))


# ----------------------------------------------------------------------------------------- NYUv2
def _write_mat73(path, frames_rgb, depths, raw_depths):
    """MATLAB v7.3 layout: HDF5 behind a 512-byte MATLAB header, axes reversed by h5py."""
    with h5py.File(path, "w", userblock_size=512) as f:
        img = f.create_dataset("images", data=np.stack([r.transpose(2, 1, 0) for r in frames_rgb]))
        img.attrs["MATLAB_class"] = np.bytes_("uint8")
        for key, arr in (("depths", depths), ("rawDepths", raw_depths)):
            d = f.create_dataset(key, data=np.stack([a.T for a in arr]).astype(np.float32))
            d.attrs["MATLAB_class"] = np.bytes_("single")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2012 HDF5"
    header = header.ljust(116, b" ") + b"\x00" * 8 + struct.pack("<H", 0x0200) + b"IM"
    with open(path, "r+b") as f:
        f.write(header)


@pytest.fixture(scope="module")
def nyu_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nyu")
    H, W = 480, 640
    rgbs = [_rgb(H, W, i) for i in range(3)]
    raws, dense = [], []
    for i in range(3):
        raw = np.full((H, W), 2.0 + i, dtype=np.float32)
        raw[100, 200] = 0.0  # missing
        raw[101, 200] = 10.5  # beyond 10 m
        raw[102, 200] = 10.0  # the closed upper bound
        raw[3, 3] = 1.0  # inside the 8 px border (cut away by the DepthART crop)
        raws.append(raw)
        dense.append(np.full((H, W), 5.0 + i, dtype=np.float32))
    _write_mat73(root / "nyu_depth_v2_labeled.mat", rgbs, dense, raws)
    scipy_io = pytest.importorskip("scipy.io")
    scipy_io.savemat(
        root / "splits.mat",
        {"testNdxs": np.array([[3.0], [1.0]]), "trainNdxs": np.array([[2.0]])},
        do_compression=True,
    )
    return root, rgbs, raws


def test_nyu_depthart_crop_and_raw_depth(nyu_root):
    root, rgbs, raws = nyu_root
    ds = get_dataset("nyuv2", root)
    assert len(ds) == 2 and ds.skipped == 0
    s = ds[0]  # testNdxs[0] = 3 (1-based) -> frame 2
    assert s.rgb.shape == (464, 624, 3) and s.depth.shape == (464, 624)
    np.testing.assert_array_equal(s.rgb, rgbs[2][8:-8, 8:-8])
    assert s.depth[0, 0] == pytest.approx(4.0) and s.name == "nyuv2_0003"
    expected = np.ones((464, 624), bool)
    expected[100 - 8, 200 - 8] = expected[101 - 8, 200 - 8] = False
    np.testing.assert_array_equal(s.valid, expected)
    assert s.intrinsics[0, 2] == pytest.approx(325.58244941119034 - 1 - 8)  # 0-based, cut
    np.testing.assert_array_equal(ds[1].rgb, rgbs[0][8:-8, 8:-8])


def test_nyu_eigen_crop_masks_without_cutting(nyu_root):
    root, rgbs, _ = nyu_root
    s = get_dataset("nyu", root, crop="eigen", depth_key="depths", split="train")[0]
    assert s.depth.shape == (480, 640) and s.depth[240, 320] == pytest.approx(6.0)
    np.testing.assert_array_equal(s.rgb, rgbs[1])
    assert s.valid.sum() == (471 - 45) * (601 - 41)
    assert s.valid[45, 41] and s.valid[470, 600] and not s.valid[44, 41] and not s.valid[45, 601]


def test_nyu_split_files(nyu_root, tmp_path):
    root, _, _ = nyu_root
    scipy_io = pytest.importorskip("scipy.io")
    plain = tmp_path / "plain.mat"
    scipy_io.savemat(plain, {"testNdxs": np.array([[2], [3]], dtype=np.uint16)})
    assert read_mat_v5(plain)["testNdxs"].ravel().tolist() == [2, 3]
    np.testing.assert_array_equal(read_split_indices(root / "splits.mat", "testNdxs"), [2, 0])
    txt = tmp_path / "split.txt"
    txt.write_text("2\n1\n")
    assert len(get_dataset("nyuv2", root, split_file=txt)) == 2
    with pytest.raises(ValueError, match="trainNdxs"):
        read_split_indices(plain, "trainNdxs")
    with pytest.raises(FileNotFoundError, match="missing.mat"):
        get_dataset("nyuv2", root, split_file=tmp_path / "missing.mat")


# ----------------------------------------------------------------------------------------- ETH3D
def test_eth3d_depthart_copy_png_millimetres(tmp_path):
    rgb = _rgb(6, 8)
    _write_rgb(tmp_path / "data/office/rgb/DSC_0219.png", rgb)
    mm = np.full((6, 8), 1500, np.uint16)
    mm[0, :3] = 0, 65535, 1  # none, 65.535 m (the PNG's ceiling, below the 72 m cap), 1 mm
    _write_u16(tmp_path / "data/office/depth/DSC_0219.png", mm)
    torch.save(
        [("office/rgb/DSC_0219.png", "office/depth/DSC_0219.png")], tmp_path / "samples_test.pth"
    )
    s = get_dataset("eth3d", tmp_path)[0]
    np.testing.assert_array_equal(s.rgb, rgb)
    assert s.depth[1, 1] == pytest.approx(1.5) and s.depth[0, 1] == pytest.approx(65.535)
    assert s.valid[0].tolist() == [False, True, True] + [True] * 5  # 1 mm > 1e-4 m
    capped = get_dataset("eth3d", tmp_path, max_depth=65.0)[0]
    assert capped.valid[0, :3].tolist() == [False, False, True]


def test_eth3d_marigold_copy_raw_float32(tmp_path):
    rel_rgb = "rgb/office/images/dslr_images/DSC_0219.JPG"
    rel_depth = "depth/office_dslr_depth/office/ground_truth_depth/dslr_images/DSC_0219.JPG"
    _write_rgb(tmp_path / rel_rgb, _rgb(4, 6))
    depth = np.linspace(0.5, 80.0, 24, dtype="<f4").reshape(4, 6)
    depth[0, 0] = np.inf  # ETH3D marks missing depth with +inf
    (tmp_path / rel_depth).parent.mkdir(parents=True)
    depth.tofile(tmp_path / rel_depth)
    (tmp_path / "eth3d_filename_list.txt").write_text(f"{rel_rgb} {rel_depth}\n")
    s = get_dataset("eth3d", tmp_path)[0]
    assert s.rgb.shape == (4, 6, 3) and s.name == rel_rgb
    assert s.depth[0, 0] == 0.0 and s.depth[0, 1] == pytest.approx(depth[0, 1])
    np.testing.assert_array_equal(s.valid, (depth > 1e-4) & (depth <= 72.0) & np.isfinite(depth))
    depth[:2].tofile(tmp_path / rel_depth)  # truncated file
    with pytest.raises(ValueError, match="DSC_0219.JPG: 12 float32 values"):
        get_dataset("eth3d", tmp_path)[0]


def test_eth3d_without_a_sample_list(tmp_path):
    with pytest.raises(FileNotFoundError, match="samples_test.pth"):
        get_dataset("eth3d", tmp_path)


# ------------------------------------------------------------------------------------- TUM RGB-D
def _write_tum_list(path, header, rows):
    lines = [f"# {header}", "# file: 'rgbd_dataset_freiburg1_xyz.bag'", "# timestamp filename"]
    path.write_text("\n".join(lines + [f"{t:.6f} {f}" for t, f in rows]) + "\n")


def test_tum_association_is_one_to_one_and_greedy():
    rgb = [(1.000, "a"), (1.033, "b"), (1.066, "c")]
    depth = [(1.010, "x"), (1.060, "y"), (1.064, "z"), (1.500, "w")]
    # 1.064 takes 1.066 (dt 0.002) before 1.060 can (0.006); 1.060 then has nothing within 0.02
    assert associate(rgb, depth) == [(0, 0), (2, 2)]


def test_tum_raw_sequence(tmp_path):
    seq = tmp_path / "rgbd_dataset_freiburg1_xyz"
    rgb_t, depth_t = [1.000, 1.033, 1.066], [1.010, 1.060, 1.064, 1.500]
    rgb_rows = [(t, f"rgb/{t:.6f}.png") for t in rgb_t]
    depth_rows = [(t, f"depth/{t:.6f}.png") for t in depth_t]
    for i, (_, f) in enumerate(rgb_rows):
        _write_rgb(seq / f, _rgb(4, 5, i))
    raw = np.array([[0, 5000, 50000, 50005, 25]] * 4, np.uint16)  # 0, 1 m, 10 m, 10.001, 5 mm
    for _, f in depth_rows:
        _write_u16(seq / f, raw)
    _write_tum_list(seq / "rgb.txt", "color images", rgb_rows)
    _write_tum_list(seq / "depth.txt", "depth maps", depth_rows)
    ds = get_dataset("tum", tmp_path)
    assert len(ds) == 2 and ds.skipped == 2  # 1.060 and 1.500 have no colour partner
    s = ds[1]
    np.testing.assert_array_equal(s.rgb, _rgb(4, 5, 2))  # depth 1.064 <-> rgb 1.066
    np.testing.assert_allclose(s.depth[0], [0, 1.0, 10.0, 10.001, 0.005], rtol=1e-6)
    assert s.valid[0].tolist() == [False, True, True, False, False]
    assert s.intrinsics[0, 0] == pytest.approx(517.3)
    assert len(get_dataset("tum", tmp_path, stride=2)) == 1


def test_tum_depthart_hdf5_copy(tmp_path):
    (tmp_path / "data").mkdir()
    with h5py.File(tmp_path / "data/0001.h5", "w") as f:
        f["image"] = _rgb(3, 4)
        f["depth"] = np.array([[0.0, 0.5, 10.0, 12.0]] * 3, np.float32)
    torch.save(["0001.h5"], tmp_path / "samples_test.pth")
    s = get_dataset("tum", tmp_path)[0]
    np.testing.assert_array_equal(s.rgb, _rgb(3, 4))
    assert s.valid[0].tolist() == [False, True, True, False]


def test_tum_depth_png_must_be_16_bit(tmp_path):
    seq = tmp_path / "seq"
    _write_rgb(seq / "rgb/1.png", _rgb(2, 2))
    _write_rgb(seq / "depth/1.png", _rgb(2, 2))  # 8-bit colour where 16-bit depth belongs
    _write_tum_list(seq / "rgb.txt", "color", [(1.0, "rgb/1.png")])
    _write_tum_list(seq / "depth.txt", "depth", [(1.0, "depth/1.png")])
    with pytest.raises(ValueError, match="depth/1.png: expected a single-channel 16-bit PNG"):
        get_dataset("tum", tmp_path)[0]


# -------------------------------------------------------------------------------------- iBims-1
def test_ibims_scale_and_masks(tmp_path):
    (tmp_path / "imagelist.txt").write_text("corridor_01\n")
    _write_rgb(tmp_path / "rgb/corridor_01.png", _rgb(3, 4))
    _write_u16(tmp_path / "depth/corridor_01.png", [[65535, 13107, 0, 13]] * 3)  # 50, 10, 0, .0099
    inval = np.full((3, 4), 255, np.uint8)
    inval[1, 1] = 0
    transp = np.full((3, 4), 255, np.uint8)
    transp[2, 0] = 0
    for d, m in (("mask_invalid", inval), ("mask_transp", transp)):
        (tmp_path / d).mkdir()
        cv2.imwrite(str(tmp_path / d / "corridor_01.png"), m)
    (tmp_path / "calib").mkdir()
    (tmp_path / "calib/corridor_01.txt").write_text("559.6,559.6,320.0,240.0\n")
    s = get_dataset("iBims-1", tmp_path)[0]
    assert s.depth[0, 0] == 50.0 and s.depth[0, 1] == pytest.approx(10.0)
    expected = np.array([[True, True, False, False]] * 3)
    expected[1, 1] = expected[2, 0] = False
    np.testing.assert_array_equal(s.valid, expected)
    assert s.intrinsics[0, 0] == pytest.approx(559.6) and s.intrinsics[1, 2] == 239.0  # 0-based
    (tmp_path / "mask_transp/corridor_01.png").unlink()
    with pytest.raises(FileNotFoundError, match="mask_transp/corridor_01.png"):
        get_dataset("ibims1", tmp_path)[0]


# ---------------------------------------------------------------------------------------- KITTI
def test_kitti_eigen_split_with_crops(tmp_path):
    H, W = 375, 1242
    rgb_rel = "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png"
    gt_rel = "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png"
    _write_rgb(tmp_path / "raw" / rgb_rel, _rgb(H, W))
    gt = np.full((H, W), 256 * 10, np.uint16)  # 10 m everywhere ...
    gt[300, 600], gt[301, 600], gt[302, 600] = 0, 20480, 20481  # ... none, 80 m, 80.004 m
    _write_u16(tmp_path / "gt" / gt_rel, gt)
    split = tmp_path / "eigen_test_files_with_gt.txt"
    split.write_text(f"{rgb_rel} {gt_rel} 721.5377\n{rgb_rel.replace('69', '70')} None 721.5377\n")
    ds = get_dataset("kitti", tmp_path / "raw", split_file=split, gt_root=tmp_path / "gt")
    assert len(ds) == 1 and ds.skipped == 1
    s = ds[0]
    assert s.depth[0, 0] == 10.0 and s.extras["focal"] == pytest.approx(721.5377)
    # Garg crop: rows int(.40810811*375)=153 : int(.99189189*375)=371, cols 44 : 1197
    assert (
        not s.valid[152, 600] and s.valid[153, 600] and s.valid[370, 600] and not s.valid[371, 600]
    )
    assert (
        not s.valid[200, 43] and s.valid[200, 44] and s.valid[200, 1196] and not s.valid[200, 1197]
    )
    assert s.valid[:, 600][300:303].tolist() == [False, False, False]  # 80 m itself is out
    assert s.valid.sum() == (371 - 153) * (1197 - 44) - 3
    e = get_dataset(
        "kitti", tmp_path / "raw", split_file=split, gt_root=tmp_path / "gt", crop="eigen"
    )[0]
    assert e.valid.sum() == (int(0.91351351 * H) - int(0.3324324 * H)) * (1197 - 44) - 3


# ---------------------------------------------------------------------------------------- DIODE
def test_diode_npy_layout_and_subset(tmp_path):
    for sub, seed in (("indoors", 0), ("outdoor", 1)):
        d = tmp_path / "val" / sub / "scene_00019" / "scan_00183"
        name = f"00019_00183_{sub}_000_010"
        _write_rgb(d / f"{name}.png", _rgb(2, 4, seed))
        np.save(d / f"{name}_depth.npy", np.array([[[0.5], [0.7], [350.0], [351.0]]] * 2, "f4"))
        np.save(d / f"{name}_depth_mask.npy", np.array([[1, 1, 1, 1], [0, 1, 1, 1]], "f4"))
    ds = get_dataset("diode", tmp_path / "val")
    assert len(ds) == 2 and len(get_dataset("diode", tmp_path / "val", subset="outdoor")) == 1
    s = ds[0]
    assert s.name == "indoors/scene_00019/scan_00183/00019_00183_indoors_000_010"
    np.testing.assert_array_equal(s.rgb, _rgb(2, 4, 0))
    assert s.depth.shape == (2, 4) and s.depth[0, 2] == 350.0
    assert s.valid.tolist() == [[False, True, True, False], [False, True, True, False]]


# -------------------------------------------------------------------------------------- ScanNet
def test_scannet_color_resized_to_depth(tmp_path):
    scene = tmp_path / "scene0406_02"
    color = np.zeros((8, 12, 3), np.uint8)
    color[:, :6] = (250, 10, 10)  # left half red, at twice the depth resolution
    _write_rgb(scene / "color/000300.jpg", color)
    _write_u16(scene / "depth/000300.png", [[0, 1, 2, 10000, 10001, 1500]] * 4)
    (scene / "intrinsic").mkdir()
    K4 = "577.6 0 319.5 0\n0 578.7 239.5 0\n0 0 1 0\n0 0 0 1\n"
    (scene / "intrinsic/intrinsic_depth.txt").write_text(K4)
    (tmp_path / "scannet_val_sampled_list_800_1.txt").write_text(
        "scene0406_02/color/000300.jpg scene0406_02/depth/000300.png\n"
    )
    s = get_dataset("scannet", tmp_path)[0]
    assert s.rgb.shape == (4, 6, 3) and s.rgb[0, 0, 0] > 200 and s.rgb[0, 5, 0] < 40
    np.testing.assert_allclose(s.depth[0], [0, 0.001, 0.002, 10.0, 10.001, 1.5], rtol=1e-6)
    assert s.valid[0].tolist() == [False, False, True, False, False, True]  # (1e-3, 10) m
    assert s.intrinsics[0, 0] == pytest.approx(577.6) and s.intrinsics[1, 2] == 239.5


# ------------------------------------------------------------------------------------- registry
def test_registry_names_and_errors(tmp_path, monkeypatch):
    assert benchmarks.DATASETS[:4] == ("eth3d", "tum", "nyuv2", "ibims1")
    assert benchmarks.canonical_name("iBims-1") == "ibims1"
    assert benchmarks.canonical_name("NYU") == "nyuv2"
    with pytest.raises(ValueError, match="available: eth3d, tum"):
        get_dataset("middlebury", tmp_path)
    monkeypatch.setitem(benchmarks._READERS, "hypersim", ("depthart_core.data.no_such", "X"))
    with pytest.raises(RuntimeError, match="depthart_core.data.no_such"):
        get_dataset("hypersim", tmp_path)
    with pytest.raises(FileNotFoundError, match="imagelist.txt"):
        get_dataset("ibims1", tmp_path)


def test_kitti_from_the_command_line_reads_the_split_in_its_root(tmp_path, capsys):
    """`depthart eval --dataset kitti --root R` has no split-file option: the split is
    R/eigen_test_files_with_gt.txt with both paths below R; without it, one line says so."""
    from depthart_core.cli import main

    root = tmp_path / "kitti"
    rgb_rel = "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png"
    gt_rel = "gt/2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png"
    _write_rgb(root / rgb_rel, _rgb(40, 120))
    _write_u16(root / gt_rel, np.full((40, 120), 256 * 10, np.uint16))
    argv = ["eval", "--dataset", "kitti", "--root", str(root), "--baselines-only"]
    argv += ["--baseline", "constant", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "none")]) != 0
    err = capsys.readouterr().err
    assert f"no KITTI split file {root / 'eigen_test_files_with_gt.txt'}" in err, err
    (root / "eigen_test_files_with_gt.txt").write_text(f"{rgb_rel} {gt_rel} 721.5377\n")
    assert main([*argv, "--out", str(tmp_path / "ev")]) == 0, capsys.readouterr().err
    assert (tmp_path / "ev").is_dir()
