"""The rclpy side of live rosbag replay (`depthart replay --live`, `make demo`).

`RclpyTransport` implements `depthart_ros.replay.process.LiveTransport`: it joins the replay's
private ROS domain, publishes the bag's images and camera info to the node under test and hands
the node's `depth` outputs back with their receive time. The replay logic itself lives in
`depthart_ros.replay.live` and `depthart_core.replay`, which never import rclpy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from depthart_core.rosio.compressed import COMPRESSED_IMAGE_TYPE
from depthart_ros.rcl_init import rcl_init_problem
from depthart_ros.spin import spin_until_context_ends


class RclpyTransport:
    """`LiveTransport` (`depthart_ros.replay.process`) over rclpy, in a private context on the
    replay's domain.

    Images and camera info are published as raw CDR bytes (exactly as rosbag2 plays them) with a
    reliable keep-last-10 profile, which both best-effort and reliable subscribers accept. The
    output subscription copies the reliability the node's publisher offers, and takes raw bytes
    so the receive time is stamped before any deserialisation.
    """

    def __init__(self) -> None:
        self._context: Context | None = None
        self._node: Node | None = None
        self._executor: SingleThreadedExecutor | None = None
        self._thread: threading.Thread | None = None
        self._pubs: dict[str, Any] = {}
        self._sub: Any = None
        self._diag: DiagnosticArray | None = None
        self._lock = threading.Lock()

    def open(
        self, domain_id: int, topics: dict[str, str], on_output: Callable[[bytes, float], None]
    ) -> None:
        self._context = Context()
        try:
            rclpy.init(
                context=self._context,
                domain_id=domain_id,
                signal_handler_options=SignalHandlerOptions.NO,
            )
        except Exception as exc:  # a log directory it cannot make: the node's words for it
            raise RuntimeError(rcl_init_problem(exc)) from exc
        self._node = Node("depthart_replay", context=self._context)
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE
        )
        compressed = topics.get("image_type") == COMPRESSED_IMAGE_TYPE
        image_cls = CompressedImage if compressed else Image
        self._pubs["image"] = self._node.create_publisher(image_cls, topics["image"], qos)
        if "camera_info" in topics:
            self._pubs["camera_info"] = self._node.create_publisher(
                CameraInfo, topics["camera_info"], qos
            )
        self._output_topic = topics["output"]
        self._on_output = on_output
        self._node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, name="replay-executor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        spin_until_context_ends(self._executor, self._context)

    def _on_raw_output(self, raw: bytes) -> None:
        self._on_output(raw, time.monotonic())

    def _on_diag(self, msg: DiagnosticArray) -> None:
        with self._lock:
            self._diag = msg

    def ready(self) -> bool:
        if self._pubs["image"].get_subscription_count() == 0:
            return False
        if self._sub is None:
            infos = self._node.get_publishers_info_by_topic(self._output_topic)
            if not infos:
                return False
            qos = QoSProfile(
                history=HistoryPolicy.KEEP_LAST,
                depth=100,
                reliability=infos[0].qos_profile.reliability,
            )
            self._sub = self._node.create_subscription(
                Image, self._output_topic, self._on_raw_output, qos, raw=True
            )
        return self._sub.get_publisher_count() > 0

    def not_ready_said(self) -> str:
        """Which step of `ready` is missing, as the replay's participant sees the domain: no
        other node discovered at all (discovery), a node but no subscriber of the images (a
        topic or type mismatch), no publisher of the output, or one not matched."""
        me = (self._node.get_name(), self._node.get_namespace())
        nodes = [
            f"{ns.rstrip('/')}/{name}"
            for name, ns in self._node.get_node_names_and_namespaces()
            if (name, ns) != me
        ]
        if not nodes:
            return "the replay discovered no other node on its domain"
        seen = f"the replay discovered {', '.join(sorted(nodes))}"
        image = self._pubs["image"]
        if image.get_subscription_count() == 0:
            return f"{seen}, but no subscriber of {image.topic_name}"
        if self._sub is None:
            return f"{seen}, but no publisher of {self._output_topic}"
        return f"{seen}, whose {self._output_topic} its subscription has not matched"

    def publish(self, key: str, raw: bytes) -> None:
        self._pubs[key].publish(raw)

    def diagnostics(self) -> list[dict[str, Any]]:
        with self._lock:
            msg = self._diag
        if msg is None:
            return []
        return [
            {
                "name": s.name,
                "level": int.from_bytes(s.level, "little")
                if isinstance(s.level, bytes)
                else s.level,
                "message": s.message,
                "values": {kv.key: kv.value for kv in s.values},
            }
            for s in msg.status
        ]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=2.0)
        if self._node is not None:
            self._node.destroy_node()
        if self._context is not None:
            rclpy.try_shutdown(context=self._context)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._executor = self._node = self._context = self._thread = None
