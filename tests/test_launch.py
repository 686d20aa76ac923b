"""launch/depthart.launch.py: which parameters reach the node, and how autostart is carried out.

Two tiers. Without launch_ros (CI: launch and launch_ros are not on PyPI), the launch file runs
against the smallest faithful stand-in for the launch API pieces it uses (`StandIns` below:
constructors record their arguments, `LaunchConfiguration.perform` reads the context and
`OnStateTransition` matches events as launch_ros does), which checks:

* parameters: file only, file plus a launch argument, argument only (the argument wins only
  when given);
* autostart (argument, or `autostart: true` in the file): launch emits `ChangeState(configure)`,
  activates on configuring -> inactive only, and ends with an error on configuring ->
  unconfigured; without it nothing drives the node, and the node's own autostart is always off.

Where launch_ros is importable (a ROS install, or launch/launch_ros from source on PYTHONPATH),
the same file runs for real, as `ros2 launch` runs it, against real node processes: the three
parameter cases, a parent launch file whose `OnStateTransition` handlers see the transitions,
exit status 1 when configure fails under autostart, and a managed node without autostart left
unconfigured for a manager.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LAUNCH_FILE = REPO / "launch" / "depthart.launch.py"
PARAMS_FILE = REPO / "config" / "depthart.params.yaml"
LAUNCH_ARGS = {"namespace", "image", "camera_info", "checkpoint", "backend", "params_file"}
LAUNCH_ARGS |= {"lifecycle", "autostart", "vae", "sampling", "log_level", "sparse_depth", "imu"}
LAUNCH_ARGS |= {"image_transport", "use_sim_time"}

Transition = pytest.importorskip("lifecycle_msgs.msg", reason="needs lifecycle_msgs").Transition


# ---------------------------------------------------------------------------------------------
# 1. the stand-in launch API
class Recorded:
    """An action or description: keeps what it was built with."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


class LaunchContext:
    def __init__(self, configurations: dict[str, str]) -> None:
        self.launch_configurations = dict(configurations)


class LaunchConfiguration:
    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: LaunchContext) -> str:
        return context.launch_configurations[self.name]


class StateTransition:
    """launch_ros.events.lifecycle.StateTransition: what a `transition_event` message becomes."""

    def __init__(self, action: Any, start_state: str, goal_state: str) -> None:
        self.action, self.start_state, self.goal_state = action, start_state, goal_state


class OnStateTransition(Recorded):
    def matches(self, event: StateTransition) -> bool:  # launch_ros's default matcher
        kw = self.kwargs
        return (
            kw.get("target_lifecycle_node") in (None, event.action)
            and kw.get("start_state") in (None, event.start_state)
            and kw.get("goal_state") in (None, event.goal_state)
        )


class StandIns:
    """sys.modules entries for launch and launch_ros, as far as the launch file uses them."""

    def __init__(self) -> None:
        def module(name: str, **attrs: Any) -> types.ModuleType:
            mod = types.ModuleType(name)
            mod.__dict__.update(attrs)
            return mod

        rec = {n: type(n, (Recorded,), {}) for n in ("LaunchDescription", "Node", "LifecycleNode")}
        rec |= {n: type(n, (Recorded,), {}) for n in ("DeclareLaunchArgument", "EmitEvent")}
        rec |= {n: type(n, (Recorded,), {}) for n in ("OpaqueFunction", "RegisterEventHandler")}
        rec |= {n: type(n, (Recorded,), {}) for n in ("ChangeState", "ParameterValue")}
        rec |= {n: type(n, (Recorded,), {}) for n in ("PathJoinSubstitution", "FindPackageShare")}
        self.types = rec
        self.modules = {
            "launch": module(
                "launch", LaunchContext=LaunchContext, LaunchDescription=rec["LaunchDescription"]
            ),
            "launch.actions": module(
                "launch.actions",
                DeclareLaunchArgument=rec["DeclareLaunchArgument"],
                EmitEvent=rec["EmitEvent"],
                OpaqueFunction=rec["OpaqueFunction"],
                RegisterEventHandler=rec["RegisterEventHandler"],
            ),
            # launch.events.matches_action: identity of the action, as in launch
            "launch.events": module(
                "launch.events", matches_action=lambda target: lambda action: action is target
            ),
            "launch.substitutions": module(
                "launch.substitutions",
                LaunchConfiguration=LaunchConfiguration,
                PathJoinSubstitution=rec["PathJoinSubstitution"],
            ),
            "launch_ros": module("launch_ros"),
            "launch_ros.actions": module(
                "launch_ros.actions", Node=rec["Node"], LifecycleNode=rec["LifecycleNode"]
            ),
            "launch_ros.event_handlers": module(
                "launch_ros.event_handlers", OnStateTransition=OnStateTransition
            ),
            "launch_ros.events": module("launch_ros.events"),
            "launch_ros.events.lifecycle": module(
                "launch_ros.events.lifecycle", ChangeState=rec["ChangeState"]
            ),
            "launch_ros.parameter_descriptions": module(
                "launch_ros.parameter_descriptions", ParameterValue=rec["ParameterValue"]
            ),
            "launch_ros.substitutions": module(
                "launch_ros.substitutions", FindPackageShare=rec["FindPackageShare"]
            ),
        }


