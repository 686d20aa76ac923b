"""A cached graph, record, engine or sidecar that another user could have written is never
loaded: only files owned by the user or root and writable by no one else are trusted (as ssh
treats its keys). Another user's ownership is simulated by the stat of the opened file, so the
tests run alike as root and as anyone else. The ONNX export is faked by a tiny stamped graph."""

from __future__ import annotations

import builtins
import errno
import json
import logging
import os
import pathlib
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from cache_owner import OTHER_UID, file_mode, owned_by_another
from onnx import TensorProto, helper

import depthart_core.runtime.onnx_cache as onnx_cache
from depthart_core import fileutil
from depthart_core.checkpoint import CheckpointFile
from depthart_core.export.onnx_export import (
    EXPORTER_VERSION,
    META_DECODING,
    META_EXPORTER,
    META_PRECISION,
    META_SHA,
)
from depthart_core.fileutil import WriteError
from depthart_core.runtime.engine_cache import EngineCache, EngineKey
from depthart_core.sampling import graph_decoding

KEY = EngineKey("ab" * 32, "fp32", (1, 3, 32, 32), "10.3.0.30", "sm_87")
PLAN = b"PLAN:" + bytes(range(64))
pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="no user ids (Windows)")


def _fake_export(model, path, checkpoint_sha256="", fp16=False, sampling=None, final_path=None):
    """A one-node graph with the stamps `export_onnx` writes: enough for the cache's checks."""
    node = helper.make_node("Identity", ["image"], ["depth"])
    graph = helper.make_graph(
        [node],
        "fake",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    model_proto = helper.make_model(graph)
    stamps = {
        META_SHA: checkpoint_sha256,
        META_PRECISION: "fp16" if fp16 else "fp32",
        META_DECODING: graph_decoding(sampling),
        META_EXPORTER: EXPORTER_VERSION,
    }
    helper.set_model_props(model_proto, stamps)
    onnx.save(model_proto, str(path))


@pytest.fixture
def cache(tmp_path, monkeypatch, tiny_checkpoint):
    """(checkpoint, list of exports) with the ONNX cache in tmp_path and the export faked."""
    return faked_export_cache(tmp_path, monkeypatch, tiny_checkpoint)


def faked_export_cache(
    tmp_path: Path, monkeypatch, checkpoint
) -> tuple[CheckpointFile, list[Path]]:
    """`cache`'s: also for other test files' fixtures."""
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path / "cache"))
    exports: list[Path] = []

    def counting(model, path, **kwargs):
        exports.append(Path(path))
        _fake_export(model, path, **kwargs)

    monkeypatch.setattr(onnx_cache, "export_onnx", counting)
    monkeypatch.setattr(fileutil, "_private_roots", {}, raising=False)  # each test's own
    ckpt = CheckpointFile(checkpoint)
    ckpt.loaded = (None, {})  # no model: the fake export needs none
    return ckpt, exports


def test_an_own_private_graph_is_a_cache_hit(cache):
    ckpt, exports = cache
    path = onnx_cache.cached_onnx(ckpt, "fp32")
    assert file_mode(path) & 0o022 == 0 and len(exports) == 1
    assert onnx_cache.cached_onnx(ckpt, "fp32") == path and len(exports) == 1  # no re-export


def test_a_graph_others_can_write_is_exported_again_with_a_warning(cache, caplog):
    ckpt, exports = cache
    path = onnx_cache.cached_onnx(ckpt, "fp32")
    os.chmod(path, 0o666)  # anyone could have swapped the model (and rewritten the record)
    with caplog.at_level(logging.WARNING):
        assert onnx_cache.cached_onnx(ckpt, "fp32") == path
    assert len(exports) == 2  # not loaded: exported afresh
    assert file_mode(path) & 0o022 == 0  # the new graph is the user's own again
    warning = caplog.text
    assert str(path) in warning and "is not trusted" in warning and "mode 0666" in warning
    assert f"owner uid {os.getuid()}" in warning and "writable by its group and others" in warning
    # the user's own file in the user's own folder: an old umask, not a shared cache
    assert "under a umask such as 002" in warning and "written writable by you only" in warning
    assert "set DEPTHART_CACHE" not in warning
    assert "exporting it again" in warning
    assert onnx_cache.cached_onnx(ckpt, "fp32") == path and len(exports) == 2  # trusted now


