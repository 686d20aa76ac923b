"""`make demo`: a synthetic recording played live through the real node, with a report.

    python -m depthart_ros.replay.demo --out demo_out [--checkpoint CKPT] [--frames 30] [--rate 5]

Writes a short synthetic ROS 2 bag (`demo_out/synthetic_bag`, MCAP: rgb8 images, camera info,
32FC1 ground-truth depth), starts `depthart_ros.node` in its own process on a private ROS domain,
plays the bag into it at the recorded rate, scores what comes back and writes `demo_out/report.md`,
`report.json` and the pictures; then prints frames, frames/s, latency and AbsRel.

Live replay itself is `depthart_ros.replay.live.replay_live`, over the rclpy transport in
`depthart_ros.replay.transport`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from depthart_core.checkpoint import default_checkpoint_path
from depthart_core.cli.args import parse_size
from depthart_core.replay.frames import ReplayConfig
from depthart_core.replay.report import format_summary
from depthart_core.rosio.bags import write_synthetic_bag
from depthart_ros.replay.live import replay_live
from depthart_ros.replay.process import LiveConfig
from depthart_ros.replay.transport import RclpyTransport


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m depthart_ros.replay.demo",
        description="Synthetic bag -> live replay through depthart_node -> report and pictures.",
    )
    p.add_argument("--out", default="demo_out", help="output directory (default: demo_out)")
    p.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    p.add_argument("--frames", type=int, default=30, help="frames in the synthetic bag")
    p.add_argument("--rate", type=float, default=5.0, help="recorded frame rate [Hz]")
    p.add_argument("--size", type=parse_size, default=(192, 256), help="image size HxW (192x256)")
    p.add_argument(
        "--seed", type=int, default=4242, help="synthetic scene seed (never used in training)"
    )
    p.add_argument("--protocol", default="depthart", choices=("depthart", "affine", "metric"))
    p.add_argument("--backend", default="auto", help="node backend (auto|torch|onnxruntime)")
    p.add_argument("--domain-id", type=int, default=None, help="default: a random free-ish one")
    p.add_argument("--time-limit", type=float, default=240.0, help="whole replay bound [s]")
    return p


def _check_demo_folder(out: Path, bag: Path) -> None:
    """The demo rewrites its own folder; a report of anything else there (a replay's) would be
    overwritten without a word, so it is refused before anything is written."""
    report = out / "report.json"
    if not report.is_file():
        return
    try:
        played = json.loads(report.read_bytes()).get("bag")  # UTF-8, whatever the locale
    except (OSError, ValueError, AttributeError):
        played = None
    if not isinstance(played, str) or Path(played).name != bag.name:  # as stored: any cwd
        raise ValueError(
            f"{out} holds a report that is not an earlier demo's ({report}): give the demo "
            "another --out"
        )


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    checkpoint = Path(args.checkpoint) if args.checkpoint else default_checkpoint_path()
    if not checkpoint.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {checkpoint}; pass --checkpoint or set DEPTHART_CHECKPOINT"
        )
    bag = out / "synthetic_bag"
    _check_demo_folder(out, bag)
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
