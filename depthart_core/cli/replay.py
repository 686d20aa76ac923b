"""`depthart replay BAG --image-topic T [--depth-topic GT] --out DIR [--live]`: bag evaluation.

Offline (default) runs every image through the backend's `predict` (`depthart_core.replay`).
`--live`, which plays the bag into the real node and measures what comes back, is added by
`depthart_ros` through the `depthart.replay` entry-point group (`depthart_ros.replay.cli`), so
depthart_core never imports ROS code. Both write report.json, report.md and pictures to --out.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from depthart_core.cli.args import (
    add_flip_arg,
    add_progress_arg,
    add_sampling_args,
    options_named,
    remember_defaults,
    sampling_from_args,
    seed_without_effect,
    without_effect,
)

MODES_GROUP = "depthart.replay"  # entry-point group of extra replay modes (see `_modes`)
# options only some protocols read (dest -> those protocols); --camera-height, --imu-topic and
# --vertical-lines outside ground_plane have their own refusals (`_ground_plane`, ReplayConfig)
PROTOCOL_OPTIONS = {
    "sparse_points": ("metric",),
    "sparse_fit": ("metric",),
    "seed": ("metric",),
    # ground_plane scores its metres under the metric protocol, which clips to the range too
    "depth_range": ("affine", "metric", "ground_plane"),
    **dict.fromkeys(
        (
            "ground_normal",
            "ground_pitch",
            "ground_roll",
            "ground_window",
            "ground_tilt",
            "ground_max_angle",
            "lines_agree",
            "imu_max_dt",
        ),
        ("ground_plane",),
    ),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    from depthart_core.ground_plane import GroundPlaneConfig

    p = sub.add_parser(
        "replay",
        help="evaluate the model on a rosbag (offline, or live through the node)",
        description="Replay a ROS 1/2 bag through DepthART and score it against GT depth.",
    )
    p.add_argument("bag", help="ROS 2 bag directory, .mcap/.db3 file, or ROS 1 .bag")
    p.add_argument(
        "--image-topic",
        required=True,
        help="input topic: sensor_msgs/Image, or image_transport's CompressedImage (JPEG/PNG, "
        "e.g. /camera/image_raw/compressed)",
    )
    p.add_argument(
        "--depth-topic",
        default=None,
        help="GT depth: 32FC1 m or 16UC1 mm, raw or image_transport's compressedDepth (PNG)",
    )
    p.add_argument("--camera-info-topic", default=None, help="sensor_msgs/CameraInfo topic")
    p.add_argument("--out", required=True, help="report directory")
    p.add_argument("--overwrite", action="store_true", help="--out holds a report: move it aside")
    add_progress_arg(p)
    p.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    p.add_argument("--backend", default="auto", help="auto|torch|onnxruntime|tensorrt (auto)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads; 0 = auto (see README)")
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device: cpu, cuda or cuda:N (with --live, the node's device parameter)",
    )
    # how the model decodes (with --live: the node's letterbox, flip_average, sampling and
    # sampling_seed parameters); --seed is the sparse point draw's, so the sampling's is its own
    p.add_argument("--letterbox", action="store_true", help="aspect-preserving resize + padding")
    add_flip_arg(p)
    add_sampling_args(p, "--sampling-seed")
    p.add_argument(
        "--protocol",
        default="depthart",
        choices=("depthart", "affine", "metric", "ground_plane"),
        help="depthart: median-aligned (the paper's); affine: scale and shift; metric: metres "
        "from a sparse GT scale fit (a LiDAR stand-in); ground_plane: metres from the floor "
        "and --camera-height, beside the same predictions median-aligned",
    )
    p.add_argument("--max-dt", type=float, default=0.02, help="GT stamp tolerance [s] (0.02)")
    p.add_argument("--max-frames", type=int, default=None, help="only the first N images")
    p.add_argument(
        "--depth-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("MIN", "MAX"),
        help="GT range [m] scored by affine, metric and ground_plane (GT outside it is left "
        "out, as eval does; predictions are clipped to it)",
    )
    p.add_argument(
        "--sparse-points",
        type=int,
        default=100,
        help="metric protocol: GT pixels the per-frame scale fit sees (100)",
    )
    p.add_argument(
        "--sparse-fit",
        default="scale",
        choices=("scale", "scale_shift"),
        help="metric protocol: the fit to the sparse points, as the node's sparse_depth.mode "
        "(scale)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the sparse point draw")
    gp = p.add_argument_group("ground_plane protocol (the node's ground_plane.* parameters)")
    gp.add_argument(
        "--camera-height", type=float, default=None, metavar="M", help="above the floor [m]"
    )
    gp.add_argument(
        "--ground-normal",
        default="fit",
        choices=("fit", "prior"),
        help="fit: distance along the fitted floor normal (pitch unknown); prior: along the "
        "up given by --ground-pitch/--ground-roll (a rigid mount)",
    )
    gp.add_argument("--ground-pitch", type=float, default=0.0, metavar="DEG", help="prior (0)")
    gp.add_argument("--ground-roll", type=float, default=0.0, metavar="DEG", help="prior (0)")
    gp.add_argument(
        "--imu-topic",
        default=None,
        help="sensor_msgs/Imu attitudes: each frame's up from the one nearest in stamp (within "
        "--imu-max-dt), as the node's ground_plane.imu; --ground-pitch/--ground-roll are then "
        "the camera's mount relative to the IMU frame",
    )
    gp.add_argument(
        "--imu-max-dt", type=float, default=0.05, metavar="S", help="image/IMU stamp tolerance"
    )
    gp.add_argument(
        "--vertical-lines",
        action="store_true",
        help="camera only: each frame's up from its image's vertical lines, else its horizon "
        "(the node's ground_plane.vertical_lines; a real camera's resolution), the prior where "
        "neither gives one",
    )
    window = GroundPlaneConfig.window  # the node's default
    gp.add_argument(
        "--ground-window",
        type=int,
        default=window,
        metavar="N",
        help=f"median of the last N frames' scales; 1 = each frame's own ({window})",
    )
    gp.add_argument(
        "--ground-tilt",
        type=float,
        default=GroundPlaneConfig.tilt,
        metavar="SHARE",
        help="with a measured up (--imu-topic or --vertical-lines) and --ground-normal prior: the "
        "share (0-1) of the fitted floor's tilt from that up taken out of the depth, not only its "
        "scale (the node's "
        f"ground_plane.tilt; {GroundPlaneConfig.tilt:g})",
    )
    gp.add_argument(
        "--ground-max-angle",
        type=float,
        default=GroundPlaneConfig.max_normal_angle_deg,
        metavar="DEG",
        help="a fitted floor further than this from up falls back to relative depth (the "
        f"node's ground_plane.max_normal_angle_deg; {GroundPlaneConfig.max_normal_angle_deg:g})",
    )
    gp.add_argument(
        "--lines-agree",
        type=float,
        default=GroundPlaneConfig.lines_agree_deg,
        metavar="DEG",
        help="with --vertical-lines: a floor fitted further than this from the lines' up is a "
        "disagreement, and the frame is fitted along the prior; 0 = off (the node's "
        f"ground_plane.lines_agree_deg; {GroundPlaneConfig.lines_agree_deg:g})",
    )
    p.add_argument(
        "--write-bag",
        default=None,
        metavar="OUT",
        help="also write an MCAP bag: all input topics plus the predictions (live: the "
        "node's outputs)",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNGs (faster)")
    p.add_argument(
        "--pred-topic",
        default="/depthart/depth",
        help="the predictions' topic in the --write-bag bag (and the live node's depth topic)",
    )
    mode_options = {}  # mode -> the dests of the options it adds, other than its own switch
    for name, mode in _modes().items():
        before = len(p._actions)
        mode.add_arguments(p)
        mode_options[name] = [a.dest for a in p._actions[before:] if a.dest != name]
    p.set_defaults(func=run, mode_options=mode_options)
    remember_defaults(p)


def _modes() -> dict[str, ModuleType]:
    """Replay modes other packages add: entry point name -> module with `add_arguments(parser)`
    and `run(args, cfg) -> report`, used when `args.<name>` is set (`depthart_ros` adds `live`)."""
    return {ep.name: ep.load() for ep in entry_points(group=MODES_GROUP)}


def _ground_plane(args: argparse.Namespace):
    """The ground_plane protocol's settings, or None; the height is checked before anything is
    read or written, and refused with any other protocol (it would be silently unused), as is
    every option of another protocol than the one given (`PROTOCOL_OPTIONS`). The protocol's
    other needs (a height, camera info, GT depth) are ReplayConfig's checks."""
    from depthart_core.ground_plane import GroundPlaneConfig, check_camera_height

    if args.protocol != "ground_plane":
        if args.camera_height is not None:
            raise ValueError(
                f"--camera-height {args.camera_height:g} is only used by --protocol ground_plane "
                f"(got --protocol {args.protocol})"
            )
    unused = _protocol_options_without_effect(args)
    if unused:
        raise ValueError(unused)
    if args.protocol != "ground_plane":
        return None
    if args.camera_height is None:
        return None  # ReplayConfig refuses the protocol without it
    for needs, dests in (("--imu-topic", ["imu_max_dt"]), ("--vertical-lines", ["lines_agree"])):
        if not getattr(args, needs[2:].replace("-", "_")):
            unused = without_effect(args, dests, needs)
            if unused:
                raise ValueError(unused)
    if args.ground_tilt > 0.0 and not (args.imu_topic or args.vertical_lines):
        raise ValueError(
            f"--ground-tilt {args.ground_tilt:g} straightens the floor toward a measured up: "
            "give the IMU's topic with --imu-topic, or --vertical-lines"
        )
    return GroundPlaneConfig(
        camera_height_m=check_camera_height(args.camera_height),
        normal=args.ground_normal,
        pitch_deg=args.ground_pitch,
        roll_deg=args.ground_roll,
        window=args.ground_window,
        tilt=args.ground_tilt,
        max_normal_angle_deg=args.ground_max_angle,
        lines_agree_deg=args.lines_agree,
    )


