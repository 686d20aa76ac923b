"""Launch depthart_node (or its managed twin) with remappable topics and a parameters file.

    ros2 launch depthart_ros depthart.launch.py image:=/camera/image_raw \
        camera_info:=/camera/camera_info namespace:=front
    ros2 launch depthart_ros depthart.launch.py lifecycle:=true              # waits for a manager
    ros2 launch depthart_ros depthart.launch.py lifecycle:=true autostart:=true

lifecycle:=true starts `depthart_lifecycle_node` (same parameters and topics) unconfigured, for a
lifecycle manager (nav2_lifecycle_manager, `ros2 lifecycle set`) to drive; autostart:=true makes
it configure and activate itself at start-up. Large images over best-effort QoS with Fast DDS
need FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA in the environment of every process on the topic
(camera driver and this node).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = [
    ("namespace", "", "namespace of the node and of its relative topics (depth, ...)"),
    ("image", "image", "input sensor_msgs/Image topic"),
    ("camera_info", "camera_info", "input sensor_msgs/CameraInfo topic of that image"),
    ("sparse_depth", "sparse_depth", "sparse metric depth topic (used if sparse_depth.enabled)"),
    ("checkpoint", "", "DepthART .safetensors checkpoint; empty = the shipped default"),
    ("backend", "auto", "inference backend: auto | tensorrt | onnxruntime | torch"),
    ("vae", "", "VAR's VQ-VAE .pth for an authors' checkpoint without it; empty = beside it"),
    ("sampling", "greedy", "greedy | paper (the authors' sampled decoding, torch only)"),
    ("log_level", "info", "node log level: debug | info | warn | error | fatal"),
    ("lifecycle", "false", "true: start the managed node depthart_lifecycle_node instead"),
    ("autostart", "false", "with lifecycle:=true, configure and activate at start-up"),
]


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
    arg = LaunchConfiguration
    common = dict(
        package="depthart_ros",
        name="depthart_node",
        namespace=arg("namespace"),
        output="screen",
        emulate_tty=True,
        remappings=[
            ("image", arg("image")),
            ("camera_info", arg("camera_info")),
            ("sparse_depth", arg("sparse_depth")),
        ],
        arguments=["--ros-args", "--log-level", arg("log_level")],
    )
    overrides = {
        "checkpoint": ParameterValue(arg("checkpoint"), value_type=str),
        "backend": ParameterValue(arg("backend"), value_type=str),
        "vae": ParameterValue(arg("vae"), value_type=str),
        "sampling": ParameterValue(arg("sampling"), value_type=str),
    }
    node = Node(
        executable="depthart_node",
        parameters=[arg("params_file"), overrides],
        condition=UnlessCondition(arg("lifecycle")),
        **common,
    )
    managed = LifecycleNode(
        executable="depthart_lifecycle_node",
        parameters=[
            arg("params_file"),
            overrides | {"autostart": ParameterValue(arg("autostart"), value_type=bool)},
        ],
        condition=IfCondition(arg("lifecycle")),
        **common,
    )
    return LaunchDescription([*args, node, managed])
