"""A TensorRT engine build stops when the program does.

The build (`builder.build_serialized_network`) is one C++ call of minutes, 20 and more on a
Jetson: Python runs a signal's handler only between bytecodes of the main thread, so Ctrl-C
waited for the whole build, and a ROS node, whose SIGTERM handler (rclpy's) only ends its
context, ignored SIGTERM until SIGKILL. The build is now cancelled through TensorRT's progress
monitor (`step_complete` returning False) once the calling thread's `lock_waits_end_when`
condition is true or, on the main thread, a stop signal reached Python's signal wakeup fd.
TensorRT is not installable here: the build is a stand-in (tests/fake_tensorrt.py) that, as the
real one, blocks the caller in native code while native threads call the monitor.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_tensorrt import PLAN, TIMING, fake_tensorrt

from depthart_core.fileutil import lock_waits_end_when
from depthart_core.runtime import engine_cache, tensorrt_backend
from depthart_core.runtime.engine_cache import EngineCache, EngineKey
from depthart_core.runtime.tensorrt_backend import EngineBuildStopped

STEP_S = 0.02
STEPS = 250  # a 5 s build


def _install(monkeypatch, **kwargs):
    fake = fake_tensorrt(**kwargs)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr(tensorrt_backend, "trt_logger", lambda: None)
    return fake


def _build(tmp_path: Path, show_progress: bool = False) -> bytes:
    graph = tmp_path / "m.onnx"
    graph.write_bytes(b"the graph")
    return tensorrt_backend.build_serialized_engine(
        graph,
        (1, 3, 16, 16),
        timing_cache_path=tmp_path / "timing.cache",
        show_progress=show_progress,
    )


def _after_start(delay_s: float, action: Callable[[], object]) -> Callable[[], None]:
    """An `on_start` for the stand-in: `action()` `delay_s` after the build starts."""
    return lambda: threading.Timer(delay_s, action).start()


def test_its_stop_condition_cancels_a_build_within_a_fraction_of_a_second(tmp_path, monkeypatch):
    stopping = threading.Event()
    stopped_at: list[float] = []

    def stop() -> None:
        stopped_at.append(time.monotonic())
        stopping.set()

    fake = _install(monkeypatch, steps=STEPS, step_s=STEP_S, on_start=_after_start(0.3, stop))
    with pytest.raises(EngineBuildStopped) as raised, lock_waits_end_when(stopping.is_set):
        _build(tmp_path)
    late = time.monotonic() - stopped_at[0]
    assert isinstance(raised.value, KeyboardInterrupt)  # no `except Exception` fallback takes it
    assert f"stopped building the TensorRT engine from {tmp_path / 'm.onnx'}" in str(raised.value)
    assert late < 0.5, late
    assert fake.cancelled and 1 <= fake.stepped < STEPS // 2, fake.stepped
    assert not (tmp_path / "timing.cache").exists()  # a cancelled build saves no timing cache


def test_a_build_on_another_thread_stops_on_that_threads_condition(tmp_path, monkeypatch):
    """A managed node's `configure` may run on an executor thread: there Python sets no wakeup
    fd, and the condition is that thread's, not the main thread's."""
    stopping = threading.Event()
    fake = _install(
        monkeypatch, steps=STEPS, step_s=STEP_S, on_start=_after_start(0.2, stopping.set)
    )
    raised: list[BaseException] = []

    def configure() -> None:
        try:
            with lock_waits_end_when(stopping.is_set):
                _build(tmp_path)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            raised.append(exc)

    worker = threading.Thread(target=configure)
    worker.start()
    worker.join(timeout=STEPS * STEP_S)
    assert not worker.is_alive() and fake.cancelled
    assert len(raised) == 1 and isinstance(raised[0], EngineBuildStopped), raised


@pytest.mark.parametrize("show_progress", [False, True])
def test_a_build_nobody_stops_returns_its_plan(tmp_path, monkeypatch, show_progress):
    """Its stop condition, asked on TensorRT's threads, stays false; a handled signal that is no
    stop signal (SIGUSR1, sent as the build runs) comes through the wakeup fd and is passed
    over."""
    asked: list[int] = []
    got: list[int] = []

    def never() -> bool:
        if not asked:
            os.kill(os.getpid(), signal.SIGUSR1)
        asked.append(threading.get_ident())
        return False

    fake = _install(monkeypatch, steps=20, step_s=STEP_S)
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
    try:
        with lock_waits_end_when(never):
            plan = _build(tmp_path, show_progress)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert plan == PLAN and fake.stepped == 20 and not fake.cancelled
    # each step's on the build's thread, and once more on this one as the build returns
    assert len(asked) == 21 and threading.get_ident() not in asked[:20]
    assert asked[20] == threading.get_ident()
    assert got == [signal.SIGUSR1]  # its handler ran, after the build
    assert (tmp_path / "timing.cache").read_bytes() == TIMING
    assert signal.set_wakeup_fd(-1) == -1  # the build's wakeup fd is gone


def test_an_error_in_the_monitor_is_raised_after_the_build_not_dropped(tmp_path, monkeypatch):
    """TensorRT's binding prints and drops what `step_complete` raises (Ctrl-C's
    KeyboardInterrupt, where it calls in on the main thread) and cancels the build: the error is
    raised once the build returns, not a failed build's RuntimeError."""
    interrupt = KeyboardInterrupt("raised in step_complete")

    def raising() -> bool:
        raise interrupt

    fake = _install(monkeypatch, steps=STEPS, step_s=STEP_S)
    with pytest.raises(KeyboardInterrupt) as raised, lock_waits_end_when(raising):
        _build(tmp_path)
    assert raised.value is interrupt
    assert fake.cancelled and fake.stepped == 1
    assert not (tmp_path / "timing.cache").exists()


