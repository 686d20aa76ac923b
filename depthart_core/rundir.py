"""Run and report folders that are never lost silently: one home for their protection.

Every command that writes a folder (`train` of either stage, `eval`, `replay`, `finetune`)
calls `claim_run_dir(out, resume=..., overwrite=...)` before it writes anything:

- A folder that already holds a run or a report is refused with one line that says what it holds
  and what to pass, unless the command resumes it (`--resume`) or `--overwrite` was given; then the
  old folder is moved aside to a timestamped sibling (`RUN.old-20261130-193000`), never deleted.
- Temp folders that an interrupted atomic write of an earlier depthart process left behind
  (`.checkpoint.safetensors.x1y2z3w4.tmp/` with safetensors' own `.tmpXXXXXX` inside, from a
  process killed between create and rename) are removed; they are never read. Only folders named
  as depthart names them (`fileutil.is_temp_dir`) and made while that process held the folder
  (since its lock file was last written) go, in the folder and in its subfolders changed then:
  anything else, a user's `.calib.json.20241231` or another tool's `.tmpABC123`, is kept.
- `--resume` of a folder that does not exist is refused before anything is created, and a command
  that fails after claiming a folder it created calls `RunLock.abandon()`, which removes that
  folder again while it holds nothing but the lock.
- The folder is locked (`fcntl.flock` on `.depthart.lock`) for as long as the returned `RunLock`
  lives, so a second process cannot write into a folder in use, nor have its temp files removed.
  The kernel drops the lock when the process dies, even after `kill -9`.

`read_train_state` reads `train_state.safetensors` for `--resume` and turns any damage into one
line that names the file and the last readable checkpoint to start again from. `metrics.jsonl` is
a log, never load-bearing: `read_metrics` skips a damaged line (cut short by a full disk, not
UTF-8) with a warning naming the file and the line, and `rewrite_metrics` replaces it atomically.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import safe_open

from depthart_core.fileutil import WriteError, atomic_write, is_temp_dir, is_temp_name

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

STATE_NAME = "train_state.safetensors"
CKPT_NAME = "checkpoint.safetensors"
METRICS_NAME = "metrics.jsonl"
LOCK_NAME = ".depthart.lock"
RUN_MARKERS: tuple[str, ...] = (STATE_NAME, CKPT_NAME, METRICS_NAME)
REPORT_MARKERS: tuple[str, ...] = ("report.json", "report.md")


def utf8_name(path: str | Path) -> str | None:
    """`path` as a str where its name is UTF-8, else None: a name that is not (a Latin-1 folder,
    '\\udce9' in Python) cannot be given to a library that takes paths as UTF-8 (safetensors,
    ONNX Runtime, TensorRT's parser), which then gets the file's bytes or descriptor instead."""
    name = os.fsdecode(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a byte that is not UTF-8, held as a surrogate
        return None
    return name


@contextlib.contextmanager
def open_safetensors(path: str | Path, framework: str = "pt") -> Iterator[Any]:
    """`safetensors.safe_open(path)`, also where the path is not UTF-8, which safetensors
    refuses ("Path ... is not valid UTF-8"): that file is opened here and handed over by its
    descriptor's name (/dev/fd/N), so it is still read header first and memory-mapped, never
    read whole."""
    name = utf8_name(path)
    with contextlib.ExitStack() as stack:
        if name is None:
            fh = stack.enter_context(open(os.fsdecode(path), "rb"))
            name = f"/dev/fd/{fh.fileno()}"
        yield stack.enter_context(safe_open(name, framework))


def load_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file on the CPU (`safetensors.torch.load_file`, also where
    the path is not UTF-8: `open_safetensors`)."""
    with open_safetensors(path) as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)


class RunDirError(ValueError):
    """A run or report folder cannot be used as asked; the message is one line for the user."""