def _protocol_options_without_effect(args: argparse.Namespace) -> str | None:
    """Options of other protocols (`PROTOCOL_OPTIONS`) set away from their defaults."""
    idle = [d for d, protocols in PROTOCOL_OPTIONS.items() if args.protocol not in protocols]
    by_protocols: dict[tuple[str, ...], list[str]] = {}
    for dest in idle:
        by_protocols.setdefault(PROTOCOL_OPTIONS[dest], []).append(dest)
    for protocols, dests in by_protocols.items():
        names = ", ".join(protocols[:-1]) + " or " if len(protocols) > 1 else ""
        needed = f"--protocol {names}{protocols[-1]}"
        unused = without_effect(args, dests, f"{needed} (got --protocol {args.protocol})")
        if unused:
            return unused
    return None


def _mode_options_without_effect(args: argparse.Namespace) -> str | None:
    """Options of a replay mode (`--live`'s --rate, --node-arg, ...) set without that mode."""
    for name, dests in args.mode_options.items():
        unused = None if getattr(args, name) else without_effect(args, dests, f"--{name}")
        if unused:
            return unused
    if args.write_bag or getattr(args, "live", False):
        return None
    # the predictions' topic names them in a written bag or on the live node, nowhere else
    needed = " or ".join(["--write-bag", *(f"--{m}" for m in args.mode_options)])
    return without_effect(args, ["pred_topic"], needed)


