"""Signals a long-running command turns into Ctrl-C, so its clean-up runs.

Python ends the process at once on SIGTERM and SIGHUP (a CI job's timeout, systemd, a closed
terminal): no `finally` runs, and children in their own session, or busy loops, live on.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def interrupt_on_termination(only_default: bool = False) -> Iterator[None]:
    """While open (in the main thread), SIGTERM and SIGHUP raise KeyboardInterrupt as Ctrl-C
    does, so the caller's clean-up runs (live replay: the node stopped, the partial report
    written; cpu_load: the busy loops stopped). A signal ignored when it opens stays ignored
    (nohup). `only_default`: take only a signal at its default disposition, so that a program
    calling in (`depthart_core.cli.main` as a library) keeps the one it handles itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    interrupt.stops_the_program = True  # type: ignore[attr-defined]

    # not over an ignored signal (a command under `nohup` must outlive the terminal), nor over
    # one installed outside Python (None: it could not be put back)
    skip = (signal.SIG_IGN, None)
    chosen = [
        s
        for s in (signal.SIGTERM, signal.SIGHUP)
        if signal.getsignal(s) not in skip
        and (not only_default or signal.getsignal(s) is signal.SIG_DFL)
    ]
    previous = {sig: signal.signal(sig, interrupt) for sig in chosen}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stops_the_program(handler: object) -> bool:
    """Whether `handler` (`signal.getsignal`'s) ends the program when its signal comes: Python's
    Ctrl-C handler (KeyboardInterrupt), or `interrupt_on_termination`'s. A handler of the
    program's own may reload settings or ask for a second Ctrl-C; work that stops on a signal
    before its handler has run (`tensorrt_backend`'s build) stops only on these."""
    return handler is signal.default_int_handler or getattr(handler, "stops_the_program", False)