@dataclass
class RunLock:
    """Holds the folder's lock until `release()` or process exit. `moved_to` is where
    `--overwrite` put the previous contents (None when nothing was moved); `created` and
    `lock_created` say whether the claim made the folder and its lock file; `made_parents`, the
    folders above it the claim made (nearest first)."""

    path: Path
    fd: int
    moved_to: Path | None = None
    created: bool = False
    lock_created: bool = False
    made_parents: tuple[Path, ...] = ()

    def release(self) -> None:
        if self.fd >= 0:
            _HELD.pop(_file_key(self.fd), None)
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1

    def release_and_remove(self) -> None:
        """Remove the lock file, then release (removed while still held: a process that opened
        it before fails to lock it, one that opens it after makes a new one)."""
        if self.fd >= 0:
            (self.path / LOCK_NAME).unlink(missing_ok=True)
        self.release()

    def abandon(self) -> None:
        """Release after a failure. While nothing but the lock (and temp files) landed in the
        folder, what this claim created is removed: the folder and the empty folders it made
        above it, or else the lock file, so a refused or failed command leaves no trace."""
        # removed while still locked: a process that opened the lock file before the unlink
        # fails to lock it, one that opens it after makes a new one
        removed = False
        if self.fd >= 0 and self.path.is_dir():
            only_lock = all(
                p.name == LOCK_NAME or is_temp_name(p.name) for p in self.path.iterdir()
            )
            if only_lock and self.created:
                shutil.rmtree(self.path, ignore_errors=True)
                removed = not self.path.exists()
            elif only_lock and self.lock_created:
                (self.path / LOCK_NAME).unlink(missing_ok=True)
        self.release()
        if removed:
            _remove_empty(self.made_parents)

    def __del__(self) -> None:  # a command that raised must not keep its folder locked
        self.release()


def claim_run_dir(
    path: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    markers: tuple[str, ...] = RUN_MARKERS,
    inputs: tuple[str | Path, ...] = (),
) -> RunLock:
    """Make `path` safe to write: refuse a folder holding a run/report unless `resume` or
    `overwrite`, move it aside for `overwrite`, lock it, and remove stale temp files. `inputs`
    (the bags or datasets the command reads) may not be `path` or lie inside it, where writing
    would mix outputs into them and `overwrite` would move them away."""
    path = Path(path)
    check_out_is_not_input(path, inputs)
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite exclude each other: pick one")
    if path.exists() and not path.is_dir():
        raise RunDirError(f"--out {path} is a file, not a folder")
    if resume and not path.is_dir():
        raise FileNotFoundError(f"--resume: no {STATE_NAME} in {path}: the folder does not exist")
    made = [p for p in (path, *path.parents) if not p.exists()]  # leaf first
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WriteError(path, exc) from exc
    try:  # when the last depthart process to hold the folder took it (it wrote its pid then)
        held_since: float | None = (path / LOCK_NAME).stat().st_mtime
    except OSError:  # none yet (or unreadable: `_lock` names the trouble)
        held_since = None
    lock = _lock_or_unmake(path, made)
    lock.created, lock.lock_created = bool(made), held_since is None
    lock.made_parents = tuple(made[1:])
    removed = remove_stale_temp_files(path, held_since) if held_since is not None else []
    if removed:
        log.info("removed %d temp file(s) left by an interrupted write in %s", len(removed), path)
    held = describe_contents(path, markers)
    if held is None or resume:
        return lock
    if not overwrite:
        lock.release()
        what = "--resume, or --overwrite," if markers == RUN_MARKERS else "--overwrite"
        raise RunDirError(f"{path} holds {held}: pass {what} or another --out")
    cwd, real = Path.cwd().resolve(), path.resolve()
    if cwd == real or real in cwd.parents:  # "." would move, and later writes go with it
        lock.release()
        raise RunDirError(
            f"--overwrite would move {path} aside, but it holds the current directory: "
            "give another --out, or run from elsewhere"
        )
    path = Path(os.path.normpath(path))  # "runs/x/.." has no name of its own
    aside = _sibling_name(path)
    path.rename(aside)  # the lock travels with the moved folder's inode (a symlink: the link)
    lock.release()
    path.mkdir()
    lock = _lock_or_unmake(path, [path])
    lock.moved_to, lock.created = aside, True  # a failed command removes the new, empty one
    log.warning("--overwrite: moved %s from %s to %s", held, path, aside)
    print(f"--overwrite: moved {held} from {path} to {aside}")
    return lock


def check_out_is_not_input(out: str | Path, inputs: tuple[str | Path, ...]) -> None:
    """Refuse an `--out` that is one of the command's inputs or a folder holding one."""
    resolved = Path(out).resolve()
    for given in inputs:
        src = Path(given).resolve()
        if src == resolved or resolved in src.parents:
            where = "is" if src == resolved else "holds"
            raise RunDirError(f"--out {out} {where} the input {given}: pick another --out")