def _replay_config(args: argparse.Namespace):
    from depthart_core.replay.frames import ReplayConfig

    return ReplayConfig(
        ground_plane=_ground_plane(args),
        imu_topic=args.imu_topic,
        imu_max_dt_s=args.imu_max_dt,
        vertical_lines=args.vertical_lines,
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


def run(args: argparse.Namespace) -> int:
    from depthart_core.replay.offline import replay_offline
    from depthart_core.replay.report import format_summary
    from depthart_core.runtime import get_backend

    # set, but doing nothing: said, not ignored
    unused = _mode_options_without_effect(args) or seed_without_effect(args, "sampling_seed")
    if unused:
        raise ValueError(unused)
    with options_named():
        cfg = _replay_config(args)
    from depthart_core.rundir import REPORT_MARKERS, claim_run_dir

    if args.write_bag and not Path(args.write_bag).exists():  # an existing one: refused later
        from depthart_core.fileutil import check_creatable

        check_creatable(args.write_bag)  # before the replay, not after it
    from depthart_core.checkpoint_file import default_checkpoint_path, resolve_checkpoint

    # the default model too ($DEPTHART_CHECKPOINT may name a run's checkpoint inside --out)
    model = args.checkpoint or default_checkpoint_path()
    lock = claim_run_dir(
        args.out,
        overwrite=args.overwrite,
        markers=REPORT_MARKERS,
        inputs=(args.bag, *[m for m in (model, getattr(args, "vae", None)) if m]),
    )
    mode = next((m for name, m in _modes().items() if getattr(args, name, False)), None)
    try:
        if mode is not None:
            report = mode.run(args, cfg)
        else:
            backend = get_backend(
                args.backend,
                args.checkpoint,
                device=args.device,
                threads=args.threads,
                letterbox=args.letterbox,
                sampling=sampling_from_args(args, "sampling_seed"),
                flip_average=args.flip_average,
            )
            report = replay_offline(
                args.bag,
                args.out,
                cfg,
                backend,
                args.write_bag,
                not args.no_progress,
                checkpoint=resolve_checkpoint(args.checkpoint),  # the default one too, by path
            )
    except BaseException:
        lock.abandon()  # a refused bag or backend leaves no folder holding only a lock
        raise
    print(format_summary(report, args.out))
    if report.get("write_bag"):
        wb = report["write_bag"]
        print(f"  predictions on {wb['pred_topic']} in {wb['path']}")
        if wb.get("relative"):  # the node's fallback: a bag user must not read them as metres
            print(
                f"  --write-bag: {wb['relative']} of {wb['predictions']} depth frames relative "
                "(no metric scale)"
            )
    lock.release()
    return _nothing_scored(report)


def _nothing_scored(report: dict) -> int:
    """1 with a line on stderr when the bag had frames but not one was predicted (the report is
    written all the same, with every frame's cause); else 0."""
    c = report["counts"]
    if c["frames"] == 0 or c.get("evaluated", 0) + c.get("predicted", 0) > 0:
        return 0
    reasons = Counter(r["reason"] for r in report.get("rejected_frames", []))
    most = f" (most often: {reasons.most_common(1)[0][0]})" if reasons else ""
    states = ", ".join(f"{c[k]} {k}" for k in ("rejected", "unmatched", "dropped") if c.get(k))
    if "nearest_depth_offset_s" in report and not reasons:  # the images and depth never paired
        tol = report["config"]["max_dt_s"]
        most = (f" (the nearest depth stamp is {report['nearest_depth_offset_s']:.3f} s from an "
                f"image, --max-dt is {tol:g} s: raise it, or check the topics)")  # fmt: skip
    print(
        f"depthart replay: error: no frame of {c['frames']} was scored: {states}{most}",
        file=sys.stderr,
    )
    return 1
