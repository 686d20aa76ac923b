"""The cache trust of test_cache_trust.py for the rest of what depthart caches: TensorRT's timing
cache and the synthetic training pools are read only when no other user could have written them;
and the private temp folders a killed process left behind are removed by the next one, never a
live process's or another user's. Another user's ownership is simulated by the stat of the open
file (as in test_cache_trust.py), so the tests run alike as root and as anyone else; TensorRT is
faked (it is not installed here)."""

from __future__ import annotations

import errno
import logging
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from cache_owner import MARK_NS, OTHER_UID, file_mode, owned_by_another
from fake_tensorrt import fake_tensorrt
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from depthart_core import fileutil
from depthart_core.fileutil import WriteError
from depthart_core.runtime import tensorrt_backend
from depthart_core.training import data
from depthart_core.training.data import SyntheticPool

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="no user ids (Windows)")


@pytest.fixture
def umask_002():
    old = os.umask(0o002)  # Ubuntu's for users: files written 0664
    yield
    os.umask(old)


# -- TensorRT's timing cache ----------------------------------------------------------------------


@pytest.fixture
def fake_trt(monkeypatch):
    """A stand-in for TensorRT whose build succeeds; records the bytes every timing cache is
    made from (`made`) and the one the build is given (`used`)."""
    made: list[bytes] = []
    used: list[bytes] = []
    fake = fake_tensorrt(made=made, used=used)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(tensorrt_backend, "trt_logger", lambda: None)
    return made, used


def _build(tmp_path: Path, timing: Path) -> bytes:
    graph = tmp_path / "m.onnx"
    graph.write_bytes(b"the graph")
    return tensorrt_backend.build_serialized_engine(
        graph, (1, 3, 16, 16), timing_cache_path=timing, show_progress=False
    )


@pytest.mark.parametrize("how", ["owner", "mode"])
def test_a_timing_cache_others_could_write_is_not_read(
    tmp_path, monkeypatch, caplog, fake_trt, umask_002, how
):
    """A planted timing cache steers the build's tactic choice (a crash or a slow engine): one
    of another user's is passed over and left as it is; one of yours that others could write
    (an old umask) is passed over and replaced by the build's own, writable by you only."""
    made, used = fake_trt
    timing = tmp_path / "engines" / "timing_trt10.3.0_sm_87.cache"
    timing.parent.mkdir()
    timing.write_bytes(b"TIMING:planted")
    if how == "owner":
        os.chmod(timing, 0o644)
        owned_by_another(monkeypatch, timing)
    else:
        os.chmod(timing, 0o666)
    with caplog.at_level(logging.WARNING):
        assert _build(tmp_path, timing) == b"PLAN"
    assert b"TIMING:planted" not in made and used == [b""]  # built without it
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    (warning,) = warnings
    assert str(timing) in warning and "is not trusted" in warning
    assert "building without it" in warning
    if how == "owner":
        assert f"owner uid {OTHER_UID}, mode 0644: not yours" in warning
        assert timing.read_bytes() == b"TIMING:planted"  # not another user's to replace
        assert "leaving it as it is" in warning
    else:
        assert f"owner uid {os.getuid()}, mode 0666" in warning
        assert timing.read_bytes() == b"TIMING:this build's" and file_mode(timing) == 0o644


def test_a_trusted_timing_cache_is_read_and_saved_writable_by_you_only(
    tmp_path, fake_trt, umask_002
):
    made, used = fake_trt
    timing = tmp_path / "engines" / "timing_trt10.3.0_sm_87.cache"
    _build(tmp_path, timing)  # none yet: built without
    assert used == [b""] and timing.read_bytes() == b"TIMING:this build's"
    assert file_mode(timing) == 0o644  # not 0664: trusted at the next build
    _build(tmp_path, timing)
    assert used == [b"", b"TIMING:this build's"]


# -- synthetic training pools ---------------------------------------------------------------------


@pytest.fixture
def one_process(monkeypatch):
    """Pools render in this process (no spawned workers: seconds saved per pool)."""
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    monkeypatch.setattr(fileutil, "_private_roots", {})  # each test's own private folder


def _pool(path: Path) -> SyntheticPool:
    return SyntheticPool(seed=2, size=16, count=4, batch=2, cache=str(path), progress=False)


