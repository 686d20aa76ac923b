"""Spin an rclpy executor until its context ends, however the end arrives.

rclpy's SIGINT/SIGTERM handler (and any `context.shutdown()` from another thread) ends the
context asynchronously. When that lands while the executor is building its next wait set, rclpy
raises `RCLError: failed to initialize wait set: the given context is not valid` rather than
`ExternalShutdownException` (ros2/rclpy#968, open upstream). Measured here: under a busy CPU
the node's SIGTERM exit code became 1 with that traceback. Both are a shutdown, not a failure.
Anything raised while the context is still valid is a real error and propagates.

A signal can also end the context without waking the executor at all. rclpy's signal thread
first triggers the executors' signal guard conditions, then shuts the contexts down
(`rclpy/src/rclpy/signal_handler.cpp`). An executor that wakes between the two still finds its
context valid, builds a new wait set and waits again, and `executor.spin()` waits with no
timeout, so nothing wakes it after the shutdown. Where Python itself ignores SIGINT (a node
started from a script's background job) or the signal is SIGTERM, no KeyboardInterrupt follows
either: a lifecycle node under a busy CPU was still waiting 60 s after SIGINT. So the spin here
waits at most `WAKE_S` at a time and checks the context itself between waits.
"""

from __future__ import annotations

from rclpy.context import Context
from rclpy.executors import Executor, ExternalShutdownException

WAKE_S = 0.25  # the longest a wait lasts before the context is checked again [s]


def spin_until_context_ends(executor: Executor, context: Context) -> None:
    """Run `executor`'s callbacks until `context` ends (Ctrl-C, SIGTERM, a shutdown from any
    thread) or the executor is shut down, then return quietly."""
    try:
        while context.ok() and executor.get_nodes():  # `shutdown` empties the executor
            executor.spin_once(timeout_sec=WAKE_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if context.ok():
            raise