def test_progress_bars_that_cannot_be_drawn_do_not_cost_the_build(tmp_path, monkeypatch, caplog):
    """A bar that fails (stderr closed under a service manager) turns the bars off with one
    warning; the build goes on to its plan, where a failing callback would have cancelled it."""

    class Broken:
        def __init__(self, *args, **kwargs) -> None:
            raise OSError(5, "Input/output error")

    fake = _install(monkeypatch, steps=20, step_s=0.0)
    monkeypatch.setattr(tensorrt_backend, "tqdm", Broken)
    assert _build(tmp_path, show_progress=True) == PLAN
    assert fake.stepped == 20 and not fake.cancelled
    warned = [r for r in caplog.records if "progress bars turned off" in r.getMessage()]
    assert len(warned) == 1 and "Input/output error" in warned[0].getMessage()


CHILD = """
import signal
import sys
from pathlib import Path

# Ctrl-C as an interactive program has it: a test run started as a background job (`&`,
# nohup) hands its children SIGINT ignored
signal.signal(signal.SIGINT, signal.default_int_handler)

from fake_tensorrt import fake_tensorrt

from depthart_core.runtime import tensorrt_backend
from depthart_core.signals import interrupt_on_termination

sys.modules["tensorrt"] = fake_tensorrt(
    steps={steps}, step_s={step_s}, on_caller={on_caller}, tail_s={tail_s},
    on_start=lambda: print("building", flush=True),
)
tensorrt_backend.trt_logger = lambda: None
folder = Path(sys.argv[1])
(folder / "m.onnx").write_bytes(b"the graph")
with interrupt_on_termination():  # the CLI's: SIGTERM raises KeyboardInterrupt
    tensorrt_backend.build_serialized_engine(
        folder / "m.onnx", (1, 3, 16, 16), timing_cache_path=folder / "timing.cache",
        show_progress=False,
    )
print("built", flush=True)
"""


def _child_build(tmp_path: Path, signum: int, after_s: float, **settings) -> tuple[str, str, float]:
    """A program of its own building with the stand-in (`settings`: `CHILD`'s), sent `signum`
    `after_s` seconds after its build starts: its stdout, its stderr, and how long it lived on
    after the signal. It must end by KeyboardInterrupt (how Python ends then: -SIGINT)."""
    tests = str(Path(__file__).parent)  # the stand-in's folder
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    code = CHILD.format(**{"on_caller": False, "tail_s": 0.0, **settings})
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout.readline() == b"building\n", proc.stderr.read().decode()
        time.sleep(after_s)
        proc.send_signal(signum)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=15)
        took = time.monotonic() - sent
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGINT, err.decode()
    return out.decode(), err.decode(), took


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_ctrl_c_or_sigterm_stops_a_build_on_the_main_thread(tmp_path, signum):
    """In a program of its own: Ctrl-C, and SIGTERM where the program handles it (the CLI), end
    the build at once and the program by KeyboardInterrupt, not after its 30 s."""
    out, err, took = _child_build(tmp_path, signum, 0.5, steps=600, step_s=0.05)
    assert "KeyboardInterrupt" in err and "built" not in out, err
    if signum == signal.SIGTERM:
        assert "stopped by SIGTERM" in err, err
    assert "failed to build" not in err and "Exception caught" not in err, err
    assert took < 5, took
    assert not (tmp_path / "timing.cache").exists()


@pytest.mark.parametrize("when", ["during the steps", "after the last step"])
def test_ctrl_c_stops_a_build_whose_callbacks_run_on_the_main_thread(tmp_path, when):
    """Where TensorRT calls the monitor on the calling thread, a Ctrl-C's KeyboardInterrupt is
    raised as it calls back into Python and dropped by the binding (here ctypes). After the
    last step no callback could cancel any more: the build returned its plan, the timing cache
    was saved and the program went on, its Ctrl-C lost."""
    if when == "during the steps":
        settings = dict(steps=600, step_s=0.05)
    else:  # 10 quick steps, then 30 s of work before the last callback
        settings = dict(steps=10, step_s=0.01, tail_s=30.0)
    out, err, took = _child_build(tmp_path, signal.SIGINT, 1.0, on_caller=True, **settings)
    assert "KeyboardInterrupt" in err and "built" not in out, err
    assert "failed to build" not in err, err
    assert took < 5, took
    assert not (tmp_path / "timing.cache").exists()


