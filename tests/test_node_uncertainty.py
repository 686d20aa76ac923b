"""Issue #25: `depth/uncertainty` and `depth/filtered` from the node.

Two tiers. The rclpy-free glue (`depthart_ros.uncertainty`, the `uncertainty.max` check) with
arrays made here, NaN and infinities included. Then real nodes in their own processes (rclpy +
Fast DDS on loopback, FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA through `ros_helpers.harness`), on the
torch backend with conftest's `headed_checkpoint` (a random uncertainty head), a checkpoint
without a head, and one whose head gives NaN: laziness (no uncertainty pass without a
subscriber, counted in diagnostics), the depth's exact header on both topics, the filter against
the published uncertainty in metres, the refusal of bad values at start-up and at runtime, the
no-head case, and the managed node on the same path. Every wait is on a condition (a message, a
counter, a subscription seen by the node), never a fixed sleep.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ros_helpers.harness import NodeProcess, RosPeer, image_msg, stamp_ns, unique_domain_id
from ros_helpers.scenes import scene_rgb, wire_fields

from depthart_core.checkpoint import save_checkpoint
from depthart_core.runtime import get_backend
from depthart_core.sampling import sampling_setting
from depthart_ros.params import PARAMS, validate_params
from depthart_ros.uncertainty import TOPICS, UNAVAILABLE, UncertaintyOutputs, examine

DEFAULTS = {p.name: p.default for p in PARAMS}
NODE = "/depthart_node"


# ---------------------------------------------------------------------------------------------
# 1. the glue, without ROS
class FakePublisher:
    def __init__(self, subscribers: int) -> None:
        self.subscribers = subscribers
        self.sent: list[Any] = []

    def get_subscription_count(self) -> int:
        return self.subscribers

    def publish(self, msg: Any) -> None:
        self.sent.append(msg)


def test_non_finite_uncertainty_is_nan_never_zero_and_never_kept() -> None:
    u = np.array([[0.05, 0.15, 0.2], [np.nan, np.inf, -np.inf]], np.float32)
    depth = np.array([[2.0, 3.0, 4.0], [5.0, np.inf, 7.0]], np.float32)  # metres, +inf REP 117
    frame = examine(u, 0.15)
    assert frame.non_finite == 3
    np.testing.assert_array_equal(frame.uncertainty[0], u[0])
    assert np.isnan(frame.uncertainty[1]).all()  # -inf would pass `u <= max`; 0 = "certain"
    np.testing.assert_array_equal(frame.keep, [[True, True, False], [False, False, False]])
    assert frame.dropped_fraction == pytest.approx(4 / 6)
    filtered = frame.filter(depth)
    assert filtered.dtype == np.float32
    np.testing.assert_array_equal(filtered[0, :2], depth[0, :2])  # the same values and units
    assert np.isnan(filtered[0, 2]) and np.isnan(filtered[1]).all()
    assert examine(u, 0.0).keep.sum() == 0 and examine(u, 10.0).keep.sum() == 3
    with pytest.raises(ValueError, match="differ"):
        frame.filter(depth[:, :2])


def test_outputs_publish_only_where_subscribed_and_count() -> None:
    pub_u, pub_f = FakePublisher(0), FakePublisher(1)
    out = UncertaintyOutputs([pub_u, pub_f])
    assert out.available and out.subscribed() and out.state() == "on"
    warned: list[tuple[str, str]] = []
    u = np.full((4, 5), 0.1, np.float32)
    u[0, 0], u[1, 1] = np.nan, 0.5
    depth = np.arange(20, dtype=np.float32).reshape(4, 5) + 1
    out.publish(u, depth, 0.15, lambda a: a.copy(), lambda *w: warned.append(w))
    assert pub_u.sent == [] and len(pub_f.sent) == 1  # depth/uncertainty has no subscriber
    assert np.isnan(pub_f.sent[0][0, 0]) and np.isnan(pub_f.sent[0][1, 1])
    assert [cause for cause, _ in warned] == ["uncertainty.non_finite"]
    assert "1 uncertainty pixels are NaN or infinite" in warned[0][1]
    diag = out.diagnostics(0.15)
    assert diag == {
        "uncertainty": "on",
        "uncertainty_max": 0.15,
        "uncertainty_frames": 1,
        "uncertainty_non_finite_pixels": 1,
        "uncertainty_dropped_fraction": f"{2 / 20:.4f}",
    }
    assert out.problems() == ["1 non-finite uncertainty pixels in the last frame"]
    pub_f.subscribers = 0
    assert not out.subscribed() and out.state() == "off (no subscriber)"
    # everyone left after that frame: no frame computes it now, so its warning is not kept
    assert out.problems() == [] and out.diagnostics(0.15)["uncertainty_dropped_fraction"] == "none"
    pub_f.subscribers = 1
    out.publish(np.full((4, 5), 0.1, np.float32), depth, 0.15, lambda a: a, lambda *w: None)
    assert out.problems() == [] and out.diagnostics(0.15)["uncertainty_non_finite_pixels"] == 1
    assert out.diagnostics(0.15)["uncertainty_dropped_fraction"] == f"{0:.4f}"

    none = UncertaintyOutputs()
    assert not none.available and not none.subscribed()
    assert none.diagnostics(0.15) == {"uncertainty": UNAVAILABLE}
    with pytest.raises(ValueError, match="depth/uncertainty"):
        UncertaintyOutputs([pub_u])


def test_uncertainty_max_must_be_a_finite_non_negative_number() -> None:
    assert DEFAULTS["uncertainty.max"] == 0.15
    for ok in (0.0, 0.15, 10.0):
        assert validate_params(DEFAULTS | {"uncertainty.max": ok}) is None, ok
    assert "uncertainty.max=-0.1 is outside [0, 10]" in validate_params(
        DEFAULTS | {"uncertainty.max": -0.1}
    )
    for bad in (math.nan, math.inf, -math.inf):
        reason = validate_params(DEFAULTS | {"uncertainty.max": bad})
        assert reason == f"uncertainty.max={bad!r} is not a finite number", reason


# ---------------------------------------------------------------------------------------------
# 2. real nodes
def _ros_imports():
    pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
    pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 sensor_msgs package")


class Env:
    """One ROS domain, the test's peer, and the node processes started in it."""

    def __init__(self, tmp: Path) -> None:
        self.domain = unique_domain_id()
        self.tmp = tmp
        self.peer = RosPeer(self.domain)
        self.nodes: list[Any] = []

    def start(self, params: dict[str, Any], name: str = "node", module: str = "") -> Any:
        base = {"backend": "torch", "input_qos.reliability": "reliable", "input_qos.depth": 5}
        kw = {"module": module} if module else {}
        node = NodeProcess(self.domain, base | params, self.tmp / f"{name}.log", **kw)
        self.nodes.append(node)
        return node

    def subscribe(self, *topics: str, required: bool = True) -> None:
        """Image subscriptions to `topics` and one to /diagnostics. `required`: the node
        publishes them, so `wait_ready` (and `wait_matched`) also wait until each writer is
        discovered and matched; a topic the node does not advertise must pass False."""
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import Image

        for topic in topics:
            self.peer.subscribe(Image, topic, required=required)
        self.peer.subscribe(DiagnosticArray, "/diagnostics")

    def wait_matched(self, timeout: float = 30.0) -> None:
        """Until this peer's subscriptions made after start-up matched the node's writers (a
        reliable, volatile writer drops what it sends before the match)."""
        peer = self.peer
        assert peer.wait_for(lambda: not peer.unmatched(), timeout), peer.unmatched()

    def image_publisher(self, topic: str = "image") -> Any:
        from sensor_msgs.msg import Image

        pub = self.peer.publisher(Image, topic, reliable=True, depth=10)
        assert self.peer.wait_for(lambda: pub.get_subscription_count() > 0, 30), topic
        return pub

    def send(self, pub: Any, seed: int, frame_id: str = "cam/u") -> int:
        stamp = time.time_ns()
        pub.publish(image_msg(wire_fields(scene_rgb(seed=seed), "rgb8"), stamp, frame_id))
        return stamp

    def message(self, topic: str, stamp: int, timeout: float = 30.0) -> Any:
        def find():
            msgs = self.peer.messages(topic)
            return next((m for m in msgs if stamp_ns(m.header) == stamp), None)

        assert self.peer.wait_for(lambda: find() is not None, timeout), f"no {topic} for {stamp}"
        return find()

    def diagnostics_where(self, done, timeout: float = 30.0) -> dict[str, str]:
        """The first /diagnostics from now on for which `done` holds."""
        after, seen = time.time(), {}

        def match() -> bool:
            seen["d"] = self.peer.diagnostics(after) or {}
            return bool(seen["d"]) and done(seen["d"])

        assert self.peer.wait_for(match, timeout), f"diagnostics never matched: {seen.get('d')}"
        return seen["d"]

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self.peer.close()


