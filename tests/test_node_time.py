"""The node's judgement of a frame's age under sim time: which frame stamped well before the one
before it starts a new stream (a looped bag: kept) and which one came late (stale: dropped).
One process, no DDS peers: the clock is set by hand and frames go straight to `_process`."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 sensor_msgs package")

import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.time import Time  # noqa: E402
from ros_helpers.harness import unique_domain_id  # noqa: E402

from depthart_core.rosio.messages import image_msg  # noqa: E402
from depthart_ros.node import DepthArtNode  # noqa: E402

pytestmark = pytest.mark.ros


@contextlib.contextmanager
def _node(checkpoint: str, **params):
    ctx = Context()
    rclpy.init(context=ctx, domain_id=unique_domain_id())
    params = {"checkpoint": checkpoint, "backend": "torch", **params}
    overrides = [Parameter(name, value=value) for name, value in params.items()]
    n = DepthArtNode(context=ctx, parameter_overrides=overrides)
    try:
        yield n
    finally:
        n.close()
        n.destroy_node()
        rclpy.try_shutdown(context=ctx)


@pytest.fixture
def sim_node(tiny_checkpoint: str):
    params = {"use_sim_time": True, "max_frame_age_s": 0.5, "use_camera_info": False}
    with _node(tiny_checkpoint, **params) as n:
        yield n


def _set_clock(node, stamp_s: float) -> None:
    clock = node.get_clock()
    clock.set_ros_time_override(Time(nanoseconds=int(stamp_s * 1e9), clock_type=clock.clock_type))


def test_a_late_frame_under_sim_time_is_stale_while_the_clock_goes_on(sim_node) -> None:
    """A frame stamped 3 s before the previous one (a second publisher, a reliable backlog) while
    /clock keeps going forward: it was taken for a looped bag's first frame and published; it is
    stale, as on the wall clock. A loop, whose /clock goes back just after its first image, is
    still kept."""
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)

    def frame(stamp_s: float, clock_then_s: float | None = None) -> str:
        if clock_then_s is not None:  # the next /clock message, 30 ms after the image
            threading.Timer(0.03, _set_clock, args=(sim_node, clock_then_s)).start()
        msg = image_msg(rgb, "rgb8", int(stamp_s * 1e9), "cam")
        return sim_node._process((msg, time.monotonic()))[0]

    _set_clock(sim_node, 101.0)
    assert frame(100.9) == "processed"
    assert frame(101.0) == "processed"
    t0 = time.monotonic()
    assert frame(98.0, clock_then_s=101.1) == "dropped_stale"  # the clock went on: late
    assert time.monotonic() - t0 < 2.0  # decided by the clock's next step, not a long wait
    _set_clock(sim_node, 101.2)
    assert frame(101.2) == "processed"
    assert frame(100.0, clock_then_s=100.0) == "processed"  # the loop: its /clock follows
    assert frame(100.1) == "processed"


def test_stamps_go_back_only_under_sim_time_and_past_the_limit() -> None:
    from depthart_ros.node import stamps_went_back

    s = 1_000_000_000
    assert stamps_went_back(10 * s, 8 * s, 0.5, True)
    assert not stamps_went_back(10 * s, 8 * s, 0.5, False)  # the wall clock never goes back
    assert not stamps_went_back(10 * s, 10 * s - s // 4, 0.5, True)  # within the limit
    assert not stamps_went_back(None, 8 * s, 0.5, True)  # the first frame


def test_the_clock_decides_a_new_stream_by_its_next_step() -> None:
    """Back: a new stream (True); forward: a late frame (False); still for the whole wait: no
    evidence against a new stream (True)."""
    from depthart_ros.node import clock_follows

    def reader(values: list[int]):
        it = iter(values)
        last = [values[0]]

        def read() -> int:
            last[0] = next(it, last[0])
            return last[0]

        return read

    assert clock_follows(reader([100, 100, 99]), 5.0)
    assert not clock_follows(reader([100, 100, 101]), 5.0)
    t0 = time.monotonic()
    assert clock_follows(reader([100]), 0.05)
    assert 0.04 < time.monotonic() - t0 < 2.0


def test_an_image_stamped_0_does_not_wait_for_a_cue_and_says_why(tiny_checkpoint, monkeypatch):
    """An image stamped 0 with sparse_depth on: each frame waited the whole sparse_depth.wait_s
    for a cue that cannot pair with it, then said "no sparse_depth within 0.05 s"; it goes on at
    once and the log names the unstamped image."""
    params = {"sparse_depth.enabled": True, "sparse_depth.wait_s": 2.0, "use_camera_info": False}
    with _node(tiny_checkpoint, **params) as n:
        said: dict[str, str] = {}
        monkeypatch.setattr(n, "_warn", lambda key, text: said.setdefault(key, text))
        cue = image_msg(np.full((48, 64), 2.0, np.float32), "32FC1", 100_000_000_000, "cam")
        n.metric.add_cue(100_000_000_000, cue)
        rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        t0 = time.monotonic()
        assert n._process((image_msg(rgb, "rgb8", 0, "cam"), t0))[0] == "processed"
        assert time.monotonic() - t0 < 1.5
        assert "image stamped 0: sparse_depth cannot be paired" in said["image_unstamped"]
        assert said["metric_fallback"].endswith("image stamped 0: sparse_depth cannot be paired "
                                                 "by stamp")  # fmt: skip
        assert n.metric.diagnostics()["sparse_image_unstamped"] == 1