def test_a_record_others_can_write_is_not_trusted(cache, caplog):
    ckpt, exports = cache
    path = onnx_cache.cached_onnx(ckpt, "fp32")
    record = path.with_name(path.name + ".sha256")
    os.chmod(record, 0o646)
    assert onnx_cache.cached_onnx(ckpt, "fp32") == path and len(exports) == 2
    assert f"record {record.name} that is not trusted" in caplog.text
    assert file_mode(record) & 0o022 == 0


def test_a_graph_of_another_user_is_not_loaded(cache, monkeypatch, caplog):
    ckpt, exports = cache
    path = onnx_cache.cached_onnx(ckpt, "fp32")
    owned_by_another(monkeypatch, path)
    assert onnx_cache.cached_onnx(ckpt, "fp32") == path and len(exports) == 2
    assert f"owner uid {OTHER_UID}, mode 0644: not yours" in caplog.text
    assert onnx_cache.cached_onnx(ckpt, "fp32") == path and len(exports) == 2  # its own now


def test_an_untrusted_graph_that_cannot_be_replaced_is_exported_privately(
    cache, monkeypatch, caplog
):
    """Another user's graph in a sticky shared folder: the export cannot rename over it (EPERM),
    as in a read-only cache; the graph is never served, and the run goes on with a graph
    exported into the process's own temp folder."""
    ckpt, exports = cache
    path = onnx_cache.cached_onnx(ckpt, "fp32")
    owned_by_another(monkeypatch, path)
    real_write = onnx_cache.atomic_write

    def refused(target, content, stale_after_s=None, owner_only=False):
        if Path(target).parent == path.parent:
            raise WriteError(target, PermissionError(errno.EPERM, "Operation not permitted"))
        real_write(target, content, stale_after_s=stale_after_s, owner_only=owner_only)

    monkeypatch.setattr(onnx_cache, "atomic_write", refused)
    got = onnx_cache.cached_onnx(ckpt, "fp32")
    assert got != path and got.name == path.name and got.is_file()
    assert path.parent not in got.parents
    assert "cannot be used" in caplog.text and "operation not permitted" in caplog.text


def test_a_umask_that_lets_the_group_write_still_gives_cache_hits(cache):
    """Under a umask of 002 (Ubuntu's for users) the cache's own files are made owner-writable
    only, so they are trusted on the next run instead of exported every time."""
    ckpt, exports = cache
    old = os.umask(0o002)
    try:
        path = onnx_cache.cached_onnx(ckpt, "fp32")
        engines = EngineCache(path.parent.parent / "engines")
        engines.get_or_build(KEY, lambda: PLAN, lambda b: b)
    finally:
        os.umask(old)
    record = path.with_name(path.name + ".sha256")
    for f in (path, record, engines.engine_path(KEY), engines.sidecar_path(KEY)):
        assert file_mode(f) == 0o644, f
    assert onnx_cache.cached_onnx(ckpt, "fp32") == path and len(exports) == 1
    assert not engines.get_or_build(KEY, lambda: PLAN, lambda b: b).built


@pytest.mark.parametrize("which", ["engine", "sidecar"])
@pytest.mark.parametrize("how", ["mode", "owner"])
def test_an_untrusted_engine_or_sidecar_is_rebuilt_not_deserialized(
    tmp_path, monkeypatch, caplog, which, how
):
    cache = EngineCache(tmp_path)
    builds: list[int] = []
    loaded: list[bytes] = []

    def build() -> bytes:
        builds.append(1)
        return PLAN

    def deserialize(blob: bytes) -> bytes:
        loaded.append(blob)
        return blob

    cache.get_or_build(KEY, build, deserialize)
    loaded.clear()
    target = cache.engine_path(KEY) if which == "engine" else cache.sidecar_path(KEY)
    if how == "mode":
        os.chmod(target, 0o664)
    else:
        owned_by_another(monkeypatch, target)
    result = cache.get_or_build(KEY, build, deserialize)
    assert result.built and len(builds) == 2  # rebuilt ...
    assert len(loaded) == 1  # ... and only the fresh build deserialized
    assert f"engine cache: {target} is not trusted" in caplog.text
    assert "set DEPTHART_CACHE to a folder only you can write" not in caplog.text  # explicit dir
    if how == "owner":  # another's file: move the cache
        assert "set DEPTHART_ENGINE_CACHE" in caplog.text
    else:  # the user's own, written under an old umask: replaced, nothing to move
        assert "under a umask such as 002" in caplog.text
        assert "set DEPTHART_ENGINE_CACHE" not in caplog.text
    assert not cache.get_or_build(KEY, build, deserialize).built  # trusted again


