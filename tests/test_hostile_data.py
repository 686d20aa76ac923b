"""A small hostile dataset file costs nothing: a header that claims a huge image or array is
refused from the header, that frame is skipped with its path, and the rest of the run is scored.

Each file here is a few KB that declared gigabytes (a TUM HDF5 frame, a DIODE .npy, a PNG
decompression bomb), a synthetic set's meta.json with an impossible `count`, or a generator
setting far beyond any room; each once took gigabytes, minutes, or ended the run with a
traceback or without its report.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import struct
import zlib
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import torch

from depthart_core.cli import main, predict
from depthart_core.data.benchmarks import _io, get_dataset
from depthart_core.data.benchmarks._io import FRAME_ERRORS, BadFrameError, BenchmarkDataset
from depthart_core.data.sample import DepthSample
from depthart_core.data.synthetic import set as synth_set
from depthart_core.data.synthetic.config import SynthConfig
from depthart_core.data.synthetic.set import SyntheticSet, set_problem, write_synthetic_set
from depthart_core.evaluation.runner import constant_baseline, evaluate_predictions

TINY_CONFIG = Path(__file__).resolve().parents[1] / "training" / "configs" / "tiny_tokenizer.yaml"


def _eval(root, dataset, out):
    argv = ["eval", "--baselines-only", "--baseline", "constant", "--dataset", dataset]
    return main([*argv, "--root", str(root), "--out", str(out), "--no-progress"])


def _rgb(h=24, w=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)


# ------------------------------------------------------------------------------ TUM HDF5 frames
def _tum_h5(root, frames):
    """A DepthART TUM copy: frames {name: (image (H, W, 3) or a declared shape, depth ...)};
    a declared shape becomes a chunked, gzip'd dataset with no data written (a few KB)."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    for name, (image, depth) in frames.items():
        with h5py.File(root / "data" / name, "w") as f:
            for key, value, dtype in (("image", image, "u1"), ("depth", depth, "f4")):
                if isinstance(value, tuple):
                    f.create_dataset(key, shape=value, dtype=dtype, chunks=True, compression="gzip")
                else:
                    f[key] = value
    torch.save(sorted(frames), root / "samples_test.pth")


GOOD_TUM = (_rgb(), np.full((24, 32), 2.0, np.float32))


