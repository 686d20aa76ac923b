"""`depthart replay ... --live`: the live mode that depthart_ros adds to depthart_core's command.

Registered in setup.py under the `depthart.replay` entry-point group as `live`;
`depthart_core.cli.replay` calls `add_arguments` when it builds its parser and `run` when `--live`
is given, so depthart_core itself never imports depthart_ros or rclpy. Like every command-line
module, it imports the replay only when it runs: `depthart --help` loads this module too and
stays fast, and rclpy is optional for the `depthart` command.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from depthart_core.replay.frames import ReplayConfig
    from depthart_ros.replay.process import LiveConfig


# depthart replay's decoding options, which are also the node's parameters of the same names
DECODING = ("letterbox", "flip_average", "sampling", "sampling_seed")


def add_arguments(p: argparse.ArgumentParser) -> None:
    live = p.add_argument_group("live mode (depthart_ros)")
    live.add_argument("--live", action="store_true", help="play the bag through the real node")
    live.add_argument("--rate", type=float, default=1.0, help="multiple of the recorded rate")
    live.add_argument(
        "--domain-id",
        type=int,
        default=None,
        help="ROS_DOMAIN_ID of the replay and the node, 0-232 (default "
        "$DEPTHART_REPLAY_DOMAIN_ID, else random in 30-101 with a free discovery port, not "
        "another live replay's); "
        "discovery is ROS 2's default, "
        "SUBNET, whatever ROS_AUTOMATIC_DISCOVERY_RANGE says",
    )
    live.add_argument(
        "--startup-timeout",
        type=float,
        default=60.0,
        help="how long the node may take to load its model and be discovered [s] (60)",
    )
    live.add_argument(
        "--drain-timeout",
        type=float,
        default=5.0,
        help="after the last frame, stop waiting for outputs once none has arrived for this "
        "long [s] (5); kept free within --time-limit",
    )
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


def live_config(args: argparse.Namespace) -> LiveConfig:
    from depthart_ros.replay.process import LiveConfig

    return LiveConfig(
        checkpoint=args.checkpoint,
        backend=args.backend,
        rate=args.rate,
        domain_id=args.domain_id,
        # the user's args win
        node_args=(
            *_params(threads=args.threads, device=args.device),
            # the decoding only where given, so a --params-file among --node-arg still sets it
            *_params(**_set_away_from_default(args, DECODING)),
            *args.node_arg,
        ),
        startup_timeout_s=args.startup_timeout,
        drain_timeout_s=args.drain_timeout,
        time_limit_s=args.time_limit,
        restamp=not args.keep_stamps,
    )


def _set_away_from_default(args: argparse.Namespace, dests: tuple[str, ...]) -> dict[str, Any]:
    """{dest: value} of the options among `dests` the user set away from their defaults."""
    return {d: getattr(args, d) for d in dests if getattr(args, d) != args.option_defaults[d][1]}


def _params(**values: Any) -> list[str]:
    """The node's parameters as --ros-args items: ["-p", "name:=value", ...] (YAML booleans)."""
    out: list[str] = []
    for name, value in values.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out += ["-p", f"{name}:={text}"]
    return out


def run(args: argparse.Namespace, cfg: ReplayConfig) -> dict[str, Any]:
    from depthart_ros.replay.live import replay_live
    from depthart_ros.replay.transport import RclpyTransport

    return replay_live(args.bag, args.out, cfg, live_config(args), RclpyTransport(), args.write_bag)
