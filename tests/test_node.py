"""depthart_node with real parts: rclpy + Fast DDS on loopback, node and camera in own processes.

Every test uses its own ROS_DOMAIN_ID and FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (see
`ros_helpers.harness`). The node runs the tiny random checkpoint from conftest on the torch
backend, and the test compares its output with `DepthEstimator.predict` on the same image.

Transport note, measured here with Fast DDS 3.2 and LARGE_DATA: best-effort samples larger than
the 512 KiB default shared-memory segment are mostly lost between processes (a 640x480 rgb8
frame, 921,600 bytes: 1-4 of 20 arrive at 5 Hz), while frames up to ~500 KB all arrive, even at
60 Hz. So tests that need *every* frame of every encoding set the node's input QoS to reliable
(through its parameters), and the 60 Hz load test keeps the default best-effort input with a
640x480 bayer_rggb8 camera (307,200 bytes per frame, as raw industrial cameras send).
"""

from __future__ import annotations

import array
import functools
import hashlib
import json
import signal
import struct
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 sensor_msgs package")
rosbags_image = pytest.importorskip("rosbags.image", reason="rosbags-image decodes the reference")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from ros_helpers.harness import (  # noqa: E402
    REPO,
    NodeProcess,
    RosPeer,
    image_msg,
    run_helper,
    stamp_ns,
    unique_domain_id,
)
from ros_helpers.scenes import VARIANTS, K, encode, scene_rgb, wire_fields  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2  # noqa: E402

from depthart_core.colormap import colorize_bgr  # noqa: E402
from depthart_core.rosio.compressed import encode_depth, encode_rgb  # noqa: E402
from depthart_core.runtime import get_backend  # noqa: E402
from depthart_core.sampling import sampling_setting  # noqa: E402
from depthart_ros.params import FLOAT_PARAMS, PARAMS, validate_params  # noqa: E402
from depthart_ros.pipeline import FramePipeline  # noqa: E402

pytestmark = pytest.mark.ros
NODE = "/depthart_node"
PARAMS_FILE = REPO / "config" / "depthart.params.yaml"
TS = get_typestore(Stores.ROS2_KILTED)


class RosTest:
    """One domain id, one test peer, and every node process started in it (all closed after)."""

    def __init__(self, tmp: Path, checkpoint: str) -> None:
        self.domain = unique_domain_id()
        self.tmp = tmp
        self.checkpoint = checkpoint
        self.peer = RosPeer(self.domain)
        self.nodes: list[NodeProcess] = []

    def start_node(
        self, params: dict[str, Any] | None = None, files=(), name="node", remaps=None
    ) -> NodeProcess:
        base = {"checkpoint": self.checkpoint, "backend": "torch"}
        log = self.tmp / f"{name}.log"
        node = NodeProcess(self.domain, base | (params or {}), log, files, remaps=remaps)
        self.nodes.append(node)
        return node

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self.peer.close()


@pytest.fixture(scope="module")
def estimator(tiny_checkpoint: str):
    """`predict` as the node runs it by default (its default decoding), in this process."""
    return _node_default_backend(tiny_checkpoint)


@pytest.fixture
def ros(tmp_path: Path, tiny_checkpoint: str):
    env = RosTest(tmp_path, tiny_checkpoint)
    yield env
    env.close()


def _node_default_backend(checkpoint: str, **kw: Any):
    """The torch backend the node builds with its default parameters, in this process."""
    s = {p.name: p.default for p in PARAMS}["sampling"]
    return get_backend("torch", checkpoint, sampling=sampling_setting(s, 0), **kw)


def _subscribe_outputs(peer: RosPeer) -> None:
    # required: wait_ready waits until each of the node's writers is discovered and matched (a
    # fresh clone's CI once saw depth/camera_info's writer discovered seconds after depth's, and
    # a volatile reader misses what was sent before it matched)
    peer.subscribe(Image, "depth", required=True)
    peer.subscribe(CameraInfo, "depth/camera_info", required=True)
    peer.subscribe(Image, "depth/colored", required=True)
    peer.subscribe(DiagnosticArray, "/diagnostics")


def test_a_required_topic_is_unmatched_until_its_writer_is_discovered(ros: RosTest) -> None:
    # the harness's readiness check: a topic with no writer discovered yet counts as matched
    # unless the subscription is required (the race behind a fresh clone's missing camera_info)
    peer = ros.peer
    peer.subscribe(Image, "probe_required", required=True)
    peer.subscribe(Image, "probe_optional")
    assert [t.rsplit("/", 1)[-1] for t in peer.unmatched()] == ["probe_required"]
    pub = peer.publisher(Image, "probe_required")
    assert peer.wait_for(lambda: not peer.unmatched(), 20), peer.unmatched()
    peer.node.destroy_publisher(pub)


def _depth(msg: Image) -> np.ndarray:
    assert msg.encoding == "32FC1" and msg.is_bigendian == 0 and msg.step == msg.width * 4
    return np.frombuffer(msg.data, np.float32).reshape(msg.height, msg.width)


def _header(msg: Any) -> tuple[int, int, str]:
    return (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id)


@functools.cache
def _reference_rgb(encoding: str) -> np.ndarray:
    """The test scene as rosbags-image (not our codec) decodes it from the wire."""
    fields = wire_fields(encode(scene_rgb(), encoding), encoding)
    msg = TS.types["sensor_msgs/msg/Image"](
        header=TS.types["std_msgs/msg/Header"](
            stamp=TS.types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""
        ),
        **(fields | {"data": np.frombuffer(fields["data"], np.uint8)}),
    )
    if encoding == "8UC3":  # generic 3-channel: OpenCV's BGR order
        return np.ascontiguousarray(rosbags_image.message_to_cvimage(msg, "bgr8")[..., ::-1])
    return rosbags_image.message_to_cvimage(msg, "rgb8")


def _assert_close_to_predict(depth: np.ndarray, ref: np.ndarray, what: str) -> None:
    err = np.abs(depth - ref)
    assert float(err.mean()) < 2e-3 and float(np.percentile(err, 99)) < 2e-2, (
        f"{what}: node depth differs from predict (mean {err.mean():.2e}, max {err.max():.2e})"
    )


def _delta(after: dict[str, str], before: dict[str, str], key: str) -> int:
    return int(after.get(key, 0)) - int(before.get(key, 0))


def _wait_counts(
    peer: RosPeer, before: dict[str, str], want: dict[str, int], timeout: float = 30.0
) -> dict[str, str]:
    """The first diagnostics whose counters moved by at least `want` since `before` (a condition,
    not a sleep: the node has really handled those messages)."""
    latest: dict[str, dict[str, str]] = {}

    def moved() -> bool:
        latest["diag"] = peer.diagnostics() or {}
        return all(_delta(latest["diag"], before, k) >= n for k, n in want.items())

    assert peer.wait_for(moved, timeout), f"counters did not reach {want}: {latest.get('diag')}"
    return latest["diag"]


