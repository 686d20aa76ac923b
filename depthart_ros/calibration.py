"""The CameraInfo of each depth frame: paired with its image by stamp, whatever order the two
arrive in, and rescaled to the depth image's size.

A camera driver publishes `image` and `camera_info` with identical headers at the same moment, but
they travel on two topics and the node's executor may run their callbacks in either order (under
load the calibration often lands after its image). `CalibrationPairer` therefore pairs by stamp,
as image_transport's CameraSubscriber does, with a bounded wait and a fallback for calibration
publishers that stamp differently (a static or latched camera_info):

1. a good calibration with the image's exact stamp: `paired`;
2. none yet: wait for it until `camera_info.wait_s` after the image arrived;
3. still none: the newest good calibration, counted as `newest`. After such a timeout the pairer
   stops waiting, so a static publisher costs one wait, not one per frame; a calibration that
   arrives with the stamp of a recent image turns waiting back on;
4. no calibration at all: `missing`, the depth goes out without `depth/camera_info`.

Which topic and whether it is silent: `camera_info_beside` names the calibration topic beside an
image topic as image_transport does, and `camera_info_silence` says why diagnostics warn when
images come and no calibration ever does (a driver publishing it under another name, or a QoS
that matches no publisher) rather than leaving the depth silently without `depth/camera_info`.

Free of rclpy; `camera_info_for` builds the sensor_msgs/CameraInfo the node republishes (its
fields from `depthart_core.rosio.camera_info.depth_camera`, which the replay's `--write-bag`
shares), and `aspect_problem` (kept there too) refuses a calibration of another aspect ratio
than the image.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

from sensor_msgs.msg import CameraInfo, RegionOfInterest

from depthart_core.rosio.camera_info import aspect_problem as aspect_problem
from depthart_core.rosio.camera_info import depth_camera

OUTCOMES = ("paired", "newest", "missing")


class CalibrationPairer:
    """Recent good calibrations by stamp, filled by the `camera_info` callback and read by the
    inference worker. Thread-safe; `pair` blocks for at most its deadline."""

    def __init__(self, maxlen: int = 32) -> None:
        self._cv = threading.Condition()
        self._infos: deque[tuple[int, Any]] = deque(maxlen=maxlen)
        self._images: deque[int] = deque(maxlen=maxlen)  # stamps of recent images
        self._expect_pairs = True  # drivers stamp image and calibration alike
        self._closed = False
        self.counts: Counter[str] = Counter()

    def note_image(self, stamp_ns: int) -> None:
        """Remember an incoming image's stamp (a late calibration with it re-enables waiting)."""
        with self._cv:
            self._images.append(stamp_ns)

    def add(self, stamp_ns: int, info: Any) -> None:
        with self._cv:
            self._infos.append((stamp_ns, info))
            self.counts["received"] += 1
            if stamp_ns in self._images:
                self._expect_pairs = True
            self._cv.notify_all()

    def pair(self, stamp_ns: int, deadline: float) -> tuple[Any | None, str]:
        """(calibration, outcome) for the image stamped `stamp_ns`; waits until `deadline`
        (time.monotonic()) for the exact stamp while pairs are expected."""
        with self._cv:
            exact = self._find(stamp_ns)
            wait_s = deadline - time.monotonic()
            if exact is None and self._expect_pairs and wait_s > 0 and not self._closed:
                self._cv.wait_for(
                    lambda: self._closed or self._find(stamp_ns) is not None, timeout=wait_s
                )
                exact = self._find(stamp_ns)
                self._expect_pairs = exact is not None
            if exact is not None:
                self._expect_pairs = True
                info, outcome = exact, "paired"
            elif self._infos:
                info, outcome = self._infos[-1][1], "newest"
            else:
                info, outcome = None, "missing"
            self.counts[outcome] += 1
            return info, outcome

    def _find(self, stamp_ns: int) -> Any | None:
        return next((info for s, info in reversed(self._infos) if s == stamp_ns), None)

    def latest(self) -> Any | None:
        with self._cv:
            return self._infos[-1][1] if self._infos else None

    def close(self) -> None:
        """End any wait now (node shutdown)."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()


def camera_info_beside(image_topic: str) -> str:
    """The CameraInfo topic of the resolved `image_topic`: its namespace + `camera_info`, as
    image_transport's `getCameraInfoTopic` names it (/camera/image_raw -> /camera/camera_info,
    /image -> /camera_info)."""
    return image_topic.rstrip("/").rsplit("/", 1)[0] + "/camera_info"


def remaps_name(
    ros_args: Sequence[str], name: str, expanded: str, node_names: Sequence[str]
) -> bool:
    """Whether `ros_args` (a command line's, or a node's own arguments) hold a remap rule for the
    topic `name`, whose expansion in the node's namespace is `expanded`: `-r`/`--remap` inside a
    `--ros-args` section matching `name`, `expanded`, or either after one of `node_names` (the
    node's name as rcl matches it: after a `__node` rename) and a colon (a rule for that node
    only), with or without `rostopic://`. A rule to the name's own expansion counts (`-r
    camera_info:=/camera_info` names a topic, though it resolves as no rule would)."""
    inside, rules = False, []
    it = iter(ros_args)
    for arg in it:
        if arg == "--ros-args":
            inside = True
        elif arg == "--":
            inside = False
        elif inside and arg in ("-r", "--remap"):
            rules.append(next(it, ""))
    for rule in rules:
        match = rule.split(":=", 1)[0]
        if "rosservice://" in match:  # a service's rule, not a topic's
            continue
        if "rostopic://" in match:  # [node:]rostopic://name
            node, _, topic = match.partition("rostopic://")
            node, sep = node.removesuffix(":"), node.endswith(":")
        else:
            node, sep, topic = match.rpartition(":")
        if sep and node not in node_names:
            continue
        if topic in (name, expanded):
            return True
    return False


def camera_info_silence(
    last_info: float | None,
    last_image: float | None,
    watched_since: float,
    now: float,
    timeout_s: float,
    topic: str,
) -> str | None:
    """Why the diagnostics should warn that images come but no calibration ever did, or None.

    Times are monotonic seconds. The warning needs `timeout_s` (the node's input_timeout_s;
    0 = off) since the node started listening (`watched_since`) without any camera_info
    (`last_info` None) while an image came within `timeout_s` (without images, their own
    warning says it). Only before the first calibration: a latched or static publisher sends
    one and may never send another."""
    if timeout_s <= 0 or last_info is not None or last_image is None:
        return None
    if last_image < watched_since or now - last_image >= timeout_s:
        return None
    silent = now - watched_since
    if silent < timeout_s:
        return None
    return (
        f"no camera_info on {topic} in the {silent:.0f} s since the node started listening, "
        "while images arrive: depth goes out without depth/camera_info (remap camera_info to "
        "the camera's calibration topic, or check its QoS against input_qos.reliability)"
    )


def camera_info_for(info: Any, header: Any, shape: tuple[int, ...]) -> CameraInfo:
    """The CameraInfo the node republishes beside a depth image of `shape`: `info` with the
    image's header and the intrinsics of the depth's pixels (`depth_camera`, which the replay's
    `--write-bag` shares)."""
    fields = depth_camera(info, shape)
    roi = RegionOfInterest(**fields.pop("roi"))
    return CameraInfo(header=header, roi=roi, **fields)
