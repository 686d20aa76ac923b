"""Live replay, the node side: how the node under test is started, fed, talked to and stopped.

`LiveConfig` says how the node runs; `node_command` remaps its topics onto the bag's, `ros_env`
gives it a private ROS domain on loopback, and `start_process` / `stop_process` run it as its own
process group. `LiveTransport` is the ROS side the replay talks through, injected so that the
replay runs (and is tested) without rclpy (the rclpy one is
`depthart_ros.replay.transport.RclpyTransport`).
"""

from __future__ import annotations

import ctypes
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from depthart_core.replay.frames import ReplayConfig
from depthart_core.rosio.compressed import COMPRESSED_IMAGE_TYPE, TRANSPORT_SUFFIX
from depthart_core.rosio.messages import IMAGE_TYPE

PR_SET_PDEATHSIG = 1  # <sys/prctl.h>


@dataclass(frozen=True)
class LiveConfig:
    """How the node is started and fed. `node_cmd` replaces `python -m depthart_ros.node`."""

    checkpoint: str | None = None
    backend: str = "torch"  # the node's `backend` parameter
    rate: float = 1.0  # multiple of the recorded rate
    domain_id: int | None = None  # None: $DEPTHART_REPLAY_DOMAIN_ID, else random in [30, 101]
    node_cmd: tuple[str, ...] = ()
    node_args: tuple[str, ...] = ()  # extra --ros-args items, e.g. ("-p", "letterbox:=true")
    startup_timeout_s: float = 60.0  # node start, model load and the first (warm-up) output
    drain_timeout_s: float = 5.0  # after the last frame, wait this long for outstanding outputs
    time_limit_s: float = 600.0  # whole run, startup included
    restamp: bool = True  # wall-clock stamps at publish time, as a live camera would send

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0 (a multiple of the recorded rate), got {self.rate}")
        if self.domain_id is not None and not 0 <= self.domain_id <= 232:
            raise ValueError(f"ROS domain id must be in [0, 232], got {self.domain_id}")
        for name in ("startup_timeout_s", "drain_timeout_s", "time_limit_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 s, got {getattr(self, name)}")


class LiveTransport(Protocol):
    """The ROS side of live replay (rclpy in `depthart_ros.replay.transport.RclpyTransport`)."""

    def open(
        self, domain_id: int, topics: dict[str, str], on_output: Callable[[bytes, float], None]
    ) -> None:
        """Join `domain_id`; publishers for topics["image"] (of type topics["image_type"], a
        sensor_msgs/msg/Image or CompressedImage) and topics["camera_info"] if given, a
        subscription to topics["output"] calling `on_output(cdr_bytes, time.monotonic())`."""

    def ready(self) -> bool:
        """True once the node subscribes to the images and publishes the output topic."""

    def publish(self, key: str, raw: bytes) -> None:
        """Publish CDR bytes on topics[key] ("image" or "camera_info")."""

    def diagnostics(self) -> list[dict[str, Any]]:
        """The node's latest /diagnostics statuses as plain dicts."""

    def close(self) -> None: ...


def pick_domain_id(requested: int | None = None) -> int:
    if requested is not None:
        return requested
    env = os.environ.get("DEPTHART_REPLAY_DOMAIN_ID")
    if env:
        return int(env)
    # ROS 2's safe ids on Linux: above 101 Fast DDS's ports fall among the ephemeral ones
    # (32768-60999) another socket may hold; 0-29 are left to the robots' own domains
    return random.SystemRandom().randint(30, 101)


def ros_env(domain_id: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a ROS process of the replay: its own domain, loopback discovery, and
    Fast DDS's LARGE_DATA transports (large images are lost over default UDP best effort)."""
    env = dict(os.environ if base is None else base)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def node_command(
    cfg: ReplayConfig, live: LiveConfig, checkpoint: Path, image_type: str = IMAGE_TYPE
) -> list[str]:
    """The node with its topics remapped onto the bag's and its output onto `cfg.pred_topic`. A
    bag's CompressedImage topic `<base>/compressed` is read by the node's `image_transport:
    compressed` with `image` remapped to `<base>`, as image_transport names it."""
    cmd = list(live.node_cmd) or [sys.executable, "-m", "depthart_ros.node"]
    # the user's items win: after our -p (the last override of a parameter counts) and before
    # our -r (the first matching remap rule counts)
    params = ["-p", f"checkpoint:={checkpoint}", "-p", f"backend:={live.backend}"]
    args: list[str] = []
    if image_type == COMPRESSED_IMAGE_TYPE:
        suffix = TRANSPORT_SUFFIX["compressed"]
        if not cfg.image_topic.endswith(suffix) or cfg.image_topic == suffix:
            raise ValueError(
                f"image topic {cfg.image_topic!r} holds {image_type}, but live replay feeds it "
                f"to the node's image_transport, which reads <base>{suffix}; the offline replay "
                "(without --live) reads it under any name"
            )
        base = cfg.image_topic[: -len(suffix)]
        params += ["-p", "image_transport:=compressed"]
        args += ["-r", f"image:={base}"]
    else:
        args += ["-r", f"image:={cfg.image_topic}"]
    if cfg.camera_info_topic:
        args += ["-r", f"camera_info:={cfg.camera_info_topic}"]
    args += ["-r", f"depth:={cfg.pred_topic}"]
    args += ["-r", f"depth/camera_info:={cfg.pred_topic}/camera_info"]
    return cmd + ["--ros-args", *params, *live.node_args, *args]


def start_process(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start `cmd` in its own session (so it and its children can be signalled as a group). On
    Linux, from the main thread, it also gets SIGTERM when this process dies, even by SIGKILL
    (its own session keeps it from our terminal's signals, so nothing else would stop it)."""
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(
            cmd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent() if threading.current_thread() is threading.main_thread()
            else None,
        )  # fmt: skip


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to send the child SIGTERM when its parent dies (prctl's
    PR_SET_PDEATHSIG), or None where there is no such call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_death_signal() -> None:  # in the child, between fork and exec
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the call: nobody would send it
            os.kill(os.getpid(), signal.SIGTERM)

    return set_death_signal


def stop_process(proc: subprocess.Popen, grace_s: float = 5.0) -> int | None:
    """SIGINT, then SIGTERM, then SIGKILL to the process group we started; returns the code."""
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
    try:  # children the node left behind in its group
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return proc.poll()


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"
