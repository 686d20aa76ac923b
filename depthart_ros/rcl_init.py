"""What rclpy.init refuses, said in one line with what to set: one home for the wording, used by
the node's start (`depthart_ros.node.init_or_exit`) and the live replay's own participant
(`depthart_ros.replay.transport`)."""

from __future__ import annotations

import os
import re

# rcl's messages end in the C sources they passed through: ", at /project/src/rcl/arguments.c:415"
_RCL_SOURCE = re.compile(r"\s*,\s*at \S+\.(?:c|cc|cpp|cxx|h|hpp):\d+")
# rcl_logging_spdlog's "Failed to create log directory '<path>': <errno>"
_LOG_DIR_ERRNO = re.compile(r"(Failed to create log directory '[^']*'): (\d+)")
# rcl_logging_spdlog's when '~' (ROS_LOG_DIR's, ROS_HOME's or the default ~/.ros/log) has no HOME
_LOG_DIR_NO_HOME = "Failed to get logging directory"
LOG_DIR_ADVICE = (
    "set ROS_LOG_DIR (or ROS_HOME, whose log/ it uses; else ~/.ros/log) to a directory this user "
    "can create and write"
)


def rcl_init_problem(exc: BaseException) -> str:
    """rclpy.init's error (a missing or broken params file, a bad `--log-level` or `-p`, a
    ROS_DOMAIN_ID that is no number, a log directory under a file or with no HOME to expand its
    '~') as one line: rcl's source locations dropped and its line breaks joined; for a log
    directory the errno named (`: 20` is `: Not a directory`), an unset HOME said, and what to
    set, for ROS_DOMAIN_ID its value."""
    text = " ".join(_RCL_SOURCE.sub("", str(exc)).split())
    found = _LOG_DIR_ERRNO.search(text)
    if found:
        errno_text = os.strerror(int(found[2]))
        text = f"{text[: found.start()]}{found[1]}: {errno_text}{text[found.end() :]}"
        text += f"; {LOG_DIR_ADVICE}"
    elif _LOG_DIR_NO_HOME in text:
        if os.environ.get("HOME"):
            text += f"; {LOG_DIR_ADVICE}"
        else:
            text += f" (HOME is not set, so '~' names no directory); set HOME, or {LOG_DIR_ADVICE}"
    elif "ROS_DOMAIN_ID" in text and "ROS_DOMAIN_ID" in os.environ:
        text += f" (ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']!r})"
    return text or type(exc).__name__
