"""A stand-in for the `tensorrt` module (not installable here): the part of the TensorRT 10 Python
API that `tensorrt_backend.build_serialized_engine` calls.

Its build behaves as the real one does towards Python (TensorRT's pybind11 bindings,
python/src/infer/pyCore.cpp): `build_serialized_network` releases the GIL and blocks the caller
in native code, where Python runs no signal handler, while native threads call the progress
monitor; `step_complete` returning False (or raising: the binding prints the error and cancels)
ends the build, which then returns None. Here the native thread is made with `pthread_create`
and waited for with `pthread_join` through ctypes, which no signal interrupts, so a Ctrl-C during
a build waits for its end as with the real one; a `threading.Thread.join` would be cut short by
KeyboardInterrupt. TensorRT may also call the monitor on the calling thread (NVIDIA's progress
monitor sample catches KeyboardInterrupt in each callback): `on_caller=True` does that, from
inside libc's `qsort`, whose comparator is the callback, so a signal's handler runs, and its
KeyboardInterrupt is printed and dropped by ctypes, as soon as the build calls back into Python.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import time
import types
from collections.abc import Callable

PLAN = b"PLAN"
TIMING = b"TIMING:this build's"
PHASE = "Building engine"

_libc = ctypes.CDLL(None)
_libc.pthread_create.argtypes = [
    ctypes.POINTER(ctypes.c_ulong),
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
]
_libc.pthread_join.argtypes = [ctypes.c_ulong, ctypes.c_void_p]
_START = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)
_COMPARE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_libc.qsort.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, _COMPARE]


def run_on_native_thread(work: Callable[[], None]) -> None:
    """`work()` on a thread of pthread_create's, waited for in pthread_join: the caller blocks in
    native code with the GIL released, as in a C++ call, until `work` returns."""

    def start(_arg):
        work()

    start_c = _START(start)  # referenced until the join: ctypes frees it with the last reference
    thread = ctypes.c_ulong()
    routine = ctypes.cast(start_c, ctypes.c_void_p)
    if _libc.pthread_create(ctypes.byref(thread), None, routine, None):
        raise OSError("pthread_create failed")
    if _libc.pthread_join(thread.value, None):
        raise OSError("pthread_join failed")


def run_on_calling_thread(work: list[Callable[[], None]]) -> None:
    """Each of `work` in turn, called back from native code on this thread (libc's `qsort`, one
    comparison each: a sort of n items compares at least n - 1 times); what one raises is
    printed and dropped by ctypes, and the next goes on."""
    todo = list(work)

    def compare(_a, _b) -> int:
        if todo:
            todo.pop(0)()
        return 0

    compare_c = _COMPARE(compare)
    items = (ctypes.c_int * (len(todo) + 1))()
    _libc.qsort(items, len(items), ctypes.sizeof(ctypes.c_int), compare_c)
    assert not todo, f"qsort left {len(todo)} callbacks uncalled"


def fake_tensorrt(
    steps: int = 0,
    step_s: float = 0.0,
    made: list[bytes] | None = None,
    used: list[bytes] | None = None,
    on_start: Callable[[], None] | None = None,
    on_caller: bool = False,
    tail_s: float = 0.0,
) -> types.ModuleType:
    """The stand-in module. Its build reports `steps` steps of `step_s` seconds each to the
    config's progress monitor (if one is set) from a native thread, or on the calling thread
    (`on_caller`), works `tail_s` seconds more after the last step, then returns `PLAN`; None
    as soon as `step_complete` returns False or raises. `made`: every timing cache's bytes, in
    order; `used`: the one the build is given; `on_start()` runs as the build starts. The
    module's `stepped` counts the steps reported, `cancelled` says whether the last build was."""
    made = [] if made is None else made
    used = [] if used is None else used

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    class TimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> bytes:
            return TIMING

    class Config:
        progress_monitor = None

        def set_memory_pool_limit(self, pool, size) -> None:
            pass

        def add_optimization_profile(self, profile) -> None:
            pass

        def create_timing_cache(self, data) -> TimingCache:
            made.append(bytes(data))
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache, ignore_mismatch) -> bool:
            used.append(cache.data)
            return True

        def get_timing_cache(self) -> TimingCache:
            return TimingCache(b"")

    class Network:
        num_inputs = num_outputs = 0
        get_input = get_output = None

    def call(monitor, name: str, *args, failed=None):
        try:
            return getattr(monitor, name)(*args)
        except BaseException as exc:  # noqa: BLE001 - as the binding: printed, then dropped
            print(f"[ERROR] Exception caught in {name}(): {exc!r}", file=sys.stderr)
            return failed

    class Builder:
        def __init__(self, logger) -> None:
            pass

        def create_network(self, flags: int) -> Network:
            return Network()

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> object:
            return object()

        def build_serialized_network(self, network, config) -> bytes | None:
            if on_start is not None:
                on_start()
            monitor = config.progress_monitor
            fake.cancelled = False

            def step(i: int) -> None:
                if fake.cancelled:
                    return
                time.sleep(step_s)
                fake.stepped += 1
                if not call(monitor, "step_complete", PHASE, i, failed=False):
                    fake.cancelled = True

            def tail() -> None:
                if not fake.cancelled:
                    time.sleep(tail_s)

            if monitor is None:
                work = [lambda: time.sleep(steps * step_s + tail_s)]
            else:
                work = [lambda: call(monitor, "phase_start", PHASE, None, steps)]
                work += [functools.partial(step, i) for i in range(steps)]
                work += [tail, lambda: call(monitor, "phase_finish", PHASE)]
            if on_caller:
                run_on_calling_thread(work)
            else:
                run_on_native_thread(lambda: [w() for w in work])
            return None if fake.cancelled else PLAN

    class Parser:
        num_errors = 0

        def __init__(self, network, logger) -> None:
            pass

        def parse(self, model: bytes, path: str | None = None) -> bool:
            return True

    fake = types.ModuleType("tensorrt")  # hashable, as `_progress_monitor_class`'s cache needs
    vars(fake).update(
        __version__="10.3.0",
        Builder=Builder,
        OnnxParser=Parser,
        IProgressMonitor=IProgressMonitor,
        NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=0),
        MemoryPoolType=types.SimpleNamespace(WORKSPACE=0),
        BuilderFlag=types.SimpleNamespace(),  # no TF32 flag to clear
        stepped=0,
        cancelled=False,
    )
    return fake
