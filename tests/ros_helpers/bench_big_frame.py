"""Memory of `depthart_node` around one oversized frame (issue: an 8000x6000 frame took the node
to 1.5 GB and left it at 822 MB).

    FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA PYTHONPATH=.:tests python -m ros_helpers.bench_big_frame
    ... --node-env DEPTHART_DDS_PROFILE=0      # rmw_fastrtps's own reader memory policy

Starts the node (torch backend, shipped checkpoint, reliable input), sends one 8000x6000 rgb8
frame (144 MB, over `max_input_pixels`), waits until diagnostics count it as `too_large`, then
sends six 640x480 frames and prints the node's resident memory before, 3 s after the big frame,
and after the small ones.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image

from ros_helpers.harness import NodeProcess, RosPeer, image_msg, stamp_ns, unique_domain_id


def _frame(h: int, w: int) -> dict:
    return {"height": h, "width": w, "encoding": "rgb8", "is_bigendian": 0, "step": w * 3,
            "data": bytes(h * w * 3)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--node-env", action="append", default=[], help="KEY=VALUE for the node")
    ap.add_argument("--log", default="/tmp/bench_big_frame_node.log")
    a = ap.parse_args()
    domain = unique_domain_id()
    peer = RosPeer(domain)
    peer.subscribe(DiagnosticArray, "/diagnostics")
    peer.subscribe(Image, "depth")
    os.environ.update(kv.split("=", 1) for kv in a.node_env)  # the node process inherits these
    node = NodeProcess(domain, {"backend": "torch", "input_qos.reliability": "reliable"},
                       Path(a.log))  # fmt: skip
    try:
        peer.wait_ready(node)
        pub = peer.publisher(Image, "image", reliable=True, depth=2)
        assert peer.wait_for(lambda: pub.get_subscription_count() > 0, 30), "no match"

        def answered(stamp: int) -> bool:
            return any(stamp_ns(m.header) == stamp for m in peer.messages("depth"))

        for _ in range(2):  # warm up: the model's own memory first
            s = time.time_ns()
            pub.publish(image_msg(_frame(480, 640), s, "cam"))
            assert peer.wait_for(lambda s=s: answered(s), 60)
        before = node.rss_mb()
        t = time.time()
        pub.publish(image_msg(_frame(6000, 8000), time.time_ns(), "cam"))
        counted = peer.wait_for(
            lambda: int((peer.diagnostics(after=t) or {}).get("rejected.too_large", 0)) >= 1, 120
        )
        time.sleep(3.0)
        after_big = node.rss_mb()
        for _ in range(6):
            s = time.time_ns()
            pub.publish(image_msg(_frame(480, 640), s, "cam"))
            assert peer.wait_for(lambda s=s: answered(s), 60)
        print(
            f"too_large counted: {counted}; node RSS {before:.0f} MB before, {after_big:.0f} MB "
            f"3 s after the 8000x6000 frame, {node.rss_mb():.0f} MB after 6 more 640x480 frames"
        )
    finally:
        node.close()
        peer.close()


if __name__ == "__main__":
    main()
