"""Small torch-free file helpers: hashing, atomic writes, write errors and the one cache root.

Everything DepthART caches (exported ONNX graphs, TensorRT engines, rendered synthetic pools)
lives under `cache_root()`: `$DEPTHART_CACHE` if set, else `$XDG_CACHE_HOME/depthart`, else
`~/.cache/depthart` (the XDG Base Directory default). A cached file is loaded only if no other
user could have written it (`untrusted_cache_file`: yours or root's, writable by no one else, as
ssh treats its keys; on a file system that keeps no modes, yours); a cache folder that others can
write is warned about (`warn_shared_cache_folder`); a cache that cannot be written at all
(`cache_unwritable`) is passed over for a temp folder of the process's own
(`private_cache_folder`), removed at exit, or by a later process where a kill left it.

Every output file goes through `atomic_write`, and every failure to write one becomes a
`WriteError`: one line naming the file and the cause (a full disk, a read-only file system, no
permission, a path through a file), which the `depthart` command prints instead of a traceback.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import glob
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

ENV_CACHE = "DEPTHART_CACHE"
CACHE_TEMP_STALE_S = 3600.0  # atomic_write(stale_after_s=...) for cache files
# a waiter on `build_lock`: how often it tries the lock, and how often it says for whom it waits
BUILD_LOCK_POLL_S = 0.2
BUILD_LOCK_LOG_S = 30.0
_LOCK_WAITS = threading.local()  # `lock_waits_end_when`'s condition, per waiting thread
# the temp folders depthart makes (atomic_write's, atomic_write_all's, check_writable's probe,
# replay's prediction spill): "." + a name + "." + mkdtemp's 8 random characters (lowercase letters,
# digits, "_") + ".tmp". Nothing else is taken for one: a user's `.calib.json.20241231` or another
# tool's `.tmpABC123` is not depthart's to remove.
TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
_CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "exists already and is not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOENT: "its folder does not exist",
    errno.EFBIG: "file too large for the file system",
    errno.ELOOP: "is a symbolic link, which is not followed here: a plain file is expected",
}
# Rust's io::Error text inside another library's exception (safetensors' "... (os error 28)")
_RUST_OS_ERROR = re.compile(r"os error (\d+)")


class WriteError(OSError):
    """Writing `path` failed; `str()` is one line naming the path and the cause."""

    def __init__(self, path: str | Path, cause: BaseException) -> None:
        code = getattr(cause, "errno", None)
        where = getattr(cause, "filename", None)  # named when a parent is the trouble
        other = where is not None and Path(where) in Path(path).parents
        super().__init__(code, describe_os_error(cause, with_path=other), str(path))
        self.path = Path(path)

    def __str__(self) -> str:
        return f"cannot write {self.path}: {self.strerror}"


def describe_os_error(exc: BaseException, with_path: bool = True) -> str:
    """One line for a failed file operation: 'PATH: read-only file system'. Known causes get a
    plain phrase; others keep the system's first line."""
    if isinstance(exc, WriteError):
        return str(exc) if with_path else exc.strerror
    code = getattr(exc, "errno", None)
    if code is None:
        found = _RUST_OS_ERROR.search(str(exc))
        code = int(found.group(1)) if found else None
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if code in _CAUSES:
        text = _CAUSES[code]
    elif code is not None:
        text = getattr(exc, "strerror", None) or os.strerror(code)
    where = getattr(exc, "filename", None)
    return f"{where}: {text}" if with_path and where else text


