"""Launch depthart_node (or its managed twin) with remappable topics and a parameters file.

    ros2 launch depthart_ros depthart.launch.py image:=/camera/image_raw \
        camera_info:=/camera/camera_info namespace:=front
    ros2 launch depthart_ros depthart.launch.py params_file:=/robots/r1/depthart.yaml
    ros2 launch depthart_ros depthart.launch.py image:=/camera/image_raw image_transport:=compressed
    ros2 launch depthart_ros depthart.launch.py lifecycle:=true              # waits for a manager
    ros2 launch depthart_ros depthart.launch.py lifecycle:=true autostart:=true

Parameters come from `params_file`; `checkpoint`, `backend`, `vae`, `sampling`,
`image_transport` and `use_sim_time` replace the file's value only when given on the command line
(their empty default means "the file's"). They reach the node in a second parameters file under a
node key the user's file does not use (`overrides_file`): rcl merges entries of one key across
files and rclpy applies keys in the order they first appear, so under a key of the user's file an
argument could lose to a later `/**` entry there.

lifecycle:=true starts `depthart_lifecycle_node` (same parameters and topics) unconfigured, for a
lifecycle manager (nav2_lifecycle_manager, `ros2 lifecycle set`) to drive. autostart:=true, or
`autostart: true` for this node in the params file, makes this launch file drive it: launch_ros
`ChangeState` events call the node's lifecycle services (configure, then activate once it is
inactive), so the `StateTransition` events reach this and any parent launch file. The node's
own in-process `autostart` parameter is always set false here, because launch carries it out. A
failed configure under autostart ends the launch with exit status 1.

Large images over best-effort QoS with Fast DDS need FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA in the
environment of every process on the topic (camera driver and this node).
"""

from __future__ import annotations

import atexit
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from launch import LaunchContext, LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

NODE_NAME = "depthart_node"
# node parameters that a launch argument of the same name may override; "" = not given
OVERRIDES = ("checkpoint", "backend", "vae", "sampling", "image_transport")
NOT_GIVEN = ""
ARGUMENTS = [
    ("namespace", "", "namespace of the node and of its relative topics (depth, ...)"),
    ("image", "image", "input sensor_msgs/Image topic"),
    (
        "camera_info",
        NOT_GIVEN,
        "input sensor_msgs/CameraInfo topic; empty = the one beside image "
        "(image:=/camera/image_raw reads /camera/camera_info, as image_transport names it)",
    ),
    ("sparse_depth", "sparse_depth", "sparse metric depth topic (used if sparse_depth.enabled)"),
    ("imu", "imu", "sensor_msgs/Imu attitude topic (used if ground_plane.imu)"),
    ("checkpoint", NOT_GIVEN, "DepthART .safetensors checkpoint; empty = the params file's"),
    ("backend", NOT_GIVEN, "auto | tensorrt | onnxruntime | torch; empty = the params file's"),
    ("vae", NOT_GIVEN, "VAR's VQ-VAE .pth for an authors' checkpoint; empty = the params file's"),
    ("sampling", NOT_GIVEN, "soft | greedy | paper (torch only); empty = the params file's"),
    (
        "image_transport",
        NOT_GIVEN,
        "raw | compressed (CompressedImage on <image>/compressed); empty = the params file's",
    ),
    ("use_sim_time", NOT_GIVEN, "true: stamps and rates follow /clock; empty = the params file's"),
    ("log_level", "info", "node log level: debug | info | warn | error | fatal"),
    ("lifecycle", "false", "true: start the managed node depthart_lifecycle_node instead"),
    (
        "autostart",
        NOT_GIVEN,
        "with lifecycle:=true: true = launch configures and activates the node through its "
        "lifecycle services; empty = the params file's autostart (default false)",
    ),
]


# ------------------------------------------------------------------ pure logic (tested in CI)
def given_overrides(arguments: dict[str, str]) -> dict[str, str]:
    """The override arguments actually given on the command line: one left at its default
    ("") never replaces the params file's value."""
    return {name: value for name, value in arguments.items() if value != NOT_GIVEN}


def _node_pattern(key: str) -> re.Pattern[str]:
    """rcl's node-name keys: `/**` is any number of namespace tokens, `*` exactly one."""
    parts = []
    for token in key.strip("/").split("/"):
        parts.append({"**": "(/[^/]+)*", "*": "/[^/]+"}.get(token, "/" + re.escape(token)))
    return re.compile("".join(parts))


def read_params_file(params_file: str | Path) -> dict[str, Any]:
    """The parameters file as a mapping; a missing file or another YAML is refused by name (a
    mistyped path would otherwise start the node on its built-in defaults)."""
    path = Path(params_file)
    if not path.is_file():
        raise FileNotFoundError(f"params_file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a ROS 2 parameters file (top level is not a mapping)")
    return data


