"""depthart_core.fileutil: the one cache root and the one atomic-write helper."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from depthart_core.fileutil import (
    WriteError,
    atomic_write,
    atomic_write_all,
    cache_root,
    output_folder,
    read_json,
)
from depthart_core.runtime.engine_cache import default_cache_dir
from depthart_core.runtime.onnx_cache import onnx_cache_path


def test_cache_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("DEPTHART_CACHE", raising=False)
    assert cache_root() == tmp_path / "home" / ".cache" / "depthart"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "depthart"
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"


def test_onnx_and_engine_caches_share_the_root(monkeypatch, tmp_path):
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path))
    monkeypatch.delenv("DEPTHART_ENGINE_CACHE", raising=False)
    sha = "0123456789abcdef" + "0" * 48
    assert onnx_cache_path(sha, "fp16") == tmp_path / "onnx" / "0123456789abcdef_fp16.onnx"
    assert default_cache_dir() == tmp_path / "engines"


def test_atomic_write_bytes_and_writer(tmp_path):
    path = tmp_path / "sub" / "a.bin"
    atomic_write(path, b"first")
    assert path.read_bytes() == b"first"
    atomic_write(path, lambda tmp: open(tmp, "wb").write(b"second"))
    assert path.read_bytes() == b"second"
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.bin"]


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write(path, b"old")

    def half_then_fail(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_cache_write_removes_only_old_temp_folders_of_the_same_file(tmp_path):
    old, fresh = (
        tmp_path / ".pool.safetensors.abcd1234.tmp",
        tmp_path / ".pool.safetensors.wxyz6789.tmp",
    )
    other = (
        tmp_path / ".other.safetensors.abcd1234.tmp"
    )  # another file's: not this write's business
    for d in (old, fresh, other):
        d.mkdir()
        (d / ".tmpAb12Cd").write_bytes(b"left by kill -9")
    hours_ago = time.time() - 2 * 3600
    for d in (old, other):
        os.utime(d, (hours_ago, hours_ago))
    atomic_write(tmp_path / "pool.safetensors", b"pool", stale_after_s=3600)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [other.name, fresh.name, "pool.safetensors"]
    )  # a fresh one may be another process's write in progress


def test_read_json_names_the_file(tmp_path) -> None:

    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2]}')
    assert read_json(good, "thing") == {"a": [1, 2]}
    with pytest.raises(FileNotFoundError, match="thing not found: .*missing.json"):
        read_json(tmp_path / "missing.json", "thing")
    for name, data in (("cut.json", b'{"a": [1,'), ("latin.json", b'{"a": "\xe9"}')):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=f"{name} is not valid JSON"):
            read_json(tmp_path / name, "thing")


def test_output_folder_removes_only_the_empty_folders_it_made(tmp_path):
    with output_folder(tmp_path / "a" / "b") as out:
        assert out.is_dir()
    assert not (tmp_path / "a").exists()
    with pytest.raises(RuntimeError):  # an error inside: still cleaned up
        with output_folder(tmp_path / "a" / "b"):
            raise RuntimeError("boom")
    assert not (tmp_path / "a").exists()
    with output_folder(tmp_path / "a" / "b") as out:
        (out / "x.npy").write_bytes(b"1")
    assert (tmp_path / "a" / "b" / "x.npy").exists()  # written into: kept, with its parents
    (tmp_path / "c").mkdir()
    with output_folder(tmp_path / "c"):
        pass
    assert (tmp_path / "c").is_dir()  # there before: kept though empty


def test_output_folder_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(WriteError, match="exists already and is not a folder"):
        with output_folder(tmp_path / "f"):
            pass


def test_a_name_that_is_not_utf8_is_written_and_its_temp_folder_cut_cleanly(tmp_path):
    """A Latin-1 file name (surrogate escapes once decoded) is written like any other; a long
    name's temp folder is cut at a whole character and stays within the 255-byte limit."""
    latin = tmp_path / os.fsdecode(b"caf\xe9.png")
    atomic_write(latin, b"latin")
    assert (tmp_path.as_posix().encode() + b"/caf\xe9.png") in [
        os.fsencode(p) for p in tmp_path.iterdir()
    ]
    assert latin.read_bytes() == b"latin"
    seen = []

    def record(tmp: str) -> None:
        seen.append(os.fsencode(Path(tmp).parent.name))
        Path(tmp).write_bytes(b"long")

    for raw in (b"a" + "\u00e9".encode() * 120, b"\xe9" * 230 + b".npy"):  # 241 / 234 bytes
        atomic_write(tmp_path / os.fsdecode(raw), record)
        assert (tmp_path / os.fsdecode(raw)).read_bytes() == b"long"
    utf8_dir, latin_dir = seen
    assert len(utf8_dir) <= 255 and len(latin_dir) <= 255
    assert utf8_dir.decode() == "." + "a" + "\u00e9" * 99 + utf8_dir.decode()[-13:]  # no half é
    assert latin_dir.startswith(b"." + b"\xe9" * 200 + b".")