# ---------------------------------------------------------------------------------------------
# 1. every encoding, headers, camera_info pairing, colored output, values vs predict
def test_encodings_headers_and_values(ros: RosTest, tiny_checkpoint: str) -> None:
    # flip_average on: the node's depth must be the flip-averaged prediction of the same frame
    estimator = _node_default_backend(tiny_checkpoint, flip_average=True)
    peer = ros.peer
    _subscribe_outputs(peer)
    overrides = {"input_qos.reliability": "reliable", "input_qos.depth": 5, "flip_average": True}
    node = ros.start_node(overrides)
    peer.wait_ready(node)
    manifest = ros.tmp / "manifest.jsonl"
    args = ["ros_helpers.publisher", "variants", "--repeat", "2", "--period", "0.3", "--reliable"]
    args.append("--await-camera-info")  # the node's camera_info reader has seen this writer
    res = run_helper(ros.domain, [*args, "--manifest", str(manifest)], timeout=90)
    assert res.returncode == 0, res.stderr
    sent: dict[str, list[int]] = {}
    for line in manifest.read_text().splitlines():
        rec = json.loads(line)
        if "variant" in rec:
            sent.setdefault(rec["variant"], []).append(rec["stamp_ns"])

    def frame_ids(topic: str) -> set[str]:
        return {m.header.frame_id for m in peer.messages(topic)}

    want = {f"cam/{v.name}" for v in VARIANTS}
    peer.wait_for(lambda: want <= frame_ids("depth") and want <= frame_ids("depth/colored"), 20)
    depth_by = {stamp_ns(m.header): m for m in peer.messages("depth")}
    info_by = {stamp_ns(m.header): m for m in peer.messages("depth/camera_info")}
    colored_by = {stamp_ns(m.header): m for m in peer.messages("depth/colored")}
    assert set(depth_by) <= {s for stamps in sent.values() for s in stamps}, "unknown stamps"

    predicted: dict[str, np.ndarray] = {}
    for v in VARIANTS:
        stamps = [s for s in sent[v.name] if s in depth_by]
        assert stamps, f"{v.name}: no depth received (log: {node.log()[-2000:]})"
        msg = depth_by[stamps[0]]
        assert _header(msg)[2] == f"cam/{v.name}"
        assert (msg.height, msg.width) == (480, 640)
        depth = _depth(msg)
        assert np.isfinite(depth).all() and (depth > 0).all(), v.name
        rgb = _reference_rgb(v.encoding)
        key = hashlib.sha1(rgb.tobytes()).hexdigest()  # many variants decode to the same RGB
        if key not in predicted:
            predicted[key] = estimator.predict(rgb)
        _assert_close_to_predict(depth, predicted[key], v.name)
        with_info = [s for s in stamps if s in info_by]  # the very first info may miss discovery
        if not with_info:  # say why: what the node paired, and what this peer saw
            diag = {k: x for k, x in (peer.diagnostics() or {}).items() if "camera_info" in k}
            seen = sorted(info_by)[:3], len(info_by), peer.unmatched()
            pytest.fail(f"{v.name}: no depth/camera_info; node {diag}; peer {seen}; "
                        f"log: {node.log()[-1500:]}")  # fmt: skip
        info = info_by[with_info[0]]
        assert _header(info) == _header(depth_by[with_info[0]])
        assert (info.width, info.height) == (640, 480) and list(info.k) == K
        with_colored = [s for s in stamps if s in colored_by]
        assert with_colored, f"{v.name}: no depth/colored"
        col = colored_by[with_colored[0]]
        assert _header(col) == _header(depth_by[with_colored[0]])
        assert (col.encoding, col.height, col.width, col.step) == ("bgr8", 480, 640, 640 * 3)
        bgr = np.frombuffer(col.data, np.uint8).reshape(480, 640, 3)
        np.testing.assert_array_equal(bgr, colorize_bgr(_depth(depth_by[with_colored[0]])))

    diag = peer.wait_diagnostics(after=time.time())
    assert diag["backend"] == "torch" and diag["units"] == "relative"
    assert diag["engine"].endswith("flip-averaged"), diag["engine"]
    assert int(diag["frames_rejected"]) == 0 and diag["camera_info"] == "ok"
    assert node.signal_and_wait(signal.SIGINT) == 0, node.log()


# ---------------------------------------------------------------------------------------------
# 2. one node with reliable input and sparse depth: params file, parameter sets, bad messages,
#    metric scaling
OVERRIDES = {
    "input_qos.reliability": "reliable",
    "input_qos.depth": 10,
    "sparse_depth.enabled": True,
    # generous: the tests publish image and calibration in any order. A whole number for a double
    # parameter, as params files and `-p name:=5` give it: the node widens it, rclpy alone refuses
    "camera_info.wait_s": 5,
}
OVERLAY = {"colormap": "magma", "max_rate_hz": 200}  # max_rate_hz: a whole number again
# a policy that keeps delivery guaranteed: the camera_info tests wait for every message
QOS_OVERRIDE = {"qos_overrides./depth/camera_info.publisher.durability": "transient_local"}


@pytest.fixture(scope="module")
def reliable(tmp_path_factory, tiny_checkpoint: str):
    tmp = tmp_path_factory.mktemp("reliable")
    env = RosTest(tmp, tiny_checkpoint)
    overlay = tmp / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"/**": {"ros__parameters": OVERLAY}}))
    _subscribe_outputs(env.peer)
    env.peer.subscribe(PointCloud2, "depth/points", required=True)
    node = env.start_node(OVERRIDES | QOS_OVERRIDE, files=(PARAMS_FILE, overlay))
    env.peer.wait_ready(node)
    pub_img = env.peer.publisher(Image, "image", reliable=True, depth=10)
    pub_sparse = env.peer.publisher(Image, "sparse_depth", reliable=True, depth=10)
    pub_info = env.peer.publisher(CameraInfo, "camera_info", reliable=True, depth=10)
    pubs = (pub_img, pub_sparse, pub_info)
    assert env.peer.wait_for(lambda: all(p.get_subscription_count() for p in pubs), 20)
    yield env, node, pub_img, pub_sparse, pub_info
    env.close()


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        out |= _flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def test_params_file_covers_every_parameter_and_loads(reliable) -> None:
    env, node, *_ = reliable
    text = PARAMS_FILE.read_text()
    shipped = _flatten(yaml.safe_load(text)["/**"]["ros__parameters"])
    names = [p.name for p in PARAMS]
    assert sorted(shipped) == sorted(names)
    assert {p.name: p.default for p in PARAMS} == shipped  # the file documents the defaults
    lines = text.splitlines()
    for i, line in enumerate(lines):  # each leaf (or run of leaves) sits under a comment
        stripped = line.strip()
        if ":" in stripped and not stripped.startswith("#") and not stripped.endswith(":"):
            indent, j = len(line) - len(line.lstrip()), i - 1
            while lines[j].strip() and not lines[j].strip().startswith("#"):
                assert len(lines[j]) - len(lines[j].lstrip()) == indent, f"no comment: {line}"
                j -= 1
            assert lines[j].strip().startswith("#"), f"parameter without a comment: {line!r}"
    got = env.peer.get_parameters(NODE, names)
    command_line = {"checkpoint": env.checkpoint, "backend": "torch"} | OVERRIDES
    for n in names:  # precedence: shipped file < overlay file < -p on the command line
        expected = command_line.get(n, OVERLAY.get(n, shipped[n]))
        if n in FLOAT_PARAMS:  # whole numbers arrive widened to doubles
            expected = float(expected)
        assert got[n] == expected and type(got[n]) is type(expected), n


def _publish_frame(env: RosTest, pub, rgb: np.ndarray, stamp: int, frame_id="cam") -> None:
    pub.publish(image_msg(wire_fields(rgb, "rgb8"), stamp, frame_id))


def _wait_depth(env: RosTest, stamp: int, timeout: float = 15.0) -> Image:
    def find():
        return next((m for m in env.peer.messages("depth") if stamp_ns(m.header) == stamp), None)

    assert env.peer.wait_for(lambda: find() is not None, timeout), f"no depth for {stamp}"
    return find()


def test_parameter_set_is_validated(reliable) -> None:
    env, node, pub_img, *_ = reliable
    peer = env.peer
    r = peer.set_parameter(NODE, "colormap", "rainbow")
    assert not r.successful and "rainbow" in r.reason
    assert peer.get_parameters(NODE, ["colormap"])["colormap"] == "magma"  # old value kept
    r = peer.set_parameter(NODE, "max_rate_hz", -1.0)
    assert not r.successful and "max_rate_hz" in r.reason
    r = peer.set_parameter(NODE, "checkpoint", "/elsewhere.safetensors")
    assert not r.successful and "read-only" in r.reason
    assert peer.set_parameter(NODE, "min_depth", 5).successful  # an INTEGER: widened
    assert type(peer.get_parameters(NODE, ["min_depth"])["min_depth"]) is float
    r = peer.set_parameter(NODE, "max_depth", 2.0)
    assert not r.successful and "min_depth=5.0" in r.reason
    assert peer.set_parameter(NODE, "min_depth", 0.0).successful
    assert peer.set_parameter(NODE, "colormap", "viridis").successful
    # the new colormap is used for the next frame
    stamp = time.time_ns()
    _publish_frame(env, pub_img, scene_rgb(seed=1), stamp)
    depth = _depth(_wait_depth(env, stamp))
    assert peer.wait_for(
        lambda: any(stamp_ns(m.header) == stamp for m in peer.messages("depth/colored")), 5
    )
    col = next(m for m in peer.messages("depth/colored") if stamp_ns(m.header) == stamp)
    bgr = np.frombuffer(col.data, np.uint8).reshape(col.height, col.width, 3)
    np.testing.assert_array_equal(bgr, colorize_bgr(depth, cmap="viridis"))


def _raw_image(stamp: int, **fields) -> Image:
    base = {"height": 48, "width": 64, "encoding": "rgb8", "is_bigendian": 0, "step": 192}
    base |= fields
    base.setdefault("data", bytes(base["height"] * base["step"]))
    return image_msg(base, stamp, "cam/bad")