@pytest.fixture
def no_big_h5_read(monkeypatch):
    """h5py datasets that fail the test when more than 10 M values of one are read."""
    real = h5py.Dataset.__array__

    def guarded(self, *args, **kwargs):
        assert self.size <= 10_000_000, f"read a {self.shape} dataset"
        return real(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__array__", guarded)


@pytest.mark.parametrize(
    ("image", "depth", "message"),
    [
        ((100_000, 100_000, 3), (100_000, 100_000), "declares more than 200,000,000 pixels"),
        (_rgb(), (40_000, 40_000), "malformed"),  # 6.6 GB read before the shapes were compared
    ],
)
def test_a_tum_h5_frame_declaring_a_huge_dataset_is_refused_unread(
    tmp_path, no_big_h5_read, image, depth, message
):
    _tum_h5(tmp_path, {"b.h5": (image, depth)})
    assert (tmp_path / "data" / "b.h5").stat().st_size < 100_000
    with pytest.raises(BadFrameError, match=message) as info:
        get_dataset("tum", tmp_path)[0]
    assert str(tmp_path / "data" / "b.h5") in str(info.value)


def test_a_tum_h5_bomb_and_a_damaged_file_are_skipped_and_the_good_frame_scored(tmp_path, capsys):
    """The 100000 x 100000 frame ended `depthart eval` with "out of memory" and no report."""
    _tum_h5(tmp_path / "tum", {"a.h5": GOOD_TUM, "b.h5": ((100_000, 100_000, 3), (100_000,) * 2)})
    (tmp_path / "tum" / "data" / "c.h5").write_bytes(b"\x89HDF\r\n\x1a\n cut short")
    torch.save(["a.h5", "b.h5", "c.h5"], tmp_path / "tum" / "samples_test.pth")
    assert _eval(tmp_path / "tum", "tum", tmp_path / "out") == 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["n_images"] == 1 and report["skipped_unreadable"] == 2
    errors = [u["error"] for u in report["unreadable"]]
    assert "b.h5" in errors[0] and "200,000,000 pixels" in errors[0], errors
    assert errors[1].startswith(f"cannot read TUM HDF5 frame {tmp_path / 'tum/data/c.h5'}")


# --------------------------------------------------------------------------- DIODE .npy headers
def _lying_npy(path, shape, dtype="<f4"):
    """A .npy whose header declares `shape`, followed by 64 bytes of data."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + bytes(64))


def _diode(root, views=("a",), size=(24, 32)):
    d = root / "indoors" / "scene_00019" / "scan_00183"
    d.mkdir(parents=True, exist_ok=True)
    for v in views:
        cv2.imwrite(str(d / f"{v}.png"), _rgb(*size))
        np.save(d / f"{v}_depth.npy", np.full((*size, 1), 3.0, np.float32))
        np.save(d / f"{v}_depth_mask.npy", np.ones(size, np.float32))
    return d


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((200_000, 200_000, 1), "declares a (200000, 200000, 1) float32 array"),
        ((24, 32, 1), "declares a (24, 32, 1) float32 array (3,072 bytes), but the file holds 64"),
    ],
)
def test_a_diode_npy_whose_header_claims_more_than_its_file_holds_is_refused_unread(
    tmp_path, shape, message
):
    d = _diode(tmp_path)
    _lying_npy(d / "a_depth.npy", shape)
    with pytest.raises(BadFrameError, match=re.escape(message)) as info:
        get_dataset("diode", tmp_path)[0]
    assert str(info.value).startswith(str(d / "a_depth.npy"))


def test_a_diode_npy_bomb_is_skipped_and_the_good_view_scored(tmp_path):
    """It ended `depthart eval` with "error: out of memory", the file not named, no report."""
    d = _diode(tmp_path / "diode", views=("a", "b"))
    _lying_npy(d / "b_depth.npy", (200_000, 200_000, 1))
    assert _eval(tmp_path / "diode", "diode", tmp_path / "out") == 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["n_images"] == 1 and [u["index"] for u in report["unreadable"]] == [1]
    assert str(d / "b_depth.npy") in report["unreadable"][0]["error"]


def test_a_diode_npy_of_an_unknown_version_or_objects_is_not_a_plain_array(tmp_path):
    d = _diode(tmp_path)
    raw = (d / "a_depth.npy").read_bytes()
    (d / "a_depth.npy").write_bytes(raw[:6] + b"\x07\x00" + raw[8:])
    with pytest.raises(BadFrameError, match="not a plain numpy array file: unsupported"):
        get_dataset("diode", tmp_path)[0]
    _lying_npy(d / "a_depth.npy", (24, 32, 1), dtype="|O")
    with pytest.raises(BadFrameError, match="not a plain numpy array file"):
        get_dataset("diode", tmp_path)[0]


# ---------------------------------------------------------------------- decompression bombs
def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_bomb(w: int, h: int, depth: int = 8, colour: int = 2) -> bytes:
    """A PNG whose header claims w x h, with a few zero rows of data (a real bomb holds all of
    them in ~1 MB; a decoder allocates the whole image from the header either way)."""
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    row = b"\0" + bytes(w * (3 if colour == 2 else 1) * depth // 8)
    idat = zlib.compress(row * 4, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


@pytest.fixture
def no_bomb_decoded(monkeypatch):
    """cv2.imdecode that fails the test when asked to decode more than 10 M pixels."""
    real = cv2.imdecode

    def guarded(buf, flags):
        data = bytes(buf[:24])
        if data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            assert w * h <= 10_000_000, f"decoded a {w}x{h} image"
        return real(buf, flags)

    monkeypatch.setattr(cv2, "imdecode", guarded)


def test_a_png_bomb_as_a_diode_rgb_is_refused_from_its_header(tmp_path, no_bomb_decoded):
    """A 1.1 MB PNG claiming 20000x20000 was decoded (30 s, 2.7 GB) before it was refused."""
    d = _diode(tmp_path)
    (d / "a.png").write_bytes(_png_bomb(20_000, 20_000))
    with pytest.raises(BadFrameError, match=r"20000x20000 pixels, more than 200,000,000") as info:
        get_dataset("diode", tmp_path)[0]
    assert str(info.value).startswith(f"image {d / 'a.png'} not decoded: ")


def test_a_16_bit_png_bomb_in_a_synthetic_set_is_skipped_undecoded(
    tmp_path, no_bomb_decoded, caplog
):
    """A 1.7 MB 16-bit PNG claiming 30000x30000 as depth/000001.png took 3.9 GB in eval."""
    root = tmp_path / "syn"
    write_synthetic_set(root, count=2, seed=0, size=(16, 24), progress=False)
    bomb = root / "depth" / "000001.png"
    bomb.write_bytes(_png_bomb(30_000, 30_000, depth=16, colour=0))
    ds = SyntheticSet(root)
    assert ds[0].depth.shape == (16, 24)
    with pytest.raises(BadFrameError, match=f"depth PNG {bomb} not decoded: 30000x30000 pixels"):
        ds[1]
    result = evaluate_predictions(ds, constant_baseline, progress=False)
    assert len(result.per_image) == 1 and [u["index"] for u in result.unreadable] == [1]


def test_predict_and_the_readers_share_one_header_check():
    from depthart_core import image_header  # here: the other tests run on code without it

    assert predict.too_many_pixels is image_header.too_many_pixels is _io.too_many_pixels
    assert image_header.MAX_PIXELS == 200_000_000
    assert image_header.image_size(_png_bomb(20_000, 30_000)) == (30_000, 20_000)
    assert image_header.too_many_pixels(_png_bomb(10_000, 20_000)) is None  # exactly the limit


# ---------------------------------------------------------------- a frame too large for memory
class _Frames(BenchmarkDataset):
    name = "frames"

    def _items(self) -> list:
        return ["f0.png", "f1.png", "f2.png"]

    def _load(self, index: int) -> DepthSample:
        if index == 1:
            np.empty(1 << 62, np.uint8)  # what a frame larger than the machine does
        return DepthSample(
            rgb=_rgb(8, 8),
            depth=np.full((8, 8), 2.0, np.float32),
            valid=np.ones((8, 8), bool),
            name=f"f{index}",
        )


def test_a_frame_that_runs_out_of_memory_is_that_frames_failure_only():
    assert MemoryError in FRAME_ERRORS
    with pytest.raises(BadFrameError, match=r"^frames frame 1 \(f1.png\): out of memory reading"):
        _Frames()[1]
    result = evaluate_predictions(_Frames(), constant_baseline, progress=False)
    assert len(result.per_image) == 2 and [u["index"] for u in result.unreadable] == [1]


# --------------------------------------------------------------- a synthetic set's meta.json
@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile") / "set"
    write_synthetic_set(root, count=3, seed=5, size=(16, 24), progress=False)
    return root


def _with_meta(small_set, tmp_path, text):
    root = tmp_path / "set"
    shutil.copytree(small_set, root)
    (root / "meta.json").write_text(text)
    return root


META = '{{"format": "depthart-synth/1", "count": {count}, "seed": {seed}, "size": {size}}}'


@pytest.mark.parametrize(
    ("count", "seed", "size", "message"),
    [
        ("Infinity", 5, "[16, 24]", "'count' must be a whole number of frames, got inf"),
        ("1e12", 5, "[16, 24]", "'count' must be a whole number of frames, got 1000000000000.0"),
        ('"abc"', 5, "[16, 24]", "'count' must be a whole number of frames, got 'abc'"),
        ("null", 5, "[16, 24]", "'count' must be a whole number of frames, got None"),
        ("true", 5, "[16, 24]", "'count' must be a whole number of frames, got True"),
        ("3", '"x"', "[16, 24]", "'seed' must be a whole number in [0, 2**32), got 'x'"),
        ("3", -1, "[16, 24]", "'seed' must be a whole number in [0, 2**32), got -1"),
        ("3", 5, "[0, 24]", "'size' must be [H, W], two positive whole numbers, got [0, 24]"),
        ("3", 5, '"big"', "'size' must be [H, W], two positive whole numbers, got 'big'"),
    ],
)
def test_a_meta_json_with_an_impossible_value_is_one_line_naming_file_and_key(
    small_set, tmp_path, monkeypatch, count, seed, size, message
):
    """Infinity was a traceback (OverflowError), 1e12 looked for every missing frame and never
    finished, "abc" or null said "invalid literal for int()" naming neither file nor key."""
    looked = []

    def once_per_frame(paths):  # a count of 10**12 must not be looked at one frame at a time
        looked.append(paths)
        assert len(looked) < 100, "looked for frames one by one up to meta.json's count"
        return real(paths)

    real = synth_set._frame_problem
    monkeypatch.setattr(synth_set, "_frame_problem", once_per_frame)
    root = _with_meta(small_set, tmp_path, META.format(count=count, seed=seed, size=size))
    with pytest.raises(ValueError) as info:
        SyntheticSet(root)
    assert str(info.value).startswith(f"{root / 'meta.json'}: {message}"), str(info.value)
    why = set_problem(str(root))
    assert why.startswith(f"{root}: {root / 'meta.json'}: ") and "\n" not in why


def test_train_on_a_set_whose_count_is_infinity_is_one_line(small_set, tmp_path, capsys):
    root = _with_meta(small_set, tmp_path, META.format(count="Infinity", seed=5, size="[16, 24]"))
    argv = ["train", "--config", str(TINY_CONFIG), "--out", str(tmp_path / "r")]
    argv += ["--set", "data.source=synthetic_set", "--set", f"data.root={root}"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == (
        f"depthart train: error: {root / 'meta.json'}: 'count' must be a whole number of frames, "
        "got inf\n"
    )


@pytest.mark.parametrize("count", [4, 10**12])
def test_a_count_past_the_last_frame_on_disk_skips_the_absent_ones_in_one_warning(
    small_set, tmp_path, monkeypatch, caplog, count
):
    """A count beyond the frames on disk was refused ("does not describe the frames beside
    it"); before that, 10**12 was looked for frame by frame without end. The absent frames are
    skipped and counted in one warning, without a look per frame: opening the set looks at no
    frame's files (a frame's are checked when it is read), and the three on disk read."""
    looked = []

    def once_per_frame(paths):
        looked.append(paths)
        assert len(looked) < 100, "looked for frames one by one up to meta.json's count"
        return real(paths)

    real = synth_set._frame_problem
    monkeypatch.setattr(synth_set, "_frame_problem", once_per_frame)
    root = _with_meta(small_set, tmp_path, META.format(count=count, seed=5, size="[16, 24]"))
    with caplog.at_level(logging.WARNING):
        ds = SyntheticSet(root)
    assert ds.frames == [0, 1, 2] and ds.skipped == count - 3 and len(looked) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    more = f" and {count - 3 - 5} more" if count - 3 > 5 else ""
    first = ", ".join(f"{i:06d}" for i in range(3, min(count, 8)))
    assert warnings == [
        f"synthetic: skipped {count - 3} frame(s) with no file in rgb/, depth/ or intrinsics/: "
        f"{first}{more}"
    ]
    assert [ds[i].name for i in range(3)] == [f"synth_5_{i:06d}" for i in range(3)]
    assert len(looked) == 3  # each frame's files, when it was read
    assert set_problem(str(root)) is None


def test_a_set_with_its_last_frame_removed_scores_the_rest(tmp_path, caplog):
    """Removing a bad trailing frame's files (an ordinary clean-up) made the whole set an error
    ("'count' is 4, but its frame files end at 000002"); a middle frame was only skipped. Now
    both are: eval scores the other three frames."""
    root = tmp_path / "s_last"
    write_synthetic_set(root, count=4, seed=5, size=(16, 24), progress=False)
    for sub, ext in (("rgb", "png"), ("depth", "png"), ("intrinsics", "json")):
        (root / sub / f"000003.{ext}").unlink()
    with caplog.at_level(logging.WARNING):
        ds = SyntheticSet(root)
    assert ds.frames == [0, 1, 2] and ds.skipped == 1
    assert "skipped 1 frame(s) with no file in rgb/, depth/ or intrinsics/: 000003" in caplog.text
    assert _eval(root, "synthetic", tmp_path / "ev") == 0
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["n_images"] == 3 and report["skipped_reader"] == 1
    assert [p["name"] for p in report["per_image"]] == [f"synth_5_{i:06d}" for i in range(3)]


def test_a_set_with_no_frame_on_disk_is_the_error_it_was(small_set, tmp_path):
    """No frame file at all: every frame skipped, "none of its N frames is readable", as before
    the count was checked against the files (and fast for a count of 10**12)."""
    for count in (3, 10**12):
        root = _with_meta(
            small_set, tmp_path / str(count), META.format(count=count, seed=5, size="[16, 24]")
        )
        for sub in ("rgb", "depth", "intrinsics"):
            shutil.rmtree(root / sub)
        with pytest.raises(ValueError) as info:
            SyntheticSet(root)
        assert str(info.value) == (
            f"synthetic set {root}: none of its {count} frames is readable ({count} skipped)"
        )


def test_frames_missing_entirely_are_counted_in_one_warning_and_the_rest_read(
    small_set, tmp_path, caplog
):
    """A count beyond some missing frames still reads the others (as before), without looking
    for each missing one. A frame with one of its files there (frame 0, without its RGB) is in
    the index: the missing file is raised when it is read, naming it."""
    root = _with_meta(small_set, tmp_path, META.format(count=3, seed=5, size="[16, 24]"))
    for sub, ext in (("rgb", "png"), ("depth", "png"), ("intrinsics", "json")):
        (root / sub / f"000001.{ext}").unlink()
    (root / "rgb" / "000000.png").unlink()
    with caplog.at_level(logging.WARNING):
        ds = SyntheticSet(root)
    assert ds.frames == [0, 2] and ds.skipped == 1
    assert "rgb/000000.png" not in caplog.text
    assert "skipped 1 frame(s) with no file in rgb/, depth/ or intrinsics/: 000001" in caplog.text
    with pytest.raises(FileNotFoundError) as missing:
        ds[0]
    assert str(missing.value) == f"{root / 'rgb' / '000000.png'} is missing"
    assert ds[1].name == "synth_5_000002"


# -------------------------------------------------------------- generator lengths
@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("room_size", (3.0, 1e39)),
        ("room_size", (1001.0, 1001.0)),
        ("room_height", (2.4, 1e39)),
        ("corridor_length", (18.0, 1e39)),
        ("max_depth", 1e39),
    ],
)
def test_generator_lengths_have_an_upper_bound(setting, value):
    """room_size=[1e39, 1e39] crashed the renderer (float32 inf: IndexError in shade.py)."""
    with pytest.raises(ValueError, match=f"^{setting} must stay within 1000 m, got "):
        SynthConfig(**{setting: value})
    SynthConfig(room_size=(1000.0, 1000.0), corridor_length=(1000.0, 1000.0), max_depth=1000.0)


def test_train_with_a_room_of_1e39_metres_is_one_line(tmp_path, capsys):
    argv = ["train", "--config", str(TINY_CONFIG), "--out", str(tmp_path / "r")]
    argv += ["--set", "data.synth.room_size=[1e39,1e39]"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == "depthart train: error: room_size must stay within 1000 m, got 1e+39\n", err


# ------------------------------------------------------------------- Hypersim depth_meters HDF5
@pytest.fixture
def no_big_h5_read_at_all(no_big_h5_read, monkeypatch):
    """As `no_big_h5_read`, for `dataset[...]` (the Hypersim reader's read) too."""
    real = h5py.Dataset.__getitem__

    def guarded(self, *args, **kwargs):
        assert self.size <= 10_000_000, f"read a {self.shape} dataset"
        return real(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", guarded)


def _hypersim(root, declared=None, dtype="f2"):
    """One Hypersim frame (12x16); `declared`: its depth_meters dataset is that shape, chunked and
    empty (a few KB on disk)."""
    img = root / "ai_001_001" / "images"
    pre, geo = img / "scene_cam_00_final_preview", img / "scene_cam_00_geometry_hdf5"
    pre.mkdir(parents=True)
    geo.mkdir(parents=True)
    assert cv2.imwrite(str(pre / "frame.0000.tonemap.jpg"), _rgb(12, 16))
    h5 = geo / "frame.0000.depth_meters.hdf5"
    with h5py.File(h5, "w") as f:
        if declared is None:
            f["dataset"] = np.full((12, 16), 3.0, dtype)
        else:
            f.create_dataset(
                "dataset", shape=declared, dtype=dtype, chunks=True, compression="gzip"
            )
    return h5


@pytest.mark.parametrize(
    ("declared", "dtype", "message"),
    [
        ((100_000, 100_000), "f2", "depth 100000x100000 declares more than 200,000,000 pixels"),
        ((10_000, 10_000), "f2", "depth (10000, 10000) and RGB (12, 16) differ in size"),
        ((12, 16, 100_000), "f4", "depth (12, 16, 100000) and RGB (12, 16) differ in size"),
        ((12, 16), "S4", "depth holds |S4 values, not numbers"),
    ],
)
def test_a_hypersim_depth_dataset_of_the_wrong_size_is_refused_unread(
    tmp_path, no_big_h5_read_at_all, declared, dtype, message
):
    """The reader read the whole dataset (10000x10000: 200 MB, 100000x100000: 20 GB) before it
    compared its shape with the RGB's."""
    from depthart_core.data.hypersim import HypersimDataset

    h5 = _hypersim(tmp_path, declared, dtype)
    assert h5.stat().st_size < 200_000
    with pytest.raises(BadFrameError, match=re.escape(message)) as info:
        HypersimDataset(tmp_path, split=None)[0]
    assert str(info.value).startswith(f"{h5}: "), str(info.value)


def test_a_hypersim_frame_without_its_depth_dataset_is_one_bad_frame(tmp_path):
    from depthart_core.data.hypersim import HypersimDataset

    h5 = _hypersim(tmp_path)
    assert HypersimDataset(tmp_path, split=None)[0].depth.shape == (12, 16)
    with h5py.File(h5, "w") as f:
        f.create_group("dataset")
    with pytest.raises(BadFrameError, match=f"^cannot read depth from {re.escape(str(h5))}: no "):
        HypersimDataset(tmp_path, split=None)[0]


# ------------------------------------------------------------------------ ScanNet intrinsics
def _scannet(root, scenes=("scene0000_00", "scene0001_00"), frames=2):
    """The probe's layout: scenes of `frames` colour JPEGs and depth PNGs (48x64), no list."""
    for scene in scenes:
        for sub in ("color", "depth"):
            (root / scene / sub).mkdir(parents=True, exist_ok=True)
        for i in range(frames):
            assert cv2.imwrite(str(root / scene / "color" / f"{i:06d}.jpg"), _rgb(48, 64, i))
            depth = np.full((48, 64), 1500 + 100 * i, np.uint16)
            assert cv2.imwrite(str(root / scene / "depth" / f"{i:06d}.png"), depth)
    return root


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"577.0 0 319.5 0\n0 577.0 239.5 0\n0 0 1 0\n",
            "expected 16 numbers (4x4 matrix), got 12",
        ),
        (b"577.0 0 319.5 0\n0 577.0 239.5 0\n0 0 1 0\n0 0 0 one\n", "found 'one'"),
        (b"577.0 0 319.5 0\n0 577.0 239.5 0\n0 0 1 0\n0 0 0 \xe9\n", "not UTF-8 (byte 46)"),
        (b"577.0 0 319.5 0\n0 nan 239.5 0\n0 0 1 0\n0 0 0 1\n", "expected 16 finite numbers"),
    ],
)
def test_a_bad_scannet_intrinsics_file_skips_its_scene_and_the_rest_are_scored(
    tmp_path, capsys, content, message
):
    """12 numbers ended `depthart eval` with "error: ... expected 16 numbers", status 1, no
    report, the good scene's frames lost; bytes that are not UTF-8 did the same."""
    root = _scannet(tmp_path / "sn")
    bad = root / "scene0000_00" / "intrinsic" / "intrinsic_depth.txt"
    bad.parent.mkdir()
    bad.write_bytes(content)
    assert _eval(root, "scannet", tmp_path / "out") == 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["n_images"] == 2 and report["skipped_unreadable"] == 2
    assert [u["index"] for u in report["unreadable"]] == [0, 1]
    for u in report["unreadable"]:
        assert u["error"].startswith(f"{bad}: ") and message in u["error"], u["error"]
    assert "Traceback" not in capsys.readouterr().err


