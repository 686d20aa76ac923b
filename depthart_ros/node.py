"""`depthart_node`: sensor_msgs/Image (or image_transport's `compressed`) in, REP 118 `32FC1`
depth out.

Topics (all relative, remap them): `image` (+ optional `camera_info`, `sparse_depth`, `imu`) in,
`camera_info` when not remapped being the one beside `image`'s resolved topic (image_transport's
convention: `image:=/camera/image_raw` reads /camera/camera_info; `camera_info_topic`),
or with `image_transport: compressed` the CompressedImage topic `<image's resolved name>/compressed`
(image_transport's naming, so remapping `image` moves both), and with `sparse_depth.transport:
compressedDepth` the cue on `<sparse_depth's resolved name>/compressedDepth`;
`depth`, `depth/image` (lazy: the same message beside its calibration), `depth/camera_info`,
`depth/colored` (lazy), `depth/points` (lazy, needs camera_info;
`depthart_core.pointcloud`), `depth/uncertainty` and `depth/filtered` (lazy, need a checkpoint
with the uncertainty head; `depthart_ros.uncertainty`) out; `/diagnostics` at 1 Hz.

Latest-frame policy: the subscription callback parks each valid image in a one-frame slot and a
worker thread converts, predicts and publishes; a newer frame replaces a waiting one, and every
frame is counted (`depthart_ros.pipeline`). Parameters and their checks: `depthart_ros.params`.

One implementation, two nodes: `DepthArtCore` holds parameters, model loading, topics, worker and
diagnostics; `DepthArtNode` (here) runs it all at start-up, and `DepthArtLifecycleNode`
(`depthart_ros.lifecycle_node`, a ROS 2 managed node) runs the same steps in its transitions.

QoS: input defaults to the sensor-data profile (best effort, keep last 1), outputs to reliable
(REP 2003); both set by parameters and overridable per topic via `qos_overrides`. Fast DDS note:
run every process with FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA. Without it, best-effort 640x480
rgb8 frames are mostly lost between processes; with it they usually arrive, but we saw losses
under heavy CPU load, so where every frame matters set `input_qos.reliability: reliable`
(README, "Large images and DDS").
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.clock import Clock, ClockType
from rclpy.executors import SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSPolicyKind,
    QoSProfile,
    ReliabilityPolicy,
)
from rclpy.qos_overriding_options import QosCallbackResult, QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, Imu, PointCloud2, PointField

from depthart_core.checkpoint_file import resolve_checkpoint
from depthart_core.colormap import colorize_bgr
from depthart_core.fileutil import lock_waits_end_when
from depthart_core.pointcloud import depth_to_points, pixel_rays
from depthart_core.rosio import cloud as ros_cloud
from depthart_core.rosio import compressed
from depthart_core.rosio import image as ros_image
from depthart_core.rosio.messages import imu_orientation
from depthart_core.runtime import get_backend
from depthart_core.runtime.base import LETTERBOX_UNCERTAINTY, Backend, check_device_runnable
from depthart_core.runtime.threads import resolve_threads
from depthart_core.sampling import sampling_setting
from depthart_ros.calibration import (
    CalibrationPairer,
    aspect_problem,
    camera_info_beside,
    camera_info_for,
    camera_info_silence,
    remaps_name,
)
from depthart_ros.dds import held_discovery_port_said, use_node_profile
from depthart_ros.metric import GROUND_PARAMS, MetricScaler
from depthart_ros.params import FLOAT_PARAMS, PARAMS, Param, param_problems, validate_params
from depthart_ros.pipeline import (
    FramePipeline,
    camera_info_problem,
    frame_latency_ms,
    frame_stats,
    header_stamp_ns,
    input_silence,
    rss_mb,
    run_worker,
    timed_predict,
)
from depthart_ros.rcl_init import rcl_init_problem
from depthart_ros.spin import spin_until_context_ends
from depthart_ros.uncertainty import TOPICS as U_TOPICS
from depthart_ros.uncertainty import UNAVAILABLE, UncertaintyOutputs

# qos_overrides./<topic>.{publisher,subscription}.* accepted on every topic: rclpy's defaults plus
# durability (a transient_local depth/camera_info is a latched calibration for late subscribers;
# a transient_local camera_info subscription receives a latched one published before it)
CLOSE_JOIN_S = 10.0  # how long close() waits for the frame the worker is on
# the thread count each live node of this process asked for: PyTorch's and OpenCV's pools are
# per process, so the last node loaded sets them for all (ONNX Runtime's sessions keep their own)
_PROCESS_THREADS: weakref.WeakKeyDictionary[Any, tuple[str, int]] = weakref.WeakKeyDictionary()
OVERRIDABLE = tuple(QoSPolicyKind[k] for k in "HISTORY DEPTH RELIABILITY DURABILITY".split())
# the remedy a refused `device` names: the node's parameter, not the CLI's --device
DEVICE_ADVICE = (
    "set the node's device parameter to cpu (-p device:=cpu, or device: cpu in its params file)"
)
NODE_NAME = "depthart_node"
# the arguments rclpy.init was given by `init_or_exit` (empty before): their remap rules
_INIT_ARGS: list[str] = []
# under sim time, how long a frame stamped well before the previous one waits for the clock to
# show whether it starts a new stream: `ros2 bag play --clock` publishes /clock at 40 Hz, and
# the loop's first image can come before the /clock message that moves sim time back
CLOCK_FOLLOW_S = 0.25
STOPPED_LINE = "stopped during start-up: shut down (Ctrl-C or SIGTERM) before the node was ready"


class StartupStopped(BaseException):
    """The context ended (Ctrl-C, SIGTERM) while the node was starting: a shutdown, not a failure.

    A BaseException, like KeyboardInterrupt, so that rclpy's lifecycle machinery (which turns an
    Exception into an ERROR transition, then fails to publish it on the dead context) lets it
    through to the node's `main` or `spin_until_shutdown`, which end the process with status 0."""