def test_bad_messages_are_counted_and_the_node_keeps_serving(reliable) -> None:
    env, node, pub_img, *_ = reliable
    peer = env.peer
    before = peer.wait_diagnostics(after=time.time())
    good = scene_rgb(seed=2)
    t = time.time_ns()
    bad = {
        "bad_step": _raw_image(t + 1, step=191),
        "short_data": _raw_image(t + 2, data=bytes(48 * 192 - 1)),
        "unknown_encoding": _raw_image(t + 3, encoding="rgb9000"),
        "empty": _raw_image(t + 4, height=0, width=0, step=0),
        "too_small": _raw_image(t + 5, height=1, width=1, step=3),
    }
    _publish_frame(env, pub_img, good, t)
    _wait_depth(env, t)  # answered before the bad ones come: none of them can replace it
    for msg in bad.values():
        pub_img.publish(msg)
    warned = _wait_counts(peer, before, {"frames_rejected": len(bad)})
    assert "frames rejected since the last report" in warned["_message"], warned["_message"]
    _publish_frame(env, pub_img, good, t + 6)
    _wait_depth(env, t + 6)
    outputs = {stamp_ns(m.header) for m in peer.messages("depth")}
    assert not outputs & {t + 1, t + 2, t + 3, t + 4, t + 5}
    after = _wait_counts(peer, before, {"frames_processed": 2})
    for cause in bad:
        assert _delta(after, before, f"rejected.{cause}") == 1, (cause, after)
    assert _delta(after, before, "frames_rejected") == len(bad)
    assert _delta(after, before, "frames_processed") == 2
    # a period without new rejections no longer warns of them (it used to, for ever)
    calm = peer.wait_diagnostics(after=time.time() + 1.5)
    assert "rejected" not in calm["_message"] and int(calm["frames_rejected"]) >= len(bad), calm
    assert node.proc.poll() is None


def _sparse_msg(values: np.ndarray, encoding: str, stamp: int) -> Image:
    return image_msg(wire_fields(values, encoding), stamp, "cam")


def test_sparse_depth_gives_metres(reliable, estimator) -> None:
    env, node, pub_img, pub_sparse, _ = reliable
    peer = env.peer
    rgb = scene_rgb(seed=3)
    rel = estimator.predict(rgb)
    rng = np.random.default_rng(0)
    ys, xs = np.unravel_index(rng.choice(rel.size, 6000, replace=False), rel.shape)

    def run(sparse: np.ndarray, encoding: str) -> tuple[np.ndarray, dict[str, str]]:
        stamp = time.time_ns()
        before = peer.wait_diagnostics(after=time.time())
        pub_sparse.publish(_sparse_msg(sparse, encoding, stamp))
        _wait_counts(peer, before, {"sparse_received": 1})  # the cue is in before the frame
        _publish_frame(env, pub_img, rgb, stamp)
        out = _depth(_wait_depth(env, stamp))
        return out, peer.wait_diagnostics(after=time.time())

    # a. 32FC1 metres, median-ratio scale, 10% gross outliers
    sparse = np.full(rel.shape, np.nan, np.float32)
    sparse[ys, xs] = 2.5 * rel[ys, xs]
    sparse[ys[:600], xs[:600]] *= 4.0
    out, diag = run(sparse, "32FC1")
    assert diag["units"] == "metres" and diag["metric_reason"] == "ok", diag
    assert float(diag["metric_scale"]) == pytest.approx(2.5, rel=0.01)
    err = np.abs(out / (2.5 * rel) - 1.0)
    assert np.isfinite(out).all() and np.median(err) < 0.01 and np.percentile(err, 95) < 0.03

    # b. 16UC1 millimetres, scale + shift (set at runtime)
    assert peer.set_parameter(NODE, "sparse_depth.mode", "scale_shift").successful
    mm = np.zeros(rel.shape, np.uint16)
    mm[ys, xs] = np.rint((1.5 * rel[ys, xs] + 0.8) * 1000).astype(np.uint16)
    out, diag = run(mm, "16UC1")
    assert diag["metric_reason"] == "ok" and float(diag["metric_shift"]) == pytest.approx(0.8, 0.05)
    err = np.abs(out / (1.5 * rel + 0.8) - 1.0)
    assert np.median(err) < 0.01 and np.percentile(err, 95) < 0.03

    # c. too few points: relative output, flagged, and not cut by a bound meant in metres
    assert peer.set_parameter(NODE, "sparse_depth.mode", "scale").successful
    assert peer.set_parameter(NODE, "min_depth", float(rel.max()) + 0.1).successful
    few = np.full(rel.shape, np.nan, np.float32)
    few[ys[:5], xs[:5]] = 3.0
    before_fallbacks = int(diag["metric_fallbacks"])
    out, diag = run(few, "32FC1")
    assert peer.set_parameter(NODE, "min_depth", 0.0).successful
    assert diag["units"] == "relative" and "too few" in diag["metric_reason"], diag
    assert int(diag["metric_fallbacks"]) == before_fallbacks + 1
    assert diag["_level"] == "1"  # WARN
    _assert_close_to_predict(out, rel, "fallback")

    # d. a cue that comes after its image (projected from a scan) is waited for
    assert peer.set_parameter(NODE, "sparse_depth.wait_s", 3.0).successful
    sparse = np.full(rel.shape, np.nan, np.float32)
    sparse[ys, xs] = 2.0 * rel[ys, xs]
    stamp = time.time_ns()
    _publish_frame(env, pub_img, rgb, stamp)
    time.sleep(0.3)  # the frame's inference is done by now on a quiet machine: it waits
    pub_sparse.publish(_sparse_msg(sparse, "32FC1", stamp))
    out = _depth(_wait_depth(env, stamp))
    assert peer.set_parameter(NODE, "sparse_depth.wait_s", 0.05).successful
    err = np.abs(out / (2.0 * rel) - 1.0)
    assert np.isfinite(out).all() and np.median(err) < 0.01, "the late cue was not used"


def _endpoint_reliability(peer: RosPeer, topic: str, kind: str, policy="reliability") -> str:
    infos = getattr(peer.node, f"get_{kind}_info_by_topic")(topic)
    mine = [i for i in infos if i.node_name == "depthart_node"]
    assert len(mine) == 1, (topic, infos)
    return getattr(mine[0].qos_profile, policy).name


def test_qos_follows_parameters_and_qos_overrides(reliable) -> None:
    env, *_ = reliable
    peer = env.peer
    assert _endpoint_reliability(peer, "/image", "subscriptions") == "RELIABLE"  # input_qos.*
    assert _endpoint_reliability(peer, "/depth", "publishers") == "RELIABLE"  # output default
    # qos_overrides beat the defaults for that one topic
    info = _endpoint_reliability(peer, "/depth/camera_info", "publishers", "durability")
    assert info == "TRANSIENT_LOCAL"
    assert _endpoint_reliability(peer, "/depth", "publishers", "durability") == "VOLATILE"


def test_diagnostics_go_on_under_sim_time_without_a_clock(reliable) -> None:
    """use_sim_time with no /clock publisher: ROS time stands still at 0, but the diagnostics
    timer runs on the steady clock, so the node still says how it is."""
    env, *_ = reliable
    peer = env.peer
    assert peer.set_parameter(NODE, "use_sim_time", True).successful
    try:
        first = peer.wait_diagnostics(after=time.time() + 0.5)
        second = peer.wait_diagnostics(after=time.time() + 0.5)
        assert first and second
    finally:
        assert peer.set_parameter(NODE, "use_sim_time", False).successful


def test_diagnostics_warn_when_no_image_comes(reliable) -> None:
    """A camera that stops: after input_timeout_s without an image the diagnostics go WARN,
    naming the topic; the next image clears it."""
    env, node, pub_img, *_ = reliable
    peer = env.peer
    stamp = time.time_ns()
    _publish_frame(env, pub_img, scene_rgb(seed=4), stamp)
    _wait_depth(env, stamp)
    assert peer.set_parameter(NODE, "input_timeout_s", 1.0).successful
    try:
        silent = peer.wait_diagnostics(after=time.time() + 2.5)
        assert silent["_level"] == "1" and "no image on /image for" in silent["_message"], silent
        assert float(silent["last_image_age_s"]) >= 1.0
        stamp = time.time_ns()
        _publish_frame(env, pub_img, scene_rgb(seed=4), stamp)
        _wait_depth(env, stamp)
        fresh = peer.wait_diagnostics(after=time.time())
        assert "no image" not in fresh["_message"], fresh
    finally:
        assert peer.set_parameter(NODE, "input_timeout_s", 10.0).successful


def test_stale_frames_are_dropped_and_counted(reliable) -> None:
    env, node, pub_img, *_ = reliable
    peer = env.peer
    before = peer.wait_diagnostics(after=time.time())
    assert peer.set_parameter(NODE, "max_frame_age_s", 3.0).successful
    old, fresh = time.time_ns() - 10_000_000_000, time.time_ns()
    _publish_frame(env, pub_img, scene_rgb(seed=4), old, "cam/old")
    warned = _wait_counts(peer, before, {"frames_dropped_stale": 1})  # before the fresh one
    # said where an aggregator looks: WARN for the drops since the last message, and in the log
    assert warned["_level"] == "1", warned
    assert "1 frames dropped since the last report as older than" in warned["_message"], warned
    assert peer.wait_for(lambda: "dropping frame stamped" in node.log(), 10), node.log()
    _publish_frame(env, pub_img, scene_rgb(seed=4), fresh, "cam/fresh")
    _wait_depth(env, fresh)
    assert peer.set_parameter(NODE, "max_frame_age_s", 0.0).successful
    after = peer.wait_diagnostics(after=time.time())
    assert _delta(after, before, "frames_dropped_stale") == 1
    assert old not in {stamp_ns(m.header) for m in peer.messages("depth")}


