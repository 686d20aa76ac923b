"""A killed export or engine build leaves nothing in the cache for long, a process waiting on
another's build lock says for whom it waits, and a private export does not claim to be cached.
The export and build are faked (`test_cache_trust`'s tiny stamped graph); the other process is a
child python holding the real lock."""

from __future__ import annotations

import errno
import io
import logging
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cache_trust import KEY, PLAN, faked_export_cache

import depthart_core.runtime.onnx_cache as onnx_cache
from depthart_core import fileutil
from depthart_core.fileutil import WriteError, build_lock
from depthart_core.runtime.engine_cache import EngineCache
from depthart_core.sampling import graph_decoding

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="no flock (Windows)")


@pytest.fixture
def cache(tmp_path, monkeypatch, tiny_checkpoint):
    """(checkpoint, list of exports) with the ONNX cache in tmp_path and the export faked."""
    return faked_export_cache(tmp_path, monkeypatch, tiny_checkpoint)


def _killed_write(target: Path, size: int) -> Path:
    """The temp folder a writer of `target` killed a moment ago leaves: a partial file inside."""
    folder = target.parent / f".{target.name}.k1ll3d_x.tmp"
    folder.mkdir(parents=True)
    (folder / target.name).write_bytes(b"\0" * size)
    return folder


def _removal_line(caplog) -> str:
    lines = [r.getMessage() for r in caplog.records]
    found = [m for m in lines if "killed export or build" in m]
    assert found, lines
    return found[0]


def test_a_killed_exports_temp_folder_is_removed_by_the_next_export(cache, caplog):
    ckpt, exports = cache
    path = onnx_cache.onnx_cache_path(ckpt.model_sha256, "fp32", graph_decoding(None))
    left = _killed_write(path, 2_500_000)  # seconds old, not an hour: no age makes it safe
    other = _killed_write(path.with_name("other.onnx"), 10)  # another graph's: its own lock's
    with caplog.at_level(logging.INFO):
        assert onnx_cache.cached_onnx(ckpt, "fp32") == path and len(exports) == 1
    assert not left.exists()
    assert other.exists()
    line = _removal_line(caplog)
    assert str(left) in line and "(2.5 MB)" in line
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == [other.name]


def test_a_killed_builds_temp_folders_are_removed_by_the_next_build(tmp_path, caplog):
    cache = EngineCache(tmp_path / "engines")
    engine = _killed_write(cache.engine_path(KEY), 3_000_000)
    sidecar = _killed_write(cache.sidecar_path(KEY), 100)
    with caplog.at_level(logging.INFO):
        result = cache.get_or_build(KEY, lambda: PLAN, lambda b: b)
    assert result.built and result.engine == PLAN
    assert not engine.exists() and not sidecar.exists()
    line = _removal_line(caplog)
    assert f"{engine} (3.0 MB)" in line and str(sidecar) in line
    assert not [p for p in cache.cache_dir.iterdir() if p.name.endswith(".tmp")]


