"""The synthetic pool's render workers (`SyntheticPool._render`): Ctrl-C is the parent's to
handle, an interrupted render stops its workers at once (a second Ctrl-C while it does too), a
SIGKILLed parent takes its workers with it, their count follows the CPUs this process may use,
and under torchrun one rank per machine renders while the others wait for its pool."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import torch

from depthart_core import procutil
from depthart_core.training import data
from depthart_core.training.data import SyntheticPool

ROOT = Path(__file__).resolve().parent.parent
LINUX = sys.platform.startswith("linux")


def _running(p) -> bool:
    """Whether worker `p` still runs, by the kernel's word where /proc has it. multiprocessing's
    `is_alive()` polls with waitpid, and the pool's manager thread joins the same workers: where
    it reaped one first and had not yet stored the exit status (it waits for the GIL), the
    poll's ECHILD reads as "no status yet" and a dead worker was called alive (once in each of
    two full runs, 855f1cf's and the forty-eighth session's on Jazzy)."""
    if not LINUX:
        return p.is_alive()
    try:
        stat = Path(f"/proc/{p.pid}/stat").read_text()
    except FileNotFoundError:
        return False  # exited and reaped
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie has exited


class _Interrupt(KeyboardInterrupt):
    """The test's own Ctrl-C, told apart from a real one."""


def _bar(on_update):
    """A stand-in for tqdm whose update (one per chunk rendered) calls `on_update(n)`."""

    class Bar:
        def __init__(self, *args, **kwargs) -> None:
            self.n = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> bool:
            return False

        def update(self, n: int) -> None:
            self.n += n
            on_update(self.n)

    return Bar


def _recording_executor(monkeypatch, pools: list, shutdown_interrupts: int = 0):
    """`data.ProcessPoolExecutor`, each pool kept in `pools`; its first `shutdown_interrupts`
    shutdowns raise KeyboardInterrupt before doing anything (a second Ctrl-C landing there)."""
    base = data.ProcessPoolExecutor
    left = [shutdown_interrupts]

    class Executor(base):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            pools.append(self)

        def shutdown(self, *args, **kwargs) -> None:
            if left[0] > 0:
                left[0] -= 1
                raise _Interrupt("the second Ctrl-C")
            super().shutdown(*args, **kwargs)

    monkeypatch.setattr(data, "ProcessPoolExecutor", Executor)


def _ignored_signals(pid: int) -> int:
    """The signal mask a process ignores (/proc/PID/status SigIgn)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigIgn for {pid}")


def _bit(sig: int) -> int:
    return 1 << (sig - 1)


def _gone(pid: int) -> bool:
    """Whether process `pid` has ended (a zombie nobody reaped counts)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.mark.skipif(not LINUX, reason="reads the workers' signal dispositions in /proc")
def test_ctrl_c_reaching_the_render_workers_is_left_to_the_parent(tmp_path, monkeypatch):
    """`timeout` and a terminal's Ctrl-C signal the whole process group: a worker interrupted in
    the pool's queue hung the others and the parent's exit, or printed its traceback. The
    workers ignore SIGINT and SIGHUP, and the render goes on to the same pool as one process."""
    pools: list = []
    signalled: list[int] = []
    _recording_executor(monkeypatch, pools)

    def update(n: int) -> None:
        if signalled:
            return
        workers = [p.pid for p in pools[0]._processes.values()]
        deadline = time.monotonic() + 10  # each worker past its set-up
        want = _bit(signal.SIGINT) | _bit(signal.SIGHUP)
        while time.monotonic() < deadline:
            if all(_ignored_signals(pid) & want == want for pid in workers):
                break
            time.sleep(0.05)
        for pid in workers:
            assert _ignored_signals(pid) & want == want, f"worker {pid} takes Ctrl-C itself"
            os.kill(pid, signal.SIGINT)
            os.kill(pid, signal.SIGHUP)
            signalled.append(pid)

    monkeypatch.setattr(data, "tqdm", _bar(update))
    path = SyntheticPool._render(tmp_path / "p.safetensors", 5, 16, 96, chunk=16, workers=2)
    assert len(signalled) == 2
    one = SyntheticPool._render(tmp_path / "one.safetensors", 5, 16, 96, chunk=16, workers=1)
    assert path.read_bytes() == one.read_bytes()  # the same frames, in the same chunks


CHUNK_S = 0.6  # a chunk of the interrupted render takes at least this long in a worker


def _chunk_seconds(frames: int) -> float:
    """Seconds `frames` frames of a 16x16 pool take to render here the way a worker renders a
    chunk (`_render_span`: one torch thread); this process's thread count is left as it was."""
    threads = torch.get_num_threads()
    try:
        start = time.perf_counter()
        data._render_span((0, 0, frames, 16, {}))
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)