def _plant(path: Path) -> torch.Tensor:
    """Rewrite the pool at `path` with other depth under its own metadata (the name and records
    of the right pool, other training targets); returns the planted depth."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    tensors = {k: v.clone() for k, v in load_file(str(path)).items()}
    tensors["depth"] = tensors["depth"] * 7 + 1
    path.unlink()
    save_file(tensors, str(path), metadata=meta)
    return tensors["depth"]


@pytest.mark.parametrize("how", ["owner", "mode"])
def test_a_pool_others_could_write_is_rendered_again_not_trained_on(
    tmp_path, monkeypatch, caplog, one_process, how
):
    path = tmp_path / "pool.safetensors"
    fresh = _pool(path).depth.clone()
    planted = _plant(path)
    if how == "owner":
        os.chmod(path, 0o644)
        owned_by_another(monkeypatch, path)
    else:
        os.chmod(path, 0o666)
    with caplog.at_level(logging.WARNING, logger=data.__name__):
        again = _pool(path)
    assert not torch.equal(again.depth, planted) and torch.equal(again.depth, fresh)
    assert f"synthetic pool {path} is not trusted" in caplog.text
    assert "rendering it again" in caplog.text
    owner = OTHER_UID if how == "owner" else os.getuid()
    assert f"owner uid {owner}, mode {'0644' if how == 'owner' else '0666'}" in caplog.text
    assert file_mode(path) == 0o644 and torch.equal(load_file(str(path))["depth"], fresh)


def test_a_pool_of_another_user_that_cannot_be_replaced_is_rendered_privately(
    tmp_path, monkeypatch, caplog, one_process
):
    """Another user's pool in a sticky shared folder: the rename over it is refused (EPERM), as
    in a read-only cache; it is never trained on, and the run goes on with a pool rendered into
    the process's own temp folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path = tmp_path / "shared" / "pool.safetensors"
    fresh = _pool(path).depth.clone()
    planted = _plant(path)
    owned_by_another(monkeypatch, path)
    real_write = data.atomic_write

    def refused(target, content, stale_after_s=None, owner_only=False):
        if Path(target).parent == path.parent:
            raise WriteError(target, PermissionError(errno.EPERM, "Operation not permitted"))
        real_write(target, content, stale_after_s=stale_after_s, owner_only=owner_only)

    monkeypatch.setattr(data, "atomic_write", refused)
    with caplog.at_level(logging.WARNING, logger=data.__name__):
        again = _pool(path)
    assert not torch.equal(again.depth, planted) and torch.equal(again.depth, fresh)
    assert again.path != path and again.path.name == path.name
    assert again.path.is_relative_to(tmp_path / "tmp")
    assert torch.equal(load_file(str(path))["depth"], planted)  # left as it was
    assert "cannot be used" in caplog.text and "operation not permitted" in caplog.text
    assert "until data.pool_cache names a place you can write" in caplog.text


def test_a_pool_written_under_umask_002_is_reused(tmp_path, monkeypatch, one_process, umask_002):
    path = tmp_path / "pool.safetensors"
    first = _pool(path)
    assert file_mode(path) == 0o644

    def no_render(*a, **k):
        raise AssertionError("a trusted cached pool was rendered again")

    monkeypatch.setattr(SyntheticPool, "_render", staticmethod(no_render))
    assert torch.equal(_pool(path).depth, first.depth)


# -- private temp folders a killed process left --------------------------------------------------

_CHILD = """
import os, signal, sys
from depthart_core import fileutil
print(fileutil.private_cache_folder("onnx").parent, flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()
"""


def _child_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, TMPDIR=str(tmp))
    code_root = str(Path(fileutil.__file__).parents[1])  # the code under test
    env["PYTHONPATH"] = os.pathsep.join([code_root, env.get("PYTHONPATH", "")])
    return env


def _killed_folder(tmp: Path) -> Path:
    """The private folder of a process that was SIGKILLed (its exit handler never ran)."""
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, "kill"],
        env=_child_env(tmp),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == -9, run.stderr
    folder = Path(run.stdout.strip())
    assert folder.parent == tmp and folder.is_dir()
    return folder


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setattr(fileutil, "_private_roots", {})
    return tmp


def _new_private_folder(monkeypatch) -> Path:
    """A new private folder of this process (as a new process would make), which removes the
    leftovers."""
    monkeypatch.setattr(fileutil, "_private_roots", {})
    return fileutil.private_cache_folder("onnx").parent