def test_a_signal_whose_handler_goes_on_does_not_stop_a_build(tmp_path, monkeypatch):
    """A SIGHUP that reloads a daemon's settings (its handler returns) is no reason to stop:
    only a handler that ends the program (Python's Ctrl-C, the CLI's SIGTERM and SIGHUP)
    cancels a build before it has run."""
    reloaded: list[int] = []

    def send_once() -> bool:
        if not reloaded:
            reloaded.append(0)
            os.kill(os.getpid(), signal.SIGHUP)
        return False

    fake = _install(monkeypatch, steps=20, step_s=STEP_S)
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: reloaded.append(signum))
    try:
        with lock_waits_end_when(send_once):
            assert _build(tmp_path) == PLAN
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert fake.stepped == 20 and not fake.cancelled
    assert reloaded == [0, signal.SIGHUP]  # its handler ran, after the build


def test_a_signal_right_after_the_wakeup_fd_is_set_leaves_none_behind(tmp_path, monkeypatch):
    """A handler that raises just as the build's wakeup fd is set (a Ctrl-C at that instant):
    the wakeup fd was left pointing at the closed pipe, so the next file opened took its number
    and every later signal wrote a byte into it."""
    real = signal.set_wakeup_fd

    def interrupted(fd: int, **kwargs) -> int:
        previous = real(fd, **kwargs)
        if fd != -1 and not kwargs.get("warn_on_full_buffer", True):  # the build's own
            raise KeyboardInterrupt("Ctrl-C as the wakeup fd was set")
        return previous

    _install(monkeypatch, steps=5, step_s=0.0)
    monkeypatch.setattr(signal, "set_wakeup_fd", interrupted)
    with pytest.raises(KeyboardInterrupt, match="as the wakeup fd was set"):
        _build(tmp_path)
    monkeypatch.undo()
    assert signal.set_wakeup_fd(-1) == -1


def test_a_wakeup_fd_the_program_set_is_left_to_it(tmp_path, monkeypatch):
    """An asyncio loop's wakeup fd stays set and gets the signals that come during the build
    (SIGUSR1's byte); the build runs, and its stop condition still cancels it."""
    theirs, reader = socket.socketpair()
    theirs.setblocking(False)
    asked: list[int] = []

    def tenth() -> bool:
        if not asked:
            os.kill(os.getpid(), signal.SIGUSR1)
        asked.append(1)
        return len(asked) >= 10

    fake = _install(monkeypatch, steps=STEPS, step_s=STEP_S)
    handler = signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    wakeup = signal.set_wakeup_fd(theirs.fileno())
    try:
        with pytest.raises(EngineBuildStopped), lock_waits_end_when(tenth):
            _build(tmp_path)
    finally:
        assert signal.set_wakeup_fd(wakeup) == theirs.fileno()
        signal.signal(signal.SIGUSR1, handler)
    assert fake.cancelled and fake.stepped == 10
    reader.settimeout(1)
    assert reader.recv(16) == bytes([signal.SIGUSR1])
    theirs.close()
    reader.close()


def test_a_cancelled_build_leaves_nothing_in_the_engine_cache(tmp_path, monkeypatch):
    """Nothing written (no engine, sidecar, timing cache or temp folder), the lock let go."""
    stopping = threading.Event()
    fake = _install(
        monkeypatch, steps=STEPS, step_s=STEP_S, on_start=_after_start(0.2, stopping.set)
    )
    writes: list[Path] = []
    for module in (engine_cache, tensorrt_backend):
        monkeypatch.setattr(module, "atomic_write", lambda path, *a, **k: writes.append(path))
    cache = EngineCache(tmp_path / "engines")
    key = EngineKey("ab" * 32, "fp32", (1, 3, 16, 16), "10.3.0", "sm_87")
    graph = tmp_path / "m.onnx"
    graph.write_bytes(b"the graph")

    def build() -> bytes:
        timing = cache.timing_cache_path(key)
        return tensorrt_backend.build_serialized_engine(
            graph, key.input_shape, timing_cache_path=timing, show_progress=False
        )

    with pytest.raises(EngineBuildStopped), lock_waits_end_when(stopping.is_set):
        cache.get_or_build(key, build, lambda blob: object())
    assert fake.cancelled and writes == []
    lock = cache.cache_dir / f"{key.stem}.lock"
    assert sorted(p.name for p in cache.cache_dir.iterdir()) == [lock.name]
    with open(lock) as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if it were still held