def test_a_cache_folder_others_can_write_is_warned_about_once(tmp_path, monkeypatch, caplog):
    from depthart_core.fileutil import warn_shared_cache_folder  # (here: the old code lacks it)

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    own = tmp_path / "own"
    own.mkdir()
    warn_shared_cache_folder(own)  # yours (whatever its mode): no warning
    monkeypatch.setattr(os, "getuid", lambda: OTHER_UID)  # someone else's 1777 folder
    warn_shared_cache_folder(shared)
    warn_shared_cache_folder(shared)
    os.chmod(own, 0o755)
    warn_shared_cache_folder(own)  # not yours, but only its owner can write it
    assert caplog.text.count("is writable by other users") == 1
    assert f"cache folder {shared} (owner uid {os.stat(shared).st_uid}, mode 1777)" in caplog.text
    assert "set DEPTHART_CACHE to a folder only you can write" in caplog.text


def test_no_user_ids_no_checks(tmp_path, monkeypatch):
    from depthart_core.fileutil import untrusted_cache_file, warn_shared_cache_folder

    path = tmp_path / "x.onnx"
    path.write_bytes(b"x")
    os.chmod(path, 0o666)
    assert untrusted_cache_file(path) is not None
    monkeypatch.delattr(os, "getuid")  # Windows
    assert untrusted_cache_file(path) is None
    warn_shared_cache_folder(tmp_path)  # passes over it


def test_a_symlink_of_another_user_is_not_trusted(tmp_path, monkeypatch):
    from depthart_core.fileutil import untrusted_cache_file

    real = tmp_path / "real.onnx"
    real.write_bytes(b"x")
    os.chmod(real, 0o644)
    link = tmp_path / "link.onnx"
    link.symlink_to(real)
    assert untrusted_cache_file(link) is None
    real_lstat = os.lstat

    def lstat(p, *a, **k):
        st = real_lstat(p, *a, **k)
        if Path(p) != link:
            return st
        fields = list(st[:10])
        fields[stat.ST_UID] = OTHER_UID
        return os.stat_result(fields)

    monkeypatch.setattr(fileutil.os, "lstat", lstat)
    assert f"owner uid {OTHER_UID}" in untrusted_cache_file(link)


def _patch_os(monkeypatch, name: str, fn) -> None:
    """`os.<name>` replaced by `fn` for Path's methods too: Python 3.10's pathlib calls stat,
    mkdir and the like through an accessor that took os's functions at import (3.11 and later
    call os's own)."""
    accessor = getattr(pathlib, "_normal_accessor", None)
    if getattr(accessor, name, None) is getattr(os, name):
        monkeypatch.setattr(accessor, name, fn)
    monkeypatch.setattr(os, name, fn)


# -- a read-only cache: the run goes on with a private export (the untrusted reason said) --------


def _read_only(monkeypatch, root: Path) -> None:
    """Everything under `root` reads as on a read-only mount (as root, whom modes do not stop):
    no folder, file or lock can be made or opened for writing there."""
    real_mkdir, real_open = os.mkdir, os.open

    def under(p) -> bool:
        return Path(os.fsdecode(p)).resolve().is_relative_to(root.resolve())

    def mkdir(p, *a, **k):
        if under(p) and not os.path.exists(p):
            raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(p))
        return real_mkdir(p, *a, **k)

    def open_(p, flags, *a, **k):
        if under(p) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(p))
        return real_open(p, flags, *a, **k)

    _patch_os(monkeypatch, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)  # builtins.open goes through it too (the lock's)
    monkeypatch.setattr(fileutil, "open", _writes_through(open_), raising=False)


def _writes_through(open_):
    """builtins.open, refusing a write under the read-only root as `open_` does."""

    def opener(file, mode="r", *a, **k):
        if any(c in mode for c in "wax+"):
            open_(file, os.O_WRONLY)  # raises for a read-only path
        return builtins.open(file, mode, *a, **k)

    return opener


