"""`depth/image`: the depth beside its `depth/camera_info`, where image_transport's camera
subscribers (depth_image_proc, rviz's DepthCloud) look for the calibration of an image topic.

A consumer subscribed to `depth` pairs it with `/camera_info` (the sibling of `/depth`): the
node's input calibration, which may lack P or describe another resolution. `depth/image`'s sibling
is `depth/camera_info`, the calibration the node rescaled to the depth (P built from K).

Two tiers: the publish step with fake publishers (laziness: nothing is published on `depth/image`
without a subscriber), then a real node in its own process (rclpy + Fast DDS on loopback,
FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA through `ros_helpers.harness`) whose `depth/image` message
equals its `depth` message for the same frame.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 sensor_msgs package")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from ros_helpers.harness import (  # noqa: E402
    NodeProcess,
    RosPeer,
    image_msg,
    stamp_ns,
    unique_domain_id,
)
from ros_helpers.scenes import scene_rgb, wire_fields  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from depthart_ros import node as node_mod  # noqa: E402
from depthart_ros.calibration import camera_info_beside  # noqa: E402
from depthart_ros.params import PARAMS  # noqa: E402

DEFAULTS = {p.name: p.default for p in PARAMS}


class FakePublisher:
    def __init__(self, subscribers: int) -> None:
        self.subscribers = subscribers
        self.sent: list[Any] = []

    def get_subscription_count(self) -> int:
        return self.subscribers

    def publish(self, msg: Any) -> None:
        self.sent.append(msg)


def test_depth_image_is_the_depth_message_and_only_published_while_subscribed() -> None:
    # image_transport's sibling rule: depth/image's calibration is the node's depth/camera_info
    assert camera_info_beside("/depth/image") == "/depth/camera_info"
    assert camera_info_beside("/depth") == "/camera_info"  # the input's, not the depth's
    pubs = {k: FakePublisher(0) for k in ("depth", "depth_image", "info", "colored", "points")}
    pubs["depth"].subscribers = 1
    core = SimpleNamespace(
        cfg=dict(DEFAULTS),
        pub_depth=pubs["depth"],
        pub_depth_image=pubs["depth_image"],
        pub_info=pubs["info"],
        pub_colored=pubs["colored"],
        pub_points=pubs["points"],
        _image=node_mod.DepthArtCore._image,
    )
    msg = Image()
    msg.header.frame_id = "cam"
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    node_mod.DepthArtCore._publish(core, msg, None, depth, None)
    assert len(pubs["depth"].sent) == 1
    assert pubs["depth_image"].sent == []  # lazy: nobody listens, nothing is published
    pubs["depth_image"].subscribers = 1
    node_mod.DepthArtCore._publish(core, msg, None, depth, None)
    assert len(pubs["depth_image"].sent) == 1
    assert pubs["depth_image"].sent[0] is pubs["depth"].sent[1]  # one message, serialized twice


@pytest.mark.ros
def test_depth_image_equals_depth_and_its_sibling_camera_info_is_the_rescaled_one(
    tmp_path: Path, tiny_checkpoint: str
) -> None:
    domain = unique_domain_id()
    peer = RosPeer(domain)
    params = {
        "checkpoint": tiny_checkpoint,
        "backend": "torch",
        "input_qos.reliability": "reliable",
        "input_qos.depth": 5,
        "publish_colored": False,
        "publish_points": False,
    }
    node = NodeProcess(domain, params, tmp_path / "node.log")
    try:
        peer.subscribe(Image, "depth", required=True)
        peer.subscribe(Image, "depth/image", required=True)
        peer.subscribe(CameraInfo, "depth/camera_info", required=True)
        peer.subscribe(DiagnosticArray, "/diagnostics")
        peer.wait_ready(node)
        pub_img = peer.publisher(Image, "image")
        pub_info = peer.publisher(CameraInfo, "camera_info")
        assert peer.wait_for(lambda: pub_img.get_subscription_count() > 0, 30), node.log()
        assert peer.wait_for(lambda: pub_info.get_subscription_count() > 0, 30), node.log()

        rgb = np.ascontiguousarray(scene_rgb(seed=2)[::4, ::4])  # 160x120: a small frame
        h, w = rgb.shape[:2]
        stamp = time.time_ns()
        info = CameraInfo(width=w, height=h, distortion_model="plumb_bob", d=[0.0] * 5)
        info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        info.k = [130.0, 0.0, 79.5, 0.0, 130.0, 59.5, 0.0, 0.0, 1.0]  # a driver that fills only K
        pub_info.publish(info)  # calibration first, then its image: as a driver sends them
        pub_img.publish(image_msg(wire_fields(rgb, "rgb8"), stamp, "cam/alias"))

        def find(topic: str) -> Any:
            return next((m for m in peer.messages(topic) if stamp_ns(m.header) == stamp), None)

        topics = ("depth", "depth/image", "depth/camera_info")
        arrived = peer.wait_for(lambda: all(find(t) is not None for t in topics), 30)
        assert arrived, f"missing: {[t for t in topics if find(t) is None]}\n{node.log()}"
        plain, alias, cal = (find(t) for t in topics)
        assert alias.header == plain.header and alias.header.frame_id == "cam/alias"
        for field in ("height", "width", "encoding", "is_bigendian", "step"):
            assert getattr(alias, field) == getattr(plain, field), field
        assert (alias.height, alias.width, alias.encoding) == (h, w, "32FC1")
        assert bytes(alias.data) == bytes(plain.data)
        # what a consumer of depth/image pairs with it: same stamp, and a P it can project with
        assert cal.header == alias.header
        assert list(cal.p) == [130.0, 0.0, 79.5, 0.0, 0.0, 130.0, 59.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    finally:
        node.close()
        peer.close()
