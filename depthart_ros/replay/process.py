"""Live replay, the node side: how the node under test is started, fed, talked to and stopped.

`LiveConfig` says how the node runs; `node_command` remaps its topics onto the bag's, `ros_env`
gives it and the replay a private ROS domain with discovery and transports that carry large
images, and `start_process` / `stop_process` run it as its own process group. `LiveTransport`
is the ROS side the replay talks through, injected so that the replay runs (and is tested)
without rclpy (the rclpy one is `depthart_ros.replay.transport.RclpyTransport`).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from depthart_core.fileutil import cache_root, lock_holder, open_lock_file, write_lock_holder
from depthart_core.procutil import death_signal_setter
from depthart_core.replay.frames import ReplayConfig
from depthart_core.rosio.compressed import COMPRESSED_IMAGE_TYPE, TRANSPORT_SUFFIX
from depthart_core.rosio.messages import IMAGE_TYPE
from depthart_ros.dds import default_ports, discovery_port, discovery_port_held

log = logging.getLogger(__name__)
T = TypeVar("T")

DOMAIN_ENV = "DEPTHART_REPLAY_DOMAIN_ID"
MAX_DOMAIN_ID = 232  # Fast DDS's ports (default port base) run out above it
RANDOM_DOMAIN_IDS = range(30, 102)  # `pick_domain_id`'s choice
DISCOVERY_RANGE = "ROS_AUTOMATIC_DISCOVERY_RANGE"
# The replay's own discovery: ROS 2's default. LOCALHOST makes rmw_fastrtps set its own loopback
# locators, and 640x480 best-effort frames were then lost on the way to the node (4-6 of 10
# delivered, 10 of 10 under SUBNET), and the deprecated ROS_LOCALHOST_ONLY=1 imposes LOCALHOST;
# OFF kept the two processes from ever finding each other. The random private domain keeps the
# run apart.
REPLAY_DISCOVERY_RANGE = "SUBNET"
# The shell's settings that would keep the replay's two processes apart, removed from both: the
# deprecated ROS_LOCALHOST_ONLY=1 imposes LOCALHOST; a discovery server (Fast DDS's
# ROS_DISCOVERY_SERVER, ROS_SUPER_CLIENT) is the robot's, and neither process finds the other
# through it on the private domain (0 matched with no server running). The replay runs its own
# pair of processes, which need no server.
DROPPED_ENV = ("ROS_LOCALHOST_ONLY", "ROS_DISCOVERY_SERVER", "ROS_SUPER_CLIENT")
# what the replay sets in its own process as in the node's (`ros_env`; `apply_env` / `restore_env`)
REPLAY_ENV_KEYS = ("FASTDDS_BUILTIN_TRANSPORTS", DISCOVERY_RANGE, *DROPPED_ENV)


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
        if self.domain_id is not None:
            check_domain_id(self.domain_id, "ROS domain id")
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

    def not_ready_said(self) -> str:
        """While not `ready`: what is missing, for the start-up timeout's message."""

    def publish(self, key: str, raw: bytes) -> None:
        """Publish CDR bytes on topics[key] ("image" or "camera_info")."""

    def diagnostics(self) -> list[dict[str, Any]]:
        """The node's latest /diagnostics statuses as plain dicts."""

    def close(self) -> None: ...


def check_domain_id(value: int, what: str) -> int:
    if not 0 <= value <= MAX_DOMAIN_ID:
        raise ValueError(f"{what} must be in [0, {MAX_DOMAIN_ID}], got {value}")
    return value


def pick_domain_id(requested: int | None = None) -> int:
    """`requested`, else $DEPTHART_REPLAY_DOMAIN_ID (checked, naming it), else a random id whose
    discovery port is free; a given id whose port another socket holds is refused
    (`depthart_ros.dds.discovery_port_held`: the two processes would never meet)."""
    if domain_is_given(requested):
        return _given_domain_id(requested)
    drawn = _draw(lambda domain_id: domain_id)
    if drawn is None:
        raise RuntimeError(_none_free("held by a socket that does not share it"))
    return drawn


def claim_domain(requested: int | None = None) -> DomainClaim:
    """`pick_domain_id`, claimed for the run among this user's live replays on this host
    (`DomainClaim`): a random draw skips a domain another replay runs on; a given one that
    another replay runs on is refused, naming its process."""
    if domain_is_given(requested):
        domain_id = _given_domain_id(requested)
        claim = DomainClaim.take(domain_id)
        if claim is None:
            path = DomainClaim.path(domain_id)
            pid, host = lock_holder(path)
            other = (
                "choose another domain id, or none for a free one"
                if requested is not None
                else f"set ${DOMAIN_ENV} to another domain id, or unset it for a free one"
            )
            raise RuntimeError(
                f"another live replay (pid {pid}, host {host}; {path}) runs on ROS domain "
                f"{domain_id}: each node would answer the other's frames; {other}"
            )
        return claim
    claim = _draw(DomainClaim.take)
    if claim is None:
        raise RuntimeError(_none_free("held, or taken by other live replays"))
    return claim


def domain_is_given(requested: int | None = None) -> bool:
    """Whether the domain is the user's (`requested`, i.e. --domain-id, or
    $DEPTHART_REPLAY_DOMAIN_ID) rather than drawn at random."""
    return requested is not None or bool(os.environ.get(DOMAIN_ENV, "").strip())


def _given_domain_id(requested: int | None) -> int:
    if requested is not None:
        return _check_port_free(check_domain_id(requested, "ROS domain id"), "domain id")
    env = os.environ.get(DOMAIN_ENV, "").strip()
    try:
        value = int(env)
    except ValueError:
        raise ValueError(
            f"${DOMAIN_ENV} must be a ROS domain id, an integer in [0, {MAX_DOMAIN_ID}], "
            f"got {env!r}"
        ) from None
    return _check_port_free(check_domain_id(value, f"${DOMAIN_ENV}"), f"${DOMAIN_ENV}")


