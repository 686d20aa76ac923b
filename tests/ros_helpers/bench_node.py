"""Node throughput and stamp-to-publish latency for 640x480 input, through real DDS.

    FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA PYTHONPATH=.:tests \
        python -m ros_helpers.bench_node --preset tiny --rate 60 --duration 20

Starts `depthart_node` (torch backend, random weights of the preset unless --checkpoint is given)
and a camera process publishing at --rate, receives `depth` in this process, and prints one JSON
line: frames/s published by the node, latency (receive time - header stamp) p50/p95 measured
here, the node's own diagnostics (latency p50/p95, inference p50, counters), and RSS growth.

The per-frame cost of the uncertainty outputs (issue #25): --head-width 16 gives the random
model an uncertainty head of that width (training/uncertainty_head.py's default), and
--uncertainty also subscribes `depth/uncertainty` and `depth/filtered`, so every frame runs the
head and the filter; compare with the same command without --uncertainty (the plain pass):

    ... python -m ros_helpers.bench_node --preset tiny_cnn_refine --head-width 16 --rate 10 \
        --duration 20 [--uncertainty]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image, PointCloud2

from depthart_core.checkpoint import save_checkpoint
from depthart_core.config import get_preset
from depthart_core.model import DepthART
from ros_helpers.harness import NodeProcess, RosPeer, run_helper, stamp_ns, unique_domain_id


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--backend", default="torch", help="node backend: torch|onnxruntime|auto")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--rate", type=float, default=60.0)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--encoding", default="rgb8")
    ap.add_argument("--best-effort", action="store_true", help="default QoS (else reliable)")
    ap.add_argument("--flip-average", action="store_true", help="node parameter flip_average")
    ap.add_argument(
        "--points-stride", type=int, default=0, help="subscribe depth/points at this stride"
    )
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds excluded from stats")
    ap.add_argument("--head-width", type=int, default=0, help="random uncertainty head width")
    ap.add_argument(
        "--uncertainty", action="store_true", help="subscribe depth/uncertainty, depth/filtered"
    )
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="depthart_bench_"))
    ckpt = a.checkpoint
    if ckpt is None:
        torch.manual_seed(0)
        cfg = dataclasses.replace(get_preset(a.preset), uncertainty_width=a.head_width)
        ckpt = str(save_checkpoint(tmp / f"{a.preset}.safetensors", DepthART(cfg)))
    domain = unique_domain_id()
    peer = RosPeer(domain)
    peer.subscribe(Image, "depth", depth=5)
    peer.subscribe(DiagnosticArray, "/diagnostics")
    params = {"checkpoint": ckpt, "backend": a.backend, "publish_colored": False}
    if a.flip_average:
        params |= {"flip_average": True}
    if not a.best_effort:
        params |= {"input_qos.reliability": "reliable"}
    if a.points_stride:
        params |= {"points.stride": a.points_stride}
        peer.subscribe(PointCloud2, "depth/points", depth=5)
    if a.uncertainty:
        peer.subscribe(Image, "depth/uncertainty", depth=5)
        peer.subscribe(Image, "depth/filtered", depth=5)
    node = NodeProcess(domain, params, tmp / "node.log")
    try:
        peer.wait_ready(node)
        rss = [(0.0, node.rss_mb())]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.5):
                rss.append((time.time() - t0, node.rss_mb()))

        t0 = time.time()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        args = ["ros_helpers.publisher", "load", "--rate", str(a.rate)]
        args += ["--duration", str(a.duration), "--encoding", a.encoding]
        args += ["--manifest", str(tmp / "m.jsonl")] + ([] if a.best_effort else ["--reliable"])
        res = run_helper(domain, args, timeout=a.duration + 120)
        done.set()
        sampler.join()
        assert res.returncode == 0, res.stderr
        after_warmup = [mb for t, mb in rss if t >= a.warmup]
        time.sleep(1.5)
        diag = peer.wait_diagnostics(after=time.time())
        published = json.loads((tmp / "m.jsonl").read_text().splitlines()[-1])["published"]
        lines = (tmp / "m.jsonl").read_text().splitlines()[:-1]
        stamps = [json.loads(x)["stamp_ns"] for x in lines]
        start_ns = stamps[0] + int(a.warmup * 1e9)
        end_ns = stamps[-1]
        got = [(t, stamp_ns(m.header)) for t, m in peer.timed("depth")]
        steady = [(t, s) for t, s in got if start_ns <= s <= end_ns]
        lat_ms = np.array([(t - s / 1e9) * 1e3 for t, s in steady])
        span_s = (end_ns - start_ns) / 1e9
        out = {
            "model": a.checkpoint
            or f"{a.preset} (random)" + (f" + head {a.head_width}" if a.head_width else ""),
            "backend": a.backend,
            "input": f"640x480 {a.encoding} at {a.rate:g} Hz, "
            + ("best effort" if a.best_effort else "reliable"),
            "fps": round(len(steady) / span_s, 2),
            "latency_p50_ms": round(float(np.percentile(lat_ms, 50)), 1),
            "latency_p95_ms": round(float(np.percentile(lat_ms, 95)), 1),
            "node_latency_p50_ms": float(diag["latency_p50_ms"]),
            "node_latency_p95_ms": float(diag["latency_p95_ms"]),
            "node_inference_p50_ms": float(diag["inference_p50_ms"]),
            "published": published,
            "points_received": len(peer.messages("depth/points")) if a.points_stride else None,
            "uncertainty": diag.get("uncertainty"),
            "uncertainty_frames": int(diag.get("uncertainty_frames", 0)),
            "filtered_received": len(peer.messages("depth/filtered")) if a.uncertainty else None,
            **{k: int(diag[f"frames_{k}"]) for k in ("received", "processed", "replaced")},
            "rss_mb_ready": round(rss[0][1], 1),
            "rss_growth_after_warmup_mb": round(max(after_warmup) - after_warmup[0], 1),
            "rss_mb_quartiles": [
                round(after_warmup[int(q * (len(after_warmup) - 1))], 1)
                for q in (0, 0.25, 0.5, 0.75, 1.0)
            ],  # fmt: skip
            "wall_s": round(time.time() - t0, 1),
        }
        print(json.dumps(out))
    finally:
        node.close()
        peer.close()


if __name__ == "__main__":
    main()
