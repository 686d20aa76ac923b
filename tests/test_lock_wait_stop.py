"""A wait for another process's build ends when the waiter is told to stop.

A ROS node whose start waited on another process's graph export or TensorRT build (a second
camera node on one cache) ignored SIGTERM until SIGKILL: rclpy's SIGTERM handler ends the
context and raises nothing in Python, and the wait polled the lock forever. The node now
waits under `lock_waits_end_when(context ended)` (its end in tests/test_node_startup.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from depthart_core import fileutil
from depthart_core.fileutil import LockWaitStopped, build_lock, lock_waits_end_when

HOLD = (
    "import fcntl, os, sys, time\n"
    "f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX)\n"
    "f.write(sys.argv[2].replace('PID', str(os.getpid()))); f.flush()\n"
    "print('held', flush=True); time.sleep(60)\n"
)


@contextlib.contextmanager
def process_holding(lock: Path, record: str = "") -> Iterator[subprocess.Popen]:
    """Another process holding an exclusive flock on `lock` (made where missing, `record` written
    into it with PID replaced by its pid) until the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock), record], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"held\n"
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def holder(tmp_path):
    """Another process holding the build lock `holder.lock` until killed."""
    lock = tmp_path / "graph.onnx.lock"
    with process_holding(lock) as proc:
        proc.lock = lock
        yield proc


def _wait(lock, stop=None) -> tuple[BaseException | None, float]:
    """Enter `build_lock(lock)` (under `lock_waits_end_when(stop)` where given) on this thread:
    what it raised, and after how long."""
    start = time.monotonic()
    try:
        if stop is None:
            with build_lock(lock, "the graph"):
                pass
        else:
            with lock_waits_end_when(stop), build_lock(lock, "the graph"):
                pass
    except BaseException as exc:  # noqa: BLE001 - the test looks at it
        return exc, time.monotonic() - start
    return None, time.monotonic() - start


def test_a_wait_ends_once_its_stop_condition_is_true(holder):
    stopping = threading.Event()
    threading.Timer(0.5, stopping.set).start()
    exc, waited = _wait(holder.lock, stopping.is_set)
    assert isinstance(exc, LockWaitStopped) and isinstance(exc, KeyboardInterrupt), exc
    assert "stopped waiting for the graph" in str(exc)
    assert 0.45 <= waited < 0.5 + 5 * fileutil.BUILD_LOCK_POLL_S, waited


def test_without_a_condition_or_while_it_is_false_the_wait_goes_on(holder):
    """Only the thread that set a condition is stopped by it; the others take the lock once
    the holder lets go."""
    stopping = threading.Event()
    results: dict[str, tuple] = {}
    other = threading.Thread(target=lambda: results.update(other=_wait(holder.lock)))
    mine = threading.Thread(target=lambda: results.update(mine=_wait(holder.lock, lambda: False)))
    with lock_waits_end_when(stopping.is_set):  # this thread's, not the others'
        stopping.set()
        other.start()
        mine.start()
        time.sleep(1.0)
        assert other.is_alive() and mine.is_alive()  # both still waiting
    holder.kill()
    other.join(30)
    mine.join(30)
    assert results["other"][0] is None and results["mine"][0] is None, results


def test_the_condition_is_put_back_after_its_block(holder):
    outer = threading.Event()
    with lock_waits_end_when(outer.is_set):
        with lock_waits_end_when(lambda: True):
            exc, _ = _wait(holder.lock)
            assert isinstance(exc, LockWaitStopped)
        outer.set()
        exc, _ = _wait(holder.lock)
        assert isinstance(exc, LockWaitStopped)  # the outer one again
    assert getattr(fileutil._LOCK_WAITS, "stop", None) is None


def test_a_holder_letting_go_as_the_waiter_stops_does_not_hand_it_the_build(holder, monkeypatch):
    """The holder let go during the waiter's sleep, just as the waiter was told to stop (one
    SIGTERM to a whole service group): the next try took the lock and the stopping node ran the
    whole export itself. The condition is asked before each try."""
    stopping = threading.Event()
    real_sleep, slept = time.sleep, []

    def sleep(seconds: float) -> None:  # the second sleep: stop, and the holder lets go
        slept.append(seconds)
        if len(slept) == 2:
            stopping.set()
            holder.kill()
            holder.wait()
        real_sleep(seconds)

    monkeypatch.setattr(fileutil.time, "sleep", sleep)
    exc, _ = _wait(holder.lock, stopping.is_set)
    assert len(slept) >= 2, slept
    assert isinstance(exc, LockWaitStopped), exc
    with open(holder.lock, "a") as other:  # not left held by the stopped waiter
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