def load_launch_file(name: str = "depthart_launch") -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, LAUNCH_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch) -> tuple[types.ModuleType, StandIns]:
    fakes = StandIns()
    for name, mod in fakes.modules.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return load_launch_file(), fakes


def run_setup(stand_in: tuple[types.ModuleType, StandIns], **given: str) -> list[Any]:
    """What launch does with `ros2 launch ... name:=value`: every declared argument at its
    default unless given, then the OpaqueFunction with that context."""
    mod, fakes = stand_in
    ld = mod.generate_launch_description()
    entities = ld.args[0]
    declared = {
        e.args[0]: e.kwargs["default_value"]
        for e in entities
        if isinstance(e, fakes.types["DeclareLaunchArgument"])
    }
    assert set(given) <= set(declared), set(given) - set(declared)
    opaque = [e for e in entities if isinstance(e, fakes.types["OpaqueFunction"])]
    assert len(opaque) == 1
    context = LaunchContext(declared | given)
    return opaque[0].kwargs["function"](context)


def parameters_of(action: Recorded) -> tuple[str, dict[str, Any]]:
    """(params file, {name: value}) of a Node's `parameters=`: the user's file, then the
    launch arguments' file (`overrides_file`) under a node key the user's file does not use."""
    params = action.kwargs["parameters"]
    assert 1 <= len(params) <= 2 and all(isinstance(p, str) for p in params), params
    if len(params) == 1:
        return params[0], {}
    data = yaml.safe_load(Path(params[1]).read_text())
    (key,) = data
    users = yaml.safe_load(Path(params[0]).read_text()) or {}
    assert key.endswith(("depthart_node", "*")) and key not in users, (key, list(users))
    return params[0], data[key]["ros__parameters"]