def shut_down_during_start_up(exc: BaseException, context: Any) -> bool:
    """Whether `exc`, raised while a node started, is a shutdown rather than a failure: Ctrl-C,
    or anything at all once the context is no longer ok (rclpy's SIGTERM handler ends the
    context while a model load goes on; its next publish then fails)."""
    return isinstance(exc, (KeyboardInterrupt, StartupStopped)) or not context.ok()


def process_ros_args() -> list[str]:
    """The command line rclpy.init read in this process (`init_or_exit`), else sys.argv."""
    return list(_INIT_ARGS or sys.argv)


def node_ros_args(kwargs: dict[str, Any]) -> list[str]:
    """The arguments whose remap rules apply to a node built with `kwargs`: the process's
    (unless `use_global_arguments=False`) and its own `cli_args`."""
    own = list(kwargs.get("cli_args") or [])
    return own if kwargs.get("use_global_arguments") is False else [*process_ros_args(), *own]


def camera_info_topic(node: Node, ros_args: Sequence[str] = ()) -> str:
    """The CameraInfo topic `node` reads: `camera_info` as remapped, or, without a remap rule for
    it in `ros_args` (the process's and the node's own arguments), the one beside `image`'s
    resolved topic, as image_transport's camera subscribers read it (`-r image:=/camera/image_raw`
    alone reads /camera/camera_info; `-r camera_info:=/camera_info` with it reads /camera_info)."""
    resolved = node.resolve_topic_name("camera_info")
    expanded = node.resolve_topic_name("camera_info", only_expand=True)
    names = (node.get_name(),)  # rcl matches a node's rule against its name after `__node`
    if resolved != expanded or remaps_name(ros_args, "camera_info", expanded, names):
        return resolved
    return camera_info_beside(node.resolve_topic_name("image"))


def stamps_went_back(
    previous_ns: int | None, stamp_ns: int, limit_s: float, sim_time: bool
) -> bool:
    """Whether a frame judged stale may start a new stream (a looped bag, a seek, a simulator
    reset) rather than come late: under sim time, stamped more than `limit_s` before the
    previous frame. On the wall clock a stream cannot go back: such a frame is late."""
    return sim_time and previous_ns is not None and previous_ns - stamp_ns > limit_s * 1e9


def clock_follows(read_now_ns: Callable[[], int], wait_s: float, poll_s: float = 0.002) -> bool:
    """Whether a frame whose stamps went back (`stamps_went_back`) starts a new stream, by what
    the clock does within `wait_s`: it goes back (the new stream's /clock, which can come just
    after its first image) or does not move at all (nothing says otherwise): True; it goes on
    forward: False, the frame came late in the same stream (a second publisher, a reliable
    backlog) and is as stale as its age says."""
    start = read_now_ns()
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        now = read_now_ns()
        if now != start:
            return now < start
        time.sleep(poll_s)
    return True


def _descriptor(p: Param, startup_read_only: bool = True) -> ParameterDescriptor:
    text = p.description + (f" (one of {', '.join(p.choices)})" if p.choices else "")
    d = ParameterDescriptor(description=text, read_only=p.read_only and startup_read_only)
    if p.lo is not None and isinstance(p.default, float):
        # floats: rclpy hands the bounds to C unchecked, where an int reads as 5e-324
        low, high = float(p.lo), float(p.hi)
        d.floating_point_range = [FloatingPointRange(from_value=low, to_value=high, step=0.0)]
    elif p.lo is not None:
        d.integer_range = [IntegerRange(from_value=int(p.lo), to_value=int(p.hi), step=1)]
    if p.choices:
        d.additional_constraints = f"one of {list(p.choices)}"
    return d


def _widen_integers(params: list[Parameter]) -> dict[str, Parameter]:
    """`params` by name, each whole number given to a floating-point parameter made a double.

    A params file's `max_rate_hz: 5` or `-p max_rate_hz:=5` arrives as an INTEGER, and rclpy
    refuses it for a DOUBLE parameter (at start-up the node would not come up at all). Widening an
    integer to a double loses nothing; nothing else is converted."""
    return {
        p.name: Parameter(p.name, Parameter.Type.DOUBLE, float(p.value))
        if p.name in FLOAT_PARAMS and p.type_ == Parameter.Type.INTEGER
        else p
        for p in params
    }