def test_a_killed_process_private_folder_is_removed_by_the_next(private_tmp, monkeypatch):
    dead = _killed_folder(private_tmp)
    live = subprocess.Popen(
        [sys.executable, "-c", _CHILD, "stay"],
        env=_child_env(private_tmp),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        alive = Path(live.stdout.readline().strip())
        mine = _new_private_folder(monkeypatch)
        assert not dead.exists()  # the killed process's: gone
        assert alive.is_dir() and mine.is_dir()  # a running process's, and this one's
    finally:
        live.kill()
        live.wait(timeout=30)
    _new_private_folder(monkeypatch)
    assert not alive.exists() and mine.is_dir()  # the process this one runs in is alive


def test_a_run_with_a_writable_cache_removes_a_killed_process_folder_too(
    private_tmp, tmp_path, monkeypatch
):
    """Only a run that itself fell back to a private folder removed the dead ones, so once the
    user pointed the cache at a writable folder a killed run's folder (a pool of gigabytes) stayed
    in /tmp for good. The first use of the cache in a process sweeps them."""
    dead = _killed_folder(private_tmp)
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fileutil, "_swept_pid", None, raising=False)  # as a new process
    assert fileutil.cache_root() == tmp_path / "cache"
    assert not dead.exists()
    assert fileutil._private_roots == {}  # made no private folder of its own


def test_only_a_dead_process_folder_of_yours_is_removed(private_tmp, tmp_path, monkeypatch):
    """A folder without a record, of another machine or PID namespace, not named as mkdtemp names
    them, a link to one, or of another user is left alone; their records name a dead process."""
    dead = _killed_folder(private_tmp)
    record = next(p for p in dead.iterdir() if p.is_file()).name  # the record of the dead PID
    pid, space = (dead / record).read_text().split()
    kept = {}
    for name, text in (
        ("depthart-cache-norecord", None),
        ("depthart-cache-elsewher", f"{pid} host:another-machine"),
        ("depthart-cache-mine", f"{pid} {space}"),  # not mkdtemp's name: made by hand
        ("depthart-cache-others00", f"{pid} {space}"),
        ("depthart-cache-bad00000", f"{pid}x {space}"),
    ):
        folder = private_tmp / name
        folder.mkdir(mode=0o700)
        (folder / "keep.me").write_bytes(b"x")
        if text is not None:
            (folder / record).write_text(text + "\n")
        kept[name] = folder
    target = tmp_path / "target"
    target.mkdir()
    (target / record).write_text(f"{pid} {space}\n")
    (private_tmp / "depthart-cache-link0000").symlink_to(target)
    others = kept["depthart-cache-others00"]
    os.utime(others, ns=(MARK_NS, MARK_NS))
    real_lstat = os.lstat

    def lstat(p, *a, **k):  # the folder marked reads as another user's
        st = real_lstat(p, *a, **k)
        if st.st_mtime_ns != MARK_NS:
            return st
        fields = list(st[:10])
        fields[stat.ST_UID] = OTHER_UID
        return os.stat_result(fields)

    monkeypatch.setattr(os, "lstat", lstat)
    _new_private_folder(monkeypatch)
    assert not dead.exists()
    for folder in kept.values():
        assert (folder / "keep.me").is_file(), folder
    assert (private_tmp / "depthart-cache-link0000").is_symlink() and (target / record).is_file()


def test_a_cache_file_is_owner_write_only_before_it_appears(tmp_path, monkeypatch):
    """Two processes (torchrun ranks) writing one cache file: the chmod came after the rename, so
    the other could open the file at its name while still 0664 (umask 002) and refuse it as
    untrusted ("changed while in use": that rank died). The mode is set on the temp file now."""
    import stat as stat_mod

    from depthart_core import fileutil

    seen: list[int] = []
    real_replace = os.replace

    def replace(src, dst):
        seen.append(stat_mod.S_IMODE(os.stat(src).st_mode))
        return real_replace(src, dst)

    monkeypatch.setattr(fileutil.os, "replace", replace)
    old = os.umask(0o002)
    try:
        fileutil.atomic_write(tmp_path / "pool.safetensors", b"frames", owner_only=True)
        fileutil.atomic_write(tmp_path / "plain.txt", b"report")
    finally:
        os.umask(old)
    assert seen == [0o644, 0o664], [oct(m) for m in seen]  # a plain output keeps the umask's
