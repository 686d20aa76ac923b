"""Process-level helpers shared by the trainer's render workers, the thread rule and the live
replay's node: the CPUs this process may use (its affinity mask and its cgroup's CPU quota), and
child processes that die with their parent (Linux: the kernel's parent-death signal, prctl's
PR_SET_PDEATHSIG; elsewhere a thread watching the parent's pid)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <sys/prctl.h>


# where the CPU quota is read (Linux); module constants so tests can point them at fake trees
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
PROC_SELF_MOUNTINFO = Path("/proc/self/mountinfo")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask (taskset, a container's cpuset), and at
    most its cgroup's CPU quota (`docker run --cpus`, Kubernetes' CPU limit, systemd's
    CPUQuota=), which leaves the mask at every host core while the kernel throttles the
    process's threads beyond it in each 100 ms period. A fractional quota rounds up (1.5 CPUs
    -> 2): the count is one thread or worker per CPU of quota, and rounding down would leave
    part of the quota unused. Read on each call (`docker update` changes a quota at run time;
    it is a few small files): callers ask when they start their threads or workers, never per
    frame. At least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, quota)
    return max(1, cpus)


def cgroup_cpu_quota() -> int | None:
    """The CPU quota of this process's cgroup and its parents, in whole CPUs rounded up (the
    smallest along the path); None where there is none, or no cgroup file could be read or
    parsed (not Linux, no cgroup mounted, an unexpected format): never raises.

    cgroup v2: the "0::/PATH" line of /proc/self/cgroup; `cpu.max` ("QUOTA PERIOD", or "max
    PERIOD" for none) of PATH and each parent under the cgroup2 mount. cgroup v1: the line
    whose controllers include "cpu"; `cpu.cfs_quota_us` (-1: none) over `cpu.cfs_period_us`
    under that controller's mount. A mount whose root is the process's own cgroup (a
    container's) is read from its top."""
    try:
        lines = PROC_SELF_CGROUP.read_text().splitlines()
    except (OSError, ValueError):
        return None
    mounts = _cgroup_mounts()
    quotas: list[int] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":  # v2
            tops = [m for m in mounts if m[2] is None] or [("/", CGROUP_ROOT, None)]
            quotas += _quotas_along(tops[0], path, _v2_quota)
        elif "cpu" in controllers.split(","):  # v1
            tops = [m for m in mounts if m[2] is not None and "cpu" in m[2]]
            if not tops:  # no mountinfo: the usual mount points
                tops = [("/", CGROUP_ROOT / name, None) for name in ("cpu", "cpu,cpuacct")]
            for top in tops:
                if top[1].is_dir():
                    quotas += _quotas_along(top, path, _v1_quota)
                    break
    return min(quotas) if quotas else None


def _cgroup_mounts() -> list[tuple[str, Path, frozenset[str] | None]]:
    """The cgroup mounts of /proc/self/mountinfo as (root in the hierarchy, mount point,
    v1 controllers or None for cgroup2); [] where it cannot be read."""
    try:
        lines = PROC_SELF_MOUNTINFO.read_text().splitlines()
    except (OSError, ValueError):
        return []
    mounts = []
    for line in lines:
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 5 or len(fields) < sep + 4:
            continue
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        root, point = _unescape(fields[3]), Path(_unescape(fields[4]))
        if fstype == "cgroup2":
            mounts.append((root, point, None))
        elif fstype == "cgroup":
            mounts.append((root, point, frozenset(options)))
    return mounts


def _unescape(field: str) -> str:
    """A mountinfo path: the kernel writes space, tab, newline and backslash as octal escapes."""
    for code in ("040", "011", "012", "134"):
        field = field.replace("\\" + code, chr(int(code, 8)))
    return field


def _quotas_along(
    mount: tuple[str, Path, frozenset[str] | None],
    path: str,
    read: Callable[[Path], int | None],
) -> list[int]:
    """`read`'s quota of each cgroup from `path` up to the top of `mount`, where one is set.
    The mount's root is the hierarchy's path at its mount point: a container's mount of its
    own cgroup has the process's path as root, so the reading starts at the mount point."""
    root, point, _ = mount
    root = root.rstrip("/")
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root) :]
    elif root:  # the process's cgroup is not under the mount: only the mount's top is known
        path = ""
    parts = [p for p in path.split("/") if p]
    if ".." in parts:  # outside the cgroup namespace's root: not under this mount
        parts = []
    quotas = []
    for depth in range(len(parts), -1, -1):
        quota = read(point.joinpath(*parts[:depth]))
        if quota is not None:
            quotas.append(quota)
    return quotas


def _v2_quota(folder: Path) -> int | None:
    fields = _read_fields(folder / "cpu.max")
    if fields is None or len(fields) != 2 or fields[0] == "max":
        return None
    return _whole_cpus(fields[0], fields[1])


def _v1_quota(folder: Path) -> int | None:
    quota, period = (
        _read_fields(folder / "cpu.cfs_quota_us"),
        _read_fields(folder / "cpu.cfs_period_us"),
    )
    if quota is None or period is None or len(quota) != 1 or len(period) != 1:
        return None
    return _whole_cpus(quota[0], period[0])


def _read_fields(file: Path) -> list[str] | None:
    try:
        return file.read_text().split()
    except (OSError, ValueError):
        return None


def _whole_cpus(quota: str, period: str) -> int | None:
    """quota/period rounded up; None for -1 (v1's no quota) or anything not two positive ints."""
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:
        return None
    return -(-q // p)  # up, in integers


def death_signal_setter(parent: int | None = None) -> Callable[[], bool] | None:
    """A function that, run in a child of `parent` (default: this process), asks Linux to send
    the child SIGTERM when the parent dies and, where the parent died already, sends it now;
    it returns whether the kernel took the request. None where there is no such call (not
    Linux). Resolved here, in the parent, so it can be subprocess's `preexec_fn` (run between
    fork and exec)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid() if parent is None else parent

    def set_death_signal() -> bool:
        if prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
            return False
        if os.getppid() != parent:  # it died before the call: nobody would send it
            os.kill(os.getpid(), signal.SIGTERM)
        return True

    return set_death_signal


def die_with_parent(parent: int) -> None:
    """In a child process of `parent`: SIGTERM to it when `parent` dies, from the kernel on
    Linux, elsewhere from a daemon thread watching the parent's pid."""
    setter = death_signal_setter(parent)
    if setter is not None and setter():
        return
    threading.Thread(target=_end_with_parent, args=(parent,), daemon=True).start()


def _end_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