def _temp_stem(path: Path) -> str:
    """The target's name as its temp folder carries it: cut so that `.NAME.XXXXXXXX.tmp` fits
    a file system's 255-byte name limit whatever the target's own length. The cut is of the
    name's bytes on disk (`os.fsencode`: a name that is not UTF-8 too) and drops a character it
    would split."""
    raw = os.fsencode(path.name)
    cut = min(len(raw), 200)
    for lead in range(cut - 1, max(cut - 4, -1), -1):  # a UTF-8 character the cut would split
        size = 4 if raw[lead] >= 0xF0 else 3 if raw[lead] >= 0xE0 else 2 if raw[lead] >= 0xC0 else 1
        if lead + size > cut and _is_utf8(raw[lead : lead + size]):
            cut = lead
            break
    return os.fsdecode(raw[:cut])


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _remove_stale_temps(path: Path, older_than_s: float) -> list[tuple[Path, int]]:
    """Remove the temp folders of earlier writes of `path` (`atomic_write`'s, named after it)
    made more than `older_than_s` seconds ago; 0: all of them, which only a caller that holds
    the lock every writer of `path` holds may do (`build_lock(temps_of=...)`). Returns each
    folder removed with the bytes it held."""
    removed: list[tuple[Path, int]] = []
    now = time.time()
    stem = _temp_stem(path)
    # exactly `path`'s own (.NAME.XXXXXXXX.tmp): not those of a file named after it
    # (NAME.sha256's, written by another writer under no lock)
    own = re.compile(re.escape(f".{stem}.") + r"[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX))
    for p in path.parent.glob(f".{glob.escape(stem)}.*{TEMP_SUFFIX}"):
        if own.fullmatch(p.name) is None:
            continue
        try:
            if is_temp_dir(p) and (older_than_s <= 0 or now - p.stat().st_mtime > older_than_s):
                size = _tree_size(p)
                shutil.rmtree(p, ignore_errors=True)
                if p.exists():  # immutable, or another user's in a shared folder: said, not claimed
                    logging.getLogger(__name__).warning(
                        "cannot remove %s, which a killed export or build left: remove it by hand",
                        p,
                    )
                    continue
                removed.append((p, size))
        except FileNotFoundError:  # another process removed or renamed it meanwhile
            continue
    return removed


def _tree_size(folder: Path) -> int:
    """The bytes of the files under `folder` (links not followed; what cannot be read: 0)."""
    total = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(parent, name)).st_size
    return total


def _log_removed_temps(removed: list[tuple[Path, int]]) -> None:
    if removed:
        logging.getLogger(__name__).info(
            "removed what a killed export or build left: %s",
            ", ".join(f"{p} ({size / 1e6:.1f} MB)" for p, size in removed),
        )


def is_temp_name(name: str) -> bool:
    """Whether `name` is named as depthart's temp folders are (`.NAME.XXXXXXXX.tmp`, mkdtemp's
    scheme); such names are never read."""
    return _TEMP_NAME.match(name) is not None


def is_temp_dir(path: Path) -> bool:
    """Whether `path` may be a temp folder depthart made: named so (`is_temp_name`), and a
    folder, not a file or a link. Whether it is stale is the caller's question."""
    return is_temp_name(path.name) and path.is_dir() and not path.is_symlink()


@contextlib.contextmanager
def build_lock(lock_path: Path, what: str, temps_of: tuple[Path, ...] = ()) -> Iterator[None]:
    """Hold an exclusive `flock` on `lock_path` (made if missing) while building `what` into a
    shared cache, so processes starting at once build it once: the others wait here, then find
    it built. The kernel drops the lock of a process that dies.

    The holder writes its pid and host name into the lock file. A waiter polls the lock
    (`BUILD_LOCK_POLL_S`) and says every `BUILD_LOCK_LOG_S` how long it has waited and for which
    process, so a suspended or hung builder can be found; it waits without a time limit (a
    TensorRT build on a Jetson takes 20 minutes and more), and Ctrl-C still stops it, as does
    the condition of `lock_waits_end_when` (a ROS node's ended context).

    `temps_of`: files that are only ever written under this lock; once it is held, no other
    process can be writing them, so every temp folder of theirs (`atomic_write`'s) is what a
    killed writer left: all are removed, whatever their age, with one INFO line naming them."""
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = open_lock_file(lock_path)
    except OSError as exc:  # a read-only cache, a link: one line naming the file
        raise WriteError(lock_path, exc) from exc
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logging.getLogger(__name__).info("another process is building %s; waiting", what)
            _wait_for_lock(lock, lock_path, what)
        try:
            write_lock_holder(lock)
            removed: list[tuple[Path, int]] = []
            for path in temps_of:
                removed += _remove_stale_temps(path, 0)
            _log_removed_temps(removed)
            yield
        finally:
            with contextlib.suppress(OSError):  # no stale holder for the next waiter to name
                os.ftruncate(lock.fileno(), 0)
            fcntl.flock(lock, fcntl.LOCK_UN)


def open_lock_file(path: Path, mode: int = 0o666) -> io.TextIOWrapper:
    """`path` opened for a `flock` and its holder's record (made with `mode`, less the umask, if
    missing). A link there is not followed and anything but a plain file is refused (OSError):
    the holder empties the file it opens, so a link to another file (planted in a shared
    cache, or left by a user) would have emptied that file."""
    # appending: the record written after the holder empties the file starts it
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, mode)
    lock = os.fdopen(fd, "a")
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a fifo or a device put there
        lock.close()
        cause = "not a plain file (a FIFO, socket or device): remove it"
        raise OSError(errno.EINVAL, cause, str(path))
    return lock


