"""A loaded machine on demand: busy-looping processes, each pinned to one core, for measuring
inference latency the way a robot sees it (drivers, SLAM and planning share its CPU), and for
proving that the test suite does not depend on a quiet machine (`make test-loaded`).

    with busy_cores(1):      # one core fully taken by another process
        time_backend(...)

    # a command N times in a row under load; stops at the first failure, prints each run's time
    python -m depthart_core.runtime.cpu_load --busy 2 --repeat 3 -- python -m pytest -q tests
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from depthart_core.procutil import available_cpus
from depthart_core.signals import interrupt_on_termination


def _spin(parent: int) -> None:
    """Busy until the parent is gone (killed, even by SIGKILL: no clean-up of its runs then),
    checked every few million iterations. Forked with the parent's handlers: SIGTERM (how the
    parent stops it) ends it quietly, and Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while os.getppid() == parent:
        for _ in range(2_000_000):
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
    procs = [ctx.Process(target=_spin, args=(os.getpid(),), daemon=True) for _ in range(n)]
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


def run_loaded(cmd: list[str], busy: int, repeat: int) -> int:
    """Run `cmd` `repeat` times in a row while `busy` pinned loops spin; the exit status
    of the first failing run, else 0. Each run's wall time is printed as it ends."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    with busy_cores(busy) as cores:
        print(f"cpu_load: {busy} busy loop(s) on cores {cores or 'any'}", flush=True)
        for i in range(1, repeat + 1):
            t0 = time.monotonic()
            rc = subprocess.call(cmd)
            took = time.monotonic() - t0
            print(f"cpu_load: run {i}/{repeat} exit {rc} in {took:.0f} s", flush=True)
            if rc != 0:
                return rc
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m depthart_core.runtime.cpu_load",
        description="run a command repeatedly while busy loops keep cores taken",
    )
    ap.add_argument("--busy", type=int, default=2, help="busy-looping processes (default 2)")
    ap.add_argument("--repeat", type=int, default=1, help="runs in a row (default 1)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")
    a = ap.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no command given (put it after --)")
    try:
        with interrupt_on_termination():  # SIGTERM (a cancelled CI job): loops and command stop
            return run_loaded(cmd, a.busy, a.repeat)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, SIGHUP: the loops are stopped by now
        print(f"cpu_load: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    except ValueError as exc:
        ap.error(str(exc))
    except OSError as exc:  # not found, not executable: one line, the loops already stopped
        ap.error(f"cannot run {cmd[0]!r}: {exc.strerror or exc}")


if __name__ == "__main__":
    sys.exit(main())
