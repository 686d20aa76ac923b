"""`depthart_lifecycle_node`: `depthart_node` as a ROS 2 managed (lifecycle) node.

Same parameters, topics and frame path as `depthart_node` (both mix in
`depthart_ros.node.DepthArtCore`); only when each step runs differs, following the managed-node
state machine (design.ros2.org "Managed nodes"; rclpy.lifecycle):

    configure   validate parameters, load the checkpoint / build or load the engine, create the
                (lifecycle) publishers, subscriptions, worker and diagnostics. A failure logs the
                reason and returns FAILURE: the node stays unconfigured, ready for another
                configure once the parameters are corrected.
    activate    enable the publishers and take frames; the ground-plane scale starts over (the
                scene and the relative unit it followed may have changed during the pause).
    deactivate  stop taking frames, drop a waiting one (counted as `frames_dropped_inactive`),
                let the frame in progress finish; the model stays loaded. While inactive, the
                `imu` and `sparse_depth` messages are dropped unread (a frame uses only those
                of its own stamp); `camera_info` is still kept, for a calibration published
                once (latched) before activation.
    cleanup     destroy the endpoints and free the model.
    shutdown    whatever of the above the current state needs; clean from any state.

The start-up parameters (`checkpoint`, `backend`, QoS, ...) are read at configure, so they can be
set while unconfigured and are refused in any other state. `/diagnostics` is a plain publisher:
it reports `state` (inactive / active) and `model_loads` while configured.

Who drives the transitions: a lifecycle manager (nav2_lifecycle_manager, `ros2 lifecycle set`),
or launch/depthart.launch.py with autostart:=true, which calls the lifecycle services through
launch_ros `ChangeState` events so that every transition is visible to launch. The `autostart`
parameter (default false) is for `ros2 run` without either: the node configures and activates
itself before it spins, and a failure there is one FATAL line and exit status 1, as for
`depthart_node`, so that a supervisor or respawn can act. Never set it for a node a manager
drives (the manager's configure would be refused); the launch file always sets it false.

Ctrl-C or SIGTERM during configure (a model load, ONNX export or TensorRT build) is a shutdown,
not a failed configure: `StartupStopped` passes rclpy's transition machinery (which would fail to
publish on the dead context), and the process ends with one INFO line and status 0.
"""

from __future__ import annotations

import functools
import gc
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile

from depthart_ros.dds import use_node_profile
from depthart_ros.node import (
    FAILED_NODE_LOGGER,
    DepthArtCore,
    StartupStopped,
    exit_cannot_start,
    init_or_exit,
    leave_process,
    leave_stopped_during_start_up,
    node_ros_args,
    remember_logger_name,
    shut_down_during_start_up,
    spin_until_shutdown,
)
from depthart_ros.params import PARAMS

STARTUP_PARAMS = frozenset(p.name for p in PARAMS if p.read_only)
DRAIN_TIMEOUT_S = 30.0  # deactivate waits this long for the frame in progress