class LockWaitStopped(KeyboardInterrupt):
    """A wait for another process's build, ended because the waiting program is stopping
    (`lock_waits_end_when`): an interruption, as Ctrl-C is, so no `except Exception` on the way
    out (a backend fallback) takes it for a failure and goes on."""


@contextlib.contextmanager
def lock_waits_end_when(stop: Callable[[], bool]) -> Iterator[None]:
    """Within the block, a `build_lock` wait on this thread ends with `LockWaitStopped` once
    `stop()` is true (asked before each try, every `BUILD_LOCK_POLL_S`), and a TensorRT build
    started on this thread is cancelled (`tensorrt_backend.EngineBuildStopped`). A ROS node
    passes "my context ended": rclpy's SIGTERM handler ends the context and raises nothing in Python
    (SIGINT also raises KeyboardInterrupt), so a node waiting for another's 20-minute TensorRT
    build ignored SIGTERM until SIGKILL."""
    previous = getattr(_LOCK_WAITS, "stop", None)
    _LOCK_WAITS.stop = stop
    try:
        yield
    finally:
        _LOCK_WAITS.stop = previous


def lock_wait_stop_condition() -> Callable[[], bool] | None:
    """This thread's `lock_waits_end_when` condition (None outside one), for work that stops on
    it from other threads: a TensorRT build asks it from TensorRT's own (`tensorrt_backend`)."""
    return getattr(_LOCK_WAITS, "stop", None)


def _wait_for_lock(lock: io.TextIOWrapper, lock_path: Path, what: str) -> None:
    """Take the lock `lock` once its holder lets go, saying every `BUILD_LOCK_LOG_S` for whom
    it waits (the holder's record in `lock_path`); `LockWaitStopped` where the thread's
    `lock_waits_end_when` condition came true first."""
    start = time.monotonic()
    said = start
    stop = getattr(_LOCK_WAITS, "stop", None)
    while True:
        # asked before each try: a holder that let go as the waiter was told to stop (one
        # group's SIGTERM) must not leave the stopping waiter to do the whole build itself
        if stop is not None and stop():
            raise LockWaitStopped(f"stopped waiting for {what}")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        time.sleep(BUILD_LOCK_POLL_S)  # Ctrl-C lands here
        now = time.monotonic()
        if now - said >= BUILD_LOCK_LOG_S:
            said = now
            pid, host = lock_holder(lock_path)
            logging.getLogger(__name__).info(
                "still waiting %.0fs for pid %s (host %s) building %s; lock file %s",
                now - start,
                pid,
                host,
                what,
                lock_path,
            )


def write_lock_holder(lock: io.TextIOWrapper) -> None:
    """Record this process (pid and host name) in the lock file it holds, for waiters to name;
    bookkeeping only: a failure (a full disk) is passed over."""
    record = f"{os.getpid()} {''.join(os.uname().nodename.split()) or '?'}\n".encode()
    with contextlib.suppress(OSError):  # unbuffered: nothing left to fail again at close
        os.ftruncate(lock.fileno(), 0)
        os.write(lock.fileno(), record)