def test_camera_info_is_rescaled_to_the_depth_size(reliable) -> None:
    """A calibration made at 1280x960 for a 640x480 stream: depth/camera_info must describe the
    640x480 depth image, with the image's header. The image goes out before its calibration
    (the order a loaded machine often delivers them in): the node pairs them by stamp."""
    env, node, pub_img, _, pub_info = reliable
    peer = env.peer
    before = peer.wait_diagnostics(after=time.time())
    stamp = time.time_ns()
    info = CameraInfo(width=1280, height=960, distortion_model="plumb_bob")
    info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    info.header.frame_id = "calib_frame"
    info.k = [1000.0, 0.0, 639.5, 0.0, 1000.0, 479.5, 0.0, 0.0, 1.0]
    info.p = [1000.0, 0.0, 639.5, 0.0, 0.0, 1000.0, 479.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    _publish_frame(env, pub_img, scene_rgb(seed=5), stamp, "cam/scaled")
    pub_info.publish(info)
    depth = _wait_depth(env, stamp)

    def find():
        return next(
            (m for m in peer.messages("depth/camera_info") if stamp_ns(m.header) == stamp), None
        )

    assert peer.wait_for(lambda: find() is not None, 15)
    out = find()
    assert _header(out) == _header(depth) == (*divmod(stamp, 1_000_000_000), "cam/scaled")
    assert (out.width, out.height) == (640, 480)
    np.testing.assert_allclose(out.k, [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0])
    _wait_counts(peer, before, {"camera_info_paired": 1})


def _output_for(env: RosTest, topic: str, stamp: int) -> Any:
    """The node's message on `topic` for the frame stamped `stamp` (waits up to 10 s)."""

    def find():
        return next((m for m in env.peer.messages(topic) if stamp_ns(m.header) == stamp), None)

    assert env.peer.wait_for(lambda: find() is not None, 10), f"no {topic} for {stamp}"
    return find()


def _info_for(env: RosTest, stamp: int) -> CameraInfo:
    return _output_for(env, "depth/camera_info", stamp)


def _cloud_for(env: RosTest, stamp: int) -> PointCloud2:
    return _output_for(env, "depth/points", stamp)


def test_point_cloud_backprojects_the_depth_through_the_calibration(reliable) -> None:
    """depth/points: organized, the depth's header, every 2nd pixel (default stride), x = (u -
    cx) z / fx through P, the image's colour; a stride set at runtime applies to the next frame;
    a calibration it cannot use skips the cloud (counted) while depth keeps flowing."""
    env, node, pub_img, _, pub_info = reliable
    peer = env.peer
    fx, fy, cx, cy = 520.0, 510.0, 322.5, 236.0
    info = CameraInfo(width=640, height=480, distortion_model="plumb_bob", d=[0.0] * 5)
    info.k = [fx * 1.05, 0.0, cx + 3.0, 0.0, fy * 1.05, cy - 2.0, 0.0, 0.0, 1.0]  # raw camera
    info.p = [fx, 0.0, cx, -fx * 0.1, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]  # rectified
    rgb = scene_rgb(seed=8)

    def send(stamp: int) -> None:  # calibration first, then its image: as a driver sends them
        info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        pub_info.publish(info)
        _publish_frame(env, pub_img, rgb, stamp, "cam/points")

    stamp = time.time_ns()
    send(stamp)
    depth = _depth(_wait_depth(env, stamp))
    cloud = _cloud_for(env, stamp)
    assert _header(cloud) == (*divmod(stamp, 1_000_000_000), "cam/points")
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (240, 320, 16, 5120)
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)
    ]  # fmt: skip
    assert not cloud.is_dense and not cloud.is_bigendian
    pts = np.frombuffer(bytes(cloud.data), "<f4").reshape(240, 320, 4)
    z = depth[::2, ::2]
    v, u = np.mgrid[0:480:2, 0:640:2]
    np.testing.assert_allclose(pts[..., 2], z)
    np.testing.assert_allclose(pts[..., 0], (u - cx) * z / fx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pts[..., 1], (v - cy) * z / fy, rtol=1e-5, atol=1e-6)
    c = rgb[::2, ::2].astype(np.uint32)
    packed = pts[..., 3].copy().view(np.uint32)
    np.testing.assert_array_equal(packed, (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2])

    assert peer.set_parameter(NODE, "points.stride", 4).successful
    stamp = time.time_ns()
    send(stamp)
    assert (_cloud_for(env, stamp).height, _cloud_for(env, stamp).width) == (120, 160)

    before = peer.wait_diagnostics(after=time.time())
    assert peer.set_parameter(NODE, "points.image", "raw").successful
    info.distortion_model, info.d = "kannala_brandt_9", [0.01] * 9
    stamp = time.time_ns()
    send(stamp)
    _wait_depth(env, stamp)
    after = _wait_counts(peer, before, {"points_skipped.calibration": 1})
    assert _delta(after, before, "points_skipped.calibration") == 1, after
    assert "'kannala_brandt_9' is not supported for image=raw" in node.log()
    assert not [m for m in peer.messages("depth/points") if stamp_ns(m.header) == stamp]
    for name, value in (("points.image", "rectified"), ("points.stride", 2)):
        assert peer.set_parameter(NODE, name, value).successful


def test_point_cloud_follows_the_calibrations_binning_and_roi(reliable) -> None:
    """A camera binning 2x2 inside a region of interest: CameraInfo keeps the full-resolution
    calibration (REP 104) and the node republishes it unchanged, but the cloud must use the
    binned, cropped camera's intrinsics, as image_geometry's PinholeCameraModel computes them:
    cx' = (cx - x_offset) / binning_x, fx' = fx / binning_x."""
    env, node, pub_img, _, pub_info = reliable
    fx, fy, cx, cy = 520.0, 510.0, 322.5, 236.0  # of the 640x480 image that arrives
    info = CameraInfo(width=2560, height=1920, distortion_model="plumb_bob", d=[0.0] * 5)
    info.binning_x = info.binning_y = 2
    info.roi.x_offset, info.roi.y_offset, info.roi.width, info.roi.height = 200, 100, 1280, 960
    full = (2 * fx, 2 * fy, 2 * cx + 200, 2 * cy + 100)
    info.k = [full[0], 0.0, full[2], 0.0, full[1], full[3], 0.0, 0.0, 1.0]
    info.p = [full[0], 0.0, full[2], 0.0, 0.0, full[1], full[3], 0.0, 0.0, 0.0, 1.0, 0.0]
    stamp = time.time_ns()
    info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    pub_info.publish(info)
    _publish_frame(env, pub_img, scene_rgb(seed=9), stamp, "cam/binned")
    depth = _depth(_wait_depth(env, stamp))
    pts = np.frombuffer(bytes(_cloud_for(env, stamp).data), "<f4").reshape(240, 320, 4)
    z = depth[::2, ::2]
    v, u = np.mgrid[0:480:2, 0:640:2]
    np.testing.assert_allclose(pts[..., 0], (u - cx) * z / fx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pts[..., 1], (v - cy) * z / fy, rtol=1e-5, atol=1e-6)
    out = _info_for(env, stamp)  # its own topic: it may arrive after the cloud
    assert (out.width, out.height, out.binning_x, out.binning_y) == (2560, 1920, 2, 2)
    assert (out.roi.x_offset, out.roi.y_offset, out.roi.width) == (200, 100, 1280)
    np.testing.assert_allclose(out.k, info.k)  # republished as the camera describes itself


