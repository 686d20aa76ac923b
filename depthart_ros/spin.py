"""Spin an rclpy executor until its context ends, however the end arrives.

rclpy's SIGINT/SIGTERM handler (and any `context.shutdown()` from another thread) ends the
context asynchronously. When that lands while the executor is building its next wait set, rclpy
raises `RCLError: failed to initialize wait set: the given context is not valid` rather than
`ExternalShutdownException` (ros2/rclpy#968, open upstream). Measured here: under a busy CPU
the node's SIGTERM exit code became 1 with that traceback. Both are a shutdown, not a failure.
Anything raised while the context is still valid is a real error and propagates.
"""

from __future__ import annotations

from rclpy.context import Context
from rclpy.executors import Executor, ExternalShutdownException


def spin_until_context_ends(executor: Executor, context: Context) -> None:
    """`executor.spin()`; return quietly on Ctrl-C or when `context` has been shut down."""
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if context.ok():
            raise