class DepthArtCore:
    """Parameters, model, topics, worker and diagnostics of `depthart_node`, mixed into an rclpy
    node. `DepthArtNode` runs the steps at start-up; the managed node
    (`depthart_ros.lifecycle_node`) runs them in its lifecycle transitions."""

    accepting = True  # whether `image` frames are taken (the managed node: only while active)
    model_loads = 0  # successful model loads by this node, shown in diagnostics
    backend: Backend | None = None

    def _declare_parameters(self, startup_read_only: bool = True) -> None:
        """Declare every `PARAMS` entry with its descriptor; `startup_read_only=False` leaves the
        start-up ones settable (the managed node locks them itself outside `unconfigured`)."""
        overrides = getattr(self, "_parameter_overrides", {})  # rclpy's store of -p / params files
        overrides.update(_widen_integers(list(overrides.values())))
        for p in PARAMS:
            self.declare_parameter(p.name, p.default, _descriptor(p, startup_read_only))
        self.cfg = {p.name: self.get_parameter(p.name).value for p in PARAMS}
        if hasattr(self, "add_pre_set_parameters_callback"):  # rclpy of Jazzy and later
            self.add_pre_set_parameters_callback(lambda ps: list(_widen_integers(ps).values()))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)

    def _load_model(self) -> None:
        """Validate the parameters and load the model; raises with the reason on failure."""
        c = self.cfg
        reason = validate_params(c)
        if reason:
            raise ValueError(f"invalid parameter: {reason}")
        sampling = sampling_setting(c["sampling"], c["sampling_seed"])
        check_device_runnable(c["backend"], c["device"], sampling.deterministic, DEVICE_ADVICE)
        # the cache's "exporting" / "waiting" lines, while the context lives
        # ... and a wait for another process's build ends with it (rclpy's SIGTERM handler
        # raises nothing in Python): `LockWaitStopped`, a KeyboardInterrupt, a clean stop
        with (
            core_logs_to(self.get_logger(), self.context.ok),
            lock_waits_end_when(lambda: not self.context.ok()),
        ):
            self.backend = get_backend(
                c["backend"],
                c["checkpoint"] or None,
                device=c["device"],
                precision=c["precision"],
                letterbox=c["letterbox"],
                flip_average=c["flip_average"],
                threads=c["threads"],
                sampling=sampling,
                vae=c["vae"] or None,
                vae_setting="the node's vae parameter",  # not the CLI's --vae
            )
        if not self.context.ok():  # Ctrl-C / SIGTERM during an export or engine build
            raise StartupStopped()
        self.engine = self.backend.describe()
        self._share_threads(resolve_threads(c["threads"]))
        # the file actually read: the default is the shipped one or $DEPTHART_CHECKPOINT's
        self.checkpoint_label = c["checkpoint"] or f"(default) {resolve_checkpoint(None)}"
        self.model_loads += 1
        self.get_logger().info(
            f"model loaded (load {self.model_loads}): backend {self.engine}, "
            f"checkpoint {self.checkpoint_label}"
        )

    def _share_threads(self, threads: int) -> None:
        """Record this node's CPU thread count; warn when another node of this process asked
        for another (they share PyTorch's and OpenCV's thread pools: the last load wins)."""
        others = sorted(
            f"{name} ({n})"
            for node, (name, n) in list(_PROCESS_THREADS.items())
            if node is not self and n != threads
        )
        _PROCESS_THREADS[self] = (self.get_fully_qualified_name(), threads)
        if others:
            self.get_logger().warning(
                f"threads {threads}: other DepthART nodes in this process asked for other counts "
                f"({', '.join(others)}); the torch backend's and OpenCV's thread pools are per "
                f"process, so all of them now use {threads} (ONNX Runtime's sessions keep their "
                "own). Give every node of one process the same threads, or run them in separate "
                "processes"
            )

    def _forget_threads(self) -> None:
        _PROCESS_THREADS.pop(self, None)

    def destroy_node(self) -> None:
        self._forget_threads()  # a node destroyed without close() asks for no threads any more
        super().destroy_node()

    def _create_endpoints(self) -> None:
        """Publishers, subscriptions, the worker thread and the diagnostics timer."""
        c = self.cfg
        self._owned: list[tuple[Callable[[Any], Any], Any]] = []  # (destroy, entity)
        # 1. topics; rclpy applies qos_overrides by mutating the profile, so each gets its own
        self.pub_depth = self._publisher(Image, "depth")
        # the same image beside depth/camera_info, where image_transport's camera subscribers
        # (depth_image_proc, rviz's DepthCloud) look for its calibration; lazy, as depth/colored
        self.pub_depth_image = self._publisher(Image, "depth/image")
        self.pub_info = self._publisher(CameraInfo, "depth/camera_info")
        self.pub_colored = self._publisher(Image, "depth/colored")
        self.pub_points = self._publisher(PointCloud2, "depth/points")
        self.points_counts: Counter[str] = Counter()
        self._rejected_reported = 0  # frames_rejected as of the last diagnostics message
        self._stale_reported = 0  # frames_dropped_stale as of the last diagnostics message
        # no head (or a sampled decoding, whose error the head does not predict): no topics
        have_u = self.backend.has_uncertainty
        why = UNAVAILABLE if have_u else f"unavailable, {self.backend.uncertainty_missing}"
        self.uncertainty = UncertaintyOutputs(
            [self._publisher(Image, t) for t in U_TOPICS if have_u], unavailable=why
        )
        if have_u and c["letterbox"]:
            self.get_logger().warning(LETTERBOX_UNCERTAINTY)
        if not have_u:  # said once per model load, and in every diagnostics message
            self.get_logger().info(f"uncertainty {why} ({self.engine}): not publishing "
                                   f"{' or '.join(U_TOPICS)}")  # fmt: skip
        self.pub_diag = self._own(
            self.destroy_publisher, self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        )
        qos_in = self._qos("input_qos")
        if c["image_transport"] == "compressed":  # image_transport's name: base topic + suffix
            topic = self.resolve_topic_name("image") + compressed.TRANSPORT_SUFFIX["compressed"]
            self._subscribe(CompressedImage, topic, self._on_compressed, qos_in)
        else:
            topic = self.resolve_topic_name("image")
            self._subscribe(Image, "image", self._on_image, qos_in)
        self.image_topic = topic  # as subscribed, for the logs and diagnostics to name
        self.calibration = CalibrationPairer()
        self.camera_info_rejected: Counter[str] = Counter()
        self.camera_info_ignored = ""  # why the latest camera_info was ignored; "" when used
        self.camera_info_mismatch = ""  # why the last frame's camera_info did not fit it
        self.camera_info_arrived: float | None = None  # monotonic time of the latest, any
        self.camera_info_topic = camera_info_topic(self, self.ros_args)
        if c["use_camera_info"]:
            qos_info = self._qos("input_qos", depth=10)  # a burst must not evict its pair
            self._subscribe(CameraInfo, self.camera_info_topic, self._on_info, qos_info)
        self.metric = MetricScaler(c)
        if c["sparse_depth.enabled"]:
            qos_sparse = self._qos("input_qos", depth=10)
            if c["sparse_depth.transport"] == "compressedDepth":
                suffix = compressed.TRANSPORT_SUFFIX["compressedDepth"]
                topic = self.resolve_topic_name("sparse_depth") + suffix
                self._subscribe(CompressedImage, topic, self._on_sparse_compressed, qos_sparse)
            else:
                self._subscribe(Image, "sparse_depth", self._on_sparse, qos_sparse)
        if self.metric.imu_on:  # an IMU publishes at 100+ Hz: keep a burst between callbacks
            self._subscribe(Imu, "imu", self._on_imu, self._qos("input_qos", depth=50))
        # 2. worker and diagnostics
        self.frames = FramePipeline()
        self._last_stamp_ns: int | None = None  # the last frame's stamp (the worker's)
        self.input_watched_since = time.monotonic()  # input_timeout_s counts from here at first
        self._logged: dict[str, float] = {}
        self._last_diag = (time.monotonic(), 0, 0)
        self.worker = threading.Thread(target=self._work, name="depthart-worker", daemon=True)
        self.worker.start()
        # on the steady clock: under use_sim_time with no /clock yet (a simulator starting, a
        # bag not playing) ROS time stands still, and diagnostics must still say why nothing comes
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        timer = self.create_timer(1.0, self._publish_diagnostics, clock=steady)
        self._own(self.destroy_timer, timer)

    def _destroy_endpoints(self) -> None:
        """Stop the worker (after its current frame) and destroy what `_create_endpoints` made."""
        self.close()
        for destroy, entity in reversed(self._owned):
            destroy(entity)
        self._owned.clear()

    def _own(self, destroy: Callable[[Any], Any], entity: Any) -> Any:
        self._owned.append((destroy, entity))
        return entity

    def _subscribe(self, msg_type: type, topic: str, callback: Callable, qos: QoSProfile) -> Any:
        """A subscription whose QoS `qos_overrides./<topic>.subscription.*` can override. A
        transient_local reader is made reliable: DDS gives a best-effort reader no message
        published before it joined, so best_effort (input_qos' default) would never receive the
        latched camera_info the durability override asks for."""

        def reliable_if_latched(final: QoSProfile) -> QosCallbackResult:
            if (
                final.durability == DurabilityPolicy.TRANSIENT_LOCAL
                and final.reliability == ReliabilityPolicy.BEST_EFFORT
            ):
                final.reliability = ReliabilityPolicy.RELIABLE
                self.get_logger().info(
                    f"{topic}: transient_local durability: subscribing reliable "
                    "(a best-effort reader gets no latched message)"
                )
            return QosCallbackResult(successful=True, reason="")

        over = QoSOverridingOptions(OVERRIDABLE, callback=reliable_if_latched)
        sub = self.create_subscription(msg_type, topic, callback, qos, qos_overriding_options=over)
        return self._own(self.destroy_subscription, sub)

    def _output_publisher(self, msg_type: type, topic: str, qos: QoSProfile, **kw: Any) -> Any:
        """Create one output publisher (plain here; lifecycle publishers in the managed node)."""
        return self._own(self.destroy_publisher, self.create_publisher(msg_type, topic, qos, **kw))

    def lifecycle_label(self) -> str:
        """The node's state for diagnostics: always "active" for the plain node."""
        return "active"

    def camera_info_label(self) -> str:
        """`" and <camera_info topic>"` for the start-up lines, "" with use_camera_info off."""
        return f" and {self.camera_info_topic}" if self.cfg["use_camera_info"] else ""

    # ------------------------------------------------------------------ parameters
    def _qos(self, prefix: str, depth: int | None = None) -> QoSProfile:
        best = self.cfg[f"{prefix}.reliability"] == "best_effort"
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=depth or int(self.cfg[f"{prefix}.depth"]),
            reliability=ReliabilityPolicy.BEST_EFFORT if best else ReliabilityPolicy.RELIABLE,
        )

    def _on_set_parameters(self, params: list) -> SetParametersResult:
        refused = self._refuse_set([p.name for p in params])
        if refused:
            return SetParametersResult(successful=False, reason=refused)
        changed = {p.name: p.value for p in params if p.name in self.cfg}
        if not changed:  # not ours (e.g. the managed node's `autostart`): nothing to check
            return SetParametersResult(successful=True)
        # refused for a problem this change makes; one already there (a conflict among the
        # start-up values, which the managed node's configure reports; the plain node refuses
        # to start) leaves every other change settable, the fix of it included
        before = set(param_problems(self.cfg))
        made = [p for p in param_problems(dict(self.cfg) | changed) if p not in before]
        return SetParametersResult(successful=not made, reason=made[0] if made else "")

    def _after_set_parameters(self, params: list) -> None:
        self.cfg = dict(self.cfg) | {p.name: p.value for p in params if p.name in self.cfg}
        frames = getattr(self, "frames", None)
        if frames is not None and any(p.name == "max_rate_hz" for p in params):
            frames.wake()  # a worker pausing for the old rate re-reads it now
        metric = getattr(self, "metric", None)
        ground = {name for name, _ in GROUND_PARAMS}
        if metric is not None and any(p.name in ground for p in params):
            metric.reconfigure(self.cfg)

    def _refuse_set(self, names: list[str]) -> str | None:
        """Why these parameters may not be set now, or None (read-only ones rclpy refuses)."""
        return None

    def _publisher(self, msg_type: type, topic: str) -> Any:
        over = QoSOverridingOptions(OVERRIDABLE)
        qos = self._qos("output_qos")
        return self._output_publisher(msg_type, topic, qos, qos_overriding_options=over)

    # ------------------------------------------------------------------ callbacks
    def _on_image(self, msg: Image) -> None:
        if not self.accepting or self._too_large(msg.height, msg.width, "image"):
            return  # refused before any copy or decode: memory stays flat
        try:
            ros_image.check_image(msg)
        except ros_image.ImageDecodeError as exc:
            self.frames.reject_incoming(exc.cause)
            self._warn(exc.cause, f"dropping image: {exc}")
            return
        self._offer(msg)

    def _on_compressed(self, msg: CompressedImage) -> None:
        """A JPEG/PNG frame: its size read from the file header is capped before any decode (a
        header this cannot read is decoded and checked by the worker)."""
        if not self.accepting:
            return
        hw = compressed.encoded_size(msg.data)
        if hw is None or not self._too_large(*hw, "compressed image"):
            self._offer(msg)

    def _too_large(self, height: int, width: int, what: str) -> bool:
        """Whether a frame is over `max_input_pixels` (then counted and logged)."""
        pixels, cap = height * width, self.cfg["max_input_pixels"]
        if pixels <= cap:
            return False
        self.frames.reject_incoming("too_large")
        self._warn("too_large", f"dropping {width}x{height} {what}: {pixels} pixels > "
                   f"max_input_pixels {cap}")  # fmt: skip
        return True

    def _offer(self, msg: Any) -> None:
        self.calibration.note_image(header_stamp_ns(msg.header))
        self.frames.offer((msg, time.monotonic()))

    def _on_info(self, msg: CameraInfo) -> None:
        self.camera_info_arrived = time.monotonic()  # one came: the topic is not silent
        problem = camera_info_problem(msg)
        if problem:  # keep the last good calibration; never republish a broken one
            self.camera_info_rejected[problem[0]] += 1
            self.camera_info_ignored = problem[1]
            self._warn(f"camera_info.{problem[0]}", f"ignoring camera_info: {problem[1]}")
            return
        self.camera_info_ignored = ""
        self.calibration.add(header_stamp_ns(msg.header), msg)

    def _on_sparse(self, msg: Image) -> None:
        if not self.accepting:  # inactive: no frame will look it up
            return
        try:
            ros_image.check_image(msg, ros_image.DEPTH_ENCODINGS, min_size=1)
        except ros_image.ImageDecodeError as exc:
            self.metric.counts[f"rejected.{exc.cause}"] += 1
            self._warn(f"sparse.{exc.cause}", f"dropping sparse_depth: {exc}")
            return
        self._add_cue(msg)

    def _on_sparse_compressed(self, msg: CompressedImage) -> None:
        """A compressedDepth cue: its format and size (from the PNG header or RVL size words)
        are checked here; the worker decodes only the cue a frame uses."""
        if not self.accepting:
            return
        try:
            hw = compressed.compressed_depth_size(msg)  # its format checked first
            cap = self.cfg["max_input_pixels"]
            if hw is not None and hw[0] * hw[1] > cap:
                raise ros_image.ImageDecodeError(
                    "too_large", f"{hw[1]}x{hw[0]}: {hw[0] * hw[1]} pixels > max_input_pixels {cap}"
                )
        except ros_image.ImageDecodeError as exc:
            self.metric.counts[f"rejected.{exc.cause}"] += 1
            self._warn(f"sparse.{exc.cause}", f"dropping sparse_depth: {exc}")
            return
        self._add_cue(msg)

    def _add_cue(self, msg: Image | CompressedImage) -> None:
        if not self.metric.add_cue(header_stamp_ns(msg.header), msg):
            self._warn("sparse_unstamped", "dropping sparse_depth stamped 0: pairing is by stamp")

    def _on_imu(self, msg: Imu) -> None:
        if not self.accepting:
            return
        if "optical" in msg.header.frame_id:  # camera IMUs (RealSense, OAK-D, ZED) often are
            self._warn(
                "imu_optical",
                f"imu frame {msg.header.frame_id!r} looks like an optical frame; the node takes "
                "the IMU's frame as REP 103's body frame (x forward, z up), with the camera "
                "mounted at ground_plane.pitch_deg/roll_deg from it: publish the attitude in "
                "a body frame (e.g. imu_filter_madgwick's world_frame enu on a body-aligned "
                "IMU), or the up will be wrong",
            )
        stamp_ns = header_stamp_ns(msg.header)
        if not self.metric.add_imu(stamp_ns, imu_orientation(msg)) and stamp_ns == 0:
            self._warn("imu_unstamped", "dropping imu messages stamped 0: pairing is by stamp")

    def _warn(self, key: str, text: str) -> None:
        """Log once per cause, then at most every 10 s for that cause."""
        now = time.monotonic()
        if now - self._logged.get(key, -1e9) >= 10.0:
            self._logged[key] = now
            self.get_logger().warning(text)

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        run_worker(self.frames, self._process, lambda: self.cfg["max_rate_hz"], self._on_error)

    def _on_error(self, exc: Exception) -> bool:
        """Whether the worker goes on after `_process` raised (not once the context shut down)."""
        if not self.context.ok():
            return False
        self._warn("inference_error", f"frame failed: {type(exc).__name__}: {exc}")
        return True

    def _new_stream(self, previous_ns: int | None, stamp_ns: int, limit_s: float) -> bool:
        """Whether a frame older than `limit_s` starts a new stream and is kept: under sim time,
        stamped well before the previous frame, while the clock goes back too (a looped bag or a
        seek: its first image can beat the /clock message that moves sim time back, so the
        clock is watched for `CLOCK_FOLLOW_S`) or stands still. A clock going on forward makes
        it a late frame of the same stream (a second publisher, a reliable backlog): stale."""
        clock = self.get_clock()
        if not stamps_went_back(previous_ns, stamp_ns, limit_s, clock.ros_time_is_active):
            return False
        return clock_follows(lambda: clock.now().nanoseconds, CLOCK_FOLLOW_S)

    def _process(self, item: tuple[Image, float]) -> tuple[str, str]:
        msg, received = item
        c = self.cfg
        stamp_ns = header_stamp_ns(msg.header)
        age_s = (self.get_clock().now().nanoseconds - stamp_ns) / 1e9
        limit = c["max_frame_age_s"]
        previous, self._last_stamp_ns = self._last_stamp_ns, stamp_ns
        if limit > 0 and age_s > limit and not self._new_stream(previous, stamp_ns, limit):
            self._warn("stale", f"dropping frame stamped {age_s:.2f} s ago > max_frame_age_s "
                                f"{limit:g} (camera clock off, the node lags, or the frame came "
                                "late)")  # fmt: skip
            return "dropped_stale", ""
        try:
            if compressed.is_compressed(msg):
                rgb = compressed.compressed_to_rgb(msg, max_pixels=c["max_input_pixels"])
            else:
                rgb = ros_image.image_to_rgb(msg)
        except ros_image.ImageDecodeError as exc:
            self._warn(exc.cause, f"dropping image: {exc}")
            return "rejected", exc.cause
        with_u = self.uncertainty.subscribed()  # lazy: the plain pass unless someone listens
        depth, u, inference_ms = timed_predict(
            self.backend, rgb, c["debug_min_inference_ms"], with_u
        )
        info = None
        if c["use_camera_info"]:
            info, _ = self.calibration.pair(stamp_ns, received + c["camera_info.wait_s"])
            self.camera_info_mismatch = (
                "" if info is None else aspect_problem(info, depth.shape) or ""
            )
            if self.camera_info_mismatch:  # stretched, it would give wrong metres and points
                self.calibration.counts["aspect_mismatch"] += 1
                self._warn(
                    "camera_info_aspect", f"ignoring camera_info: {self.camera_info_mismatch}"
                )
                info = None
            info = None if info is None else camera_info_for(info, msg.header, depth.shape)
        fallback = ""  # why a metric source gave relative depth for this frame
        paired = self.metric.paired_by_stamp
        if stamp_ns == 0 and paired:  # counted per source as <source>_image_unstamped
            self._warn("image_unstamped", f"image stamped 0: {' and '.join(paired)} cannot be "
                       "paired with it by stamp (stamp the camera's images)")  # fmt: skip
        if self.metric.enabled:  # P of this image's pixels: binning and ROI applied
            p = None if info is None else ros_image.image_projection(info, depth.shape)[1]
            cue_by = received + c["sparse_depth.wait_s"]  # a cue projected from a scan is late
            depth, fallback = self.metric.to_metres(depth, stamp_ns, c, p, rgb, cue_by)
            if fallback:
                self._warn("metric_fallback", f"publishing relative depth: {fallback}")
        if not fallback:  # with a metric source the bounds are metres: a relative frame skips them
            depth = ros_image.rep117_depth(depth, c["min_depth"], c["max_depth"])
        self._publish(msg, rgb, depth, info)
        if u is not None:  # the published depth's values and units, NaN where doubtful
            to_msg = functools.partial(self._image, header=msg.header)
            self.uncertainty.publish(u, depth, c["uncertainty.max"], to_msg, self._warn)
        latency_ms = frame_latency_ms(self.get_clock().now().nanoseconds, stamp_ns)
        self.frames.record(latency_ms, inference_ms)
        return "processed", ""

    def _publish(
        self, msg: Image, rgb: np.ndarray, depth: np.ndarray, depth_info: CameraInfo | None
    ) -> None:
        """depth, and its (already rescaled) calibration, cloud and colours."""
        depth_msg = self._image(depth, msg.header)
        self.pub_depth.publish(depth_msg)
        if self.pub_depth_image.get_subscription_count() > 0:
            self.pub_depth_image.publish(depth_msg)
        if depth_info is not None:
            self.pub_info.publish(depth_info)
        c = self.cfg
        if c["publish_points"] and self.pub_points.get_subscription_count() > 0:
            self._publish_points(msg, rgb, depth, depth_info)
        if c["publish_colored"] and self.pub_colored.get_subscription_count() > 0:
            bgr = colorize_bgr(depth, cmap=c["colormap"])
            self.pub_colored.publish(self._image(bgr, msg.header, "bgr8"))

    @staticmethod
    def _image(values: np.ndarray, header: Any, encoding: str = "32FC1") -> Image:
        out = ros_image.set_image(Image(), values, encoding)
        out.header = header
        return out

    def _publish_points(
        self, msg: Image, rgb: np.ndarray, depth: np.ndarray, info: CameraInfo | None
    ) -> None:
        """`depth/points` from the depth and its (rescaled) calibration; without a usable one the
        cloud is skipped, counted by cause and logged, and depth keeps flowing."""
        c = self.cfg
        if info is None and not c["use_camera_info"]:  # none will come: say what to set
            self.points_counts["skipped.use_camera_info_off"] += 1
            self._warn("points.use_camera_info_off", "not publishing depth/points: it needs the "
                       "camera's intrinsics, and use_camera_info is false")  # fmt: skip
            return
        if info is None and self.camera_info_mismatch:  # one came, but not for this image
            self.points_counts["skipped.camera_info_aspect"] += 1
            self._warn("points.camera_info_aspect", "not publishing depth/points: camera_info "
                       f"not used: {self.camera_info_mismatch}")  # fmt: skip
            return
        if info is None:
            self.points_counts["skipped.no_camera_info"] += 1
            self._warn("points.no_camera_info", "not publishing depth/points: no camera_info yet")
            return
        h, w = depth.shape
        k, p = ros_image.image_projection(info, depth.shape)  # binning and ROI applied
        try:
            rays = pixel_rays(
                h, w, k, p, info.d, info.distortion_model,
                stride=int(c["points.stride"]), image=c["points.image"],
            )  # fmt: skip
        except ValueError as exc:
            self.points_counts["skipped.calibration"] += 1
            self._warn("points.calibration", f"not publishing depth/points: {exc}")
            return
        cloud = depth_to_points(depth, rays, int(c["points.stride"]), rgb)
        out = ros_cloud.set_point_cloud(PointCloud2(), cloud, PointField)
        out.header = msg.header
        self.pub_points.publish(out)
        self.points_counts["published"] += 1

    # ------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        snap = self.frames.snapshot()
        now = time.monotonic()
        frame_values = frame_stats(snap, self._last_diag, now)
        self._last_diag = (now, snap["received"], snap["processed"])
        c = self.cfg
        metric_on = self.metric.enabled
        metric = self.metric.state
        values: dict[str, Any] = {
            "backend": self.backend.name,
            "engine": self.engine,
            "checkpoint": self.checkpoint_label,
            "state": self.lifecycle_label(),
            "model_loads": self.model_loads,
            "units": metric["units"] if metric_on else "relative",
            **frame_values,
            "camera_info": "ok" if self.calibration.latest() is not None else "none received",
            "camera_info_topic": self.camera_info_topic if c["use_camera_info"] else "(off)",
            **{f"camera_info_{k}": v for k, v in sorted(self.calibration.counts.items())},
            **{
                f"camera_info_rejected.{k}": v for k, v in sorted(self.camera_info_rejected.items())
            },
            **{f"points_{k}": v for k, v in sorted(self.points_counts.items())},
            "rss_mb": f"{rss_mb():.1f}",
        }
        if metric_on:
            values |= self.metric.diagnostics()
        values |= self.uncertainty.diagnostics(c["uncertainty.max"])
        problems = []
        # WARN for the rejections since the last message, not for ever: one bad frame at
        # start-up must not leave an aggregator showing this node as WARN for the whole run
        new_rejected = snap["rejected"] - self._rejected_reported
        self._rejected_reported = snap["rejected"]
        if new_rejected > 0:
            problems.append(f"{new_rejected} frames rejected since the last report")
        new_stale = snap["dropped_stale"] - self._stale_reported
        self._stale_reported = snap["dropped_stale"]
        if new_stale > 0:
            problems.append(
                f"{new_stale} frames dropped since the last report as older than "
                f"max_frame_age_s {c['max_frame_age_s']:g}"
            )
        if metric_on and metric["units"] != "metres":
            problems.append(f"relative output: {metric['reason']}")
        if self.camera_info_ignored:
            problems.append(f"latest camera_info ignored: {self.camera_info_ignored}")
        if self.camera_info_mismatch:  # the last frame's
            problems.append(f"camera_info not used: {self.camera_info_mismatch}")
        if self.lifecycle_label() == "active":
            silence = input_silence(snap["last_received"], self.input_watched_since, now,
                                    c["input_timeout_s"], self.image_topic)  # fmt: skip
            if silence:  # also in the log: with discovery broken, /diagnostics is unheard too
                held = held_discovery_port_said(self.context.get_domain_id())
                silence += f": {held}" if held else ""
                problems.append(silence)
                self._warn("input_silence", silence)
            info_silence = c["use_camera_info"] and camera_info_silence(
                self.camera_info_arrived, snap["last_received"], self.input_watched_since, now,
                c["input_timeout_s"], self.camera_info_topic,
            )  # fmt: skip
            if info_silence:
                problems.append(info_silence)
                self._warn("camera_info_silence", info_silence)
        problems += self.uncertainty.problems()
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN if problems else DiagnosticStatus.OK,
            name=f"{self.get_fully_qualified_name()}: depth",
            message="; ".join(problems) or "ok",
            hardware_id=self.engine,
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()],
        )
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(arr)

    def close(self) -> None:
        """Stop the worker thread after the frame it is on (idempotent)."""
        self._forget_threads()
        self.frames.close()
        self.calibration.close()
        metric = getattr(self, "metric", None)
        if metric is not None:
            metric.close()
        self.worker.join(timeout=CLOSE_JOIN_S)
        if self.worker.is_alive():  # a frame stuck in the backend: say so, do not hang shutdown
            self.get_logger().warning(
                f"the inference thread did not stop within {CLOSE_JOIN_S:g} s (a frame still in "
                "the backend); it ends with the process"
            )


