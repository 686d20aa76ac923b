"""A loaded machine on demand: busy-looping processes, each pinned to one core, for measuring
inference latency the way a robot sees it (drivers, SLAM and planning share its CPU).

    with busy_cores(1):      # one core fully taken by another process
        time_backend(...)
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from contextlib import contextmanager

from depthart_core.runtime.threads import available_cpus


def _spin() -> None:
    while True:
        pass


@contextmanager
def busy_cores(n: int) -> Iterator[list[int]]:
    """Run `n` busy loops pinned to the last `n` cores this process may use (unpinned where the
    platform has no affinity); yields those cores and stops the loops on exit."""
    if n < 0:
        raise ValueError(f"busy cores must be >= 0, got {n}")
    if n > available_cpus():
        raise ValueError(f"cannot keep {n} cores busy: this process may use {available_cpus()}")
    cores: list[int] = []
    if n and hasattr(os, "sched_getaffinity"):
        cores = sorted(os.sched_getaffinity(0))[-n:]
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_spin, daemon=True) for _ in range(n)]
    for p, core in zip(procs, cores or [None] * n, strict=True):
        p.start()
        if core is not None:  # pinned from here, so it holds before we return
            os.sched_setaffinity(p.pid, {core})
    try:
        yield cores
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(timeout=5)