@pytest.fixture
def env(tmp_path: Path):
    _ros_imports()
    e = Env(tmp_path)
    yield e
    e.close()


def _array(msg: Any) -> np.ndarray:
    assert msg.encoding == "32FC1" and msg.is_bigendian == 0 and msg.step == msg.width * 4
    return np.frombuffer(msg.data, np.float32).reshape(msg.height, msg.width)


def _header(msg: Any) -> tuple[int, int, str]:
    return (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id)


def _reference(checkpoint: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(depth, uncertainty) of the node's default decoding on the test scene, in this process."""
    backend = get_backend("torch", checkpoint, sampling=sampling_setting(DEFAULTS["sampling"], 0))
    assert backend.has_uncertainty
    return backend.predict(scene_rgb(seed=seed), with_uncertainty=True)


@pytest.mark.ros
def test_uncertainty_is_lazy_metric_filtered_and_carries_the_depth_header(
    env: Env, headed_checkpoint: str
) -> None:
    peer = env.peer
    env.subscribe("depth")
    # no camera_info is sent: without use_camera_info off, a busy machine's slow set-up passes
    # input_timeout_s and the node rightly warns that images come without one (level 1)
    params = {
        "checkpoint": headed_checkpoint,
        "sparse_depth.enabled": True,
        "use_camera_info": False,
    }
    node = env.start(params | {"camera_info.wait_s": 0.0})
    peer.wait_ready(node)
    pub = env.image_publisher()

    # a. nobody listens to the uncertainty topics: frames run the plain pass only
    env.message("depth", env.send(pub, seed=1))
    env.message("depth", env.send(pub, seed=2))
    diag = env.diagnostics_where(lambda d: int(d["frames_processed"]) >= 2)
    assert diag["uncertainty"] == "off (no subscriber)", diag
    assert diag["uncertainty_frames"] == "0", diag  # the laziness: no uncertainty pass ran
    advertised = peer.wait_for(lambda: peer.node.count_publishers("/depth/uncertainty") == 1, 10)
    assert advertised  # the topics exist all the same

    # b. subscribed (seen by the node), with a threshold near the median error of this scene
    rel, u_ref = _reference(headed_checkpoint, seed=3)
    max_error = float(np.float32(np.median(u_ref)))
    assert peer.set_parameter(NODE, "uncertainty.max", max_error).successful
    env.subscribe(*TOPICS)
    env.wait_matched()
    env.diagnostics_where(lambda d: d["uncertainty"] == "on")

    # c. one frame in metres (a sparse cue with its stamp): depth, uncertainty, filtered
    pub_sparse = env.image_publisher("sparse_depth")
    rng = np.random.default_rng(0)
    ys, xs = np.unravel_index(rng.choice(rel.size, 5000, replace=False), rel.shape)
    sparse = np.full(rel.shape, np.nan, np.float32)
    sparse[ys, xs] = 2.5 * rel[ys, xs]
    stamp = time.time_ns()
    pub_sparse.publish(image_msg(wire_fields(sparse, "32FC1"), stamp, "cam/u"))
    env.diagnostics_where(lambda d: int(d.get("sparse_received", 0)) >= 1)  # in before the frame
    pub.publish(image_msg(wire_fields(scene_rgb(seed=3), "rgb8"), stamp, "cam/u3"))
    depth_msg = env.message("depth", stamp)
    u_msg = env.message("depth/uncertainty", stamp)
    f_msg = env.message("depth/filtered", stamp)
    assert _header(u_msg) == _header(depth_msg) == _header(f_msg)
    assert _header(depth_msg) == (*divmod(stamp, 1_000_000_000), "cam/u3")
    depth, u, filtered = _array(depth_msg), _array(u_msg), _array(f_msg)
    assert depth.shape == u.shape == filtered.shape == (480, 640)
    np.testing.assert_allclose(u, u_ref, rtol=1e-3)  # the head's expected relative error
    np.testing.assert_allclose(depth, 2.5 * rel, rtol=0.02)  # metres: the sparse cue's scale
    dropped = ~(u <= np.float32(max_error))
    assert 0.2 < dropped.mean() < 0.8, dropped.mean()  # the threshold really splits the frame
    assert np.isnan(filtered[dropped]).all()
    np.testing.assert_array_equal(filtered[~dropped], depth[~dropped])  # metres, as published
    diag = env.diagnostics_where(lambda d: int(d["uncertainty_frames"]) >= 1)
    assert diag["units"] == "metres" and diag["uncertainty_frames"] == "1", diag
    assert float(diag["uncertainty_max"]) == max_error
    assert float(diag["uncertainty_dropped_fraction"]) == pytest.approx(dropped.mean(), abs=1e-4)
    assert diag["uncertainty_non_finite_pixels"] == "0" and diag["_level"] == "0", diag

    # d. bad thresholds at runtime: refused with the reason, the old one kept
    for bad in (-0.5, math.nan, math.inf):
        r = peer.set_parameter(NODE, "uncertainty.max", bad)
        assert not r.successful and "uncertainty.max" in r.reason, (bad, r.reason)
    assert peer.get_parameters(NODE, ["uncertainty.max"])["uncertainty.max"] == max_error
    assert node.proc.poll() is None


@pytest.mark.ros
def test_bad_uncertainty_max_at_start_up_is_a_clear_fatal_error(
    env: Env, headed_checkpoint: str
) -> None:
    cases = {"negative": "-0.5", "nan": ".nan", "inf": ".inf"}
    procs = {
        k: env.start({"checkpoint": headed_checkpoint, "uncertainty.max": v}, name=k)
        for k, v in cases.items()
    }
    for k, node in procs.items():
        rc = node.proc.wait(timeout=120)
        log = node.log()
        assert rc == 1 and "cannot start" in log and "uncertainty.max" in log, (k, rc, log)
        assert "Traceback" not in log, log


@pytest.mark.ros
@pytest.mark.parametrize("case", ["no_head", "paper_sampling"])
def test_checkpoint_without_a_head_says_so_and_publishes_no_uncertainty(
    env: Env, tiny_checkpoint: str, case: str
) -> None:
    """A checkpoint without a head, or the shipped head with the paper's sampled decoding
    (whose error the head does not predict): no uncertainty topics, and diagnostics say why."""
    peer = env.peer
    env.subscribe("depth")
    env.subscribe(*TOPICS, required=False)  # asked for, but this model cannot give it
    params = {"checkpoint": tiny_checkpoint} if case == "no_head" else {"sampling": "paper"}
    params["use_camera_info"] = False  # none is sent: no camera_info warning on a slow machine
    why = UNAVAILABLE if case == "no_head" else "unavailable, the head predicts the error of the"
    node = env.start(params)
    peer.wait_ready(node)
    pub = env.image_publisher()
    for seed in (1, 2):
        env.message("depth", env.send(pub, seed=seed))
    diag = env.diagnostics_where(lambda d: int(d["frames_processed"]) >= 2)
    assert diag["uncertainty"].startswith(why), diag
    assert "uncertainty_frames" not in diag and diag["_level"] == "0", diag
    assert peer.wait_for(lambda: peer.node.count_publishers("/depth") == 1, 10)
    for topic in TOPICS:  # not advertised at all, so nothing can ever arrive
        assert peer.node.count_publishers(f"/{topic}") == 0, topic
        assert peer.messages(topic) == [], topic
    assert node.log().count(f"uncertainty {why}") == 1, node.log()
    assert node.proc.poll() is None


@pytest.fixture(scope="module")
def nan_head_checkpoint(tmp_path_factory, headed_model) -> str:
    """`headed_model` whose head answers NaN for every pixel (its output bias is NaN)."""
    model = copy.deepcopy(headed_model)
    with torch.no_grad():
        model.uncertainty_head.out.bias.fill_(math.nan)
    path = tmp_path_factory.mktemp("ckpt") / "nan_head.safetensors"
    save_checkpoint(path, model, {"purpose": "tests: an uncertainty head that answers NaN"})
    return str(path)


@pytest.mark.ros
def test_non_finite_uncertainty_is_nan_in_both_topics_and_counted(
    env: Env, nan_head_checkpoint: str
) -> None:
    peer = env.peer
    env.subscribe("depth", *TOPICS)
    node = env.start({"checkpoint": nan_head_checkpoint})
    peer.wait_ready(node)
    env.diagnostics_where(lambda d: d["uncertainty"] == "on")
    pub = env.image_publisher()
    stamp = env.send(pub, seed=4)
    depth = _array(env.message("depth", stamp))
    u = _array(env.message("depth/uncertainty", stamp))
    filtered = _array(env.message("depth/filtered", stamp))
    assert np.isfinite(depth).all()  # the head never touches the depth
    assert np.isnan(u).all() and np.isnan(filtered).all()  # never 0, never kept
    diag = env.diagnostics_where(lambda d: int(d["uncertainty_frames"]) >= 1)
    assert diag["uncertainty_non_finite_pixels"] == str(480 * 640), diag
    assert diag["uncertainty_dropped_fraction"] == "1.0000", diag
    assert diag["_level"] == "1", diag  # WARN, with the count in the message
    assert node.log().count(f"{480 * 640} uncertainty pixels are NaN or infinite") == 1


@pytest.mark.ros
def test_managed_node_publishes_uncertainty_on_the_same_path(
    env: Env, headed_checkpoint: str
) -> None:
    peer = env.peer
    env.subscribe("depth", "depth/uncertainty")
    params = {"checkpoint": headed_checkpoint, "autostart": True}
    node = env.start(params, name="managed", module="depthart_ros.lifecycle_node")
    peer.wait_ready(node)
    diag = env.diagnostics_where(lambda d: d["uncertainty"] == "on")
    assert diag["state"] == "active", diag
    pub = env.image_publisher()
    stamp = env.send(pub, seed=5)
    depth_msg = env.message("depth", stamp)
    u_msg = env.message("depth/uncertainty", stamp)
    assert _header(u_msg) == _header(depth_msg)
    _, u_ref = _reference(headed_checkpoint, seed=5)
    np.testing.assert_allclose(_array(u_msg), u_ref, rtol=1e-3)
    diag = env.diagnostics_where(lambda d: int(d["uncertainty_frames"]) >= 1)
    assert diag["uncertainty_frames"] == "1", diag
