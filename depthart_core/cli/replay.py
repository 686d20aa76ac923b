"""`depthart replay BAG --image-topic T [--depth-topic GT] --out DIR [--live]`: bag evaluation.

Offline (default) runs every image through the backend's `predict`; `--live` plays the bag into
the real node (`depthart_ros.node`, a separate process) and measures what comes back. Both write
report.json, report.md and pictures to --out; see `depthart_core.replay`.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="evaluate the model on a rosbag (offline, or live through the node)",
        description="Replay a ROS 1/2 bag through DepthART and score it against GT depth.",
    )
    p.add_argument("bag", help="ROS 2 bag directory, .mcap/.db3 file, or ROS 1 .bag")
    p.add_argument("--image-topic", required=True, help="sensor_msgs/Image input topic")
    p.add_argument("--depth-topic", default=None, help="GT depth (32FC1 m or 16UC1 mm)")
    p.add_argument("--camera-info-topic", default=None, help="sensor_msgs/CameraInfo topic")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    p.add_argument("--backend", default="torch", help="torch|onnxruntime|tensorrt|auto")
    p.add_argument("--device", default="cpu", help="offline mode: cpu or cuda")
    p.add_argument("--protocol", default="depthart", choices=("depthart", "affine", "metric"))
    p.add_argument("--max-dt", type=float, default=0.02, help="GT stamp tolerance [s] (0.02)")
    p.add_argument("--max-frames", type=int, default=None, help="only the first N images")
    p.add_argument(
        "--depth-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("MIN", "MAX"),
        help="GT range [m] that affine/metric clip predictions to",
    )
    p.add_argument(
        "--sparse-points",
        type=int,
        default=100,
        help="metric protocol: GT pixels the per-frame scale fit sees (100)",
    )
    p.add_argument("--sparse-fit", default="scale", choices=("scale", "scale_shift"))
    p.add_argument("--seed", type=int, default=0, help="seed of the sparse point draw")
    p.add_argument(
        "--write-bag",
        default=None,
        metavar="OUT",
        help="also write an MCAP bag: all input topics plus the predictions (live: the "
        "node's outputs)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs (faster)")
    p.add_argument("--pred-topic", default="/depthart/depth", help="prediction topic name")
    live = p.add_argument_group("live mode")
    live.add_argument("--live", action="store_true", help="play the bag through the real node")
    live.add_argument("--rate", type=float, default=1.0, help="multiple of the recorded rate")
    live.add_argument(
        "--domain-id",
        type=int,
        default=None,
        help="ROS_DOMAIN_ID (default $DEPTHART_REPLAY_DOMAIN_ID, else random)",
    )
    live.add_argument("--startup-timeout", type=float, default=60.0, help="[s]")
    live.add_argument("--drain-timeout", type=float, default=5.0, help="[s]")
    live.add_argument("--time-limit", type=float, default=600.0, help="whole run bound [s]")
    live.add_argument(
        "--keep-stamps",
        action="store_true",
        help="publish the recorded header stamps (default: restamp with the wall clock)",
    )
    live.add_argument(
        "--node-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra --ros-args item for the node, repeatable: --node-arg=-p "
        "--node-arg=letterbox:=true",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depthart_core.replay import (
        LiveConfig,
        ReplayConfig,
        format_summary,
        replay_live,
        replay_offline,
    )

    cfg = ReplayConfig(
        image_topic=args.image_topic,
        depth_topic=args.depth_topic,
        camera_info_topic=args.camera_info_topic,
        protocol=args.protocol,
        max_dt_s=args.max_dt,
        max_frames=args.max_frames,
        depth_range=tuple(args.depth_range) if args.depth_range else None,
        sparse_points=args.sparse_points,
        sparse_fit=args.sparse_fit,
        seed=args.seed,
        pred_topic=args.pred_topic,
        plots=not args.no_plots,
    )
    if args.live:
        from depthart_ros.live_transport import RclpyTransport  # rclpy stays out of depthart_core

        live = LiveConfig(
            checkpoint=args.checkpoint,
            backend=args.backend,
            rate=args.rate,
            domain_id=args.domain_id,
            node_args=tuple(args.node_arg),
            startup_timeout_s=args.startup_timeout,
            drain_timeout_s=args.drain_timeout,
            time_limit_s=args.time_limit,
            restamp=not args.keep_stamps,
        )
        report = replay_live(args.bag, args.out, cfg, live, RclpyTransport(), args.write_bag)
    else:
        from depthart_core.evaluation.runner import make_backend

        backend = make_backend(args.backend, args.checkpoint, device=args.device)
        report = replay_offline(args.bag, args.out, cfg, backend, args.write_bag, progress=True)
    print(format_summary(report, args.out))
    if report.get("write_bag"):
        wb = report["write_bag"]
        print(f"  predictions on {wb['pred_topic']} in {wb['path']}")
    return 0
