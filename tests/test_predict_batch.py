"""`depthart predict` on a mixed batch: every bad input is skipped with its name and reason, the
rest are written, and the exit status and summary say so; a .pth checkpoint is explained."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from depthart_core.checkpoint import load_checkpoint, read_checkpoint_info
from depthart_core.cli import main


def test_mixed_batch_keeps_going(tiny_checkpoint, tmp_path, capsys):
    rng = np.random.default_rng(0)
    good = tmp_path / "a.png"
    cv2.imwrite(str(good), rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    text = tmp_path / "text.jpg"
    text.write_text("this is not a JPEG")
    tiny = tmp_path / "one_by_one.png"
    cv2.imwrite(str(tiny), np.zeros((1, 1, 3), np.uint8))
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), rng.integers(0, 256, (30, 20), dtype=np.uint8))
    missing = tmp_path / "missing.png"
    out = tmp_path / "d"
    names = [str(p) for p in (good, text, tiny, gray, missing)]
    argv = ["predict", *names, "--checkpoint", tiny_checkpoint, "--backend", "torch"]
    rc = main([*argv, "--out", str(out)])
    said = capsys.readouterr()
    lines, lines_err = said.out.splitlines(), said.err.splitlines()
    assert rc == 1
    # the reasons are diagnostics: stderr, so `> list.txt` keeps them on the terminal
    assert f"skipped {text}: not a readable image" in lines_err
    assert f"skipped {tiny}: too small (1x1; images must be at least 2x2 pixels)" in lines_err
    assert f"skipped {missing}: no such file" in lines_err
    assert not [x for x in lines if x.startswith("skipped")], lines
    assert lines[-1].startswith(
        f"wrote 2 depth maps to {out}, skipped 3 (1 no such file, 1 not a readable image, "
        "1 too small)"
    )
    assert np.load(out / "a.npy").shape == (40, 56)
    assert np.load(out / "gray.npy").shape == (30, 20)  # processed after the bad ones
    assert sorted(p.name for p in out.iterdir()) == [
        "a.npy",
        "a_depth.png",
        "gray.npy",
        "gray_depth.png",
    ]


def test_a_name_that_is_not_utf8_is_printed_under_a_strict_utf8_stdout(tiny_checkpoint, tmp_path):
    """Latin-1 names (an old archive's) under a strict UTF-8 stdout: printing one raised
    UnicodeEncodeError, which ended the batch as an error after its outputs were written."""
    import os
    import subprocess
    import sys

    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((16, 16, 3), 90, np.uint8))
    latin = os.fsdecode(bytes(tmp_path) + b"/caf\xe9")  # a surrogate in Python's str
    argv = ["predict", latin + ".png", str(good), "--checkpoint", tiny_checkpoint]
    env = os.environ | {"PYTHONIOENCODING": "utf-8"}  # strict: no surrogateescape
    cmd = [sys.executable, "-m", "depthart_core", *argv, "--backend", "torch", "--out", latin]
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 1 and "Traceback" not in err and "error" not in err, err
    assert "caf\\udce9.png: no such file" in err, err  # escaped, and the batch went on
    assert out.startswith("wrote 1 depth maps to ") and "caf\\udce9, skipped 1" in out, out
    assert (Path(latin) / "good.npy").is_file()


def test_a_truncated_jpeg_is_skipped_not_predicted_from_grey(tiny_checkpoint, tmp_path, capsys):
    """OpenCV decodes a JPEG cut in half with its missing rows grey and one libjpeg line that
    names no file; an interrupted copy must be skipped by name instead. Data a camera appends
    after the end-of-image marker stays fine."""
    rgb = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", rgb)[1].tobytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    trailer = tmp_path / "trailer.jpg"
    trailer.write_bytes(data + b"SEFT trailer a phone appends")
    argv = ["predict", str(cut), str(trailer), "--checkpoint", tiny_checkpoint]
    assert main([*argv, "--backend", "torch", "--out", str(tmp_path / "o")]) == 1
    said = capsys.readouterr()
    lines = said.out.splitlines()
    err = said.err.splitlines()
    assert f"skipped {cut}: truncated JPEG (no end-of-image marker after its last scan)" in err
    assert lines[-1].startswith("wrote 1 depth maps to"), lines
    assert np.load(tmp_path / "o" / "trailer.npy").shape == (48, 64)


def test_truncated_jpeg_walks_the_segments_not_the_appended_data():
    """A Motion Photo (a JPEG with a video appended after its end marker) is whole, whatever
    start-of-scan patterns the video holds (searching the whole file called half of them cut);
    a progressive JPEG, one with restart markers and one with an EXIF thumbnail are whole; each
    cut anywhere before its end marker is truncated."""
    from depthart_core.cli.predict import truncated_jpeg

    rgb = np.random.default_rng(2).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    plain = cv2.imencode(".jpg", rgb)[1].tobytes()
    progressive = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    restarts = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_RST_INTERVAL, 2])[1].tobytes()
    thumb = cv2.imencode(".jpg", rgb[::8, ::8])[1].tobytes()
    app1 = b"Exif\0\0" + thumb  # a thumbnail's own SOI/SOS/EOI inside APP1
    exif = plain[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + plain[2:]
    assert cv2.imdecode(np.frombuffer(exif, np.uint8), cv2.IMREAD_COLOR) is not None
    rng = np.random.default_rng(0)
    for data in (plain, progressive, restarts, exif):
        assert not truncated_jpeg(data)
        for _ in range(20):  # the video a Motion Photo appends: "\xff\xda" in it by chance
            video = rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes()
            assert not truncated_jpeg(data + b"\0\0\0\x18ftypmp42" + video + b"\xff\xda\x00")
        for cut in (len(data) // 3, len(data) // 2, len(data) - 2, len(data) - 1):
            assert truncated_jpeg(data[:cut]), cut


def test_an_image_given_twice_is_predicted_once(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.full((8, 8, 3), 90, np.uint8))
    monkeypatch.chdir(tmp_path)
    argv = ["predict", "a.png", str(img), "./a.png", "--checkpoint", tiny_checkpoint]
    assert main([*argv, "--backend", "torch", "--out", str(tmp_path / "o")]) == 0
    captured = capsys.readouterr()
    assert "2 image(s) given more than once: each is predicted once" in captured.err
    assert captured.out.splitlines()[-1].startswith("wrote 1 depth maps to")


def test_all_good_exits_zero(tiny_checkpoint, tmp_path, capsys):
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.full((8, 8, 3), 90, np.uint8))
    argv = ["predict", str(img), "--checkpoint", tiny_checkpoint, "--backend", "torch"]
    assert main([*argv, "--threads", "1", "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("wrote 1 depth maps to")


def test_a_batch_that_writes_nothing_leaves_no_folder_it_made(tiny_checkpoint, tmp_path, capsys):
    bad = tmp_path / "text.jpg"
    bad.write_text("this is not a JPEG")
    argv = ["predict", str(bad), "--checkpoint", tiny_checkpoint, "--backend", "torch"]
    out = tmp_path / "new" / "d"
    assert main([*argv, "--out", str(out)]) == 1
    assert (
        capsys.readouterr()
        .out.splitlines()[-1]
        .startswith("wrote no depth maps, skipped 1 (1 not a readable image)")
    )
    assert not (tmp_path / "new").exists()  # both folders it made are gone again
    kept = tmp_path / "kept"
    kept.mkdir()
    assert main([*argv, "--out", str(kept)]) == 1
    assert kept.is_dir()  # a folder that was there before stays


@pytest.mark.parametrize("kind", ["zip", "legacy"])
def test_pth_checkpoint_is_explained(tiny_model, tmp_path, capsys, kind):
    pth = tmp_path / "model.pth"
    torch.save(tiny_model.state_dict(), pth, _use_new_zipfile_serialization=kind == "zip")
    disguised = tmp_path / "model.safetensors"  # renamed: recognised by its first bytes
    disguised.write_bytes(pth.read_bytes())
    for path in (pth, disguised):
        with pytest.raises(ValueError) as exc:
            read_checkpoint_info(path)
        msg = str(exc.value)
        assert f"{path} is a pickled PyTorch checkpoint" in msg and "only .safetensors" in msg
        assert "Converting a .pth checkpoint" in msg and "header" not in msg
        with pytest.raises(ValueError, match="pickled PyTorch checkpoint"):
            load_checkpoint(path)
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.full((8, 8, 3), 90, np.uint8))
    assert main(["predict", str(img), "--checkpoint", str(pth), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pickled PyTorch checkpoint" in err


def test_safetensors_whose_header_length_starts_with_0x80_is_not_taken_for_a_pickle(
    tiny_model, tmp_path
):
    from depthart_core.checkpoint import save_checkpoint

    # pad the metadata until the header length's low byte is 0x80 (a pickle PROTO opcode)
    for pad in range(256):
        path = save_checkpoint(tmp_path / f"m{pad}.safetensors", tiny_model, {"pad": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        pytest.fail("no padding gave a header length starting with 0x80")
    model, _ = load_checkpoint(path)
    assert model.cfg == tiny_model.cfg


def test_a_jpegs_exif_orientation_is_applied(tiny_checkpoint, tmp_path):
    """A phone photo stored sideways with EXIF orientation 6: the depth is upright as a viewer
    shows the photo (the stored pixels are 60x80, the viewed ones 80x60)."""
    Image = pytest.importorskip("PIL.Image")
    stored = np.zeros((60, 80, 3), np.uint8)
    photo = Image.fromarray(stored)
    exif = photo.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    photo.save(tmp_path / "phone.jpg", exif=exif)
    argv = ["predict", str(tmp_path / "phone.jpg"), "--checkpoint", tiny_checkpoint]
    assert main([*argv, "--backend", "torch", "--out", str(tmp_path / "o")]) == 0
    assert np.load(tmp_path / "o" / "phone.npy").shape == (80, 60)


def test_a_decompression_bomb_is_skipped_by_its_header(tiny_checkpoint, tmp_path, capsys):
    """A small PNG whose header claims 20000x20000 pixels is skipped from its header, before
    decoding (it took gigabytes and could stop the batch); the batch goes on."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((16, 16, 3), 90, np.uint8))
    argv = ["predict", str(bomb), str(good), "--checkpoint", tiny_checkpoint, "--backend", "torch"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert any(x.startswith(f"skipped {bomb}: 20000x20000 pixels, more than") for x in lines)
    assert (tmp_path / "o" / "good.npy").is_file()


def test_a_long_name_fits_its_temp_folder(tiny_checkpoint, tmp_path):
    """A 240-character stem: its outputs' names fit the 255-byte limit, and their temp folder
    (`.NAME.XXXXXXXX.tmp`) must too."""
    img = tmp_path / ("x" * 240 + ".png")
    cv2.imwrite(str(img), np.full((16, 16, 3), 90, np.uint8))
    argv = ["predict", str(img), "--checkpoint", tiny_checkpoint, "--backend", "torch"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / ("x" * 240 + ".npy")).is_file()


def test_a_failed_rerun_keeps_the_earlier_outputs(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    """A rerun whose last file (the .ply) cannot be written leaves every earlier output as it was:
    none is replaced before all are written, and none that was there is removed."""
    import errno

    from depthart_core import pointcloud
    from depthart_core.fileutil import WriteError

    img = tmp_path / "img.png"
    cv2.imwrite(str(img), np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    out = tmp_path / "o"
    argv = ["predict", str(img), "--checkpoint", tiny_checkpoint, "--backend", "torch", "--ply"]
    assert main([*argv, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["img.npy", "img.ply", "img_depth.png"]
    for p in out.iterdir():  # an earlier run's outputs, told apart from this one's
        p.write_bytes(b"earlier " + p.name.encode())

    def full(path, cloud):  # as atomic_write reports a full disk
        raise WriteError(path, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(pointcloud, "write_ply", full)
    assert main([*argv, "--out", str(out)]) == 1
    assert f"skipped {img}: cannot write {out / 'img.ply'}: no space left on the device" in (
        capsys.readouterr().err.splitlines()
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {
        n: b"earlier " + n.encode() for n in before
    }