def describe_contents(path: str | Path, markers: tuple[str, ...] = RUN_MARKERS) -> str | None:
    """'a run at step 120', 'a report (report.json)', ... or None when `path` holds none of
    `markers`."""
    path = Path(path)
    present = [m for m in markers if (path / m).is_file()]
    if not present:
        return None
    if markers != RUN_MARKERS:
        return f"a report ({', '.join(present)})"
    step = _state_step(path / STATE_NAME) or _checkpoint_step(path / CKPT_NAME)
    if step is None:
        step = _last_metrics_step(path / METRICS_NAME)
    return f"a run at step {step}" if step is not None else f"a run ({', '.join(present)})"


def remove_stale_temp_files(path: str | Path, since: float, depth: int = 1) -> list[Path]:
    """Delete the temp folders interrupted writes of an earlier depthart process left in `path`
    and, `depth` levels down, in its subfolders (finetune's frames/, eval's per-model reports):
    folders named as depthart names them (`fileutil.is_temp_dir`) and changed at or after `since`,
    when that process took the folder's lock. A subfolder is searched only if it changed then
    too (depthart wrote into it); files, links, other names and older entries are never touched.
    Call only while holding the folder's lock."""
    removed = []
    for p in sorted(Path(path).iterdir()):
        try:
            if p.is_symlink() or not p.is_dir() or p.stat().st_mtime < since:
                continue
        except FileNotFoundError:
            continue
        if is_temp_dir(p):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
        elif depth > 0:
            removed += remove_stale_temp_files(p, since, depth - 1)
    return removed


def read_train_state(
    run_dir: str | Path, tensors: bool = True
) -> tuple[dict[str, str], dict[str, Any]]:
    """(metadata, tensors) of `run_dir/train_state.safetensors` (`tensors=False`: its metadata
    only, and no tensors); a missing file raises FileNotFoundError, a damaged one RunDirError
    naming the file and the last good checkpoint."""
    path = Path(run_dir) / STATE_NAME
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no {STATE_NAME} in {run_dir}")
    try:
        with open_safetensors(path) as f:
            meta = f.metadata() or {}
            found = {k: f.get_tensor(k) for k in f.keys()} if tensors else {}
        missing = [k for k in ("step", "config", "param_groups") if k not in meta]
        missing += [k for k in ("rng.torch",) if tensors and k not in found]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        int(meta["step"]), json.loads(meta["config"]), json.loads(meta["param_groups"])
    except Exception as exc:  # safetensors, json and int raise their own types on damage
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunDirError(
            f"cannot resume: {path} is damaged ({reason}); {last_good(Path(run_dir))}"
        ) from exc
    return meta, found


def read_metrics(run_dir: str | Path, warn: bool = True) -> list[dict[str, Any]]:
    """The rows of `run_dir/metrics.jsonl` (none if absent). The log is not load-bearing: a line
    that is not a JSON object with an integer "step" (half-written by a full disk or a kill, or
    not UTF-8) is skipped with a warning naming the file and the line number."""
    path = Path(run_dir) / METRICS_NAME
    if not path.is_file():
        return []
    rows = []
    for n, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                raise ValueError('not an object with an integer "step"')
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            if warn:
                reason = str(exc).splitlines()[0][:80]
                log.warning("skipped damaged line %d of %s (%s)", n, path, reason)
            continue
        rows.append(row)
    return rows


def append_metrics(run_dir: str | Path, row: dict[str, Any]) -> None:
    """Append one row to `run_dir/metrics.jsonl` (a half-written line is skipped on reading)."""
    path = Path(run_dir) / METRICS_NAME
    try:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")
    except OSError as exc:
        raise WriteError(path, exc) from exc