def _entries(data: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(node key, ros__parameters) in file order, the nested form (`front: depthart_node:
    ros__parameters:`) joined into one key (`front/depthart_node`), as rcl reads both."""
    out = []
    for key, entry in data.items():
        if not isinstance(entry, dict):
            continue
        name = f"{prefix}/{key}" if prefix else str(key)
        params = entry.get("ros__parameters")
        if isinstance(params, dict):
            out.append((name, params))
        out += _entries({k: v for k, v in entry.items() if k != "ros__parameters"}, name)
    return out


def file_parameter(params_file: str | Path, node_fqn: str, name: str) -> Any:
    """The value of top-level parameter `name` that `params_file` gives node `node_fqn`
    (e.g. `/front/depthart_node`): the last matching entry in file order, as rclpy reads it;
    None when the file does not set it."""
    value = None
    for key, params in _entries(read_params_file(params_file)):
        if name in params and _node_pattern(key).fullmatch(node_fqn):
            value = params[name]
    return value


# keys that match this node (the only one in its process), tried in order for the overrides
OVERRIDE_KEYS = (f"/**/{NODE_NAME}", "/**/*", "/**")


def overrides_file(params_file: str | Path, values: dict[str, Any]) -> str:
    """A parameters file holding `values` under a node key `params_file` does not use, to be
    given after it: its key first appears there, so rclpy applies it last and it wins."""
    # the node keys rcl reads from the file: nested ones joined ("/**": depthart_node: is
    # /**/depthart_node), with and without a leading slash alike
    taken = {"/" + name.strip("/") for name, _ in _entries(read_params_file(params_file))}
    key = next((k for k in OVERRIDE_KEYS if k not in taken), None)
    if key is None:
        raise ValueError(f"{params_file} uses every key of {OVERRIDE_KEYS}; rename one")
    with tempfile.NamedTemporaryFile(
        "w", prefix="depthart_launch_", suffix=".yaml", delete=False
    ) as f:
        yaml.safe_dump({key: {"ros__parameters": values}}, f)  # strings stay quoted strings
    atexit.register(_remove, f.name)  # read when the node starts; gone when launch ends
    return f.name


def _remove(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def flag(name: str, text: str) -> bool:
    """A boolean launch argument, read as launch's IfCondition reads one."""
    if text.lower() not in ("true", "1", "false", "0"):
        raise ValueError(f"{name}:={text!r}: expected true or false")
    return text.lower() in ("true", "1")


def resolve_autostart(argument: str, params_file: str | Path, node_fqn: str) -> bool:
    """autostart:=true|false when given on the command line, else the file's, else false."""
    if argument != NOT_GIVEN:
        return flag("autostart", argument)
    value = file_parameter(params_file, node_fqn, "autostart")
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{params_file}: autostart={value!r} for {node_fqn}: expected a bool")
    return bool(value)


def node_fqn(context_namespace: str, namespace: str) -> str:
    """The node's fully qualified name under a pushed namespace and the `namespace` argument."""
    parts = [p for p in f"{context_namespace}/{namespace}".split("/") if p]
    if namespace.startswith("/"):  # an absolute namespace ignores the pushed one
        parts = [p for p in namespace.split("/") if p]
    return "/" + "/".join([*parts, NODE_NAME])


# ------------------------------------------------------------------ launch actions
def autostart_actions(managed: LifecycleNode, fqn: str) -> list[Any]:
    """configure now; activate when configure reached inactive; end the launch with status 1
    when configure failed (configuring -> unconfigured), so a supervisor or respawn can act."""

    def change(transition_id: int) -> EmitEvent:
        matcher = matches_action(managed)
        return EmitEvent(
            event=ChangeState(lifecycle_node_matcher=matcher, transition_id=transition_id)
        )

    def configure_failed(context: LaunchContext) -> None:
        # an exception in launch is how `ros2 launch` exits non-zero (LaunchService.run -> 1)
        raise RuntimeError(f"{fqn}: configure failed under autostart (reason in its log above)")

    return [
        RegisterEventHandler(
            OnStateTransition(
                target_lifecycle_node=managed,
                start_state="configuring",
                goal_state="inactive",  # not after a later deactivate: that one starts elsewhere
                entities=[change(Transition.TRANSITION_ACTIVATE)],
            )
        ),
        RegisterEventHandler(
            OnStateTransition(
                target_lifecycle_node=managed,
                start_state="configuring",
                goal_state="unconfigured",
                entities=[OpaqueFunction(function=configure_failed)],
            )
        ),
        change(Transition.TRANSITION_CONFIGURE),
    ]


def launch_setup(context: LaunchContext) -> list[Any]:
    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    params_file = value("params_file")
    read_params_file(params_file)  # a mistyped path is refused, in every mode
    # the file first, then only what was given: strings (a path is never YAML-parsed)
    overrides: dict[str, Any] = given_overrides({name: value(name) for name in OVERRIDES})
    if value("use_sim_time") != NOT_GIVEN:
        overrides["use_sim_time"] = flag("use_sim_time", value("use_sim_time"))

    def parameters(extra: dict[str, Any]) -> list[str]:
        values = overrides | extra
        return [params_file, *([overrides_file(params_file, values)] if values else [])]

    common = dict(
        package="depthart_ros",
        name=NODE_NAME,
        namespace=value("namespace"),
        output="screen",
        emulate_tty=True,
        remappings=[  # camera_info not given: none, so the node reads the one beside image
            (topic, value(topic))
            for topic in ("image", "camera_info", "sparse_depth", "imu")
            if value(topic) != NOT_GIVEN
        ],
        ros_arguments=["--log-level", value("log_level")],
    )
    if not flag("lifecycle", value("lifecycle")):
        plain = Node(executable="depthart_node", parameters=parameters({}), **common)
        return [plain]
    fqn = node_fqn(context.launch_configurations.get("ros_namespace", ""), value("namespace"))
    autostart = resolve_autostart(value("autostart"), params_file, fqn)
    # launch carries out autostart itself (above), so the node's own stays off in every case
    managed = LifecycleNode(
        executable="depthart_lifecycle_node", parameters=parameters({"autostart": False}), **common
    )
    return [managed, *(autostart_actions(managed, fqn) if autostart else [])]


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution(
        [FindPackageShare("depthart_ros"), "config", "depthart.params.yaml"]
    )
    args = [DeclareLaunchArgument(n, default_value=d, description=t) for n, d, t in ARGUMENTS]
    args.append(
        DeclareLaunchArgument(
            "params_file",
            default_value=default_params,
            description="YAML parameters file (see config/depthart.params.yaml)",
        )
    )
    return LaunchDescription([*args, OpaqueFunction(function=launch_setup)])