def lock_holder(lock_path: Path) -> tuple[str, str]:
    """(pid, host) as the holder of `lock_path` recorded them; "unknown" where it did not (yet,
    or an older version holds it)."""
    fields: list[str] = []
    try:  # a plain file only: a fifo put there would block the read, a link is not followed
        fd = os.open(lock_path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                fields = f.read(300).decode("ascii", errors="replace").split()
    except OSError:
        pass
    if len(fields) != 2 or not fields[0].isdigit():
        return "unknown", "unknown"
    return fields[0], fields[1]


def check_writable(folder: str | Path) -> None:
    """Create `folder` if needed and prove that files can be made in it (a temp folder, removed
    at once), so a command stops with one `WriteError` line before its work, not after."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise WriteError(folder, FileExistsError(errno.EEXIST, "file exists"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=".probe.", suffix=TEMP_SUFFIX, dir=folder))
    except OSError as exc:
        raise WriteError(folder, exc) from exc


def check_creatable(path: str | Path) -> None:
    """Prove, before a command's work, that the file `path` can be written at its end without
    making anything now: it is not a folder, and its nearest existing parent is a folder in which
    files can be made. Raises `WriteError` naming `path`."""
    path = Path(path)
    if path.is_dir():
        raise WriteError(path, IsADirectoryError(errno.EISDIR, "is a folder"))
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise WriteError(path, NotADirectoryError(errno.ENOTDIR, "not a folder", str(parent)))
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".probe.", suffix=TEMP_SUFFIX, dir=parent))
    except OSError as exc:
        raise WriteError(path, exc) from exc


@contextlib.contextmanager
def output_folder(folder: str | Path) -> Iterator[Path]:
    """`check_writable(folder)` for the length of a command; on leaving, the folders this call
    made are removed again if nothing was written into them, so a command that wrote no file (every
    input skipped, or an error before the first write) leaves no empty folder behind."""
    folder = Path(folder)
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # leaf first
    check_writable(folder)
    try:
        yield folder
    finally:
        for p in made:
            try:
                p.rmdir()  # only an empty folder goes; anything written keeps it
            except OSError:
                break


def text_bytes(text: str) -> bytes:
    """`text` as UTF-8 for `atomic_write`, never failing: a path whose name is not UTF-8 (a
    Latin-1 folder from an old USB stick, or any non-ASCII name under the ASCII locale) is held
    in Python with surrogates ('\\udce9'), which `str.encode()` refuses; here it is written as
    its escape (`\\udce9`), readable, as Python prints it."""
    return text.encode("utf-8", "backslashreplace")


def npy_bytes(array: np.ndarray) -> bytes:
    """`array` as the bytes of a .npy file (`np.save`'s format), for `atomic_write`: numpy's own
    file writer reports a full disk without its errno."""
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


_swept_pid: int | None = None  # the process that swept dead private folders (`cache_root`)


def cache_root() -> Path:
    """`$DEPTHART_CACHE`, else `$XDG_CACHE_HOME/depthart`, else `~/.cache/depthart`. A relative
    `$XDG_CACHE_HOME` is ignored, as the XDG Base Directory spec says (it would put the cache
    wherever the command runs). Raises RuntimeError saying what to set when no home is known.

    The first call of a process also removes the private temp folders that killed processes
    left (`remove_dead_private_folders`): a run whose cache is writable makes none of its own,
    and would otherwise never clear one (a pool of gigabytes) that an earlier run's fallback
    left."""
    global _swept_pid
    if _swept_pid != os.getpid():  # once per process (a forked child: its own)
        _swept_pid = os.getpid()
        with contextlib.suppress(OSError):
            remove_dead_private_folders(tempfile.gettempdir())
    env = os.environ.get(ENV_CACHE)
    try:
        if env:
            return Path(env).expanduser()
        xdg = Path(os.environ.get("XDG_CACHE_HOME") or "").expanduser()
        if xdg.is_absolute():
            return xdg / "depthart"
        return Path.home() / ".cache" / "depthart"
    except RuntimeError as exc:  # HOME unset and no passwd entry (a container's odd user)
        raise RuntimeError(
            f"no cache folder: the home directory is unknown ({exc}): set {ENV_CACHE} or "
            "XDG_CACHE_HOME to an absolute folder"
        ) from exc


# a cached file's ownership and mode, as ssh judges its keys: one that another user can write
# (or has written) could be a different model under the right name, so it is not loaded
_SHARED_WRITE = stat.S_IWGRP | stat.S_IWOTH
_warned_folders: set[str] = set()
# folders whose file system keeps no Unix modes (FAT, NTFS-3G, WSL's /mnt/c, CIFS with
# file_mode=0777): chmod has no effect there, so trust rests on ownership alone
_modeless_folders: dict[str, bool] = {}
# a cache that cannot be written (EROFS, EACCES, EPERM: a read-only mount, another user's folder or
# file): the export or build goes to `private_cache_folder` instead of failing
_UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)
_private_roots: dict[int, Path] = {}  # this process's (by pid: a forked child makes its own)
# `private_cache_folder`'s temp folders: tempfile.mkdtemp's names, and the record inside each of
# the process that made it ("PID PID-SPACE"), by which a killed process's folder is removed later
PRIVATE_PREFIX = "depthart-cache-"
PRIVATE_OWNER_FILE = "owner.pid"
_PRIVATE_NAME = re.compile(r"^depthart-cache-[a-z0-9_]{8}$")


def untrusted_cache_file(
    path: str | Path, fd: int | None = None, setting: str = ENV_CACHE
) -> str | None:
    """Why the cached file `path` must not be loaded, or None: it is trusted only if owned by
    you or by root and writable by no group or other user (judged on the open file `fd` where
    given, so the file checked is the file read; a symlink's own owner too). On a file system that
    keeps no Unix modes (`keeps_no_modes`) a file of yours is trusted by its owner alone. The
    reason names the file's owner uid and mode and says what to do: for another's file, or one in
    a folder others can write, to set `setting` (an environment variable) to a folder only you can
    write; for your own file written group-writable (an older version under a umask of 002), that
    it is replaced by one only you can write. None on a system without user ids (Windows)."""
    if not hasattr(os, "getuid"):
        return None
    uid = os.getuid()
    st = os.fstat(fd) if fd is not None else os.stat(path)
    link = os.lstat(path)
    owners = [st.st_uid] + ([link.st_uid] if stat.S_ISLNK(link.st_mode) else [])
    foreign = [o for o in owners if o not in (uid, 0)]
    owner = foreign[0] if foreign else st.st_uid
    why = [f"not yours (uid {uid}) or root's"] if foreign else []
    writers = [
        w for bit, w in ((stat.S_IWGRP, "its group"), (stat.S_IWOTH, "others")) if st.st_mode & bit
    ]
    folder = Path(path).parent
    own = all(o == uid for o in owners)
    if writers and own and not stat.S_ISLNK(link.st_mode) and keeps_no_modes(folder):
        writers = []
    if writers:
        why.append("writable by " + " and ".join(writers))
    if not why:
        return None
    mode = stat.S_IMODE(st.st_mode)
    if own and not _folder_shared(folder):  # the user's own file: an old umask, not an intruder
        return (
            f"is not trusted (owner uid {owner}, mode {mode:04o}: {', '.join(why)}; yours, "
            "written so under a umask such as 002 by an older version; its replacement is "
            "written writable by you only)"
        )
    return (
        f"is not trusted (owner uid {owner}, mode {mode:04o}: "
        f"{', '.join(why)}; only files of yours or root's that no one else can write are loaded; "
        f"set {setting} to a folder only you can write)"
    )


def _folder_shared(folder: Path) -> bool:
    """Whether users other than you can write files into `folder` (unknown: assumed so)."""
    try:
        st = os.stat(folder)
    except OSError:
        return True
    return st.st_uid != os.getuid() or bool(st.st_mode & _SHARED_WRITE)


def keeps_no_modes(folder: str | Path) -> bool:
    """Whether the file system of `folder` keeps no Unix modes (FAT, NTFS-3G, WSL's /mnt/c, CIFS
    with file_mode=0777), where chmod has no effect and every file reads as writable by all, so a
    cache file of yours can only be judged by its owner. Known from `owner_write_only` having
    had no effect there, else learnt (once per folder and process) from a probe file made in a
    private temp folder in `folder`, made writable by its owner only and read back; False where
    no probe can be made (a read-only folder)."""
    key = str(folder)
    if key not in _modeless_folders:
        try:  # a private folder (0700 where modes are kept): no one can swap the probe in it
            probe_dir = tempfile.mkdtemp(prefix=".probe.", suffix=TEMP_SUFFIX, dir=folder)
        except OSError:
            return False  # not learnt: asked again next time
        try:
            probe = os.path.join(probe_dir, "probe")
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                with contextlib.suppress(OSError):  # FAT refuses it (EPERM); NTFS-3G ignores it
                    os.chmod(probe, 0o600)
                modeless = bool(os.fstat(fd).st_mode & _SHARED_WRITE)
            finally:
                os.close(fd)
        except OSError:
            return False
        finally:
            shutil.rmtree(probe_dir, ignore_errors=True)
        _note_modes(folder, modeless)
    return _modeless_folders[key]


def _note_modes(folder: str | Path, modeless: bool) -> None:
    if modeless and not _modeless_folders.get(str(folder)):
        logging.getLogger(__name__).info(
            "cache folder %s is on a file system that keeps no Unix permissions (chmod has no "
            "effect): its files of yours are trusted by their owner alone",
            folder,
        )
    _modeless_folders[str(folder)] = modeless


def owner_write_only(path: str | Path, folder: str | Path | None = None) -> None:
    """Take group and other write permission off a cache file just written (a new file gets
    `0o666 & ~umask`: 0664 under a umask of 002), so that `untrusted_cache_file` trusts it; used
    by `atomic_write(owner_only=True)` on its temp file, before the file appears under its name
    (else another process could open it 0664 in between and refuse it). On a file system that
    keeps no modes (FAT, NTFS-3G, CIFS) chmod has no effect: `folder` (default: the file's own),
    where the file is kept, is then remembered as such (`keeps_no_modes`), so the file is trusted
    by its owner. Nothing on a system without user ids (Windows), where nothing is judged by its
    mode."""
    if not hasattr(os, "getuid"):
        return
    with contextlib.suppress(OSError):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & _SHARED_WRITE:
            with contextlib.suppress(OSError):  # FAT refuses it (EPERM); NTFS-3G ignores it
                os.chmod(path, mode & ~_SHARED_WRITE)
            if os.stat(path).st_mode & _SHARED_WRITE:
                _note_modes(Path(folder if folder is not None else Path(path).parent), True)


def cache_unwritable(exc: BaseException) -> bool:
    """Whether `exc` says that a cache folder cannot be written at all (a `WriteError` of a
    read-only file system, no permission, or another user's file in a sticky folder), where
    the caller exports or builds into `private_cache_folder` instead of failing."""
    return isinstance(exc, WriteError) and exc.errno in _UNWRITABLE


def fd_name(fd: int, path: str | Path) -> str | Path:
    """A name that opens the file open as `fd` itself (/dev/fd/N: the file a trust check judged
    on that descriptor, not one swapped in at its path since), else (no /dev/fd) `path`."""
    return f"/dev/fd/{fd}" if os.path.isdir("/dev/fd") else path


def private_cache_folder(kind: str) -> Path:
    """The folder `kind` in a temp folder of this process's own (`tempfile.mkdtemp`: yours, mode
    0700), removed when the process exits: where a graph is exported (or a synthetic pool
    rendered) when the cache cannot be written (`cache_unwritable`). Raises OSError where no
    temp folder can be made.

    The temp folder records the process that made it (`PRIVATE_OWNER_FILE`), and making one
    removes the ones that killed processes left (`remove_dead_private_folders`)."""
    pid = os.getpid()
    root = _private_roots.get(pid)
    if root is None or not root.is_dir():
        root = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX))
        _private_roots[pid] = root
        atexit.register(_remove_private_root, root, pid)
        record = f"{pid} {_pid_space()}\n".encode()
        with contextlib.suppress(OSError):  # unrecorded: never removed by another process
            atomic_write(root / PRIVATE_OWNER_FILE, record)
        remove_dead_private_folders(root.parent, keep=root)
    folder = root / kind
    folder.mkdir(exist_ok=True)
    return folder


def remove_dead_private_folders(parent: str | Path, keep: Path | None = None) -> list[Path]:
    """Remove the `private_cache_folder` temp folders in `parent` (but `keep`) that a process
    killed before its exit (SIGKILL, the OOM killer) left, and return them. Only a folder (not a
    link) of yours, named as mkdtemp names them, whose record names a process of this boot of
    this machine and of this PID namespace that no longer runs is removed. Left alone: a folder
    without a record (being made, or an older version's) or with one that cannot be read, of a
    live process (or of a PID reused since: it stays, never the other way), of an earlier boot
    or of another machine or container sharing the folder (whose PIDs cannot be judged here),
    or of another user."""
    removed: list[Path] = []
    here = _pid_space() if hasattr(os, "getuid") else ""
    if not here:  # PIDs that cannot be judged
        return removed
    for folder in Path(parent).glob(f"{PRIVATE_PREFIX}*"):
        if folder == keep or not _PRIVATE_NAME.match(folder.name):
            continue
        try:
            st = os.lstat(folder)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
                continue
            with open(folder / PRIVATE_OWNER_FILE, "rb") as f:
                if os.fstat(f.fileno()).st_uid != os.getuid():
                    continue
                pid_text, _, space = f.read(200).decode("ascii").strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):  # gone meanwhile, no record, or a damaged one
            continue
        if space != here or pid <= 0 or _process_alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _pid_space() -> str:
    """What PIDs are counted in, without spaces: on Linux this boot of this machine and this PID
    namespace (`boot_id`, `/proc/self/ns/pid`; "" where either cannot be read: then no folder
    is judged), elsewhere (macOS: no PID namespaces) the host's name."""
    if not sys.platform.startswith("linux"):
        return "host:" + "".join(os.uname().nodename.split())
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        space = f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:  # /proc hidden (a sandbox)
        return ""
    return "".join(space.split())


def _process_alive(pid: int) -> bool:
    """Whether a process `pid` runs (one of another user's too); a zombie counts as alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's process
        return True
    return True


def _remove_private_root(root: Path, pid: int) -> None:
    if os.getpid() == pid:  # not a forked child's: its parent's folder is the parent's
        shutil.rmtree(root, ignore_errors=True)


def warn_shared_cache_folder(folder: str | Path, setting: str = ENV_CACHE) -> None:
    """Warn (once per folder and process) when the cache folder `folder` is writable by other
    users and not owned by you: they can put files there (which `untrusted_cache_file` then
    refuses, each time exporting or building afresh) or hold its locks. Absent folders and
    systems without user ids (Windows) are passed over."""
    if not hasattr(os, "getuid") or str(folder) in _warned_folders:
        return
    try:
        st = os.stat(folder)
    except OSError:
        return
    if st.st_uid != os.getuid() and st.st_mode & _SHARED_WRITE:
        _warned_folders.add(str(folder))
        logging.getLogger(__name__).warning(
            "cache folder %s (owner uid %d, mode %04o) is writable by other users: files there "
            "that are not yours are not loaded; set %s to a folder only you can write",
            folder,
            st.st_uid,
            stat.S_IMODE(st.st_mode),
            setting,
        )


def read_json(path: str | Path, what: str) -> Any:
    """The JSON document at `path`: FileNotFoundError "<what> not found: PATH", or ValueError
    naming the file when it is not valid JSON (or not UTF-8)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def refuse_special_file(path: Path) -> None:
    """A device, FIFO or socket at `path` (`--out /dev/null`) is refused: the rename would put
    a regular file in its place (as root, a `/dev/null` that is a file breaks the machine). A
    symlink is not followed: the rename replaces the link, never what it points at."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # absent (the usual case) or unreadable: the write itself says why
        return
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        cause = OSError(errno.EINVAL, "not a regular file (a device, FIFO or socket): give a file")
        raise WriteError(path, cause)


def atomic_write(
    path: str | Path,
    content: bytes | Callable[[str], None],
    stale_after_s: float | None = None,
    owner_only: bool = False,
) -> None:
    """Write `content` to `path` so that readers see the old file or the whole new one.

    `content` is the bytes to write, or `write_fn(tmp)` that writes the file `tmp`. `tmp` has
    `path`'s name, inside a private temp folder beside `path` (`.NAME.XXXXXXXX.tmp/`): writers
    that choose a format by the suffix (matplotlib, OpenCV) see the real one, and a writer's own
    temp files (safetensors writes `.tmpXXXXXX` beside its target) land inside that folder. The
    file is fsynced and renamed over `path`; the folder is removed on every exit, and one that a
    killed process leaves is recognised by `is_temp_name`. Any failure to write raises
    `WriteError` naming `path` and the cause; nothing of the new file remains.

    `stale_after_s`: for a file that no lock keeps to one writer at a time (a timing cache, a
    synthetic pool), first remove the temp folders of earlier writes of `path` made longer ago
    than this (`CACHE_TEMP_STALE_S`: an hour, where a write takes seconds to minutes), which a
    killed process left. (A cached graph or engine is written under its `build_lock`, which
    removes its temp folders of any age: `temps_of`.)

    `owner_only`: a cache file, writable by its owner only whatever the umask
    (`owner_write_only`), set before it is renamed into place.
    """
    path = Path(path)
    refuse_special_file(path)
    if stale_after_s is not None:
        _log_removed_temps(_remove_stale_temps(path, stale_after_s))
    tmp_dir = _temp_dir_name(path)
    tmp = os.path.join(tmp_dir, path.name)
    ours = True
    try:
        _make_temp_dir(path, tmp_dir)
        _write_temp(path, tmp, content)
        if owner_only:
            owner_write_only(tmp, folder=path.parent)
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise WriteError(path, exc) from exc
    except BaseException as exc:
        ours = _own_temp_dir(exc)
        raise
    finally:
        if ours:  # also where an interrupt landed while it was being made
            shutil.rmtree(tmp_dir, ignore_errors=True)


def atomic_write_all(files: dict[Path, bytes | Callable[[str], None]]) -> None:
    """Write several files of one folder (`{path: content}`, content as for `atomic_write`) so
    that a failure leaves every one of them as it was: all are written into one temp folder
    beside them first, and only when all are written are they renamed over their targets, the
    old version of each kept (hard-linked) in the temp folder until the last rename. A failure
    or Ctrl-C between the renames puts the old versions back (and removes the new files that had
    none), so the folder holds all the old files or all the new ones; a process killed there
    leaves the old versions in its temp folder. Raises `WriteError` naming the file that
    failed."""
    paths = [Path(p) for p in files]
    if len({p.parent for p in paths}) > 1 or len({p.name for p in paths}) < len(paths):
        raise ValueError(f"atomic_write_all: files of one folder, each once; got {paths}")
    for path in paths:
        if path.is_dir() and not path.is_symlink():  # kept: no rename will replace it
            raise WriteError(path, IsADirectoryError(errno.EISDIR, "is a folder", str(path)))
        refuse_special_file(path)
    tmp_dir = Path(_temp_dir_name(paths[0]))
    new_dir, old_dir = tmp_dir / "new", tmp_dir / "old"
    committing, done, ours = False, False, True
    current = paths[0]
    try:
        try:
            _make_temp_dir(paths[0], str(tmp_dir))
        except WriteError as exc:
            ours = _own_temp_dir(exc)  # a folder another writer made stays
            raise
        try:
            new_dir.mkdir()
            old_dir.mkdir()
        except OSError as exc:
            raise WriteError(paths[0], exc) from exc
        for current, content in zip(paths, files.values(), strict=True):
            _write_temp(current, str(new_dir / current.name), content)
        committing = True
        for current in paths:
            _set_aside(current, old_dir / current.name)
            os.replace(new_dir / current.name, current)
        done = True
    except BaseException as exc:  # a write error, a failed rename, Ctrl-C
        done = not committing or _put_back(paths, new_dir, old_dir)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise WriteError(current, exc) from exc
        raise
    finally:
        if done and ours:  # else the old versions stay in the temp folder, never deleted
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _temp_dir_name(path: Path) -> str:
    """A new name for a private temp folder beside `path`, named after it (`.NAME.XXXXXXXX.tmp`),
    not made yet: the caller holds the name before `_make_temp_dir` makes it, so a Ctrl-C or
    SIGTERM that lands while it is made (tempfile.mkdtemp's folder, made before its name came
    back) still finds it to remove."""
    letters = "abcdefghijklmnopqrstuvwxyz0123456789_"
    tag = "".join(secrets.choice(letters) for _ in range(8))
    return os.path.join(path.parent, f".{_temp_stem(path)}.{tag}{TEMP_SUFFIX}")


def _make_temp_dir(path: Path, tmp_dir: str) -> None:
    """Make `tmp_dir` (`_temp_dir_name`'s) private; WriteError if it cannot be made. A folder of
    that name made by another writer (eight random characters: practically never) is refused
    with FileExistsError inside the WriteError, which callers must not remove."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(tmp_dir, 0o700)
    except OSError as exc:
        raise WriteError(path, exc) from exc


def _own_temp_dir(exc: BaseException) -> bool:
    """False for `_make_temp_dir`'s refusal of a folder another writer made: not ours to remove."""
    return not (isinstance(exc, WriteError) and isinstance(exc.__cause__, FileExistsError))


def _write_temp(path: Path, tmp: str, content: bytes | Callable[[str], None]) -> None:
    """Write `content` to `tmp`, fsynced, with the mode a new `path` would get; a failure is a
    `WriteError` naming `path`."""
    try:
        if isinstance(content, bytes | bytearray | memoryview):
            Path(tmp).write_bytes(content)
        else:
            content(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp-style 0600 is too private for shared checkpoints
    except OSError as exc:
        raise WriteError(path, exc) from exc
    except Exception as exc:  # another library's I/O error (safetensors: SafetensorError)
        if _RUST_OS_ERROR.search(str(exc)) is None:
            raise
        raise WriteError(path, exc) from exc


def _set_aside(path: Path, old: Path) -> None:
    """Keep `path`'s current version (if any) as `old`: a hard link, so `path` stays readable
    until it is replaced; moved where the file system has no hard links."""
    try:
        os.link(path, old, follow_symlinks=False)
    except FileNotFoundError:
        return  # a new file: nothing to keep
    except OSError:
        os.rename(path, old)


def _put_back(paths: list[Path], new_dir: Path, old_dir: Path) -> bool:
    """Undo `atomic_write_all`'s renames, judged by what is on disk (a Ctrl-C may come between
    a rename and any record of it): an old version set aside goes back; a new file renamed into
    place that had none is removed. Whether all went back."""
    ok = True
    for path in paths:
        old, new = old_dir / path.name, new_dir / path.name
        try:
            if os.path.lexists(old):
                os.replace(old, path)  # a hard link of `path` itself: nothing changes
            elif not os.path.lexists(new):
                path.unlink(missing_ok=True)
        except OSError:
            ok = False
    return ok