def test_atomic_write_all_changes_all_files_or_none(tmp_path, monkeypatch):
    """A failed write, or a Ctrl-C between the renames, leaves the old files as they were and no
    new file that had no old version; success replaces them all."""
    a, b, c = tmp_path / "a.npy", tmp_path / "a_depth.png", tmp_path / "a.ply"
    a.write_bytes(b"old a")
    b.write_bytes(b"old b")  # c: none yet

    def fail(tmp: str) -> None:
        Path(tmp).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(WriteError, match=f"cannot write {c}: no space left on the device"):
        atomic_write_all({a: b"new a", b: b"new b", c: fail})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {
        "a.npy": b"old a", "a_depth.png": b"old b"
    }  # fmt: skip
    replace, calls = os.replace, []

    def interrupted(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # a and c (which had no old version) renamed into place, b not yet
            raise KeyboardInterrupt
        return replace(src, dst)

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_all({a: b"new a", c: b"new c", b: b"new b"})
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {
        "a.npy": b"old a", "a_depth.png": b"old b"
    }  # fmt: skip
    atomic_write_all({a: b"new a", b: b"new b", c: b"new c"})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {
        "a.npy": b"new a", "a_depth.png": b"new b", "a.ply": b"new c"
    }  # fmt: skip


def test_atomic_writes_refuse_a_fifo_and_replace_a_link_not_its_target(tmp_path):
    """A FIFO or device at the target is refused, one line, and stays what it was (a rename
    would have put a regular file in its place); a symlink is replaced itself, its target kept."""
    import stat

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for write in (lambda: atomic_write(fifo, b"x"), lambda: atomic_write_all({fifo: b"x"})):
        with pytest.raises(WriteError, match=f"cannot write {fifo}: not a regular file"):
            write()
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    target, link = tmp_path / "target", tmp_path / "link"
    target.write_bytes(b"old")
    link.symlink_to(target)
    atomic_write(link, b"new")
    assert not link.is_symlink() and link.read_bytes() == b"new"
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "pipe", "target"]


def test_a_relative_xdg_cache_home_is_ignored(monkeypatch, tmp_path):
    """The XDG spec: a relative $XDG_CACHE_HOME is invalid and ignored (it put the cache under
    whatever folder the command ran in)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DEPTHART_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "relcache")
    assert cache_root() == tmp_path / "home" / ".cache" / "depthart"
    monkeypatch.setenv("XDG_CACHE_HOME", "~/xdg")  # a home-relative one is absolute
    assert cache_root() == tmp_path / "home" / "xdg" / "depthart"


def test_no_home_says_to_set_the_cache_folder(monkeypatch, tmp_path):
    """With no HOME and no passwd entry, the error was only "Could not determine home
    directory."."""
    import pwd

    for name in ("HOME", "DEPTHART_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)

    def no_entry(uid):
        raise KeyError(uid)

    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(RuntimeError, match="set DEPTHART_CACHE or XDG_CACHE_HOME") as exc:
        cache_root()
    assert "\n" not in str(exc.value)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # either one set: no home needed
    assert cache_root() == tmp_path / "xdg" / "depthart"


@pytest.mark.parametrize("writer", ["atomic_write", "atomic_write_all"])
def test_an_interrupt_while_the_temp_folder_is_made_leaves_nothing(tmp_path, monkeypatch, writer):
    """A SIGTERM landing as the temp folder was made (mkdtemp's folder made, its name not yet
    back) left `.NAME.XXXXXXXX.tmp` beside the target (synth's frames, a busy machine)."""
    import depthart_core.fileutil as fileutil

    real_mkdir = os.mkdir

    def made_then_interrupted(name, *args, **kwargs):
        real_mkdir(name, *args, **kwargs)
        if str(name).endswith(".tmp"):
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "mkdir", made_then_interrupted)
    target = tmp_path / "frame.png"
    with pytest.raises(KeyboardInterrupt):
        if writer == "atomic_write":
            fileutil.atomic_write(target, b"png")
        else:
            fileutil.atomic_write_all({target: b"png"})
    assert list(tmp_path.iterdir()) == []
