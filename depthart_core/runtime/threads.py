"""How many CPU threads inference uses: one rule for every backend, command and the node.

PyTorch and ONNX Runtime default to one thread per core. Their parallel loops wait for every
thread at a barrier, so when another process holds one of those cores the whole frame waits for
the descheduled thread: on a 2-core machine with one busy-looping process, the torch backend went
from 16 ms to 2,082 ms per frame at 2 threads and to 18 ms at 1 (issue #16). A robot always runs
other processes (drivers, SLAM, planning), so the default takes half of the CPUs this process
may use (its affinity and its container's CPU quota: `procutil.available_cpus`), at most 4 (the
tiny model gains little beyond that), and at least 1.

Precedence: an explicit `threads > 0`, else `$OMP_NUM_THREADS` when set, else that default.

A forked child (multiprocessing's "fork" start method, `os.fork`) runs with one thread: GNU
OpenMP's pool, which PyTorch's CPU build uses, does not survive a fork, and a child of a parent
that had run torch at 2 threads hung forever in its first conv. PyTorch's own DataLoader workers
do the same. Setting more in the child brings the hang back; a "spawn" child starts afresh and
takes the rule above.

torch is imported only where its threads are set (`set_torch_threads`, `follow_torch_threads`):
a process that runs ONNX Runtime never loads it.
"""

from __future__ import annotations

import numbers
import os
import sys

import cv2

from depthart_core.procutil import available_cpus

MAX_DEFAULT_THREADS = 4
MAX_THREADS = 256  # beyond any machine this runs on; 100,000 OpenMP threads stalled a 2-core host


def default_threads() -> int:
    return max(1, min(MAX_DEFAULT_THREADS, available_cpus() // 2))


def resolve_threads(requested: int = 0) -> int:
    """The thread count to use for a `threads` option or parameter (0 = automatic)."""
    if isinstance(requested, bool) or not isinstance(requested, numbers.Integral):
        raise TypeError(f"threads must be an int (0 = automatic), got {requested!r}")
    requested = int(requested)  # a numpy integer too
    if not 0 <= requested <= MAX_THREADS:
        raise ValueError(
            f"threads must be 0 (automatic) to {MAX_THREADS}, got {requested} (this process may "
            f"use {available_cpus()} CPUs)"
        )
    if requested > 0:
        return requested
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        if int(env) > MAX_THREADS:  # the limit --threads has: far more stalls the host
            raise ValueError(
                f"OMP_NUM_THREADS={env} is above {MAX_THREADS} threads (this process may use "
                f"{available_cpus()} CPUs): set it lower, or pass a thread count"
            )
        return int(env)
    return default_threads()


# the count `set_torch_threads` last set: PyTorch's OpenMP count is per thread, each thread
# taking the process's at its first parallel op and keeping it, so a thread that ran before a
# later set (a second node loaded in the process, a reconfigure) follows it (`follow_torch_threads`)
_torch_threads: int | None = None


def _one_thread_after_fork() -> None:
    """In a forked child: the parent's OpenMP threads do not exist there (the module docstring)."""
    global _torch_threads
    torch = sys.modules.get("torch")  # a parent that never imported torch has no pool to lose
    if torch is not None:
        torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _torch_threads = 1  # followed in the child too: never the parent's count again


if hasattr(os, "register_at_fork"):  # POSIX; once, as this module is imported once
    os.register_at_fork(after_in_child=_one_thread_after_fork)


def set_opencv_threads(threads: int) -> int:
    """Apply `resolve_threads(threads)` to OpenCV (the pre- and post-processing's resizes;
    process-wide); returns the count."""
    n = resolve_threads(threads)
    cv2.setNumThreads(n)
    return n


def set_torch_threads(threads: int) -> int:
    """Apply `resolve_threads(threads)` to PyTorch's intra-op pool and OpenCV (process-wide,
    as both are; a thread that already ran torch takes it at its next `follow_torch_threads`);
    returns the count."""
    import torch  # the torch backend's: a process that runs ONNX Runtime never imports it

    global _torch_threads
    n = set_opencv_threads(threads)
    torch.set_num_threads(n)
    _torch_threads = n
    return n


def follow_torch_threads() -> None:
    """Give the calling thread the count `set_torch_threads` last set, where it kept another:
    PyTorch's OpenMP count is per thread, fixed at the thread's first parallel op, so a node's
    worker thread that had run frames kept its count when a later node of the process (or a
    reconfigure) set another. Called before each inference of the torch backend; costs a
    microsecond."""
    import torch  # imported already: the torch backend calls this

    n = _torch_threads
    if n is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