def write_params(path: Path, **values: Any) -> str:
    lines = ["/**:", "  ros__parameters:"] + [f"    {k}: {v}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# ---------------------------------------------------------------------------------------------
# 2. with the stand-in (CI)
def test_launch_file_declares_its_arguments() -> None:
    tree = ast.parse(LAUNCH_FILE.read_text())
    declared = {
        elt.elts[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ARGUMENTS"
        for elt in node.value.elts
    }
    declared |= {
        n.args[0].value
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DeclareLaunchArgument"
        and n.args and isinstance(n.args[0], ast.Constant)
    }  # fmt: skip
    assert LAUNCH_ARGS <= declared
    # the log level goes through ros_arguments=, not a second --ros-args in arguments=
    assert "ros_arguments=" in LAUNCH_FILE.read_text()
    assert '"--ros-args"' not in LAUNCH_FILE.read_text()
    setup_py = (REPO / "setup.py").read_text()  # both executables are installed console scripts
    for exe in ("depthart_node", "depthart_lifecycle_node"):
        assert f'"{exe} = depthart_ros.' in setup_py, exe


def test_params_file_wins_unless_the_argument_is_given(stand_in, tmp_path: Path) -> None:
    robot = write_params(
        tmp_path / "r1.yaml", checkpoint="/robots/r1/d.safetensors", backend="torch"
    )
    mod, fakes = stand_in

    # 1. file only: nothing but the file (no default argument sneaks in after it)
    (node,) = run_setup(stand_in, params_file=robot)
    assert isinstance(node, fakes.types["Node"]) and node.kwargs["executable"] == "depthart_node"
    assert parameters_of(node) == (robot, {})

    # 2. file plus an argument: that one argument wins, the file keeps the rest
    (node,) = run_setup(stand_in, params_file=robot, backend="onnxruntime")
    assert parameters_of(node) == (robot, {"backend": "onnxruntime"})

    # 3. argument only (the shipped file): the argument
    (node,) = run_setup(stand_in, params_file=str(PARAMS_FILE), checkpoint="/x/y.safetensors")
    assert parameters_of(node) == (str(PARAMS_FILE), {"checkpoint": "/x/y.safetensors"})

    # every overriding argument defaults to "not given"
    given = {"checkpoint": "/c", "backend": "torch", "vae": "/v.pth", "sampling": "paper"}
    given["image_transport"] = "compressed"
    (node,) = run_setup(stand_in, params_file=robot, **given)
    assert parameters_of(node) == (robot, given)
    assert set(given) == set(mod.OVERRIDES)

    # remappings, namespace and log level reach the node
    (node,) = run_setup(stand_in, params_file=robot, namespace="front", image="/cam/raw")
    kw = node.kwargs
    assert kw["namespace"] == "front" and kw["name"] == "depthart_node"
    assert ("image", "/cam/raw") in kw["remappings"]
    assert kw["ros_arguments"] == ["--log-level", "info"] and "arguments" not in kw
    # camera_info not given: no remap, so the node reads the one beside the image (a remap
    # camera_info:=camera_info would be an explicit rule naming /front/camera_info)
    assert "camera_info" not in dict(kw["remappings"])
    (node,) = run_setup(stand_in, params_file=robot, image="/cam/raw", camera_info="/cam/info")
    assert ("camera_info", "/cam/info") in node.kwargs["remappings"]


def test_managed_node_gets_the_same_parameters_and_no_in_process_autostart(
    stand_in, tmp_path: Path
) -> None:
    robot = write_params(tmp_path / "r1.yaml", checkpoint="/robots/r1/d.safetensors")
    mod, fakes = stand_in
    (managed,) = run_setup(stand_in, params_file=robot, lifecycle="true")
    assert isinstance(managed, fakes.types["LifecycleNode"])
    assert managed.kwargs["executable"] == "depthart_lifecycle_node"
    assert parameters_of(managed) == (robot, {"autostart": False})  # nothing drives it
    (managed,) = run_setup(stand_in, params_file=robot, lifecycle="true", sampling="paper")
    assert parameters_of(managed) == (robot, {"sampling": "paper", "autostart": False})
    (managed,) = run_setup(stand_in, params_file=robot, lifecycle="true", autostart="false")
    assert parameters_of(managed) == (robot, {"autostart": False})


def fire(entities: list[Any], fakes: StandIns, event: StateTransition, context: Any) -> list:
    """What launch does with a StateTransition event: every matching registered handler's
    entities, with OpaqueFunctions run (their exception is launch's error exit)."""
    out = []
    for e in entities:
        if isinstance(e, fakes.types["RegisterEventHandler"]) and e.args[0].matches(event):
            for action in e.args[0].kwargs["entities"]:
                if isinstance(action, fakes.types["OpaqueFunction"]):
                    action.kwargs["function"](context)
                out.append(action)
    return out


def change_states(actions: list[Any], fakes: StandIns, node: Any) -> list[int]:
    """The transition ids of the ChangeState events in `actions` aimed at `node`."""
    events = [a.kwargs["event"] for a in actions if isinstance(a, fakes.types["EmitEvent"])]
    assert all(isinstance(e, fakes.types["ChangeState"]) for e in events)
    assert all(e.kwargs["lifecycle_node_matcher"](node) for e in events)
    assert not any(e.kwargs["lifecycle_node_matcher"](object()) for e in events)
    return [e.kwargs["transition_id"] for e in events]


@pytest.mark.parametrize("source", ["argument", "params file"])
def test_autostart_is_driven_by_launch_events(stand_in, tmp_path: Path, source: str) -> None:
    mod, fakes = stand_in
    if source == "argument":
        robot = write_params(tmp_path / "r1.yaml", backend="torch")
        entities = run_setup(stand_in, params_file=robot, lifecycle="true", autostart="true")
    else:
        robot = write_params(tmp_path / "r1.yaml", backend="torch", autostart="true")
        entities = run_setup(stand_in, params_file=robot, lifecycle="true")
    managed = entities[0]
    assert isinstance(managed, fakes.types["LifecycleNode"])
    # the node never autostarts in its own process: launch does it, visibly
    assert parameters_of(managed)[1]["autostart"] is False

    # at start: configure, through the node's lifecycle service (ChangeState event)
    assert change_states(entities[1:], fakes, managed) == [Transition.TRANSITION_CONFIGURE]

    context = LaunchContext({})
    # configure succeeded -> activate; a later deactivate (active -> ... -> inactive) does not
    configured = fire(entities, fakes, StateTransition(managed, "configuring", "inactive"), context)
    assert change_states(configured, fakes, managed) == [Transition.TRANSITION_ACTIVATE]
    again = fire(entities, fakes, StateTransition(managed, "deactivating", "inactive"), context)
    assert again == []
    other = fire(entities, fakes, StateTransition(object(), "configuring", "inactive"), context)
    assert other == []  # another lifecycle node in the same launch is not touched
    assert fire(entities, fakes, StateTransition(managed, "activating", "active"), context) == []

    # configure failed -> the launch ends with an error (exit status 1), naming the node
    with pytest.raises(RuntimeError, match="/depthart_node: configure failed under autostart"):
        fire(entities, fakes, StateTransition(managed, "configuring", "unconfigured"), context)


def test_autostart_argument_beats_the_file(stand_in, tmp_path: Path) -> None:
    robot = write_params(tmp_path / "r1.yaml", autostart="true")
    entities = run_setup(stand_in, params_file=robot, lifecycle="true", autostart="false")
    assert len(entities) == 1  # the managed node alone: a manager is expected
    with pytest.raises(ValueError, match="autostart:='yes'"):
        run_setup(stand_in, params_file=robot, lifecycle="true", autostart="yes")
    with pytest.raises(ValueError, match="lifecycle:='ture'"):
        run_setup(stand_in, params_file=robot, lifecycle="ture")
    assert len(run_setup(stand_in, params_file=robot, lifecycle="1", autostart="1")) > 1
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        run_setup(stand_in, params_file=str(tmp_path / "nope.yaml"), lifecycle="true")


def test_file_autostart_matches_node_names_as_rcl_does(stand_in, tmp_path: Path) -> None:
    mod, _ = stand_in
    path = tmp_path / "p.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            /**:
              ros__parameters: {autostart: false, backend: torch}
            /front/depthart_node:
              ros__parameters: {autostart: true}
            /**/rear/*:
              ros__parameters: {autostart: true}
            other_node:
              ros__parameters: {autostart: true}
            """
        )
    )
    assert mod.file_parameter(path, "/depthart_node", "autostart") is False
    assert mod.file_parameter(path, "/front/depthart_node", "autostart") is True
    assert mod.file_parameter(path, "/a/b/rear/depthart_node", "autostart") is True
    assert mod.file_parameter(path, "/rear/x/depthart_node", "autostart") is False
    assert mod.file_parameter(path, "/depthart_node", "vae") is None
    assert mod.node_fqn("", "") == "/depthart_node"
    assert mod.node_fqn("/robot", "front") == "/robot/front/depthart_node"
    assert mod.node_fqn("/robot", "/front") == "/front/depthart_node"
    # the namespace argument reaches the file lookup
    entities = run_setup(stand_in, params_file=str(path), lifecycle="true", namespace="front")
    assert len(entities) > 1  # autostart: true for /front/depthart_node
    assert len(run_setup(stand_in, params_file=str(path), lifecycle="true")) == 1


# ---------------------------------------------------------------------------------------------
# 3. with the real launch_ros, as `ros2 launch` runs the file (skipped where it is absent)
RUNNER = textwrap.dedent(
    """\
    # what `ros2 launch FILE a:=b ...` does (ros2launch.api.launch_a_launch_file)
    import sys
    import launch
    from launch.launch_description_sources import AnyLaunchDescriptionSource

    path, argv = sys.argv[1], sys.argv[2:]
    service = launch.LaunchService(argv=argv, noninteractive=True)
    include = launch.actions.IncludeLaunchDescription(
        AnyLaunchDescriptionSource(path),
        launch_arguments=[tuple(a.split(":=", 1)) for a in argv],
    )
    service.include_launch_description(launch.LaunchDescription([include]))
    sys.exit(service.run())
    """
)
PARENT = textwrap.dedent(
    """\
    # a robot's own launch file: includes ours and acts on the node's transitions
    from launch import LaunchDescription
    from launch.actions import EmitEvent, IncludeLaunchDescription, LogInfo, RegisterEventHandler
    from launch.events import Shutdown
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch_ros.event_handlers import OnStateTransition

    def generate_launch_description():
        seen = lambda state, then: RegisterEventHandler(OnStateTransition(
            goal_state=state, entities=[LogInfo(msg="parent saw: " + state), *then]))
        return LaunchDescription([
            seen("inactive", []),
            seen("active", [EmitEvent(event=Shutdown(reason="depthart_node is active"))]),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource({launch_file!r}),
                launch_arguments={arguments!r}.items(),
            ),
        ])
    """
)


@pytest.fixture
def real_launch(tmp_path: Path):
    """An ament prefix holding the package as colcon installs it (index marker, share/ files,
    lib/depthart_ros/<executable>), and a function that runs a launch file through it."""
    pytest.importorskip("launch_ros", reason="launch_ros is not pip-installable: needs ROS")
    pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
    from ros_helpers.harness import ros_env, unique_domain_id

    prefix = tmp_path / "install"
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / "depthart_ros").touch()
    share = prefix / "share" / "depthart_ros"
    for sub, src in (("launch", LAUNCH_FILE), ("config", PARAMS_FILE)):
        (share / sub).mkdir(parents=True)
        (share / sub / src.name).symlink_to(src)
    lib = prefix / "lib" / "depthart_ros"
    lib.mkdir(parents=True)
    for exe, module in (
        ("depthart_node", "depthart_ros.node"),
        ("depthart_lifecycle_node", "depthart_ros.lifecycle_node"),
    ):
        (lib / exe).write_text(f"#!{sys.executable}\nfrom {module} import main\nmain()\n")
        (lib / exe).chmod(0o755)
    domain = unique_domain_id()
    env = ros_env(domain)
    env["AMENT_PREFIX_PATH"] = os.pathsep.join([str(prefix), env.get("AMENT_PREFIX_PATH", "")])
    env["ROS_LOG_DIR"] = str(tmp_path / "ros_log")

    def run(
        launch_file: Path,
        args: dict[str, str],
        until: str | None = None,
        then: Callable[[], None] | None = None,
    ) -> tuple[int, str]:
        """Run to its end, or once `until` is in the output call `then` and send SIGINT;
        (exit status, output)."""
        cmd = [sys.executable, "-c", RUNNER, str(launch_file)]
        cmd += [f"{k}:={v}" for k, v in args.items()]
        log = tmp_path / f"launch-{len(list(tmp_path.glob('launch-*')))}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=out)
            try:
                if until is not None:
                    _wait_for_text(log, until, proc, timeout=90)
                    if then is not None:
                        then()
                    proc.send_signal(signal.SIGINT)
                rc = proc.wait(timeout=90)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        return rc, log.read_text(errors="replace")

    run.domain = domain
    return run


def _wait_for_text(log: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never printed:\n{log.read_text(errors='replace')}")


def test_arguments_reach_the_node_under_a_key_the_users_file_does_not_use(
    stand_in, tmp_path: Path
) -> None:
    """rcl merges entries of one key across files and rclpy applies keys in their first order:
    under the user's own key an argument lost to a later `/**` entry (probe: `/depthart_node`
    then `/**` in the user's file). The arguments' file picks a key the user's file lacks."""
    mod, _ = stand_in
    robot = tmp_path / "r1.yaml"
    robot.write_text(
        "/depthart_node:\n  ros__parameters: {threads: 1}\n"
        "/**/depthart_node:\n  ros__parameters: {backend: onnxruntime, autostart: true}\n"
    )
    (node,) = run_setup(stand_in, params_file=str(robot), backend="torch", use_sim_time="true")
    assert parameters_of(node) == (str(robot), {"backend": "torch", "use_sim_time": True})
    key = next(iter(yaml.safe_load(Path(node.kwargs["parameters"][1]).read_text())))
    assert key == "/**/*"  # /**/depthart_node is the user's
    # strings stay strings: a path or "true" given as a checkpoint is never read as YAML
    (node,) = run_setup(stand_in, params_file=str(robot), checkpoint="true")
    assert parameters_of(node)[1] == {"checkpoint": "true"}
    with pytest.raises(ValueError, match="use_sim_time:='maybe'"):
        run_setup(stand_in, params_file=str(robot), use_sim_time="maybe")
    # a mistyped params file is refused in every mode (it used to start the plain node on its
    # built-in defaults with one launch_ros warning)
    for lifecycle in ("false", "true"):
        with pytest.raises(FileNotFoundError, match="params_file not found"):
            run_setup(stand_in, params_file=str(tmp_path / "typo.yml"), lifecycle=lifecycle)


def test_arguments_avoid_a_key_the_users_file_has_only_in_nested_form(
    stand_in, tmp_path: Path
) -> None:
    """`"/**": depthart_node: ros__parameters:` is the node key /**/depthart_node to rcl: the
    arguments' file took that key (only top-level keys were looked at), rcl merged it into the
    user's first entry and a later `/depthart_node` entry won over `sampling:=greedy` and over
    the managed node's autostart false (probe with the real launch_ros: the node activated
    itself and launch's configure failed)."""
    robot = tmp_path / "nested.yaml"
    robot.write_text(
        '"/**":\n  depthart_node:\n    ros__parameters: {threads: 1}\n'
        "/depthart_node:\n  ros__parameters: {sampling: soft, autostart: true}\n"
    )
    (node,) = run_setup(stand_in, params_file=str(robot), sampling="greedy")
    key = next(iter(yaml.safe_load(Path(node.kwargs["parameters"][1]).read_text())))
    assert key == "/**/*", key
    loose = tmp_path / "loose.yaml"  # the same key without its leading slash is the same key
    loose.write_text("'**/depthart_node':\n  ros__parameters: {threads: 1}\n")
    (node,) = run_setup(stand_in, params_file=str(loose), sampling="greedy")
    assert next(iter(yaml.safe_load(Path(node.kwargs["parameters"][1]).read_text()))) == "/**/*"


def test_nested_params_file_autostart_is_read(stand_in, tmp_path: Path) -> None:
    """rcl's nested form (`front: depthart_node: ros__parameters:`) sets autostart too."""
    mod, fakes = stand_in
    path = tmp_path / "nested.yaml"
    path.write_text("front:\n  depthart_node:\n    ros__parameters: {autostart: true}\n")
    assert mod.file_parameter(path, "/front/depthart_node", "autostart") is True
    assert mod.file_parameter(path, "/depthart_node", "autostart") is None
    entities = run_setup(stand_in, params_file=str(path), lifecycle="true", namespace="front")
    assert len(entities) > 1  # launch drives it


def test_launch_description_loads_where_launch_ros_exists() -> None:
    pytest.importorskip("launch_ros", reason="launch_ros is not pip-installable: needs ROS")
    ld = load_launch_file().generate_launch_description()
    names = {a.name for a in ld.get_launch_arguments()}
    assert LAUNCH_ARGS <= names
    assert all(a.description for a in ld.get_launch_arguments())


@pytest.mark.ros
def test_real_launch_params_file_precedence(real_launch, tiny_checkpoint: str, tmp_path) -> None:
    other = tmp_path / "other.safetensors"
    other.write_bytes(Path(tiny_checkpoint).read_bytes())
    robot = write_params(tmp_path / "r1.yaml", checkpoint=tiny_checkpoint, backend="torch")
    cases = {
        "file only": ({"params_file": robot}, tiny_checkpoint),
        "file + argument": ({"params_file": robot, "checkpoint": str(other)}, str(other)),
        "argument only": ({"checkpoint": str(other), "backend": "torch"}, str(other)),
    }
    for case, (args, expected) in cases.items():
        rc, out = real_launch(LAUNCH_FILE, args, until="ready: backend")
        ready = next(line for line in out.splitlines() if "ready: backend" in line)
        assert "backend torch" in ready and f"checkpoint {expected}," in ready, (case, out)
        assert "Traceback" not in out, out


@pytest.mark.ros
def test_real_launch_image_transport_subscribes_the_remapped_compressed_topic(
    real_launch, tiny_checkpoint: str, tmp_path: Path
) -> None:
    from ros_helpers.harness import RosPeer

    robot = write_params(tmp_path / "r1.yaml", checkpoint=tiny_checkpoint, backend="torch")
    types: list[list[str]] = []

    def subscribers() -> None:  # what the launched node subscribes, seen over DDS
        peer = RosPeer(real_launch.domain)
        try:
            info = peer.node.get_subscriptions_info_by_topic
            peer.wait_for(lambda: bool(info("/cam/image_raw/compressed")), 30)
            types.append([i.topic_type for i in info("/cam/image_raw/compressed")])
            types.append([i.topic_type for i in info("/cam/image_raw")])
        finally:
            peer.close()

    args = {"params_file": robot, "image": "/cam/image_raw", "image_transport": "compressed"}
    rc, out = real_launch(LAUNCH_FILE, args, until="ready: backend", then=subscribers)
    assert types == [["sensor_msgs/msg/CompressedImage"], []], out
    assert "Traceback" not in out, out


@pytest.mark.ros
@pytest.mark.parametrize("source", ["argument", "params file"])
def test_real_launch_autostart_is_seen_by_a_parent(
    real_launch, tiny_checkpoint: str, tmp_path: Path, source: str
) -> None:
    extra = {"autostart": "true"} if source == "argument" else {}
    in_file = {} if source == "argument" else {"autostart": "true"}
    robot = write_params(
        tmp_path / "r1.yaml", checkpoint=tiny_checkpoint, backend="torch", **in_file
    )
    parent = tmp_path / "robot.launch.py"
    args = {"params_file": robot, "lifecycle": "true", **extra}
    parent.write_text(PARENT.format(launch_file=str(LAUNCH_FILE), arguments=args))
    rc, out = real_launch(parent, {})
    assert rc == 0, out  # the parent shut the launch down once it saw "active"
    assert "parent saw: inactive" in out and "parent saw: active" in out, out
    assert out.index("parent saw: inactive") < out.index("parent saw: active")
    assert out.count("configured: subscribed to") == 1 and "activated: publishing" in out, out


@pytest.mark.ros
def test_real_launch_failed_configure_under_autostart_exits_1(real_launch, tmp_path) -> None:
    missing = tmp_path / "nope.safetensors"
    args = {"lifecycle": "true", "autostart": "true", "checkpoint": str(missing)}
    rc, out = real_launch(LAUNCH_FILE, args)
    assert rc == 1, out
    assert f"checkpoint not found: {missing}" in out, out
    assert "/depthart_node: configure failed under autostart" in out, out


@pytest.mark.ros
def test_real_launch_managed_without_autostart_waits_for_a_manager(
    real_launch, tiny_checkpoint: str, tmp_path: Path
) -> None:
    from lifecycle_msgs.srv import GetState
    from ros_helpers.harness import RosPeer

    robot = write_params(tmp_path / "r1.yaml", checkpoint=tiny_checkpoint, backend="torch")
    states = []

    def ask_state() -> None:
        # asked again until answered: Fast DDS can drop the first response to a new client
        peer = RosPeer(real_launch.domain)
        client = peer.node.create_client(GetState, "/depthart_node/get_state")
        try:
            deadline = time.monotonic() + 60
            while not states and time.monotonic() < deadline:
                if client.wait_for_service(timeout_sec=2.0):
                    future = client.call_async(GetState.Request())
                    if peer.wait_for(future.done, 2.0):
                        states.append(future.result())
                    else:
                        client.remove_pending_request(future)
        finally:
            peer.close()

    args = {"params_file": robot, "lifecycle": "true"}
    rc, out = real_launch(LAUNCH_FILE, args, until="process started", then=ask_state)
    assert states and states[0].current_state.label == "unconfigured", out
    assert "configured: subscribed" not in out and "model loaded" not in out, out
