"""The managed node's transitions in one process, driven by `trigger_*` without DDS peers: what
each state does with the metric inputs, and what a failing transition says.

The cross-process lifecycle services and topics are tests/test_lifecycle.py's."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
pytest.importorskip("lifecycle_msgs.srv", reason="needs the ROS 2 lifecycle_msgs package")

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_helpers.harness import unique_domain_id  # noqa: E402
from sensor_msgs.msg import Image, Imu  # noqa: E402

from depthart_ros.lifecycle_node import DepthArtLifecycleNode  # noqa: E402

pytestmark = pytest.mark.ros
SUCCESS = TransitionCallbackReturn.SUCCESS


@pytest.fixture
def node(tiny_checkpoint: str):
    ctx = Context()
    rclpy.init(context=ctx, domain_id=unique_domain_id())
    params = {
        "checkpoint": tiny_checkpoint,
        "backend": "torch",
        "ground_plane.enabled": True,
        "ground_plane.imu": True,
        "sparse_depth.enabled": True,
    }
    overrides = [Parameter(name, value=value) for name, value in params.items()]
    n = DepthArtLifecycleNode(context=ctx, parameter_overrides=overrides)
    yield n
    n.release()
    n.destroy_node()
    rclpy.try_shutdown(context=ctx)


def _imu(stamp_s: int) -> Imu:
    msg = Imu()
    msg.header.stamp.sec = stamp_s
    msg.header.frame_id = "base_link"
    msg.orientation.w = 1.0
    return msg


def _cue(stamp_s: int) -> Image:
    msg = Image(height=2, width=2, encoding="32FC1", step=8, data=bytes(16))
    msg.header.stamp.sec = stamp_s
    return msg


def test_inactive_drops_metric_inputs_and_activate_restarts_the_scale(node) -> None:
    assert node.trigger_configure() == SUCCESS
    node._on_imu(_imu(1))  # inactive: no frame will ever look these up
    node._on_sparse(_cue(1))
    assert node.metric.imu_counts["received"] == 0 and node.metric.counts["received"] == 0

    assert node.trigger_activate() == SUCCESS
    node._on_imu(_imu(2))
    node._on_sparse(_cue(2))
    assert node.metric.imu_counts["received"] == 1 and node.metric.counts["received"] == 1

    # a scale learned before a pause must not hold off the first one after it: the scene and
    # the relative unit the smoother follows may have changed while inactive
    node.metric.ground.smoother.update(2.0)
    assert node.metric.ground.smoother.update(3.0).status == "held"  # a jump, while active
    assert node.trigger_deactivate() == SUCCESS
    assert node.trigger_activate() == SUCCESS
    assert node.metric.ground.smoother.update(3.0).status == "first"


def test_a_transition_that_raises_logs_its_reason(node, capfd) -> None:
    assert node.trigger_configure() == SUCCESS and node.trigger_activate() == SUCCESS

    def broken():
        raise RuntimeError("worker wedged")

    node._pause = broken
    ret = node.trigger_deactivate()
    assert ret != SUCCESS  # rclpy turns the exception into ERROR, then on_error
    err = capfd.readouterr().err
    assert "deactivate failed: RuntimeError: worker wedged" in err, err
    assert node.backend is None  # on_error released the model: back to unconfigured, clean


def test_conflicting_start_up_values_leave_it_unconfigured_with_the_reason(tiny_checkpoint):
    """min_depth above max_depth given at start-up: the node is built (declaring `autostart`
    did not fail on a conflict between two other parameters), configure fails naming the two,
    and once one is set right configure succeeds."""
    ctx = Context()
    rclpy.init(context=ctx, domain_id=unique_domain_id())
    params = {"checkpoint": tiny_checkpoint, "backend": "torch", "min_depth": 5.0, "max_depth": 3.0}
    overrides = [Parameter(name, value=value) for name, value in params.items()]
    n = DepthArtLifecycleNode(context=ctx, parameter_overrides=overrides)
    try:
        assert n.trigger_configure() != SUCCESS
        assert n.configure_error == "invalid parameter: min_depth=5.0 must be below max_depth=3.0"
        assert n.set_parameters([Parameter("threads", value=1)])[0].successful  # not the conflict
        hidden = n.set_parameters([Parameter("sparse_depth.min_m", value=300.0)])[0]
        assert not hidden.successful  # a second conflict, behind the first: refused too
        assert "sparse_depth.min_m=300.0 must be below sparse_depth.max_m" in hidden.reason
        bad = n.set_parameters([Parameter("max_depth", value=4.0)])[0]  # still below: refused
        assert not bad.successful and "min_depth=5.0 must be below max_depth=4.0" in bad.reason
        assert n.set_parameters([Parameter("max_depth", value=10.0)])[0].successful
        assert n.trigger_configure() == SUCCESS
        new = n.set_parameters([Parameter("min_depth", value=20.0)])[0]  # a new conflict
        assert not new.successful and "min_depth=20.0 must be below max_depth=10.0" in new.reason
    finally:
        n.release()
        n.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_nodes_of_one_process_asking_for_other_thread_counts_are_warned(tiny_checkpoint, capfd):
    """PyTorch's and OpenCV's thread pools are per process: a second node loading with another
    `threads` changes the first's too, so it says so; a node that released its model no longer
    counts."""
    ctx = Context()
    rclpy.init(context=ctx, domain_id=unique_domain_id())
    nodes = []
    try:
        for ns, threads in (("cam1", 1), ("cam2", 1), ("cam3", 2)):
            overrides = [
                Parameter("checkpoint", value=tiny_checkpoint),
                Parameter("backend", value="torch"),
                Parameter("threads", value=threads),
            ]
            nodes.append(
                DepthArtLifecycleNode(context=ctx, namespace=ns, parameter_overrides=overrides)
            )
        cam1, cam2, cam3 = nodes
        assert cam1.trigger_configure() == SUCCESS and cam2.trigger_configure() == SUCCESS
        assert "thread pools are per process" not in capfd.readouterr().err  # the same count
        assert cam3.trigger_configure() == SUCCESS
        err = capfd.readouterr().err
        assert "threads 2: other DepthART nodes" in err, err
        assert "/cam1/depthart_node (1), /cam2/depthart_node (1)" in err, err
        cam1.release()
        cam2.destroy_node()  # destroyed without a release: asks for no threads any more either
        assert cam3.trigger_cleanup() == SUCCESS and cam3.trigger_configure() == SUCCESS
        assert "thread pools are per process" not in capfd.readouterr().err  # alone now
    finally:
        for n in nodes:
            n.release()
            n.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_the_caches_lines_reach_the_nodes_log(tiny_checkpoint, tmp_path, monkeypatch, capfd):
    """`depthart_core` logs the ONNX export (and a wait on another process's build) at INFO,
    which Python's default handler drops: the node forwards them to its own log while loading."""
    import logging

    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path / "cache"))
    core = logging.getLogger("depthart_core")
    before = (core.level, core.propagate, list(core.handlers))
    ctx = Context()
    rclpy.init(context=ctx, domain_id=unique_domain_id())
    overrides = [
        Parameter("checkpoint", value=tiny_checkpoint),
        Parameter("backend", value="onnxruntime"),
    ]
    n = DepthArtLifecycleNode(context=ctx, namespace="cam4", parameter_overrides=overrides)
    try:
        assert n.trigger_configure() == SUCCESS
        err = capfd.readouterr().err
        assert "[cam4.depthart_node]: exporting" in err and "(once; cached)" in err, err
        assert (core.level, core.propagate, list(core.handlers)) == before  # put back
    finally:
        n.release()
        n.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_a_looped_bags_first_frame_is_not_stale_before_the_clock_follows(tiny_checkpoint):
    """`ros2 bag play --clock --loop` with max_frame_age_s: the loop's first image can arrive
    before the /clock message that moves sim time back; judged against the old pass's clock it
    was dropped as seconds old. A frame stamped well before the previous one starts a new
    stream and is kept; the next one, if the clock never follows, is stale again."""
    import time

    import numpy as np
    from rclpy.time import Time

    from depthart_core.rosio.messages import image_msg

    ctx = Context()
    rclpy.init(context=ctx, domain_id=unique_domain_id())
    params = {
        "checkpoint": tiny_checkpoint,
        "backend": "torch",
        "use_sim_time": True,
        "max_frame_age_s": 0.5,
        "use_camera_info": False,
    }
    overrides = [Parameter(name, value=value) for name, value in params.items()]
    n = DepthArtLifecycleNode(context=ctx, parameter_overrides=overrides)
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)

    def frame(stamp_s: float) -> str:
        msg = image_msg(rgb, "rgb8", int(stamp_s * 1e9), "cam")
        return n._process((msg, time.monotonic()))[0]

    try:
        assert n.trigger_configure() == SUCCESS and n.trigger_activate() == SUCCESS
        n.get_clock().set_ros_time_override(Time(seconds=100, clock_type=n.get_clock().clock_type))
        assert frame(99.9) == "processed"
        assert frame(100.0) == "processed"
        assert frame(1.0) == "processed"  # the loop: its /clock message not here yet
        assert frame(1.1) == "dropped_stale"  # the clock never followed: stale as before
        assert frame(0.0) == "processed"  # a simulator reset's first frame, stamped 0
    finally:
        n.release()
        n.destroy_node()
        rclpy.try_shutdown(context=ctx)


