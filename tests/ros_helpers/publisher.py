"""A camera in its own process: 640x480 `image` + `camera_info` with identical headers.

    python -m ros_helpers.publisher variants --repeat 2 --period 0.3 --reliable --manifest m.jsonl
    python -m ros_helpers.publisher load --rate 60 --duration 10 --encoding bayer_rggb8 ...

`variants` sends every encoding/padding/byte-order variant of `scenes.VARIANTS` (frame_id
`cam/<variant>`); `load` sends one encoding at a fixed rate. Stamps are the wall clock. The
manifest has one JSON line per published frame ({"variant", "stamp_ns"}) and a last
{"published": n}. Images go out with the sensor-data profile (best effort) a camera driver uses,
or reliable with --reliable; camera_info is reliable. With --await-camera-info the frames start
only once the node's diagnostics count a received camera_info (warm-up calibrations, frame_id
`warmup`, are sent until then): a writer matched on this side can still be unknown to the node's
reader for seconds, and its calibrations then never arrive.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image

from ros_helpers.harness import image_msg
from ros_helpers.scenes import VARIANTS, H, K, P, W, encode, scene_rgb, wire_fields


def _camera_info(header) -> CameraInfo:
    info = CameraInfo(header=header, height=H, width=W, distortion_model="plumb_bob")
    info.d = [0.0] * 5
    info.k, info.p = K, P
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    return info


def _node_has_camera_info(node, pub_info, timeout_s: float) -> bool:
    """Send warm-up calibrations until the node's /diagnostics count one received."""
    seen = []

    def on_diag(msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if int(values.get("camera_info_received", "0") or 0) > 0:
                seen.append(True)

    sub = node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    warm = Image()
    warm.header.frame_id = "warmup"
    deadline = time.monotonic() + timeout_s
    while not seen and time.monotonic() < deadline:
        warm.header.stamp = node.get_clock().now().to_msg()
        pub_info.publish(_camera_info(warm.header))
        end = time.monotonic() + 0.1
        while not seen and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.02)
    node.destroy_subscription(sub)
    return bool(seen)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["variants", "load"])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--period", type=float, default=0.3)
    ap.add_argument("--rate", type=float, default=60.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--encoding", default="rgb8", help="load mode: the encoding to send")
    ap.add_argument("--reliable", action="store_true", help="publish images reliable")
    ap.add_argument("--match-timeout", type=float, default=20.0)
    ap.add_argument(
        "--await-camera-info",
        action="store_true",
        help="start once the node's diagnostics show a camera_info received",
    )
    a = ap.parse_args()

    rclpy.init()
    node = rclpy.create_node("depthart_test_camera")
    # reliable: a deep history, so samples sent before the node has matched this writer are
    # still held for it when it does (discovery can take seconds on a loaded machine)
    qos = QoSProfile(depth=100) if a.reliable else qos_profile_sensor_data
    pub_img = node.create_publisher(Image, "image", qos)
    pub_info = node.create_publisher(CameraInfo, "camera_info", 100)
    deadline = time.monotonic() + a.match_timeout
    while pub_img.get_subscription_count() == 0 or pub_info.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            print("no subscriber matched image/camera_info", file=sys.stderr)
            return 2
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.5)  # let the match settle on the subscriber's side too
    if a.await_camera_info and not _node_has_camera_info(node, pub_info, a.match_timeout):
        print("the node's diagnostics never counted a camera_info received", file=sys.stderr)
        return 2

    rgb = scene_rgb()
    if a.mode == "variants":
        frames = [
            (v.name, wire_fields(encode(rgb, v.encoding), v.encoding, v.pad, v.bigendian))
            for v in VARIANTS
        ] * a.repeat
        period, count = a.period, len(frames)
    else:
        frames = [("load", wire_fields(encode(rgb, a.encoding), a.encoding))]
        period, count = 1.0 / a.rate, int(round(a.duration * a.rate))
    msgs = {name: image_msg(fields, 0, f"cam/{name}") for name, fields in frames}

    published = 0
    t0 = time.monotonic()
    with open(a.manifest, "w") as manifest:
        for i in range(count):
            time.sleep(max(0.0, t0 + i * period - time.monotonic()))
            name = frames[i % len(frames)][0]
            msg = msgs[name]
            msg.header.stamp = node.get_clock().now().to_msg()
            pub_info.publish(_camera_info(msg.header))
            pub_img.publish(msg)
            published += 1
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            manifest.write(json.dumps({"variant": name, "stamp_ns": stamp}) + "\n")
        manifest.write(json.dumps({"published": published}) + "\n")
    time.sleep(0.5)  # let the last samples leave before the participant goes away
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
