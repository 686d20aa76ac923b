"""`make demo`: a synthetic recording played live through the real node, with a report.

    python -m depthart_ros.demo --out demo_out [--checkpoint CKPT] [--frames 30] [--rate 5]

Writes a short synthetic ROS 2 bag (`demo_out/synthetic_bag`, MCAP: rgb8 images, camera info,
32FC1 ground-truth depth), starts `depthart_ros.node` in its own process on a private ROS domain,
plays the bag into it at the recorded rate, scores what comes back and writes `demo_out/report.md`,
`report.json` and the pictures; then prints frames, frames/s, latency and AbsRel.

Also here: `RclpyTransport`, the rclpy side of live replay (`depthart replay --live`). The replay
logic itself lives in `depthart_core.replay`, which never imports rclpy.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CameraInfo, Image

from depthart_core.bags import write_synthetic_bag
from depthart_core.checkpoint import default_checkpoint_path
from depthart_core.replay import LiveConfig, ReplayConfig, format_summary, replay_live


class RclpyTransport:
    """`depthart_core.replay.LiveTransport` over rclpy, in a private context on the replay's domain.

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
        rclpy.init(
            context=self._context,
            domain_id=domain_id,
            signal_handler_options=SignalHandlerOptions.NO,
        )
        self._node = Node("depthart_replay", context=self._context)
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE
        )
        self._pubs["image"] = self._node.create_publisher(Image, topics["image"], qos)
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
        try:
            self._executor.spin()
        except ExternalShutdownException:
            pass

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


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 240x320, got {text!r}") from None
    return h, w


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m depthart_ros.demo",
        description="Synthetic bag -> live replay through depthart_node -> report and pictures.",
    )
    p.add_argument("--out", default="demo_out", help="output directory (default: demo_out)")
    p.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    p.add_argument("--frames", type=int, default=30, help="frames in the synthetic bag")
    p.add_argument("--rate", type=float, default=5.0, help="recorded frame rate [Hz]")
    p.add_argument("--size", type=_size, default=(192, 256), help="image size HxW (192x256)")
    p.add_argument("--seed", type=int, default=0, help="synthetic scene seed")
    p.add_argument("--protocol", default="depthart", choices=("depthart", "affine", "metric"))
    p.add_argument("--backend", default="torch", help="node backend (torch|onnxruntime|auto)")
    p.add_argument("--domain-id", type=int, default=None, help="default: a random free-ish one")
    p.add_argument("--time-limit", type=float, default=240.0, help="whole replay bound [s]")
    return p


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint_path()
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {checkpoint}; pass --checkpoint or set DEPTHART_CHECKPOINT"
        )
    bag = out / "synthetic_bag"
    if bag.exists():  # the demo's own bag from an earlier run
        shutil.rmtree(bag)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    write_synthetic_bag(bag, args.frames, args.rate, args.seed, "mcap", size=args.size)
    print(
        f"wrote {args.frames} frames at {args.rate:g} Hz to {bag} ({time.monotonic() - t0:.1f} s)"
    )
    cfg = ReplayConfig(
        image_topic="/camera/image_raw",
        depth_topic="/camera/depth",
        camera_info_topic="/camera/camera_info",
        protocol=args.protocol,
    )
    live = LiveConfig(
        checkpoint=str(checkpoint),
        backend=args.backend,
        domain_id=args.domain_id,
        time_limit_s=args.time_limit,
    )
    return replay_live(bag, out, cfg, live, RclpyTransport())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run_demo(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"demo interrupted; partial report in {Path(args.out).resolve()}", file=sys.stderr)
        return 130
    print(format_summary(report, args.out))
    for name in report.get("pictures", {}).values():
        print(f"  picture: {Path(args.out).resolve() / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