def test_a_read_only_cache_of_another_users_graph_exports_privately(cache, monkeypatch, caplog):
    """A container as root with the host's cache mounted read-only (files of uid 1000): the
    lock cannot be taken, which failed the run with "cannot write ....lock: read-only file
    system" and hid why the graph was not served. Now one warning names both and the graph is
    exported into the process's own temp folder."""
    ckpt, exports = cache
    path = onnx_cache.cached_onnx(ckpt, "fp32")
    root = Path(os.environ["DEPTHART_CACHE"])
    owned_by_another(monkeypatch, path, path.with_name(path.name + ".sha256"))
    _read_only(monkeypatch, root)
    with caplog.at_level(logging.WARNING):
        got = onnx_cache.cached_onnx(ckpt, "fp32")
    assert got.is_file() and got.name == path.name and not got.is_relative_to(root)
    assert len(exports) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    (warning,) = warnings
    assert f"owner uid {OTHER_UID}" in warning and "not yours" in warning  # the reason
    assert "read-only file system" in warning and ".lock" in warning  # the write failure
    assert "every start will export it again" in warning and "DEPTHART_CACHE" in warning
    assert onnx_cache.cached_onnx(ckpt, "fp32") == got and len(exports) == 2  # once a process


def test_a_read_only_cache_without_a_graph_exports_privately(cache, monkeypatch, caplog):
    ckpt, exports = cache
    root = Path(os.environ["DEPTHART_CACHE"])
    (root / "onnx").mkdir(parents=True)
    _read_only(monkeypatch, root)
    got = onnx_cache.cached_onnx(ckpt, "fp32")
    assert got.is_file() and not got.is_relative_to(root) and len(exports) == 1
    assert "cached graph" not in caplog.text and "read-only file system" in caplog.text


def test_a_read_only_cache_with_a_trusted_graph_serves_it(cache, monkeypatch, caplog):
    ckpt, exports = cache
    path = onnx_cache.cached_onnx(ckpt, "fp32")
    path.with_name(path.name + ".sha256").unlink()  # an entry from before the record, too
    _read_only(monkeypatch, Path(os.environ["DEPTHART_CACHE"]))
    with caplog.at_level(logging.WARNING):
        assert onnx_cache.cached_onnx(ckpt, "fp32") == path
    assert len(exports) == 1 and not caplog.records


def test_a_full_cache_disk_still_fails(cache, monkeypatch):
    """Only a cache that cannot be written at all is passed over: a full disk is the one-line
    error it always was (a temp folder would fill as well)."""
    ckpt, _ = cache

    def full(target, content, stale_after_s=None, owner_only=False):
        raise WriteError(target, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(onnx_cache, "atomic_write", full)
    with pytest.raises(WriteError, match="no space left"):
        onnx_cache.cached_onnx(ckpt, "fp32")


def test_a_read_only_engine_cache_builds_without_storing(tmp_path, monkeypatch, caplog):
    cache = EngineCache(tmp_path / "engines")
    cache.cache_dir.mkdir()
    _read_only(monkeypatch, cache.cache_dir)
    builds: list[int] = []

    def build() -> bytes:
        builds.append(1)
        return PLAN

    result = cache.get_or_build(KEY, build, lambda b: b)
    assert result.built and result.engine == PLAN and len(builds) == 1
    assert not cache.engine_path(KEY).exists()
    assert "cannot be written" in caplog.text and "read-only file system" in caplog.text
    assert "every start will build it again until DEPTHART_ENGINE_CACHE" in caplog.text


# -- wording by cause ----------------------------------------------------------------------------


def test_an_own_file_in_a_folder_others_can_write_keeps_the_folder_advice(cache, caplog):
    ckpt, exports = cache
    path = onnx_cache.cached_onnx(ckpt, "fp32")
    os.chmod(path.parent, 0o1777)  # a shared folder: others could have put the file there
    os.chmod(path, 0o664)
    assert onnx_cache.cached_onnx(ckpt, "fp32") == path and len(exports) == 2
    assert "set DEPTHART_CACHE to a folder only you can write" in caplog.text
    assert "umask" not in caplog.text


# -- a file system that keeps no Unix modes (FAT, NTFS-3G, WSL /mnt/c, CIFS file_mode=0777) ------


@pytest.fixture
def modeless(monkeypatch):
    """chmod has no effect and new files are writable by all, as on such a file system."""
    monkeypatch.setattr(fileutil, "_modeless_folders", {}, raising=False)
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    old = os.umask(0)
    yield
    os.umask(old)


def test_a_file_system_without_modes_trusts_your_own_graph(cache, modeless, caplog):
    """Every file reads back 0666 there: the user's own re-exported graph was never trusted,
    and every run exported it again (3 runs, 3 exports)."""
    ckpt, exports = cache
    with caplog.at_level(logging.INFO):
        path = onnx_cache.cached_onnx(ckpt, "fp32")
        assert file_mode(path) & 0o022  # chmod had no effect
        for _ in range(2):
            assert onnx_cache.cached_onnx(ckpt, "fp32") == path
    assert len(exports) == 1
    assert caplog.text.count("keeps no Unix permissions") == 1
    assert "not trusted" not in caplog.text
    fileutil._modeless_folders.clear()  # a new process: learnt from a probe file
    assert onnx_cache.cached_onnx(ckpt, "fp32") == path and len(exports) == 1
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".probe.")]


