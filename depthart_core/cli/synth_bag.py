"""`depthart synth-bag --out BAG --frames N`: a synthetic RGB-D recording as a ROS 2 bag."""

from __future__ import annotations

import argparse

from depthart_core.cli.args import add_progress_arg, parse_size


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth-bag",
        help="write a synthetic RGB-D recording as a ROS 2 bag",
        description="One synthetic scene seen along a smooth camera path: /camera/image_raw "
        "(rgb8), /camera/camera_info and ground-truth /camera/depth (32FC1 metres, or 16UC1 "
        "millimetres with --depth-16uc1), all with the same header stamp per frame.",
    )
    p.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    p.add_argument("--frames", type=int, required=True, help="number of frames")
    p.add_argument("--rate", type=float, default=10.0, help="frame rate [Hz] (default 10)")
    p.add_argument("--seed", type=int, default=0, help="scene and camera path seed")
    p.add_argument("--format", default="mcap", choices=("mcap", "sqlite3"), help="storage")
    p.add_argument("--size", type=parse_size, default=(240, 320), help="image size HxW (240x320)")
    p.add_argument(
        "--depth-16uc1", action="store_true", help="GT depth as 16UC1 millimetres (0 = invalid)"
    )
    p.add_argument(
        "--style",
        default="room",
        choices=("room", "corridor", "warehouse"),
        help="scene style: furnished rooms (the training distribution, default); corridor: a "
        "long aisle between shelving driven straight down its middle (camera 2.0-2.4 m, wide "
        "field of view); warehouse: such aisles driven with turns, pitch changes, a camera "
        "mast at 0.3-1.9 m, people and carts moving, and lights changing along the path",
    )
    p.add_argument(
        "--sensor",
        action="store_true",
        help="depth as an RGB-D sensor reports it: 16UC1 mm, 0 beyond 10 m, holes at depth "
        "edges and in patches, noise growing with depth squared, stamped 3 ms after the image",
    )
    p.add_argument(
        "--rig",
        default=None,
        choices=("wheeled", "cart", "mast"),
        help="a robot's camera at a known height instead of --style's path, for `replay "
        "--protocol ground_plane`: wheeled 0.3 m level, cart 1.0 m tilted 10 deg down, mast "
        "2.0 m tilted 25 deg down; the body turns, with +-3 deg pitch and +-2 deg roll bumps",
    )
    p.add_argument(
        "--imu-noise-deg",
        type=float,
        default=None,
        metavar="DEG",
        help="with --rig: also record /imu/data (sensor_msgs/Imu), the body's attitude with this "
        "much Gaussian noise per axis, for `replay --imu-topic` and the node's ground_plane.imu",
    )
    p.add_argument(
        "--compressed",
        action="store_true",
        help="record image_transport's topics as robots usually do, instead of the raw ones: "
        "/camera/image_raw/compressed (JPEG, quality 95) and /camera/depth/compressedDepth (PNG; "
        "depth beyond the plugin's default depth_max of 10 m is invalid)",
    )
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depthart_core.data.synthetic.sensor import SensorModel
    from depthart_core.rosio.bags import write_synthetic_bag

    if args.rig is not None:
        _check_rig_seed(args.seed, args.rig)
    counts = write_synthetic_bag(
        args.out,
        args.frames,
        rate_hz=args.rate,
        seed=args.seed,
        storage=args.format,
        depth_encoding="16UC1" if args.depth_16uc1 or args.sensor else "32FC1",
        size=args.size,
        style=args.style,
        sensor=SensorModel() if args.sensor else None,
        depth_delay_ns=3_000_000 if args.sensor else 0,
        rig=args.rig,
        imu_noise_deg=args.imu_noise_deg,
        compressed=args.compressed,
        progress=not args.no_progress,
    )
    topics = ", ".join(f"{t} ({n})" for t, n in counts.items())
    print(f"wrote {args.out} ({args.format}): {topics}")
    return 0


def _check_rig_seed(seed: int, rig: str) -> None:
    """A rig's rooms draw from seed x 100000 + an offset (`ground_plane.room_seed`): the seeds
    that fit the generator's, said with the user's own value."""
    from depthart_core.evaluation.ground_plane import RIGS, max_rig_seed

    top = max_rig_seed(RIGS[rig][0])
    if not 0 <= seed <= top:
        raise ValueError(f"--seed {seed} with --rig {rig}: must be from 0 to {top}")