def _logs_failure(transition: Callable) -> Callable:
    """Log why a transition callback raised, then let rclpy turn it into ERROR as it does (rclpy
    itself swallows the exception without a word, leaving the user an ErrorProcessing state and
    no reason)."""

    @functools.wraps(transition)
    def logged(self: DepthArtLifecycleNode, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            return transition(self, state)
        except Exception as exc:
            name = transition.__name__.removeprefix("on_")
            self.get_logger().error(f"{name} failed: {type(exc).__name__}: {exc}")
            raise

    return logged


class DepthArtLifecycleNode(DepthArtCore, LifecycleNode):
    accepting = False
    _configured = False  # model loaded and endpoints created (inactive or active)
    _active = False
    _autostarting = False  # in-process autostart reports a failed configure as its fatal line
    configure_error: str | None = None  # why the last configure failed

    def __init__(
        self, node_name: str = "depthart_node", *, exit_on_failure: bool = False, **kwargs: Any
    ) -> None:
        """A bad start-up parameter destroys the half-built node and raises (tests,
        composition); with `exit_on_failure` (main) the process ends there instead, through
        `exit_cannot_start`, before any DDS teardown (see there). Ctrl-C raises either way."""
        super().__init__(node_name, **kwargs)
        self.ros_args = node_ros_args(kwargs)
        self._finalized = False  # after shutdown: start-up parameters refused
        try:
            self._declare_parameters(startup_read_only=False)
            self.declare_parameter(
                "autostart",
                False,
                ParameterDescriptor(
                    description="configure and activate in this process at start-up, for `ros2 "
                    "run` without a lifecycle manager; never with one (the launch file sets it "
                    "false and drives the transitions itself)",
                    read_only=True,
                ),
            )
        except BaseException as exc:  # nothing half-built stays registered (rosout, services)
            remember_logger_name(exc, self)
            if exit_on_failure and isinstance(exc, Exception) and self.context.ok():
                exit_cannot_start(exc)  # the process ends now: no participant teardown
            self.destroy_node()
            raise

    # ------------------------------------------------------------------ transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._load_model()
            self._create_endpoints()
            if not self.context.ok():  # Ctrl-C / SIGTERM while the endpoints were made
                raise StartupStopped()
        except BaseException as exc:
            if shut_down_during_start_up(exc, self.context):  # a shutdown, not a failure:
                self.release()  # past rclpy's transition (which would fail on the dead context)
                raise StartupStopped() from exc  # to main() or spin_until_shutdown
            if not isinstance(exc, Exception):
                raise
            # the reason goes to the log; the node stays unconfigured
            self.configure_error = str(exc)
            if not self._autostarting:  # autostart() makes it the one fatal line instead
                self.get_logger().error(f"configure failed: {exc}")
            self.release()
            return TransitionCallbackReturn.FAILURE
        self.configure_error = None
        self._configured = True
        self.get_logger().info(
            f"configured: subscribed to {self.image_topic}{self.camera_info_label()}"
        )
        return TransitionCallbackReturn.SUCCESS

    @_logs_failure
    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        ret = super().on_activate(state)  # enables the lifecycle publishers
        if ret == TransitionCallbackReturn.SUCCESS:
            self.metric.reconfigure(self.cfg)  # no scale or unit carried across the pause
            self.input_watched_since = time.monotonic()  # input_timeout_s: silence while active
            self._active = self.accepting = True
            self.get_logger().info(f"activated: publishing {self.resolve_topic_name('depth')}")
        return ret

    @_logs_failure
    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._pause()
        return super().on_deactivate(state)

    @_logs_failure
    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()
        return TransitionCallbackReturn.SUCCESS

    @_logs_failure
    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._finalized = True  # start-up parameters can no longer take effect
        if state.label == "active":
            self._pause()
            super().on_deactivate(state)
        self.release()
        return TransitionCallbackReturn.SUCCESS

    @_logs_failure
    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release()  # back to unconfigured with nothing held
        return TransitionCallbackReturn.SUCCESS

    # ------------------------------------------------------------------ steps
    def _pause(self) -> None:
        """Stop taking frames, drop the waiting one, let the one in progress finish."""
        self._active = self.accepting = False
        if not self._configured:
            return
        dropped = self.frames.drop_pending()
        if not self.frames.wait_idle(DRAIN_TIMEOUT_S):
            self.get_logger().warning(f"a frame was still in progress after {DRAIN_TIMEOUT_S} s")
        self.get_logger().info(f"deactivated, model kept; waiting frames dropped: {dropped}")

    def release(self) -> None:
        """Destroy the endpoints and free the model; safe to call in any state (idempotent)."""
        self._active = self.accepting = self._configured = False
        if getattr(self, "_owned", None):
            self._destroy_endpoints()
        self._forget_qos_parameters()
        if self.backend is not None:
            self.backend = None
            self._forget_threads()
            gc.collect()
            if self.context.ok():  # not after Ctrl-C: rosout is gone by then
                self.get_logger().info("model released")

    def _forget_qos_parameters(self) -> None:
        """Forget the `qos_overrides.*` parameters rclpy declared from the last configure's QoS.

        rclpy declares them read-only when an endpoint is created, with the profile the QoS
        parameters gave as their value, and a re-created endpoint takes the declared value over
        its new profile: without this, QoS parameters changed between cleanup and the next
        configure would be accepted and silently ignored. The ones the user gave (a params file,
        `-p`) stay in rclpy's overrides and are declared again from them. rclpy's
        `undeclare_parameter` refuses read-only parameters, hence its tables here."""
        params, descriptors = getattr(self, "_parameters", {}), getattr(self, "_descriptors", {})
        given = getattr(self, "_parameter_overrides", {})
        for name in [n for n in params if n.startswith("qos_overrides.") and n not in given]:
            params.pop(name, None)
            descriptors.pop(name, None)

    def autostart(self) -> str | None:
        """Configure and activate in this process (the `autostart` parameter); the reason
        when either fails, None when the node is active."""
        self._autostarting = True
        try:
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                return f"autostart: configure failed: {self.configure_error}"
            if not self.context.ok():  # Ctrl-C / SIGTERM right after configure
                raise StartupStopped()
            if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                return "autostart: activate failed"
        finally:
            self._autostarting = False
        return None

    def close(self) -> None:
        if getattr(self, "frames", None) is not None:
            super().close()

    def destroy_node(self) -> None:
        """Also end rclpy's lifecycle state machine, which holds the rcl node: without this the
        node and its /rosout publisher outlive `destroy_node` until garbage collection, and a
        line logged under its name after a Ctrl-C / SIGTERM prints rcl's "Failed to publish log
        message to rosout: publisher's context is invalid"."""
        super().destroy_node()
        state_machine = getattr(self, "_state_machine", None)
        if state_machine is not None:
            state_machine.destroy_when_not_in_use()

    # ------------------------------------------------------------------ DepthArtCore hooks
    def _output_publisher(self, msg_type: type, topic: str, qos: QoSProfile, **kw: Any) -> Any:
        pub = self.create_lifecycle_publisher(msg_type, topic, qos, **kw)
        return self._own(self.destroy_lifecycle_publisher, pub)

    def _refuse_set(self, names: list[str]) -> str | None:
        locked = sorted(STARTUP_PARAMS & set(names))
        if locked and self._finalized:
            return (
                f"{', '.join(locked)}: read at configure, and a finalized node configures no more"
            )
        if locked and self._configured:
            return f"{', '.join(locked)}: read at configure; set it while unconfigured"
        return None

    def lifecycle_label(self) -> str:
        return "active" if self._active else "inactive"


def main(args: list[str] | None = None) -> None:
    use_node_profile()  # before rclpy creates the participant (depthart_ros.dds)
    init_or_exit(args)  # a bad params file, --log-level, log directory: one line, status 1
    try:
        node = DepthArtLifecycleNode(exit_on_failure=True)
    except BaseException as exc:
        if shut_down_during_start_up(exc, rclpy.get_default_context()):
            leave_stopped_during_start_up(getattr(exc, FAILED_NODE_LOGGER, "depthart_node"))
        if not isinstance(exc, Exception):
            raise
        exit_cannot_start(exc)  # a clear fatal line instead of a traceback
    try:
        error = node.autostart() if node.get_parameter("autostart").value else None
    except BaseException as exc:
        if not shut_down_during_start_up(exc, node.context):
            raise
        name = node.get_logger().name
        node.release()
        node.destroy_node()
        leave_stopped_during_start_up(name)  # status 0, as for a signal while it runs
    if error is not None:  # no depth would ever come: exit for a supervisor or respawn to act
        # no release / destroy_node / try_shutdown: a failed configure released the model
        # itself, os._exit frees whatever else is held (threads included) and ends the
        # participant; DDS teardown here raced discovery (`exit_cannot_start`)
        node.get_logger().fatal(f"cannot start: {error}")
        leave_process(1)
    spin_until_shutdown(node, node.release)
    leave_process(0)


if __name__ == "__main__":
    main()