_HOLDER = """
import sys, time
from pathlib import Path
from depthart_core.fileutil import build_lock
with build_lock(Path(sys.argv[1]), "the graph G"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold(lock: Path, seconds: float) -> subprocess.Popen:
    """A child process holding `lock` for `seconds`, once it has said so."""
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(lock), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_a_waiter_says_for_whom_it_waits(tmp_path, monkeypatch, caplog):
    lock = tmp_path / "g.onnx.lock"
    child = _hold(lock, 1.2)
    monkeypatch.setattr(fileutil, "BUILD_LOCK_LOG_S", 0.3, raising=False)
    try:
        with caplog.at_level(logging.INFO), build_lock(lock, "the graph G"):
            holder = lock.read_text()  # the holder now: this process
    finally:
        child.wait(timeout=30)
    text = caplog.text
    assert "another process is building the graph G; waiting" in text  # the first line, as was
    host = "".join(os.uname().nodename.split())
    assert "still waiting" in text  # every BUILD_LOCK_LOG_S (30 s; 0.3 s here)
    assert f"for pid {child.pid} (host {host}) building the graph G; lock file {lock}" in text
    assert holder == f"{os.getpid()} {host}\n"
    assert lock.read_text() == ""  # let go: no holder named


def test_ctrl_c_stops_a_waiter(tmp_path):
    lock = tmp_path / "e.lock"
    child = _hold(lock, 3)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    start = time.monotonic()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.4)
        with pytest.raises(KeyboardInterrupt), build_lock(lock, "engine E"):
            pytest.fail("the lock was taken while another process held it")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        child.kill()
        child.wait()
    assert time.monotonic() - start < 2.5


def test_a_private_export_does_not_say_it_is_cached(cache, monkeypatch, caplog):
    ckpt, exports = cache

    def refused(lock_path, what, temps_of=()):
        raise WriteError(lock_path, PermissionError(errno.EACCES, "permission denied"))

    monkeypatch.setattr(onnx_cache, "build_lock", refused)
    with caplog.at_level(logging.INFO):
        path = onnx_cache.cached_onnx(ckpt, "fp32")
    assert len(exports) == 1 and path.parent.parent != fileutil.cache_root()
    exporting = [r.getMessage() for r in caplog.records if r.getMessage().startswith("exporting")]
    how = "this run only: the cache cannot be used"
    assert exporting == [f"exporting {ckpt.path} to {path} ({how})"]


def test_only_the_locked_files_own_temp_folders_are_swept(tmp_path, caplog):
    """`.X.onnx.XXXXXXXX.tmp` is X.onnx's; `.X.onnx.sha256.XXXXXXXX.tmp` is its record's, which is
    written under no lock (a cache hit records a graph cached without one): left alone."""
    graph = tmp_path / "abcd_fp32_soft.onnx"
    own = _killed_write(graph, 10)
    record = tmp_path / f"{graph.name}.sha256"
    theirs = _killed_write(record, 10)
    with caplog.at_level(logging.INFO, logger="depthart_core.fileutil"):
        with build_lock(tmp_path / f"{graph.name}.lock", "the graph", temps_of=(graph,)):
            pass
    assert not own.exists() and theirs.is_dir()
    assert str(theirs) not in _removal_line(caplog)


def test_a_temp_folder_that_stays_is_not_said_to_be_removed(tmp_path, monkeypatch, caplog):
    """rmtree could not remove it (immutable, another user's in a shared folder): a warning
    naming it, not the line that says it was removed."""
    graph = tmp_path / "abcd_fp32_soft.onnx"
    left = _killed_write(graph, 10)
    monkeypatch.setattr(fileutil.shutil, "rmtree", lambda *a, **k: None)
    with caplog.at_level(logging.INFO, logger="depthart_core.fileutil"):
        with build_lock(tmp_path / f"{graph.name}.lock", "the graph", temps_of=(graph,)):
            pass
    assert left.is_dir()
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert not [m for _, m in messages if m.startswith("removed")], messages
    assert (logging.WARNING, f"cannot remove {left}, which a killed export or build left: "
            "remove it by hand") in messages  # fmt: skip


class _FullDisk(io.RawIOBase):
    """A lock file on a full disk: every write refused (ENOSPC), the lock and truncation real."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 (closed with this)

    def fileno(self) -> int:
        return self._file.fileno()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def truncate(self, size=None) -> int:
        os.ftruncate(self._file.fileno(), size or 0)
        return size or 0

    def close(self) -> None:
        self._file.close()
        super().close()


def test_a_holder_record_that_cannot_be_written_does_not_fail_the_build(tmp_path, monkeypatch):
    """The holder's record is bookkeeping: on a full disk the build goes on, and nothing fails
    later, at the lock file's close, with a bare OSError (a buffered record flushed again)."""
    lock_path = tmp_path / "g.onnx.lock"
    full = lambda path, mode="r", *a, **k: io.TextIOWrapper(io.BufferedWriter(_FullDisk(path)))  # noqa: E731
    monkeypatch.setattr(fileutil, "open", full, raising=False)
    ran = []
    with build_lock(lock_path, "the graph"):
        ran.append(True)
    assert ran == [True] and lock_path.read_bytes() == b""


@pytest.mark.parametrize("odd", ["link", "fifo"])
def test_a_lock_file_that_is_a_link_or_a_fifo_is_refused_not_followed(tmp_path, odd):
    """The holder empties the lock file it opens (its record, then none): a link planted at the
    lock's name (a shared cache) emptied the file it pointed at, and a FIFO there blocked the
    open for good. Now one line naming the lock, and the other file as it was."""
    lock, victim = tmp_path / "g.onnx.lock", tmp_path / "notes.txt"
    victim.write_text("a user's notes\n")
    if odd == "link":
        lock.symlink_to(victim)
    else:
        os.mkfifo(lock)
    with pytest.raises(WriteError) as caught, build_lock(lock, "the graph G"):
        pytest.fail("the lock was taken through a link or a FIFO")
    assert str(caught.value).startswith(f"cannot write {lock}: ")
    assert ("symbolic link" if odd == "link" else "not a plain file") in str(caught.value)
    assert victim.read_text() == "a user's notes\n"
    assert lock.is_symlink() if odd == "link" else stat.S_ISFIFO(os.lstat(lock).st_mode)
