"""`depthart predict` on the inputs real folders hold: links to one file (git-annex, DVC), sidecar
files beside photos, folders whose names differ by a dot, headers that claim a huge size in any
format, and files of several frames."""

from __future__ import annotations

import io
import struct
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthart_core.cli import main
from depthart_core.cli.predict import output_stems, read_rgb


def _write(path: Path, h: int, w: int, ext: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(h * w)
    ok, data = cv2.imencode(ext or path.suffix, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    assert ok
    path.write_bytes(data.tobytes())
    return path


def _predict(tiny_checkpoint: str, names: list, out: Path) -> int:
    argv = ["predict", *map(str, names), "--checkpoint", tiny_checkpoint, "--backend", "torch"]
    return main([*argv, "--no-progress", "--out", str(out)])


def test_links_to_one_file_are_predicted_under_the_names_given(tiny_checkpoint, tmp_path, capsys):
    """A git-annex dataset: front/000.png, front/001.png and rear/001.png are links to one object.
    Each path given is one output named after that path, not merged as "given more than once"
    and not named after the object's key."""
    objects = tmp_path / ".git" / "annex" / "objects"
    key_a = _write(objects / "Ab" / "SHA256E-s1--aaa.png" / "SHA256E-s1--aaa.png", 20, 30)
    key_b = _write(objects / "Ef" / "SHA256E-s2--bbb.jpg" / "SHA256E-s2--bbb.jpg", 24, 36, ".png")
    links = {"front/000.png": key_a, "front/001.png": key_a, "rear/000.png": key_b}
    links["rear/001.png"] = key_a
    for name, target in links.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).symlink_to(Path("..") / target.relative_to(tmp_path))
    out = tmp_path / "out"
    assert _predict(tiny_checkpoint, [tmp_path / n for n in links], out) == 0
    err = capsys.readouterr().err
    assert "given more than once" not in err, err
    expected = {"front__000_png": (20, 30), "front__001_png": (20, 30)}
    expected |= {"rear__000_png": (24, 36), "rear__001_png": (20, 30)}
    assert {p.stem for p in out.glob("*.npy")} == set(expected)
    for stem, shape in expected.items():
        assert np.load(out / f"{stem}.npy").shape == shape
    # a link beside its target, both given: two paths, two outputs with their own names
    _write(tmp_path / "flat" / "x.png", 16, 16)
    (tmp_path / "flat" / "link.png").symlink_to("x.png")
    flat = [tmp_path / "flat" / "x.png", tmp_path / "flat" / "link.png"]
    assert _predict(tiny_checkpoint, flat, tmp_path / "o2") == 0
    assert sorted(p.name for p in (tmp_path / "o2").glob("*.npy")) == ["link.npy", "x.npy"]


def _lossless_webp_header(w: int, h: int) -> bytes:
    """A 64x64 lossless WebP (44 bytes) whose VP8L header is made to claim w x h pixels."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buf, "WEBP", lossless=True)
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"VP8L" and data[20] == 0x2F  # a simple-format file, its header at 21
    (bits,) = struct.unpack("<I", data[21:25])
    bits = bits & ~((1 << 28) - 1) | (w - 1) | (h - 1) << 14  # 14 bits each, then alpha, version
    data[21:25] = struct.pack("<I", bits)
    return bytes(data)


def _tiff_header(w: int, h: int) -> bytes:
    """A grey 8-bit TIFF whose first page claims w x h pixels; its strip is not there."""
    entries = [  # tag, type (3 SHORT, 4 LONG), value
        (256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, 200),
        (277, 3, 1), (278, 4, h), (279, 4, w * h),
    ]  # fmt: skip
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        ifd += struct.pack("<HHI", tag, kind, 1) + struct.pack("<I" if kind == 4 else "<Hxx", value)
    return b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + bytes(64)


@pytest.mark.parametrize(
    ("ext", "make", "claimed"),
    [(".webp", _lossless_webp_header, "16384x16384"), (".tif", _tiff_header, "20000x20000")],
)
def test_a_decompression_bomb_in_any_format_is_refused_from_its_header(
    tiny_checkpoint, tmp_path, capsys, ext, make, claimed
):
    """A WebP or TIFF of a few bytes claiming more than MAX_PIXELS is refused from its header, as
    a PNG or JPEG is (an 8 KB WebP took 5 GB to decode), quickly, and the batch goes on."""
    pytest.importorskip("PIL.Image")
    w, h = map(int, claimed.split("x"))
    bomb = tmp_path / f"bomb{ext}"
    bomb.write_bytes(make(w, h))
    start = time.perf_counter()
    with pytest.raises(ValueError, match=f"^{claimed} pixels, more than 200,000,000 "):
        read_rgb(str(bomb))
    assert time.perf_counter() - start < 1.0
    good = _write(tmp_path / "good.png", 16, 16)
    assert _predict(tiny_checkpoint, [bomb, good], tmp_path / "o") == 1
    lines = capsys.readouterr().err.splitlines()
    assert any(x.startswith(f"skipped {bomb}: {claimed} pixels, more than") for x in lines), lines
    assert (tmp_path / "o" / "good.npy").is_file()


def test_a_sidecar_does_not_rename_its_photo(tiny_checkpoint, tmp_path, capsys):
    """IMG_0001.JPG with IMG_0001.xmp (or a RAW+JPEG pair's sidecar), all given by a glob: the
    .xmp is skipped and writes nothing, so the photo keeps its plain name like IMG_0002."""
    photos = [_write(tmp_path / f"IMG_000{i}.JPG", 20 + i, 30, ".jpg") for i in (1, 2)]
    xmp = tmp_path / "IMG_0001.xmp"
    xmp.write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>\n')
    out = tmp_path / "out"
    assert _predict(tiny_checkpoint, [photos[0], xmp, photos[1]], out) == 1  # the .xmp: skipped
    err = capsys.readouterr().err
    assert f"skipped {xmp}: not a readable image" in err
    assert "share a file name" not in err, err
    assert sorted(p.name for p in out.glob("*.npy")) == ["IMG_0001.npy", "IMG_0002.npy"]
    assert np.load(out / "IMG_0001.npy").shape == (21, 30)


def test_folders_that_differ_by_a_dot_keep_their_images_apart(tiny_checkpoint, tmp_path):
    """a.b/c.png and a_b/c.png were both named a_b__c_png and the whole run refused."""
    names = [_write(tmp_path / "a.b" / "c.png", 20, 30), _write(tmp_path / "a_b" / "c.png", 24, 36)]
    out = tmp_path / "out"
    assert _predict(tiny_checkpoint, names, out) == 0
    assert np.load(out / "a.b__c_png.npy").shape == (20, 30)
    assert np.load(out / "a_b__c_png.npy").shape == (24, 36)


def test_output_stems_are_distinct_paths_below_the_common_folder():
    names = ["x/.cache/1.png", "x/cam/1.png", "x/cam/1.jpg", "x/a.b/2.png", "x/a_b/2.png"]
    names += ["x/3.png", "x/3.xmp", "x/4.txt"]
    images = [True] * 6 + [False, False]
    stems = output_stems(names, images)
    assert stems == [
        "_cache__1_png", "cam__1_png", "cam__1_jpg", "a.b__2_png", "a_b__2_png", "3", "3_xmp", "4"
    ]  # fmt: skip


def test_only_the_first_frame_of_an_animation_or_multipage_file_is_predicted_and_said(
    tiny_checkpoint, tmp_path, capsys
):
    frames = [np.full((20, 30, 3), 60 * i, np.uint8) for i in range(3)]
    tiff = tmp_path / "pages.tif"
    assert cv2.imwritemulti(str(tiff), frames)
    names = [tiff, _write(tmp_path / "one.png", 16, 16)]
    Image = pytest.importorskip("PIL.Image")
    gif = tmp_path / "anim.gif"
    pil = [Image.fromarray(f) for f in frames]
    pil[0].save(gif, save_all=True, append_images=pil[1:], duration=100, loop=0)
    names.append(gif)
    assert _predict(tiny_checkpoint, names, tmp_path / "out") == 0
    err = capsys.readouterr().err.splitlines()
    said = [x for x in err if "only the first" in x]
    assert said == [
        f"{tiff}: only the first of its 3 frames/pages is predicted",
        f"{gif}: only the first of its 3 frames/pages is predicted",
    ], err
    assert np.load(tmp_path / "out" / "pages.npy").shape == (20, 30)


GIF = (b"GIF87a", b"GIF89a")


@pytest.fixture
def opencv_without_gif(monkeypatch):
    """cv2 as before OpenCV 4.12 (setup.py allows 4.8; Ubuntu 24.04's python3-opencv is 4.6):
    no GIF decoder, so imdecode returns None for one and imcount counts 0 frames in it."""
    real_decode, real_count = cv2.imdecode, cv2.imcount

    def imdecode(buf, flags):
        return None if bytes(buf[:6]) in GIF else real_decode(buf, flags)

    def imcount(name, *args):
        with open(name, "rb") as f:
            return 0 if f.read(6) in GIF else real_count(name, *args)

    monkeypatch.setattr(cv2, "imdecode", imdecode)
    monkeypatch.setattr(cv2, "imcount", imcount)


def _gif(path: Path, frames: list) -> Path:
    Image = pytest.importorskip("PIL.Image")
    pil = [Image.fromarray(f) for f in frames]
    pil[0].save(path, save_all=True, append_images=pil[1:], duration=100, loop=0)
    return path


def test_a_gif_that_this_opencv_cannot_decode_is_read_with_pillow(
    opencv_without_gif, tiny_checkpoint, tmp_path, capsys
):
    """On an OpenCV without GIF (before 4.12) predict skipped every GIF as "not a readable
    image", though the README promises their first frame."""
    frames = [np.full((20, 30, 3), 60 * i + 10, np.uint8) for i in range(3)]
    frames[0][:, :15] = (200, 40, 40)
    gif = _gif(tmp_path / "anim.gif", frames)
    np.testing.assert_array_equal(read_rgb(str(gif)), frames[0])
    assert (
        _predict(tiny_checkpoint, [gif, _write(tmp_path / "one.png", 16, 16)], tmp_path / "o") == 0
    )
    err = capsys.readouterr().err.splitlines()
    assert [x for x in err if "only the first" in x] == [
        f"{gif}: only the first of its 3 frames/pages is predicted"
    ], err
    assert np.load(tmp_path / "o" / "anim.npy").shape == (20, 30)


def test_without_pillow_a_gif_this_opencv_cannot_decode_says_pillow_would_read_it(
    opencv_without_gif, tmp_path, monkeypatch
):
    gif = _gif(tmp_path / "still.gif", [np.full((20, 30, 3), 90, np.uint8)])
    monkeypatch.setitem(sys.modules, "PIL", None)  # not installed
    with pytest.raises(ValueError) as info:
        read_rgb(str(gif))
    assert str(info.value) == (
        "not a readable image (this OpenCV cannot decode GIF; Pillow would read it if installed: "
        "pip install pillow)"
    )


def test_pillows_reading_turns_an_image_upright_as_opencv_does(tmp_path, monkeypatch):
    """A format this OpenCV cannot decode, read with Pillow, is turned by its EXIF orientation
    (all eight) exactly as OpenCV turns what it decodes."""
    Image = pytest.importorskip("PIL.Image")
    rgb = np.random.default_rng(4).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    real = cv2.imdecode
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[274] = orientation
        path = tmp_path / f"o{orientation}.tif"
        Image.fromarray(rgb).save(path, exif=exif)
        expected = real(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: None)  # no TIFF decoder
        np.testing.assert_array_equal(read_rgb(str(path)), expected)
        monkeypatch.setattr(cv2, "imdecode", real)