def test_a_file_system_without_modes_trusts_your_own_engine(tmp_path, modeless):
    cache = EngineCache(tmp_path / "engines")
    builds: list[int] = []

    def build() -> bytes:
        builds.append(1)
        return PLAN

    assert [cache.get_or_build(KEY, build, lambda b: b).built for _ in range(3)] == [1, 0, 0]
    fileutil._modeless_folders.clear()  # a new process
    assert not cache.get_or_build(KEY, build, lambda b: b).built and len(builds) == 1


def test_a_file_system_without_modes_still_refuses_another_users_file(cache, modeless, monkeypatch):
    ckpt, exports = cache
    path = onnx_cache.cached_onnx(ckpt, "fp32")
    owned_by_another(monkeypatch, path)
    assert onnx_cache.cached_onnx(ckpt, "fp32") == path and len(exports) == 2


# -- a cache folder you cannot enter (another user's, mode 0700: a home or ~/.cache) -------------


def _unenterable(monkeypatch, folder: Path) -> None:
    """`folder` reads as another user's folder of mode 0700 to a process that modes stop: the
    folder itself can be looked up, nothing in it or below it can (EACCES on stat, mkdir, open).
    Simulated, so that it runs alike as root and as anyone else."""
    folder = Path(os.path.abspath(folder))
    real = {name: getattr(os, name) for name in ("stat", "lstat", "mkdir", "open")}
    real_open = builtins.open

    def inside(p) -> bool:
        if isinstance(p, int):  # a descriptor: opened before
            return False
        path = Path(os.path.abspath(os.fsdecode(p)))
        return path != folder and path.is_relative_to(folder)

    def refusing(name):
        def call(p, *a, **k):
            if inside(p):
                raise OSError(errno.EACCES, "Permission denied", os.fsdecode(p))
            return real[name](p, *a, **k)

        return call

    def opener(file, *a, **k):
        if inside(file):
            raise OSError(errno.EACCES, "Permission denied", os.fsdecode(file))
        return real_open(file, *a, **k)

    for name in real:
        _patch_os(monkeypatch, name, refusing(name))
    monkeypatch.setattr(builtins, "open", opener)  # the lock's and the reads'


@pytest.mark.parametrize("where", ["empty", "cached", "below"])
def test_a_cache_folder_you_cannot_enter_exports_privately(cache, monkeypatch, caplog, where):
    """`DEPTHART_CACHE` naming another user's folder of mode 0700 (empty, or with the owner's
    graph), or a folder below one: Path.is_file of the graph raised PermissionError (Python 3.11
    passes over ENOENT and the like only), so `depthart predict` stopped with "...onnx:
    permission denied". Now there is no graph to serve, the lock is refused as for a read-only
    cache, and the graph is exported into the process's own temp folder with one warning."""
    ckpt, exports = cache
    root = Path(os.environ["DEPTHART_CACHE"])
    root.mkdir()
    if where == "cached":
        onnx_cache.cached_onnx(ckpt, "fp32")  # the folder owner's graph
    if where == "below":
        monkeypatch.setenv("DEPTHART_CACHE", str(root / "sub"))  # its mkdir is refused too
    before = len(exports)
    _unenterable(monkeypatch, root)
    with caplog.at_level(logging.WARNING):
        got = onnx_cache.cached_onnx(ckpt, "fp32")
    assert got.is_file() and not got.is_relative_to(root) and len(exports) == before + 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    (warning,) = warnings
    assert "cannot be looked up (permission denied)" in warning  # why no graph was served
    assert ".lock" in warning and "every start will export it again" in warning
    assert onnx_cache.cached_onnx(ckpt, "fp32") == got and len(exports) == before + 1