# -------------------------------------------------------------------- a JPEG cut short
@pytest.fixture
def opencv4_decodes_cut_jpegs(monkeypatch):
    """cv2.imdecode as OpenCV 4.x (the floor, 4.8; Ubuntu 24.04's python3-opencv, 4.6) decodes a
    JPEG cut short: libjpeg's "Premature end of JPEG file" is only a warning there, and the image
    comes back with its missing rows grey (OpenCV 5 returns None)."""
    from depthart_core.image_header import png_jpeg_size

    real = cv2.imdecode

    def imdecode(buf, flags):
        img = real(buf, flags)
        data = bytes(buf)
        if img is None and data[:2] == b"\xff\xd8" and png_jpeg_size(data):
            img = np.full((*png_jpeg_size(data), 3), 128, np.uint8)  # grey: rows never sent
        return img

    monkeypatch.setattr(cv2, "imdecode", imdecode)


def test_a_dataset_jpeg_cut_short_is_skipped_not_scored_with_grey_rows(
    tmp_path, opencv4_decodes_cut_jpegs
):
    """OpenCV 4 decodes a JPEG cut in half with its missing rows grey: eval scored that frame
    (ScanNet's colour, DIODE's or NYU's RGB) against a half-grey picture, and said nothing."""
    root = _scannet(tmp_path / "sn", scenes=("scene0000_00",))
    cut = root / "scene0000_00" / "color" / "000001.jpg"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    assert _eval(root, "scannet", tmp_path / "out") == 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["n_images"] == 1 and [u["index"] for u in report["unreadable"]] == [1]
    assert report["unreadable"][0]["error"] == (
        f"image {cut} not decoded: truncated JPEG (no end-of-image marker after its last scan)"
    )
    d = _diode(tmp_path / "diode", size=(48, 64))
    ok, jpeg = cv2.imencode(".jpg", _rgb(48, 64))
    (d / "a.png").write_bytes(jpeg.tobytes()[: jpeg.size // 2])  # DIODE's reader reads any image
    with pytest.raises(BadFrameError, match="truncated JPEG"):
        get_dataset("diode", tmp_path / "diode")[0]


def test_one_home_for_the_header_checks():
    """The JPEG/PNG size reader and the truncated-JPEG walk live in image_header only: the ROS
    node's CompressedImage check, predict and the dataset readers use the same functions."""
    from depthart_core import image_header
    from depthart_core.rosio import compressed

    assert compressed.encoded_size is image_header.png_jpeg_size
    assert predict.truncated_jpeg is image_header.truncated_jpeg is _io.truncated_jpeg