class DepthArtNode(DepthArtCore, Node):
    """The plain node: parameters, model and topics all at start-up; a bad parameter or
    checkpoint raises here, before any callback runs: the half-built node is destroyed, then the
    exception raised (tests, composition). `exit_on_failure` (main): the process ends there
    instead, through `exit_cannot_start`, with the node still alive (its FATAL line reaches
    /rosout) and not destroyed first. A Ctrl-C / SIGTERM during start-up raises either way."""

    def __init__(self, *, exit_on_failure: bool = False, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.ros_args = node_ros_args(kwargs)
        try:
            self._declare_parameters()
            self._load_model()
            self._create_endpoints()
            if not self.context.ok():  # Ctrl-C / SIGTERM while the endpoints were made
                raise StartupStopped()
        except BaseException as exc:  # nothing half-built stays registered (rosout, parameters)
            remember_logger_name(exc, self)
            if getattr(self, "worker", None) is not None:
                self.close()
            if exit_on_failure and isinstance(exc, Exception) and self.context.ok():
                # the process ends now (main): no participant teardown while discovery runs
                exit_cannot_start(exc)
            self.destroy_node()  # forgets its thread count too
            raise
        self.get_logger().info(
            f"ready: backend {self.engine}, checkpoint {self.cfg['checkpoint'] or '(default)'}, "
            f"subscribed to {self.image_topic}{self.camera_info_label()}"
        )


def main(args: list[str] | None = None) -> None:
    use_node_profile()  # before rclpy creates the participant (depthart_ros.dds)
    init_or_exit(args)
    try:
        node = DepthArtNode(exit_on_failure=True)
    except BaseException as exc:
        if shut_down_during_start_up(exc, rclpy.get_default_context()):
            leave_stopped_during_start_up(getattr(exc, FAILED_NODE_LOGGER, "depthart_node"))
        if not isinstance(exc, Exception):
            raise
        exit_cannot_start(exc)  # a clear fatal line instead of a traceback or a later crash
    spin_until_shutdown(node, node.close)
    leave_process(0)


class _ToRosLoggers(logging.Handler):
    """`depthart_core`'s records, each to the rclpy logger of the node loading on its thread
    (`core_logs_to`); a warning from another thread goes where Python would have put it."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.routes: dict[int, Any] = {}  # thread ident -> rclpy logger
        self.live: dict[int, Callable[[], bool]] = {}  # thread ident -> its context's ok()
        self.saved = (logging.NOTSET, True)  # the logger's level and propagate, put back
        self.passed_level = logging.WARNING  # what the logger let through before

    def emit(self, record: logging.LogRecord) -> None:
        try:
            ros_logger = self.routes.get(record.thread or 0)
            if ros_logger is None:  # no node loading on that thread: as without this handler
                if record.levelno < self.passed_level:
                    return
                root = logging.getLogger()
                if not root.handlers and record.levelno >= logging.lastResort.level:
                    logging.lastResort.handle(record)
                for handler in root.handlers:
                    if record.levelno >= handler.level:
                        handler.handle(record)
                return
            if not self.live.get(record.thread or 0, lambda: True)():
                return  # Ctrl-C / SIGTERM ended the context: rcl could no longer publish it
            text = self.format(record)
            if record.levelno >= logging.ERROR:
                ros_logger.error(text)
            elif record.levelno >= logging.WARNING:
                ros_logger.warning(text)
            else:
                ros_logger.info(text)
        except Exception:  # noqa: BLE001 - a log line must never fail a model load
            self.handleError(record)


_CORE_LOGS = _ToRosLoggers()
_CORE_LOGS_LOCK = threading.Lock()


@contextlib.contextmanager
def core_logs_to(ros_logger: Any, live: Callable[[], bool] | None = None):
    """Within the block, `depthart_core`'s INFO and above logged on this thread go to
    `ros_logger` (the node's log and /rosout) instead of Python's default handler, which drops
    INFO: a node waiting minutes for another process's engine build says so. Nodes loading on
    several threads at once each get their own lines; the logger's level is put back when the
    last block ends. `live` (the node's `context.ok`): once false, lines are dropped, not sent
    to a /rosout publisher on a dead context (rcl's "Failed to publish log message")."""
    core = logging.getLogger("depthart_core")
    ident = threading.get_ident()
    with _CORE_LOGS_LOCK:
        if not _CORE_LOGS.routes:
            _CORE_LOGS.saved = (core.level, core.propagate)
            _CORE_LOGS.passed_level = core.getEffectiveLevel()
            core.addHandler(_CORE_LOGS)
            core.setLevel(min(core.getEffectiveLevel(), logging.INFO))
            core.propagate = False  # a routed line once, in its node's log; others passed on
        _CORE_LOGS.routes[ident] = ros_logger
        if live is not None:
            _CORE_LOGS.live[ident] = live
    try:
        yield
    finally:
        with _CORE_LOGS_LOCK:
            _CORE_LOGS.routes.pop(ident, None)
            _CORE_LOGS.live.pop(ident, None)
            if not _CORE_LOGS.routes:
                core.removeHandler(_CORE_LOGS)
                core.setLevel(_CORE_LOGS.saved[0])
                core.propagate = _CORE_LOGS.saved[1]


def exit_cannot_start(exc: Exception, reason: str | None = None) -> NoReturn:
    """Log the one fatal line for a node that could not be built, under the name it would have
    had (its namespace and `__node` remap: with two cameras, which one failed), then exit 1.
    `reason` replaces the exception's text (rclpy.init's, trimmed by `rcl_init_problem`).

    The name comes from the half-built node (`remember_logger_name`), not from a new node: a
    node built here only to be named took part in discovery while other processes of a failing
    launch were exiting too, and Fast DDS's TCP transport (LARGE_DATA) aborted under that race.

    No rclpy or DDS teardown before the exit (no `destroy_node` of the process's last node, no
    `rclpy.try_shutdown`): deleting the participant while peers were still discovering it
    raced Fast DDS's own TypeLookup thread (a null mutex in `WriterHistory::create_change`), and
    the refused start died with SIGSEGV, without this line, in 2 of 180 loaded starts. The
    process is about to `os._exit` (`leave_process`), which ends the participant as a SIGKILL
    would: its peers drop it by lease. Callers that still hold the half-built node call this
    instead of destroying it (`exit_on_failure`)."""
    name = getattr(exc, FAILED_NODE_LOGGER, "depthart_node")
    line = f"cannot start: {exc if reason is None else reason}"
    try:
        get_logger(name).fatal(line)
    except Exception:  # noqa: BLE001 - rcutils' logging unusable (rclpy.init failed): stderr
        print(f"{name}: {line}", file=sys.stderr)
    leave_process(1)  # no rclpy/DDS teardown: os._exit ends the participant like a SIGKILL


def init_or_exit(args: list[str] | None, logger_name: str = "depthart_node") -> None:
    """`rclpy.init(args=args)`, or the node's one start-up failure line and status 1 when it
    fails (`rcl_init_problem`), instead of rclpy's traceback; Ctrl-C while it runs is a clean
    stop (status 0), as during the rest of the start-up."""
    try:
        rclpy.init(args=args)
        _INIT_ARGS[:] = sys.argv if args is None else args  # its remap rules: camera_info_topic
    except KeyboardInterrupt:
        leave_stopped_during_start_up(logger_name)
    except Exception as exc:
        exit_cannot_start(exc, rcl_init_problem(exc))


FAILED_NODE_LOGGER = "depthart_failed_node_logger"  # attribute exit_cannot_start reads


def leave_stopped_during_start_up(logger_name: str) -> NoReturn:
    """The end of a node stopped by Ctrl-C or SIGTERM while it started (a model load, an ONNX
    export or a TensorRT build take seconds to minutes on a first start): one INFO line and
    status 0, as for a signal while it runs, so that a supervisor or `respawn` does not read it
    as a failure. Call it once the node is destroyed: a destroyed node's logger no longer tries
    the dead context's /rosout."""
    get_logger(logger_name).info(STOPPED_LINE)
    with contextlib.suppress(Exception):  # a context that never initialised (Ctrl-C in init)
        rclpy.try_shutdown()
    leave_process(0)


def remember_logger_name(exc: BaseException, node: Node) -> None:
    """Put `node`'s resolved logger name (`cam2.rear_depth`) on the exception it failed with,
    for `exit_cannot_start`, before the half-built node is destroyed."""
    try:
        setattr(exc, FAILED_NODE_LOGGER, node.get_logger().name)
    except Exception:  # noqa: BLE001 - an exception without attributes: the plain name
        pass


def leave_process(status: int) -> NoReturn:
    """End a node's process once it has shut down (cleanly, or after its FATAL line): logs and
    streams flushed, then out without the interpreter's exit-time finalizers. Everything is
    released by then, and one of those finalizers (torch.library's, run from weakref's atexit
    hook) crashed a lifecycle node that had shut down cleanly: SIGSEGV instead of status 0 after
    "model released" (once in a loaded test-suite run, faulthandler showing only that finalizer
    on the main thread)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(Exception):  # C stdio too (rcutils' console lines on stdout)
        ctypes.CDLL(None).fflush(None)
    os._exit(status)


def spin_until_shutdown(node: Node, release: Callable[[], None]) -> None:
    """Spin `node` until Ctrl-C / SIGTERM / shutdown, then `release` it and shut down cleanly
    (shared by `depthart_node` and `depthart_lifecycle_node`)."""
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    name = node.get_logger().name
    stopped = False
    try:
        spin_until_context_ends(executor, node.context)
    except StartupStopped:  # a manager's configure, cut short by Ctrl-C or SIGTERM
        stopped = True
    finally:
        release()
        executor.shutdown()
        node.destroy_node()
        node.context.try_shutdown()
    if stopped:
        get_logger(name).info(STOPPED_LINE)


if __name__ == "__main__":
    main()