def test_a_record_that_cannot_be_looked_up_is_not_taken_for_none(cache, monkeypatch, caplog):
    """An error looking up the graph's record other than its absence was raised out of the
    cache; now the graph is exported again, as for an unreadable record."""
    ckpt, exports = cache
    path = onnx_cache.cached_onnx(ckpt, "fp32")
    record = path.with_name(path.name + ".sha256")
    real_stat = os.stat

    def stat_(p, *a, **k):
        if not isinstance(p, int) and Path(os.fsdecode(p)) == record:
            raise OSError(errno.EIO, "Input/output error", str(record))
        return real_stat(p, *a, **k)

    _patch_os(monkeypatch, "stat", stat_)
    assert onnx_cache.cached_onnx(ckpt, "fp32") == path and len(exports) == 2
    assert f"has a record {record.name} that cannot be looked up (" in caplog.text


@pytest.mark.parametrize("below", [False, True])
def test_an_engine_cache_folder_you_cannot_enter_builds_without_storing(
    tmp_path, monkeypatch, caplog, below
):
    """The engine's Path.is_file raised PermissionError out of get_or_build; now the engine is
    built and used unstored, with the one warning of a cache that cannot be written."""
    folder = tmp_path / "home"
    EngineCache(folder).get_or_build(KEY, lambda: PLAN, lambda b: b)  # the owner's engine
    cache = EngineCache(folder / "engines" if below else folder)
    _unenterable(monkeypatch, folder)
    builds: list[int] = []

    def build() -> bytes:
        builds.append(1)
        return PLAN

    with caplog.at_level(logging.WARNING):
        result = cache.get_or_build(KEY, build, lambda b: b)
    assert result.built and result.engine == PLAN and len(builds) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "permission denied" in warnings[0] and "used without being stored" in warnings[0]


_NO_DAC_CHILD = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import test_cache_trust as t
from depthart_core.checkpoint import CheckpointFile
from depthart_core.runtime import onnx_cache
from depthart_core.runtime.engine_cache import EngineCache
try:
    os.listdir(os.environ["DEPTHART_CACHE"])
    print(json.dumps({"entered": True}))
    sys.exit(0)
except PermissionError:
    pass
onnx_cache.export_onnx = t._fake_export
ckpt = CheckpointFile(sys.argv[2])
ckpt.loaded = (None, {})  # no model: the fake export needs none
graph = onnx_cache.cached_onnx(ckpt, "fp32")
engines = EngineCache(os.path.join(os.environ["DEPTHART_CACHE"], "engines"))
result = engines.get_or_build(t.KEY, lambda: t.PLAN, lambda b: b)
print(json.dumps({"graph": str(graph), "engine": result.engine == t.PLAN}))
"""


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root and setpriv to drop the permission override",
)
def test_another_users_private_folder_for_real(tmp_path, tiny_checkpoint):
    """As the review ran it: root without CAP_DAC_OVERRIDE (setpriv), the cache a folder of
    another uid with mode 0700. Both caches go on without it."""
    folder = tmp_path / "home"
    folder.mkdir(mode=0o700)
    os.chown(folder, OTHER_UID, OTHER_UID)
    (tmp_path / "tmp").mkdir()
    code_root = str(Path(fileutil.__file__).parents[1])
    env = dict(os.environ, DEPTHART_CACHE=str(folder), TMPDIR=str(tmp_path / "tmp"))
    env["PYTHONPATH"] = os.pathsep.join([code_root, env.get("PYTHONPATH", "")])
    drop = ["--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    args = [str(Path(__file__).parent), tiny_checkpoint]
    run = subprocess.run(
        ["setpriv", *drop, sys.executable, "-c", _NO_DAC_CHILD, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if run.returncode and "setpriv" in run.stderr.splitlines()[-1]:
        pytest.skip(f"setpriv cannot drop capabilities here: {run.stderr.strip()}")
    assert run.returncode == 0, run.stderr[-2000:]
    said = json.loads(run.stdout.splitlines()[-1])
    if said.get("entered"):
        pytest.skip("the permission override was not dropped")
    assert not Path(said["graph"]).is_relative_to(folder) and said["engine"]
    assert "cannot be looked up (permission denied)" in run.stderr