class _RosLines:
    """An rclpy logger's stand-in that keeps the lines it is given."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, text: str) -> None:
        self.lines.append(text)

    warning = error = info


def test_nodes_loading_on_two_threads_at_once_each_get_their_own_lines():
    """`core_logs_to` from two threads whose blocks overlap: each thread's `depthart_core` lines
    go to its own node's logger, none twice, and the logger is as it was once both ended."""
    import logging
    import threading

    from depthart_ros.node import core_logs_to

    core = logging.getLogger("depthart_core")
    before = (core.level, core.propagate, list(core.handlers))
    a, b = _RosLines(), _RosLines()
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def load_a() -> None:
        with core_logs_to(a):
            a_in.set()
            b_in.wait(5)
            logging.getLogger("depthart_core.x").info("a exporting")
        a_out.set()

    def load_b() -> None:
        a_in.wait(5)
        with core_logs_to(b):
            b_in.set()
            a_out.wait(5)  # a's block has ended: b's lines still go to b
            logging.getLogger("depthart_core.x").info("b exporting")

    threads = [threading.Thread(target=load_a), threading.Thread(target=load_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert a.lines == ["a exporting"] and b.lines == ["b exporting"]
    assert (core.level, core.propagate, list(core.handlers)) == before


def test_a_routed_line_is_not_printed_again_by_a_root_handler():
    """A process that configured logging (a user's launcher): the node's line goes to its log
    once, not also through the root handler; another thread's warning still reaches the root
    handler, and its info does not (the level the logger had)."""
    import logging
    import threading

    from depthart_ros.node import core_logs_to

    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    root, handler, ros = logging.getLogger(), Collect(), _RosLines()
    root.addHandler(handler)
    try:
        with core_logs_to(ros):
            logging.getLogger("depthart_core.x").info("exporting")

            def other() -> None:
                logging.getLogger("depthart_core.y").warning("other warning")
                logging.getLogger("depthart_core.y").info("other info")

            t = threading.Thread(target=other)
            t.start()
            t.join(5)
    finally:
        root.removeHandler(handler)
    assert ros.lines == ["exporting"]
    assert seen == ["other warning"]


def test_core_lines_stop_once_the_context_has_ended():
    """A SIGTERM during start-up ends the context while the model load logs on: a line sent to
    the node's logger then made rcl print "Failed to publish log message to rosout"."""
    import logging

    from depthart_ros.node import core_logs_to

    ros, alive = _RosLines(), [True]
    with core_logs_to(ros, lambda: alive[0]):
        logging.getLogger("depthart_core.x").info("exporting")
        alive[0] = False
        logging.getLogger("depthart_core.x").info("exported")
    assert ros.lines == ["exporting"]
