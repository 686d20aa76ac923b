"""Process-level helpers shared by the trainer's render workers, the thread rule and the live
replay's node: the CPUs this process may run on, and child processes that die with their parent
(Linux: the kernel's parent-death signal, prctl's PR_SET_PDEATHSIG; elsewhere a thread watching
the parent's pid)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <sys/prctl.h>


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under taskset or a container)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


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