def rewrite_metrics(run_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    """Replace `run_dir/metrics.jsonl` with `rows`, atomically (a resumed run drops the rows
    after its state's step)."""
    atomic_write(Path(run_dir) / METRICS_NAME, "".join(json.dumps(r) + "\n" for r in rows).encode())


# ---------------------------------------------------------------------- helpers
def hold_folder(path: str | Path) -> RunLock:
    """Lock an existing folder against other depthart processes for one command's writes,
    without `claim_run_dir`'s run checks (e.g. a synthetic set being written); refuses one in
    use with the holder's pid. `release_and_remove()` leaves no lock file behind."""
    return _lock(Path(path))


LOCK_TRIES = 100  # each retry needs the lock file removed between its open and its flock

# the lock files this process holds, by (device, inode): a folder it already holds may be
# claimed again (a second `Trainer` in one script). Not by the pid written in the file: a
# process in another container (PID namespace) can have the same pid.
_HELD: dict[tuple[int, int], int] = {}


def _file_key(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _lock(path: Path) -> RunLock:
    """Lock `path` against other processes; the holder's pid is written into the lock file for
    the refusal to name."""
    for _ in range(LOCK_TRIES):
        existed = (path / LOCK_NAME).exists()  # an earlier holder's (its time marks its temps)
        try:
            fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only or full file system: one line naming the folder
            raise WriteError(path / LOCK_NAME, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            mine = _file_key(fd) in _HELD
            os.close(fd)
            if mine:
                return RunLock(path, -1)
            raise RunDirError(
                f"{path} is in use by another depthart process (pid {holder or '?'}); "
                "wait or use another --out"
            ) from None
        try:  # the file locked must still be the folder's: a holder removes it as it leaves
            still = os.stat(path / LOCK_NAME)
        except FileNotFoundError:
            still = None
        if still is not None and (still.st_dev, still.st_ino) == _file_key(fd):
            break
        os.close(fd)  # locked a removed file: another process may lock the new one; again
    else:  # a file system whose stat and fstat never agree (an old overlayfs): say so
        raise RunDirError(f"cannot lock {path / LOCK_NAME}: it changes under every lock taken")
    before = os.fstat(fd)  # an earlier holder's claim: its time marks its temp folders
    try:  # the pid over the old one, then cut to it: a failed write leaves the old pid whole
        pid = str(os.getpid()).encode()
        os.pwrite(fd, pid, 0)
        os.ftruncate(fd, len(pid))
    except OSError as exc:  # a full disk or quota: one line naming the file, no lock left held
        if not existed:  # made by this claim: removed while held, as release_and_remove
            (path / LOCK_NAME).unlink(missing_ok=True)
        else:  # the last holder's time kept: the next claim still removes what it left
            with contextlib.suppress(OSError):
                os.utime(fd, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.close(fd)
        raise WriteError(path / LOCK_NAME, exc) from exc
    _HELD[_file_key(fd)] = fd
    return RunLock(path, fd)


def _lock_or_unmake(path: Path, made: list[Path]) -> RunLock:
    """`_lock(path)`; if it fails, the folders in `made` (leaf first, made by this claim) are
    removed again, so a refused or failed claim leaves no empty folder behind."""
    try:
        return _lock(path)
    except BaseException:
        _remove_empty(made)
        raise


def _remove_empty(made: list[Path] | tuple[Path, ...]) -> None:
    """Remove the folders in `made` (leaf first) while each is empty; stop at the first that
    is not (something else landed there since)."""
    for p in made:
        try:
            p.rmdir()  # only an empty folder goes
        except OSError:
            break


def _sibling_name(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = path.with_name(f"{path.name}.old-{stamp}")
    k = 2
    while aside.exists():
        aside, k = path.with_name(f"{path.name}.old-{stamp}-{k}"), k + 1
    return aside


def _header_metadata(path: Path) -> dict[str, str] | None:
    """The safetensors metadata (header only, no tensors), or None if absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with open_safetensors(path) as f:
            return f.metadata() or {}
    except Exception:  # damaged file: the caller reports it as unreadable
        return None


def _state_step(path: Path) -> int | None:
    meta = _header_metadata(path)
    try:
        return int(meta["step"]) if meta else None
    except (KeyError, ValueError):
        return None


def _checkpoint_step(path: Path) -> int | None:
    meta = _header_metadata(path)
    try:
        return int(json.loads(meta["metadata"])["steps"]) if meta else None
    except (KeyError, ValueError, TypeError):
        return None


def _last_metrics_step(path: Path) -> int | None:
    rows = read_metrics(path.parent, warn=False) if path.is_file() else []
    return rows[-1]["step"] if rows else None


def last_good(run_dir: Path) -> str:
    """How to go on from the run's checkpoint when its state cannot be resumed."""
    ckpt = run_dir / CKPT_NAME
    step = _checkpoint_step(ckpt)
    if _header_metadata(ckpt) is None:
        return (
            f"no readable {CKPT_NAME} in {run_dir} either: start again with --overwrite "
            "(the damaged run is moved aside, not deleted)"
        )
    at = f" (step {step})" if step is not None else ""
    return (
        f"the last good checkpoint is {ckpt}{at}: continue from its weights in a new run with "
        f"--set init_checkpoint={ckpt} --set init_tokenizer_only=false --out NEW_DIR "
        "(optimizer state starts afresh)"
    )