def test_an_interrupted_render_stops_its_workers_at_once(tmp_path, monkeypatch):
    """Ctrl-C in the parent reached the caller only once the running chunks (and the queued
    one) were rendered; it now stops at once, and no worker outlives it. The yardstick is a
    warm chunk, whatever rendered in this process before: the first render in a process pays
    one-time costs (the texture bank) that a warm one does not, so a cold yardstick was 10x a
    warm one, and the test passed only as the session's first render. The chunk is sized to
    take CHUNK_S warm, so that a stop which waits for the workers' chunks (each worker's next
    chunk is warm: its first one paid the costs) takes well over half of it."""
    _chunk_seconds(8)  # the one-time costs, paid here if no earlier test paid them
    chunk = max(48, math.ceil(96 * CHUNK_S / _chunk_seconds(96)))
    # never under CHUNK_S: the chunk was sized to take it (a quicker run is noise, not a chunk
    # the workers render faster), and a stop at once is far quicker than half of it
    one_chunk_s = max(_chunk_seconds(chunk), CHUNK_S)
    pools: list = []
    _recording_executor(monkeypatch, pools)
    workers: list = []
    raised_at: list[float] = []

    def update(n: int) -> None:  # the first chunk is in; the next two are being rendered
        workers.extend(pools[0]._processes.values())
        raised_at.append(time.perf_counter())
        raise _Interrupt

    monkeypatch.setattr(data, "tqdm", _bar(update))
    with pytest.raises(_Interrupt):
        SyntheticPool._render(tmp_path / "p.safetensors", 0, 16, 3 * chunk, chunk=chunk, workers=2)
    took = time.perf_counter() - raised_at[0]
    assert len(workers) == 2
    assert not [p.pid for p in workers if _running(p)]
    said = f"stopped {took:.3f} s after Ctrl-C (a chunk of {chunk}: {one_chunk_s:.3f} s)"
    print(said)
    assert took < one_chunk_s / 2, said
    assert not (tmp_path / "p.safetensors").exists()


def test_a_second_ctrl_c_while_stopping_leaves_no_worker(tmp_path, monkeypatch):
    """`timeout` forwards SIGINT to the process and to its group: the second one cut the pool's
    shutdown short, and workers left running kept `depthart train` from exiting (multiprocessing
    joins its children at exit)."""
    pools: list = []
    _recording_executor(monkeypatch, pools, shutdown_interrupts=1)
    workers: list = []

    def update(n: int) -> None:
        workers.extend(pools[0]._processes.values())
        raise _Interrupt

    monkeypatch.setattr(data, "tqdm", _bar(update))
    try:
        with pytest.raises(_Interrupt):
            SyntheticPool._render(tmp_path / "p.safetensors", 0, 16, 160, chunk=16, workers=2)
        assert len(workers) == 2
        deadline = time.monotonic() + 2
        while any(_running(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p.pid for p in workers if _running(p)]
    finally:  # the old code's leftovers: never left to hang pytest's exit
        for p in workers:
            if p.is_alive():
                p.kill()
                p.join(5)
        for pool in pools:
            ProcessPoolExecutor.shutdown(pool, wait=True, cancel_futures=True)


_KILLED_PARENT = """
import multiprocessing, sys
from pathlib import Path
from depthart_core import procutil
from depthart_core.training import data

class Bar:
    def __init__(self, *args, **kwargs):
        self.said = False
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return False
    def update(self, n):
        if not self.said:
            print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
            self.said = True

data.tqdm = Bar
data.SyntheticPool._render(Path(sys.argv[1]), 0, 16, 100_000, chunk=16, workers=2)
"""


@pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG is Linux's")
def test_the_workers_of_a_sigkilled_parent_exit(tmp_path):
    """The OOM killer's SIGKILL left the trainer's render workers alive for ever (each holding
    hundreds of MB); they now get SIGTERM from the kernel when their parent dies."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_PARENT, str(tmp_path / "p.safetensors")],
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    workers: list[int] = []
    try:
        workers = [int(pid) for pid in proc.stdout.readline().split()]
        assert len(workers) == 2, workers
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 10
        while not all(_gone(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [pid for pid in workers if not _gone(pid)] == []
    finally:
        for pid in workers:  # the old code's orphans
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_render_on_one_cpu_runs_in_this_process(tmp_path, monkeypatch):
    """`taskset -c 0 depthart train` started one worker per core of the machine (2 on 1 CPU:
    slower than none); the count follows the CPUs this process may use."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)

    def no_pool(*args, **kwargs):
        raise AssertionError("render processes started for one CPU")

    monkeypatch.setattr(data, "ProcessPoolExecutor", no_pool)
    path = SyntheticPool._render(tmp_path / "p.safetensors", 0, 16, 8, progress=False)
    assert path.is_file()


@pytest.mark.parametrize(
    ("cpus", "env", "expected"),
    [
        (8, {}, 8),
        (40, {}, 16),  # at most 16
        (8, {"LOCAL_WORLD_SIZE": "4", "LOCAL_RANK": "0"}, 2),  # renders beside the others
        (8, {"LOCAL_WORLD_SIZE": "4", "LOCAL_RANK": "1"}, 2),
        (2, {"LOCAL_WORLD_SIZE": "4", "LOCAL_RANK": "3"}, 1),  # at least 1
    ],
)
def test_render_workers_share_the_cpus_this_process_may_use(monkeypatch, cpus, env, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(procutil, "cgroup_cpu_quota", lambda: None)  # a CPU-limited runner's
    for name in ("LOCAL_WORLD_SIZE", "LOCAL_RANK", "RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert data.render_workers() == expected