def test_a_latched_camera_info_sent_before_the_node_started_is_used(ros: RosTest) -> None:
    """A static calibration publisher (transient_local, one message, sent before the node came
    up): `qos_overrides./camera_info.subscription.durability: transient_local` alone (input_qos
    best_effort, the default: the node makes a latched reader reliable) makes the node's reader
    receive it, and the first frame goes out with depth/camera_info and depth/points."""
    from rclpy.qos import DurabilityPolicy, QoSProfile

    peer = ros.peer
    latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub_info = peer.node.create_publisher(CameraInfo, "camera_info", latched)
    info = CameraInfo(width=640, height=480, distortion_model="plumb_bob", d=[0.0] * 5)
    info.k = [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]
    info.p = [500.0, 0.0, 319.5, 0.0, 0.0, 500.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.header.frame_id = "static_calibration"  # stamp 0: no image will ever pair with it
    pub_info.publish(info)
    _subscribe_outputs(peer)
    peer.subscribe(PointCloud2, "depth/points", required=True)
    override = {"qos_overrides./camera_info.subscription.durability": "transient_local"}
    override["qos_overrides./image.subscription.reliability"] = "reliable"  # one frame, not lost
    node = ros.start_node({"input_qos.depth": 10} | override)  # camera_info: best_effort + latch
    peer.wait_ready(node)
    pub_img = peer.publisher(Image, "image", reliable=True, depth=10)
    assert peer.wait_for(lambda: pub_img.get_subscription_count() > 0, 20)
    stamp = time.time_ns()
    _publish_frame(ros, pub_img, scene_rgb(seed=3), stamp, "cam")
    _wait_depth(ros, stamp)
    cloud = _cloud_for(ros, stamp)
    assert (cloud.height, cloud.width) == (240, 320)
    np.testing.assert_allclose(_info_for(ros, stamp).k, info.k)


def test_broken_camera_info_is_counted_and_never_republished(reliable) -> None:
    """NaN or zero intrinsics: ignored (the last good calibration stays), counted by cause in
    diagnostics, and the node keeps publishing depth."""
    env, node, pub_img, _, pub_info = reliable
    peer = env.peer
    before = peer.wait_diagnostics(after=time.time())
    good = [400.0, 0.0, 319.5, 0.0, 400.0, 239.5, 0.0, 0.0, 1.0]
    stamp = time.time_ns()
    for k in (good, [float("nan")] + good[1:], [0.0] * 9):
        info = CameraInfo(width=640, height=480, distortion_model="plumb_bob", k=k)
        info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        info.p = [k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
        pub_info.publish(info)
    want = {"camera_info_rejected.non_finite": 1, "camera_info_rejected.zero_focal": 1}
    _wait_counts(peer, before, want | {"camera_info_received": 1})
    _publish_frame(env, pub_img, scene_rgb(seed=6), stamp, "cam/badinfo")
    _wait_depth(env, stamp)

    def find():
        return next(
            (m for m in peer.messages("depth/camera_info") if stamp_ns(m.header) == stamp), None
        )

    assert peer.wait_for(lambda: find() is not None, 15)
    assert list(find().k) == good
    after = peer.wait_diagnostics(after=time.time())
    assert _delta(after, before, "camera_info_rejected.non_finite") == 1, after
    assert _delta(after, before, "camera_info_rejected.zero_focal") == 1, after
    assert node.log().count("ignoring camera_info: non-finite values in K, P") == 1


def test_a_calibration_of_another_aspect_is_not_stretched_onto_the_image(reliable) -> None:
    """A 16:9 calibration (the camera's other mode, latched) with a 4:3 image: rescaled, it
    would give stretched points and wrong metres; it is not used, counted and said."""
    env, node, pub_img, _, pub_info = reliable
    peer = env.peer
    before = peer.wait_diagnostics(after=time.time())
    rgb = scene_rgb(seed=8)
    h, w = rgb.shape[:2]
    stamp = time.time_ns()
    k = [500.0, 0.0, 639.5, 0.0, 500.0, 359.5, 0.0, 0.0, 1.0]
    wide = CameraInfo(width=1280, height=720, distortion_model="plumb_bob", k=k)
    wide.p = [k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
    wide.header.stamp.sec, wide.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    pub_info.publish(wide)
    _wait_counts(peer, before, {"camera_info_received": 1})
    _publish_frame(env, pub_img, rgb, stamp, "cam/modes")
    _wait_depth(env, stamp)
    after = _wait_counts(peer, before, {"camera_info_aspect_mismatch": 1})
    assert after["_level"] == "1" and "another aspect ratio" in after["_message"], after
    assert f"this one is {w}x{h}" in after["_message"]
    infos = [m for m in peer.messages("depth/camera_info") if stamp_ns(m.header) == stamp]
    assert infos == []  # no stretched calibration went out
    # a calibration of the image's own size is used again, and the warning goes
    good = CameraInfo(width=w, height=h, distortion_model="plumb_bob", k=k)
    good.p = wide.p
    stamp = time.time_ns()
    good.header.stamp.sec, good.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    pub_info.publish(good)
    _wait_counts(peer, before, {"camera_info_received": 2})
    _publish_frame(env, pub_img, rgb, stamp, "cam/modes")
    _wait_depth(env, stamp)
    calm = peer.wait_diagnostics(after=time.time())
    assert "another aspect ratio" not in calm["_message"], calm


def test_calibration_stamped_differently_is_used_after_one_bounded_wait(reliable) -> None:
    """A static calibration publisher (its own stamps): the frame waits `camera_info.wait_s` for
    a pair once, then goes out with the newest calibration, counted; a later matched pair is
    paired again."""
    env, node, pub_img, _, pub_info = reliable
    peer = env.peer
    before = peer.wait_diagnostics(after=time.time())
    k = [450.0, 0.0, 319.5, 0.0, 450.0, 239.5, 0.0, 0.0, 1.0]
    info = CameraInfo(width=640, height=480, distortion_model="plumb_bob", k=k)
    info.p = [k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
    info.header.stamp.sec = 7  # not the image's stamp
    pub_info.publish(info)
    _wait_counts(peer, before, {"camera_info_received": 1})
    stamp = time.time_ns()
    t0 = time.monotonic()
    _publish_frame(env, pub_img, scene_rgb(seed=7), stamp, "cam/static")
    _wait_depth(env, stamp)
    assert time.monotonic() - t0 >= 4.5  # it waited camera_info.wait_s (5 s) for a pair
    after = _wait_counts(peer, before, {"camera_info_newest": 1})
    assert _delta(after, before, "camera_info_paired") == 0

    def info_for(s: int):
        msgs = peer.messages("depth/camera_info")
        return next((m for m in msgs if stamp_ns(m.header) == s), None)

    assert peer.wait_for(lambda: info_for(stamp) is not None, 15)
    assert list(info_for(stamp).k) == k and _header(info_for(stamp))[2] == "cam/static"
    # a driver that stamps both alike again: paired (calibration first, so no wait is needed)
    stamp = time.time_ns()
    info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    pub_info.publish(info)
    _publish_frame(env, pub_img, scene_rgb(seed=7), stamp, "cam/static")
    _wait_depth(env, stamp)
    _wait_counts(peer, before, {"camera_info_paired": 1})


def test_oversized_frames_are_refused_before_decoding(reliable) -> None:
    env, node, pub_img, *_ = reliable
    peer = env.peer
    before = peer.wait_diagnostics(after=time.time())
    assert peer.set_parameter(NODE, "max_input_pixels", 640 * 480 - 1).successful
    try:
        stamp = time.time_ns()
        _publish_frame(env, pub_img, scene_rgb(seed=9), stamp, "cam/big")
        after = _wait_counts(peer, before, {"rejected.too_large": 1})
        assert _delta(after, before, "frames_processed") == 0
    finally:
        assert peer.set_parameter(NODE, "max_input_pixels", 4096 * 4096).successful
    assert "max_input_pixels 307199" in node.log()
    stamp = time.time_ns()
    _publish_frame(env, pub_img, scene_rgb(seed=9), stamp, "cam/big")
    _wait_depth(env, stamp)  # the same frame under the default cap is answered


def _compressed_msg(fmt: str, data: bytes, stamp: int, frame_id: str = "cam") -> CompressedImage:
    msg = CompressedImage()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
    msg.header.frame_id = frame_id
    msg.format = fmt
    msg.data = array.array("B", data)
    return msg


def test_compressed_transport_follows_the_remapped_image_topic(ros: RosTest, estimator) -> None:
    """`image_transport: compressed` with `image` remapped to /cam/image_raw reads
    /cam/image_raw/compressed, as image_transport's subscribers do; a PNG frame gives `predict`'s
    depth of the same pixels, a broken one and an oversized one are counted by cause."""
    peer = ros.peer
    _subscribe_outputs(peer)
    params = {"image_transport": "compressed", "input_qos.reliability": "reliable",
              "input_qos.depth": 10}  # fmt: skip
    node = ros.start_node(params, remaps={"image": "/cam/image_raw"})
    peer.wait_ready(node)
    pub = peer.publisher(CompressedImage, "/cam/image_raw/compressed", reliable=True)
    assert peer.wait_for(lambda: pub.get_subscription_count() > 0, 20), node.log()
    before = peer.wait_diagnostics(after=time.time())
    rgb = scene_rgb(seed=4)
    stamp = time.time_ns()
    pub.publish(_compressed_msg(*encode_rgb(rgb, "png"), stamp))  # lossless
    msg = _wait_depth(ros, stamp)
    assert _header(msg) == (*divmod(stamp, 1_000_000_000), "cam")
    _assert_close_to_predict(_depth(msg), estimator.predict(rgb), "png")
    pub.publish(_compressed_msg("jpeg", b"\xff\xd8 not really a jpeg", time.time_ns()))
    _wait_counts(peer, before, {"rejected.not_decodable": 1})
    assert peer.set_parameter(NODE, "max_input_pixels", 640 * 480 - 1).successful
    pub.publish(_compressed_msg(*encode_rgb(rgb, "jpeg"), time.time_ns()))
    after = _wait_counts(peer, before, {"rejected.too_large": 1, "rejected.not_decodable": 1})
    assert _delta(after, before, "frames_processed") == 1
    assert "640x480 compressed image" in node.log()
    assert node.signal_and_wait(signal.SIGINT) == 0, node.log()


def test_compressed_depth_cue_gives_metres(ros: RosTest, estimator) -> None:
    """`sparse_depth.transport: compressedDepth` with `sparse_depth` remapped to
    /depth_cam/image_raw reads /depth_cam/image_raw/compressedDepth: an RVL 32FC1 cue (quantised
    inverse depth) and a PNG 16UC1 cue each scale the frame of their stamp; a cue with an unknown
    codec or over max_input_pixels is dropped on arrival, one that does not decode when a frame
    needs it leaves that frame relative, each counted by cause."""
    peer = ros.peer
    _subscribe_outputs(peer)
    params = {"sparse_depth.enabled": True, "sparse_depth.transport": "compressedDepth",
              "input_qos.reliability": "reliable", "input_qos.depth": 10}  # fmt: skip
    node = ros.start_node(params, remaps={"sparse_depth": "/depth_cam/image_raw"})
    peer.wait_ready(node)
    pub_img = peer.publisher(Image, "image", reliable=True, depth=10)
    pub_cue = peer.publisher(CompressedImage, "/depth_cam/image_raw/compressedDepth",
                             reliable=True, depth=10)  # fmt: skip
    assert peer.wait_for(lambda: pub_img.get_subscription_count() > 0, 20), node.log()
    assert peer.wait_for(lambda: pub_cue.get_subscription_count() > 0, 20), node.log()
    rgb = scene_rgb(seed=3)
    rel = estimator.predict(rgb)
    ys, xs = np.unravel_index(np.random.default_rng(0).choice(rel.size, 6000, False), rel.shape)

    def run(scale: float, encoding: str, codec: str) -> tuple[np.ndarray, dict[str, str]]:
        sparse = np.full(rel.shape, np.nan, np.float32)
        sparse[ys, xs] = scale * rel[ys, xs]
        stamp = time.time_ns()
        before = peer.wait_diagnostics(after=time.time())
        pub_cue.publish(_compressed_msg(*encode_depth(sparse, encoding, codec=codec), stamp))
        _wait_counts(peer, before, {"sparse_received": 1})  # the cue is in before the frame
        _publish_frame(ros, pub_img, rgb, stamp)
        out = _depth(_wait_depth(ros, stamp))
        return out, peer.wait_diagnostics(after=time.time())

    for scale, encoding, codec in ((2.5, "32FC1", "rvl"), (1.5, "16UC1", "png")):
        out, diag = run(scale, encoding, codec)
        assert diag["units"] == "metres" and diag["metric_reason"] == "ok", (
            codec,
            diag["metric_reason"],
        )
        assert float(diag["metric_scale"]) == pytest.approx(scale, rel=0.01), codec
        assert np.median(np.abs(out / (scale * rel) - 1.0)) < 0.01, codec

    before = peer.wait_diagnostics(after=time.time())
    pub_cue.publish(_compressed_msg("16UC1; compressedDepth zstd", b"\0" * 40, time.time_ns()))
    _wait_counts(peer, before, {"sparse_rejected.unknown_encoding": 1})
    stamp = time.time_ns()  # a PNG header, then garbage: accepted on arrival, fails at decode
    broken = struct.pack("<iff", 0, 0.0, 0.0) + encode_rgb(rgb, "png")[1][:40]
    pub_cue.publish(_compressed_msg("16UC1; compressedDepth png", broken, stamp))
    _wait_counts(peer, before, {"sparse_received": 1})
    _publish_frame(ros, pub_img, rgb, stamp)
    _assert_close_to_predict(_depth(_wait_depth(ros, stamp)), rel, "undecodable cue")
    diag = _wait_counts(peer, before, {"sparse_rejected.not_decodable": 1})
    assert diag["units"] == "relative" and "not decodable" in diag["metric_reason"], diag
    assert peer.set_parameter(NODE, "max_input_pixels", rel.size - 1).successful
    pub_cue.publish(_compressed_msg(*encode_depth(2.0 * rel, "16UC1", codec="rvl"), stamp))
    _wait_counts(peer, before, {"sparse_rejected.too_large": 1})
    assert "dropping sparse_depth" in node.log()
    assert node.signal_and_wait(signal.SIGINT) == 0, node.log()


# ---------------------------------------------------------------------------------------------
# 2b. metres from the floor: the shipped model on a rendered frame with a known camera height
SHIPPED = str(REPO / "checkpoints" / "depthart_tiny_cnn.safetensors")


def test_ground_plane_gives_metres_from_the_camera_height(ros: RosTest) -> None:
    """The node's scale is the floor fit of its own prediction: equal to the same fit done here
    on `predict`'s depth, proportional to the camera height (a new height restarts the
    smoothing), and a guard that refuses the floor sends relative depth with the reason."""
    from depthart_core.evaluation.ground_plane import RigEval, rig_frames
    from depthart_core.ground_plane import GroundPlaneConfig, fit_ground_plane

    rig = RigEval(1.0, 10.0, sequences=1, frames=1, size=(240, 320), seed=0)  # a cart's camera
    out = rig_frames(rig, 0)
    rgb = np.ascontiguousarray(out["rgb"][0].permute(1, 2, 0).numpy())
    K_33 = out["K"][0].numpy().astype(np.float64)
    gt, valid = out["depth"][0].numpy(), out["valid"][0].numpy()
    rel = _node_default_backend(SHIPPED).predict(rgb)
    here = fit_ground_plane(rel, K_33, GroundPlaneConfig(camera_height_m=1.0, pitch_deg=10.0))
    assert here.code == "ok", here  # the frame was chosen so that the floor is found

    peer = ros.peer
    _subscribe_outputs(peer)
    params = {"checkpoint": SHIPPED, "input_qos.reliability": "reliable", "input_qos.depth": 5}
    params |= {"ground_plane.enabled": True, "ground_plane.camera_height_m": 1.0}
    params |= {"ground_plane.pitch_deg": 10.0, "camera_info.wait_s": 5.0}
    node = ros.start_node(params)
    peer.wait_ready(node)
    pub_img = peer.publisher(Image, "image", reliable=True)
    pub_info = peer.publisher(CameraInfo, "camera_info", reliable=True)
    assert peer.wait_for(lambda: pub_img.get_subscription_count() > 0, 20)
    assert peer.wait_for(lambda: pub_info.get_subscription_count() > 0, 20)
    info = CameraInfo(height=240, width=320, distortion_model="plumb_bob", d=[0.0] * 5)
    info.k = K_33.reshape(-1).tolist()
    info.p = np.concatenate([K_33, np.zeros((3, 1))], axis=1).reshape(-1).tolist()

    def frame() -> tuple[np.ndarray, dict[str, str]]:
        stamp = time.time_ns()
        info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        pub_info.publish(info)
        _publish_frame(ros, pub_img, rgb, stamp, "cam/floor")
        depth = _depth(_wait_depth(ros, stamp))
        return depth, peer.wait_diagnostics(after=time.time())

    depth, diag = frame()
    assert diag["units"] == "metres" and diag["metric_source"] == "ground_plane", diag
    assert float(diag["metric_scale"]) == pytest.approx(here.scale, rel=1e-3)
    np.testing.assert_allclose(depth, here.scale * rel, rtol=1e-4)
    err = np.abs(depth[valid] - gt[valid]) / gt[valid]
    assert float(err.mean()) < 0.3, float(err.mean())  # metres, with no per-frame alignment

    assert not peer.set_parameter(NODE, "ground_plane.camera_height_m", -1.0).successful
    assert peer.set_parameter(NODE, "ground_plane.camera_height_m", 2.0).successful
    depth, diag = frame()
    assert float(diag["metric_scale"]) == pytest.approx(2.0 * here.scale, rel=1e-3)

    # a prior pitch 5 deg off the mount's, with the tightest tolerance the node takes (1 deg): the
    # floor is refused whichever model ships (a good model's floor is within 1 deg of the truth)
    assert peer.set_parameter(NODE, "ground_plane.pitch_deg", 15.0).successful
    assert peer.set_parameter(NODE, "ground_plane.max_normal_angle_deg", 1.0).successful
    strict = GroundPlaneConfig(camera_height_m=2.0, pitch_deg=15.0, max_normal_angle_deg=1.0)
    refused = fit_ground_plane(rel, K_33, strict)
    assert refused.scale is None and refused.code == "normal_far_from_up", refused
    depth, diag = frame()
    assert diag["units"] == "relative" and diag["metric_scale"] == "none", diag
    assert diag["metric_reason"] == f"ground_plane: {refused.reason}", diag
    assert diag["_level"] == "1"  # WARN
    _assert_close_to_predict(depth, rel, "ground-plane fallback")
    assert "publishing relative depth: ground_plane" in node.log()


def _quaternion_xyzw(yaw_deg: float, pitch_deg: float) -> tuple[float, float, float, float]:
    """A body turned by `yaw_deg` about z (up), then pitched nose down by `pitch_deg` about its
    y (left), REP 103: q_yaw * q_pitch."""
    y, p = np.radians(yaw_deg) / 2, np.radians(pitch_deg) / 2
    return (
        -np.sin(y) * np.sin(p),
        np.cos(y) * np.sin(p),
        np.sin(y) * np.cos(p),
        np.cos(y) * np.cos(p),
    )


def test_ground_plane_takes_each_frames_up_from_the_imu(ros: RosTest) -> None:
    """With ground_plane.imu the floor is measured along the up of the IMU attitude nearest in
    stamp (through the mount pitch): the node's scale equals that fit done here, and with
    ground_plane.tilt its depth is that fit's straightened metres; a frame without an IMU
    message in time uses the mount prior (scale only), and diagnostics say which."""
    from sensor_msgs.msg import Imu

    from depthart_core.evaluation.ground_plane import RigEval, rig_frames
    from depthart_core.ground_plane import (
        GroundPlaneConfig,
        apply_floor_scale,
        fit_ground_plane,
        imu_up,
    )

    rig = RigEval(1.0, 10.0, sequences=1, frames=1, size=(240, 320), seed=0)
    out = rig_frames(rig, 0)
    rgb = np.ascontiguousarray(out["rgb"][0].permute(1, 2, 0).numpy())
    K_33 = out["K"][0].numpy().astype(np.float64)
    rel = _node_default_backend(SHIPPED).predict(rgb)
    cfg = GroundPlaneConfig(
        camera_height_m=1.0, pitch_deg=10.0, normal="prior", window=1, tilt=0.75
    )
    q = _quaternion_xyzw(40.0, 2.0)  # any heading, the body 2 deg nose down
    with_imu = fit_ground_plane(rel, K_33, cfg, up_3=imu_up(q, 10.0, 0.0))
    prior = fit_ground_plane(rel, K_33, cfg)
    assert with_imu.code == prior.code == "ok", (with_imu, prior)
    assert abs(with_imu.scale / prior.scale - 1.0) > 0.01  # the IMU's up makes a difference
    assert with_imu.tilt_share > 0.0 and prior.tilt_share == 0.0  # no tilt without a measured up
    straightened = apply_floor_scale(rel, K_33, with_imu.scale, with_imu)
    assert not np.allclose(straightened, rel * with_imu.scale, rtol=1e-3)

    peer = ros.peer
    _subscribe_outputs(peer)
    params = {"checkpoint": SHIPPED, "input_qos.reliability": "reliable", "input_qos.depth": 5}
    params |= {"ground_plane.enabled": True, "ground_plane.imu": True, "ground_plane.window": 1}
    params |= {"ground_plane.pitch_deg": 10.0, "ground_plane.normal": "prior"}
    params |= {"camera_info.wait_s": 5.0, "ground_plane.tilt": 0.75}
    node = ros.start_node(params)
    peer.wait_ready(node)
    pub_img = peer.publisher(Image, "image", reliable=True)
    pub_info = peer.publisher(CameraInfo, "camera_info", reliable=True)
    pub_imu = peer.publisher(Imu, "imu", reliable=True)
    for pub in (pub_img, pub_info, pub_imu):
        assert peer.wait_for(lambda pub=pub: pub.get_subscription_count() > 0, 20)
    info = CameraInfo(height=240, width=320, distortion_model="plumb_bob", d=[0.0] * 5)
    info.k = K_33.reshape(-1).tolist()
    info.p = np.concatenate([K_33, np.zeros((3, 1))], axis=1).reshape(-1).tolist()

    sent = 0

    def frame(imu_offset_s: float) -> dict[str, str]:
        nonlocal sent
        stamp = time.time_ns()
        imu = Imu()
        imu.header.frame_id = "imu_link"
        imu.header.stamp.sec, imu.header.stamp.nanosec = divmod(
            stamp + int(imu_offset_s * 1e9), 1_000_000_000
        )
        imu.orientation.x, imu.orientation.y, imu.orientation.z, imu.orientation.w = q
        pub_imu.publish(imu)
        sent += 1
        deadline = time.time() + 30  # the IMU message is in before the image, however busy
        while int(peer.wait_diagnostics(after=time.time()).get("imu_received", 0)) < sent:
            assert time.time() < deadline, "the node never counted the IMU message"
        info.header.stamp.sec, info.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        pub_info.publish(info)
        _publish_frame(ros, pub_img, rgb, stamp, "cam/floor")
        depths.append(_depth(_wait_depth(ros, stamp)))
        return peer.wait_diagnostics(after=time.time())

    depths: list[np.ndarray] = []
    diag = frame(0.004)
    assert diag["metric_source"] == "ground_plane" and diag["ground_plane_up"] == "imu", diag
    assert float(diag["metric_scale"]) == pytest.approx(with_imu.scale, rel=1e-3)
    assert float(diag["ground_plane_tilt_share"]) == pytest.approx(with_imu.tilt_share, abs=0.01)
    assert diag["metric_mode"] == "scale_tilt", diag
    ok = np.isfinite(depths[0])
    assert ok.mean() > 0.9 and np.allclose(depths[0][ok], straightened[ok], rtol=1e-3)
    diag = frame(-1.0)  # the only IMU messages are a second or more away: the prior
    assert diag["ground_plane_up"] == "prior (no imu within 0.05 s)", diag
    assert float(diag["metric_scale"]) == pytest.approx(prior.scale, rel=1e-3)
    assert diag["metric_mode"] == "scale" and diag["ground_plane_tilt_share"] == "0.00", diag
    assert int(diag["imu_missing"]) >= 1 and int(diag["imu_received"]) == 2, diag
    assert "optical frame" not in node.log()
    optical = Imu()  # a camera IMU in its optical frame: the body-frame assumption is wrong
    optical.header.frame_id = "camera_imu_optical_frame"
    optical.orientation.w = 1.0
    pub_imu.publish(optical)
    assert peer.wait_for(
        lambda: "'camera_imu_optical_frame' looks like an optical" in node.log(), 20
    )


# ---------------------------------------------------------------------------------------------
# 3. load: a 60 Hz camera and a slower model
@pytest.mark.slow
def test_load_latest_frame_policy(ros: RosTest) -> None:
    peer = ros.peer
    peer.subscribe(Image, "depth", depth=5, required=True)
    peer.subscribe(DiagnosticArray, "/diagnostics")
    node = ros.start_node({"debug_min_inference_ms": 60.0, "publish_colored": False})
    peer.wait_ready(node)
    # default QoS (REP 2003): sensor-data input, reliable output
    assert _endpoint_reliability(peer, "/image", "subscriptions") == "BEST_EFFORT"
    assert _endpoint_reliability(peer, "/depth", "publishers") == "RELIABLE"
    rss: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss.append((time.time(), node.rss_mb()))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    manifest = ros.tmp / "load.jsonl"
    args = ["ros_helpers.publisher", "load", "--rate", "60", "--duration", "10"]
    args += ["--encoding", "bayer_rggb8"]  # best effort under LARGE_DATA: see the module notes
    try:
        res = run_helper(ros.domain, [*args, "--manifest", str(manifest)], timeout=60)
    finally:
        done.set()
        sampler.join()
    assert res.returncode == 0, res.stderr
    published = json.loads(manifest.read_text().splitlines()[-1])["published"]

    def drained() -> bool:  # nothing waiting or in progress, after the camera stopped
        d = peer.diagnostics(after=time.time() - 0.5) or {}
        return d.get("frames_pending") == "0" and d.get("frames_in_progress") == "0"

    assert peer.wait_for(drained, 30)
    diag = peer.wait_diagnostics(after=time.time())
    n = {k: int(diag[f"frames_{k}"]) for k in ("received", "processed", "replaced", "rejected")}
    n |= {k: int(diag[f"frames_{k}"]) for k in ("dropped_stale", "pending", "in_progress")}
    assert n["pending"] == 0 and n["in_progress"] == 0
    assert n["received"] == n["processed"] + n["replaced"] + n["rejected"] + n["dropped_stale"]
    assert n["rejected"] == 0 and n["dropped_stale"] == 0
    assert int(diag["pending_max"]) <= 1
    assert 0.5 * published <= n["received"] <= published, (n, published)
    assert n["replaced"] > n["processed"] > 20, n  # the camera really was faster than the model
    # latency: receive time minus stamp, measured by the test; and the node's own p95
    lat = [t - stamp_ns(m.header) / 1e9 for t, m in peer.timed("depth")]
    assert len(lat) >= 20, lat
    worst = int(np.argmax(lat))  # where an outlier sits tells its cause
    assert np.percentile(lat, 95) < 1.0 and max(lat) < 2.0, (
        f"{len(lat)} frames, p95 {np.percentile(lat, 95):.3f} s, worst {max(lat):.3f} s at "
        f"#{worst}; first {lat[:3]}, last {lat[-3:]}"
    )
    assert float(diag["latency_p95_ms"]) < 1000.0
    # memory: flat after warm-up (2 s after the first output) while the frames kept coming
    t_first = peer.timed("depth")[0][0]
    warm = [mb for t, mb in rss if t > t_first + 2.0]
    assert warm and max(warm) - warm[0] < 30.0, rss
    assert node.signal_and_wait(signal.SIGTERM) == 0, node.log()


# ---------------------------------------------------------------------------------------------
# 4. start-up failures are one clear fatal line, exit code 1
def test_bad_start_up_is_a_clear_fatal_error(ros: RosTest, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"this is not a checkpoint")
    cases = {
        "missing": ({"checkpoint": str(tmp_path / "nope.safetensors")}, "checkpoint not found"),
        "garbage": ({"checkpoint": str(garbage)}, "not a readable safetensors file"),
        "backend": ({"backend": "tensorflow"}, "backend='tensorflow'"),
        "device": ({"device": "gpu0"}, "device='gpu0'"),
    }
    procs = {k: ros.start_node(p, name=k) for k, (p, _) in cases.items()}
    # with two cameras the line says which failed: the namespace and node name it would have had
    remaps = {"__ns": "/cam2", "__node": "rear_depth"}
    procs["named"] = ros.start_node(cases["missing"][0], name="named", remaps=remaps)
    cases["named"] = (None, "[cam2.rear_depth]: cannot start: checkpoint not found")
    for k, node in procs.items():
        rc = node.proc.wait(timeout=60)
        log = node.log()
        if not (rc == 1 and "cannot start" in log and cases[k][1] in log):
            print(f"--- node {k!r} exited {rc}; its whole log:\n{log}")  # pytest cuts the message
        assert rc == 1 and "cannot start" in log and cases[k][1] in log, (k, rc, log)
        assert "Traceback" not in log and "already registered" not in log, log


# ---------------------------------------------------------------------------------------------
# 5. pure-Python parts of the node (the launch file: tests/test_launch.py)
def test_frame_pipeline_keeps_one_frame_and_accounts_for_all() -> None:
    fp = FramePipeline()
    for i in range(5):
        fp.offer(i)
    fp.reject_incoming("bad_step")
    assert fp.take() == 4  # the newest survives
    snap = fp.snapshot()
    assert (snap["pending"], snap["in_progress"], snap["replaced"]) == (0, 1, 4)
    fp.finish("processed")
    fp.offer(5)
    fp.take()
    fp.finish("dropped_stale")
    s = fp.snapshot()
    assert s["received"] == 7 and s["rejected_by"] == {"bad_step": 1}
    assert s["received"] == s["processed"] + s["replaced"] + s["rejected"] + s["dropped_stale"]
    t = threading.Thread(target=lambda: fp.take())
    t.start()
    fp.close()
    t.join(timeout=2)
    assert not t.is_alive() and fp.take() is None


def test_worker_applies_a_lower_rate_to_the_next_frame_and_ends_a_frame_it_stops_on() -> None:
    """`max_rate_hz` lowered while the worker waits for a frame holds the very next frame back
    (README: it applies at once; it used to take the frame at once); a frame the worker stops
    on (the context shut down) still ends, so a drain does not wait 30 s for it."""
    from depthart_ros.pipeline import run_worker

    fp, rate, started = FramePipeline(), {"hz": 10.0}, []

    def process(item: int) -> tuple[str, str]:
        started.append(time.monotonic())
        return "processed", ""

    worker = threading.Thread(
        target=run_worker, args=(fp, process, lambda: rate["hz"], lambda exc: True), daemon=True
    )
    worker.start()
    fp.offer(1)
    assert _until(lambda: len(started) == 1)
    time.sleep(0.3)  # the worker is waiting in take() by now
    rate["hz"] = 0.5  # one frame per 2 s
    fp.wake()
    fp.offer(2)
    assert _until(lambda: len(started) == 2, 5.0)
    assert started[1] - started[0] >= 1.9, started
    fp.close()
    worker.join(timeout=5)

    stopping = FramePipeline()

    def fails(item: int) -> tuple[str, str]:
        raise RuntimeError("publisher's context is invalid")

    t = threading.Thread(target=run_worker, args=(stopping, fails, lambda: 0.0, lambda e: False))
    t.start()
    stopping.offer(1)
    t.join(timeout=5)
    assert not t.is_alive() and stopping.wait_idle(0.1)  # not in progress any more
    assert stopping.snapshot()["rejected_by"] == {"inference_error": 1}


def _until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_validate_params_names_the_bad_value() -> None:
    defaults = {p.name: p.default for p in PARAMS}
    assert validate_params(defaults) is None
    assert "precision='int4'" in validate_params(defaults | {"precision": "int4"})
    assert "device='cuda:x'" in validate_params(defaults | {"device": "cuda:x"})
    assert "input_qos.depth=0" in validate_params(defaults | {"input_qos.depth": 0})
    bad_range = defaults | {"sparse_depth.min_m": 5.0, "sparse_depth.max_m": 1.0}
    assert "sparse_depth.min_m=5.0" in validate_params(bad_range)
    tilt = defaults | {"ground_plane.enabled": True, "ground_plane.tilt": 0.75}
    assert "needs ground_plane.imu or ground_plane.vertical_lines" in validate_params(tilt)
    tilt |= {"ground_plane.imu": True}
    assert "needs ground_plane.normal 'prior', got 'fit'" in validate_params(tilt)
    assert validate_params(tilt | {"ground_plane.normal": "prior"}) is None
    assert "ground_plane.tilt=1.5 is outside [0, 1]" in validate_params(
        tilt | {"ground_plane.normal": "prior", "ground_plane.tilt": 1.5}
    )


# ---------------------------------------------------------------------------------------------
# 5. shutdown: a signal that lands while the executor builds its wait set is still a clean exit
def _spin_with(monkeypatch, spin) -> tuple[list[str], Any]:
    """Run `spin_until_shutdown` in this process on its own context with `spin` standing in for
    the executor's; returns what happened to `release` and the context."""
    import rclpy
    from rclpy.node import Node

    import depthart_ros.node as node_mod

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=unique_domain_id())
    node = Node("spin_probe", context=context)
    monkeypatch.setattr(
        node_mod.SingleThreadedExecutor, "spin_once", lambda self, timeout_sec=None: spin(context)
    )
    # depthart_ros.spin, shared by the node, the lifecycle node, live replay and the test peer
    released: list[str] = []
    try:
        node_mod.spin_until_shutdown(node, lambda: released.append("released"))
    finally:
        context.try_shutdown()
    return released, context


def test_shutdown_racing_the_wait_set_is_a_clean_exit(monkeypatch) -> None:
    def spin(context) -> None:  # what rclpy does when SIGTERM wins the race (ros2/rclpy#968)
        context.shutdown()
        raise RuntimeError("failed to initialize wait set: the given context is not valid")

    released, context = _spin_with(monkeypatch, spin)
    assert released == ["released"] and not context.ok()


def test_an_error_while_the_context_is_valid_still_propagates(monkeypatch) -> None:
    def spin(context) -> None:
        raise RuntimeError("a real bug in a callback")

    with pytest.raises(RuntimeError, match="a real bug"):
        _spin_with(monkeypatch, spin)


def _spinning(settle_s: float) -> tuple[Any, Any, Any, threading.Thread]:
    """A node on its own context (no signal handlers) spun by `spin_until_context_ends` on a
    thread, given `settle_s` to be in its wait: (context, node, executor, thread)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.signals import SignalHandlerOptions

    from depthart_ros.spin import spin_until_context_ends

    context = rclpy.Context()
    rclpy.init(
        context=context,
        domain_id=unique_domain_id(),
        signal_handler_options=SignalHandlerOptions.NO,
    )
    node = Node("spin_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=spin_until_context_ends, args=(executor, context), daemon=True)
    thread.start()
    time.sleep(settle_s)
    return context, node, executor, thread


def test_a_context_ended_without_waking_the_executor_still_ends_the_spin() -> None:
    """rclpy's signal thread wakes the executors, then shuts the contexts down. An executor that
    woke in between waits again, and nothing wakes it after the shutdown: here the shutdown is
    rcl's alone (`context.handle.shutdown()`, no Python callback wakes the executor), as the
    signal thread's is. A lifecycle node under a busy CPU still waited 60 s after SIGINT so."""
    context, node, executor, spinning = _spinning(1.0)  # in its wait, with nothing to do
    assert spinning.is_alive()
    t0 = time.monotonic()
    context.handle.shutdown()  # rcl_shutdown alone: rclpy's signal thread's second step
    spinning.join(timeout=10)
    assert not spinning.is_alive(), "the spin still waits on a context that has ended"
    assert time.monotonic() - t0 < 10
    executor.shutdown()
    node.destroy_node()


def test_an_executor_shut_down_from_another_thread_ends_the_spin() -> None:
    """What live replay's transport does on close: the executor first, then the context."""
    context, node, executor, spinning = _spinning(0.5)
    try:
        assert executor.shutdown(timeout_sec=5)
        spinning.join(timeout=10)
        assert not spinning.is_alive() and context.ok()
    finally:
        node.destroy_node()
        context.try_shutdown()