def _draw(usable: Callable[[int], T | None]) -> T | None:
    """`usable(id)` of the first id, in random order among `RANDOM_DOMAIN_IDS`, whose discovery
    port is free and for which it is not None. ROS 2's safe ids on Linux: above 101 Fast DDS's
    ports fall among the ephemeral ones (32768-60999) another socket may hold; 0-29 are left to
    the robots' own domains."""
    ids = list(RANDOM_DOMAIN_IDS)
    random.SystemRandom().shuffle(ids)
    for domain_id in ids:
        if not _port_held(domain_id) and (found := usable(domain_id)) is not None:
            return found
    return None


def _none_free(why: str) -> str:
    first, last = RANDOM_DOMAIN_IDS[0], RANDOM_DOMAIN_IDS[-1]
    return (
        f"every ROS domain id in {first}-{last} has its discovery port "
        f"({discovery_port(first)}-{discovery_port(last)}/udp) {why}; give a domain id whose "
        f"port is free"
    )


class DomainClaim:
    """A live replay's hold on its ROS domain among this user's live replays on this host, for
    the run's length: an exclusive `flock` on `<cache root>/replay-domains/<id>.lock`, which
    names its holder. Two replays at once on one domain each published into the other's node
    and scored the other's outputs; a random draw of 72 ids met another run's 1 time in 72 (with
    8 at once, about 1 in 3). Where the cache root cannot be written, the run goes on unclaimed.
    The kernel drops the lock of a process that dies."""

    def __init__(self, domain_id: int, lock: io.TextIOWrapper | None) -> None:
        self.domain_id, self._lock = domain_id, lock

    @staticmethod
    def path(domain_id: int) -> Path:
        return cache_root() / "replay-domains" / f"{domain_id}.lock"

    @classmethod
    def take(cls, domain_id: int) -> DomainClaim | None:
        """The claim on `domain_id`, or None while another process holds it, or where its lock
        file cannot be opened as a plain file of its own (another user's, a link, a folder:
        taken, as far as this run can tell). A cache root whose folder cannot be made: the
        run goes on unclaimed."""
        try:
            path = cls.path(domain_id)
            path.parent.mkdir(parents=True, exist_ok=True)
        except (OSError, RuntimeError) as exc:  # a read-only or homeless cache: unclaimed
            log.debug("ROS domain %d not claimed: %s", domain_id, exc)
            return cls(domain_id, None)
        try:
            lock = open_lock_file(path, 0o644)
        except OSError as exc:
            log.debug("ROS domain %d taken: %s: %s", domain_id, path, exc)
            return None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return None
        write_lock_holder(lock)
        return cls(domain_id, lock)

    def release(self) -> None:
        if self._lock is not None:
            with contextlib.suppress(OSError):  # no stale holder for the next one to name
                os.ftruncate(self._lock.fileno(), 0)
            self._lock.close()  # the flock goes with it
            self._lock = None

    def __enter__(self) -> DomainClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _port_held(domain_id: int) -> bool:
    """`discovery_port_held`, where the replay's processes discover on Fast DDS's default ports
    (`depthart_ros.dds.default_ports`; not under another middleware or a user's XML profile)."""
    return default_ports(os.environ) and discovery_port_held(domain_id)


def _check_port_free(domain_id: int, what: str) -> int:
    if _port_held(domain_id):
        port = discovery_port(domain_id)
        raise RuntimeError(
            f"ROS domain {domain_id}'s discovery port {port}/udp is held by a socket that does "
            f"not share it (`ss -uapn 'sport = :{port}'` names its process): the replay and the "
            f"node would never discover each other there; choose another {what}"
        )
    return domain_id


def ros_env(domain_id: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a ROS process of the replay (the node's, and `apply_env` for the replay's
    own): its private domain, ROS 2's default discovery whatever the shell has
    (`REPLAY_DISCOVERY_RANGE`; ROS_STATIC_PEERS, where set, is added to it), none of
    `DROPPED_ENV` (ROS_LOCALHOST_ONLY would override the range; a discovery server would keep the
    two apart), and Fast DDS's LARGE_DATA transports unless set (large images are lost over
    default UDP best effort)."""
    env = dict(os.environ if base is None else base)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
    env[DISCOVERY_RANGE] = REPLAY_DISCOVERY_RANGE
    for key in DROPPED_ENV:
        env.pop(key, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def apply_env(
    env: dict[str, str], keys: tuple[str, ...] = REPLAY_ENV_KEYS
) -> dict[str, str | None]:
    """Set `keys` in this process's environment as `env` has them (absent: removed), for the
    replay's own participant; returns the values they had, for `restore_env`."""
    saved = {k: os.environ.get(k) for k in keys}
    for k in keys:
        if k in env:
            os.environ[k] = env[k]
        else:
            os.environ.pop(k, None)
    return saved


def restore_env(saved: dict[str, str | None]) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def discovery_said(env: dict[str, str]) -> str:
    """How the replay's processes discover each other, for a message."""
    said = f"ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, {DISCOVERY_RANGE}={env[DISCOVERY_RANGE]}"
    peers = env.get("ROS_STATIC_PEERS")
    return said + (f", ROS_STATIC_PEERS={peers}" if peers else ", no ROS_STATIC_PEERS")


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
    main = threading.current_thread() is threading.main_thread()
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(
            cmd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=death_signal_setter() if main else None,
        )


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
