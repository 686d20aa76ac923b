"""`depthart replay --protocol ground_plane` (issue #26, item 3): metres from the floor and the
camera height, scored without alignment beside the same predictions median-aligned."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from ros_helpers.harness import replay_live_as_the_cli, unique_domain_id

from depthart_core.cli import main
from depthart_core.evaluation.ground_plane import RIGS, RigEval, rig_samples
from depthart_core.ground_plane import GroundPlaneConfig
from depthart_core.replay import report
from depthart_core.replay.frames import ReplayConfig
from depthart_core.replay.offline import replay_offline
from depthart_core.rosio import bags

SIZE = (60, 80)
FRAMES = 10
TOPICS = ["--image-topic", "/camera/image_raw", "--depth-topic", "/camera/depth"]
INFO = ["--camera-info-topic", "/camera/camera_info"]


@pytest.fixture(scope="module")
def cart_bag(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gp") / "cart"
    bags.write_synthetic_bag(out, FRAMES, seed=1, size=SIZE, rig="cart")
    return out


class GroundTruthBackend:
    """Predicts each recorded frame's true depth divided by a constant, as a relative depth
    (the model's contract: proportional to metres): the ground-plane scale must undo the
    constant from the floor alone, so metric and aligned AbsRel agree."""

    name, info = "ground_truth", {}

    def __init__(self, samples, divide_by: float = 7.0) -> None:
        self.depth = {s.rgb.tobytes(): np.where(s.valid, s.depth, np.nan) for s in samples}
        self.k = divide_by

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        return (self.depth[rgb.tobytes()] / self.k).astype(np.float32)


class TiltedBackend(GroundTruthBackend):
    """The true depth as a model that misjudges the camera's pitch sees it: inverse depth off by
    r . w (w across the mount's up), then divided by the constant."""

    name = "tilted"

    def __init__(self, samples, w_3: np.ndarray) -> None:
        super().__init__(samples)
        self.rays = {s.rgb.tobytes(): _rays(s.intrinsics, *s.depth.shape) for s in samples}
        self.w_3 = w_3

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        key = rgb.tobytes()
        inv = 1.0 / self.depth[key] + self.rays[key] @ self.w_3
        return np.where(inv > 0, 1.0 / (self.k * inv), np.nan).astype(np.float32)


def _rays(K: np.ndarray, h: int, w: int) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)


class WallBackend:
    """Every pixel at the same depth: a plane facing the camera, never a floor."""

    name, info = "wall", {}

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        return np.full(rgb.shape[:2], 0.5, np.float32)


def _cfg(height: float = RIGS["cart"][0], **kw) -> ReplayConfig:
    ground = GroundPlaneConfig(camera_height_m=height, pitch_deg=RIGS["cart"][1], **kw)
    return ReplayConfig(
        "/camera/image_raw",
        "/camera/depth",
        "/camera/camera_info",
        protocol="ground_plane",
        plots=False,
        ground_plane=ground,
    )


def test_rig_bag_holds_the_rigs_frames(cart_bag):
    # the bag's frames are rig_samples' frames: the height the replay is told is the true one
    samples = rig_samples(RigEval.named("cart", sequences=1, frames=FRAMES, size=SIZE, seed=1), 0)
    counts = bags.list_topics(cart_bag)
    assert counts["/camera/image_raw"].count == FRAMES and counts["/camera/depth"].count == FRAMES
    first = next(bags.iter_messages(cart_bag, ["/camera/depth"]))
    depth = np.frombuffer(bytes(first.msg.data), np.float32).reshape(SIZE)
    assert np.allclose(depth[samples[0].valid], samples[0].depth[samples[0].valid])


def test_true_depth_gives_metres_from_the_floor(cart_bag, tmp_path):
    samples = rig_samples(RigEval.named("cart", sequences=1, frames=FRAMES, size=SIZE, seed=1), 0)
    # the true depth's unit is steady (metres / 7 in every frame): the raw-scale smoother's case
    steady = _cfg(track_units=False)
    report = replay_offline(cart_bag, tmp_path / "r", steady, GroundTruthBackend(samples))
    gp = report["ground_plane"]
    assert gp["frames_fitted"] == FRAMES and gp["frames_scaled"] >= FRAMES - 2, gp
    assert report["counts"]["evaluated"] == gp["frames_scored"] == gp["frames_scaled"]
    # the constant 7 comes back from the floor: scale ~7, metres right to a few percent
    assert gp["scale_median"] == pytest.approx(7.0, rel=0.03)
    assert gp["metric_abs_rel"] < 0.03 and gp["aligned_abs_rel"] < 1e-3
    # the default carries past scales through each frame's unit change, measured pixel by pixel
    # on a turning camera: that costs a little on a steady unit (BENCHMARKS 10), no more
    tracked = replay_offline(cart_bag, tmp_path / "t", _cfg(), GroundTruthBackend(samples))
    assert tracked["ground_plane"]["scale_median"] == pytest.approx(7.0, rel=0.03)
    assert tracked["ground_plane"]["metric_abs_rel"] < 0.05
    assert report["headline"] == ["abs_rel", "delta1", "rmse"]  # metres, unaligned
    rows = [r for r in report["rows"] if r["status"] == "evaluated"]
    assert all(r["ground_plane"]["code"] == "ok" for r in rows)
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Ground-plane scale" in md and "ratio" in md
    # a wrong height scales the metres with it: twice the height, twice the depth (AbsRel ~1)
    wrong = replay_offline(
        cart_bag, tmp_path / "w", _cfg(2.0, track_units=False), GroundTruthBackend(samples)
    )
    assert wrong["ground_plane"]["scale_median"] == pytest.approx(14.0, rel=0.03)
    assert wrong["ground_plane"]["metric_abs_rel"] > 0.9
    assert wrong["ground_plane"]["ratio"] > 100  # far above the 1.25 bar


def test_an_imu_in_the_bag_gives_each_frame_its_up(tmp_path):
    """A rig bag with an exact IMU attitude (`synth-bag --imu-noise-deg 0`): with the IMU's up,
    normal=prior and one frame's fit, the floor gives the constant 7 to the metre in every frame;
    the mount prior alone is off by the path's pitch and roll bumps. Frames the IMU misses fall
    back to the prior, counted in the report."""
    bag = tmp_path / "cart_imu"
    counts = bags.write_synthetic_bag(bag, FRAMES, seed=1, size=SIZE, rig="cart", imu_noise_deg=0)
    assert counts["/imu/data"] == FRAMES
    samples = rig_samples(RigEval.named("cart", sequences=1, frames=FRAMES, size=SIZE, seed=1), 0)
    steady = dict(track_units=False, normal="prior", window=1)
    prior = replay_offline(bag, tmp_path / "p", _cfg(**steady), GroundTruthBackend(samples))
    imu_cfg = dataclasses.replace(_cfg(**steady), imu_topic="/imu/data")
    imu = replay_offline(bag, tmp_path / "i", imu_cfg, GroundTruthBackend(samples))
    gp = imu["ground_plane"]
    assert gp["up_sources"] == {"imu": FRAMES} and gp["frames_scaled"] == FRAMES, gp
    assert gp["metric_abs_rel"] < 0.002 and gp["scale_median"] == pytest.approx(7.0, rel=1e-3)
    assert prior["ground_plane"]["metric_abs_rel"] > 10 * gp["metric_abs_rel"] + 0.01
    assert "up from /imu/data: imu 10" in (tmp_path / "i" / "report.md").read_text()
    by_up = gp["by_up"]  # one source: its split is the headline itself
    assert list(by_up) == ["imu"] and by_up["imu"]["frames"] == gp["frames_scored"], by_up
    assert by_up["imu"]["ratio"] == pytest.approx(gp["ratio"])
    assert "| imu | 10 |" in (tmp_path / "i" / "report.md").read_text()
    # the IMU stamped 30 ms late: within the default 0.05 s it is used, within 0.01 s it is not
    shifted = _shift_topic(bag, tmp_path / "late", "/imu/data", 30_000_000)
    used = replay_offline(shifted, tmp_path / "u", imu_cfg, GroundTruthBackend(samples))
    assert used["ground_plane"]["metric_abs_rel"] == pytest.approx(gp["metric_abs_rel"])
    strict = dataclasses.replace(imu_cfg, imu_max_dt_s=0.01)
    out = replay_offline(shifted, tmp_path / "m", strict, GroundTruthBackend(samples))
    assert out["ground_plane"]["up_sources"] == {"prior (no imu within 0.01 s)": FRAMES}
    assert out["ground_plane"]["metric_abs_rel"] == pytest.approx(
        prior["ground_plane"]["metric_abs_rel"], rel=1e-6
    )
    fell = out["ground_plane"]["by_up"]["prior (no imu within 0.01 s)"]
    assert fell["frames"] == FRAMES and fell["ratio"] == pytest.approx(out["ground_plane"]["ratio"])
    assert "by_up" not in prior["ground_plane"]  # no up source configured: no split


def test_tilt_with_the_imu_takes_a_models_floor_tilt_out(tmp_path):
    """A model whose scene is tilted 4-5 deg (as if it misjudged the pitch): with the IMU's up,
    scaling alone leaves the metres a fraction off; `tilt` 1 straightens each frame's floor
    toward the IMU's up and the metres come back to a few percent, each row saying the share it
    corrected. The share is the config's (`--ground-tilt` on the command line)."""
    bag = tmp_path / "cart_imu"
    bags.write_synthetic_bag(bag, FRAMES, seed=1, size=SIZE, rig="cart", imu_noise_deg=0)
    samples = rig_samples(RigEval.named("cart", sequences=1, frames=FRAMES, size=SIZE, seed=1), 0)
    pitch = math.radians(RIGS["cart"][1])
    across = np.array([0.0, -math.sin(pitch), math.cos(pitch)])  # the mount's forward
    backend = TiltedBackend(samples, 0.08 * across)
    steady = dict(track_units=False, normal="prior", window=1)
    out = {}
    for tilt in (0.0, 1.0):
        cfg = dataclasses.replace(_cfg(tilt=tilt, **steady), imu_topic="/imu/data")
        out[tilt] = replay_offline(bag, tmp_path / f"t{tilt}", cfg, backend)["ground_plane"]
    assert out[0.0]["frames_scaled"] == out[1.0]["frames_scaled"] >= FRAMES - 1, out
    assert out[0.0]["metric_abs_rel"] > 0.05, out
    assert out[1.0]["metric_abs_rel"] < 0.3 * out[0.0]["metric_abs_rel"], out
    half = dataclasses.replace(_cfg(tilt=0.5, **steady), imu_topic="/imu/data")
    rows = replay_offline(bag, tmp_path / "rows", half, backend)["rows"]
    shares = [r["ground_plane"]["tilt_share"] for r in rows if r["ground_plane"]["code"] == "ok"]
    assert shares and all(0.0 < s <= 0.5 for s in shares), shares


def _shift_topic(src: Path, dst: Path, topic: str, dt_ns: int) -> Path:
    """A copy of a bag with one topic's header stamps moved by `dt_ns`."""
    from depthart_core.rosio.messages import ns_to_stamp, stamp_to_ns

    with bags.BagWriter(dst) as out:
        for m in bags.iter_messages(src, list(bags.list_topics(src))):
            if m.topic == topic:
                m.msg.header.stamp = ns_to_stamp(stamp_to_ns(m.msg.header.stamp) + dt_ns)
            out.write(m.topic, m.msg, m.log_ns)
    return dst


def _edit_camera_info(src: Path, dst: Path, edit) -> Path:
    """A copy of a bag with `edit(n, msg)` applied to its n-th camera_info (from 0)."""
    n = 0
    with bags.BagWriter(dst) as out:
        for m in bags.iter_messages(src, list(bags.list_topics(src))):
            if m.topic == "/camera/camera_info":
                m.msg.k, m.msg.p = np.array(m.msg.k, float), np.array(m.msg.p, float)
                edit(n, m.msg)
                n += 1
            out.write(m.topic, m.msg, m.log_ns)
    return dst


def test_a_calibration_of_another_aspect_ratio_falls_back_as_the_node(cart_bag, tmp_path):
    """A latched camera_info of the camera's 16:9 mode on its 4:3 images: the node refuses it
    (`aspect_problem`); rescaled per axis it would stretch P and give wrong metres (AbsRel 0.36
    instead of 0.07 on a real model). Each frame falls back with the reason, counted."""
    samples = rig_samples(RigEval.named("cart", sequences=1, frames=FRAMES, size=SIZE, seed=1), 0)
    h, w = SIZE

    def wide(n, msg):
        assert (msg.width, msg.height) == (w, h)
        msg.height = w * 9 // 16
        msg.k[5] = msg.p[6] = (msg.height - 1) / 2

    bag = _edit_camera_info(cart_bag, tmp_path / "aspect", wide)
    report = replay_offline(bag, tmp_path / "r", _cfg(), GroundTruthBackend(samples))
    gp = report["ground_plane"]
    assert gp["fallbacks"] == {"camera_info_aspect": FRAMES} and gp["frames_scaled"] == 0, gp
    reasons = {r["reason"] for r in report["rejected_frames"]}
    assert reasons == {
        "ground-plane fallback (camera_info_aspect): camera_info describes a 80x45 image, this "
        "one is 80x60: another aspect ratio (a calibration of another camera mode?)"
    }
    assert "fallbacks: camera_info_aspect 10" in (tmp_path / "r" / "report.md").read_text()


def test_broken_calibrations_are_ignored_as_the_node_ignores_them(cart_bag, tmp_path):
    """An uncalibrated camera_info (K = P = 0, as v4l2_camera publishes) or one with a NaN
    focal length: the node ignores it and keeps the newest good one, so the replay does too (it
    aborted the whole run, or read the NaN as "no floor in view"); with no good one at all each
    frame falls back, naming the camera_info's problem. Ignored messages are counted."""
    samples = rig_samples(RigEval.named("cart", sequences=1, frames=FRAMES, size=SIZE, seed=1), 0)
    clean = replay_offline(cart_bag, tmp_path / "c", _cfg(), GroundTruthBackend(samples))

    def break_two(n, msg):
        if n == 4:
            msg.k[:], msg.p[:] = 0.0, 0.0
        if n in (6, FRAMES - 1):
            msg.k[0] = msg.p[0] = np.nan

    bag = _edit_camera_info(cart_bag, tmp_path / "two", break_two)
    report = replay_offline(bag, tmp_path / "r", _cfg(), GroundTruthBackend(samples))
    gp = report["ground_plane"]
    assert (
        report["status"] == "complete"
        and gp["frames_scaled"] == clean["ground_plane"]["frames_scaled"]
    ), gp
    assert gp["camera_info_ignored"] == {"zero_focal": 1, "non_finite": 2}
    assert gp["metric_abs_rel"] == pytest.approx(clean["ground_plane"]["metric_abs_rel"])
    md = (tmp_path / "r" / "report.md").read_text()
    assert "camera_info messages ignored: non_finite 2, zero_focal 1" in md

    def uncalibrated(n, msg):
        msg.k[:], msg.p[:] = 0.0, 0.0

    bag = _edit_camera_info(cart_bag, tmp_path / "k0", uncalibrated)
    report = replay_offline(bag, tmp_path / "k", _cfg(), GroundTruthBackend(samples))
    gp = report["ground_plane"]
    assert report["status"] == "complete" and gp["fallbacks"] == {"camera_info_zero_focal": FRAMES}
    assert gp["camera_info_ignored"] == {"zero_focal": FRAMES}
    reasons = {r["reason"] for r in report["rejected_frames"]}
    assert reasons == {
        "ground-plane fallback (camera_info_zero_focal): no good CameraInfo yet, the newest "
        "ignored: focal lengths must be positive: K fx=0 fy=0, P fx=0 fy=0"
    }


def test_write_bag_holds_the_metres_of_frames_without_gt(cart_bag, tmp_path):
    """The floor's metres need no GT: a frame whose GT depth is missing (unmatched) is written
    with them as the node publishes it (such frames were left out of --write-bag)."""
    samples = rig_samples(RigEval.named("cart", sequences=1, frames=FRAMES, size=SIZE, seed=1), 0)
    bag, depth_n = tmp_path / "holes", 0
    with bags.BagWriter(bag) as out:
        for topic, msgtype, log_ns, raw in bags.iter_raw(cart_bag):
            if topic == "/camera/depth":
                depth_n += 1
                if depth_n in (4, 5):  # frames 3 and 4: no GT
                    continue
            out.write_raw(topic, msgtype, raw, log_ns)
    out_bag = tmp_path / "with_pred"
    steady = _cfg(track_units=False)
    report = replay_offline(
        bag, tmp_path / "r", steady, GroundTruthBackend(samples), write_bag=out_bag
    )
    rows = report["rows"]
    assert [r["index"] for r in rows if r["status"] == "unmatched"] == [3, 4]
    scaled = [r["index"] for r in rows if r["ground_plane"]["scale"] is not None]
    assert {3, 4} <= set(scaled)
    assert report["write_bag"]["predictions"] == len(rows)  # one depth a frame, as the node
    assert report["write_bag"]["relative"] == len(rows) - len(scaled)
    preds = {m.stamp_ns: m.msg for m in bags.iter_messages(out_bag, ["/depthart/depth"])}
    for i in (3, 4):  # metres: the true depth, the constant 7 undone by the floor
        msg = preds[rows[i]["stamp_ns"]]
        got = np.frombuffer(bytes(msg.data), np.float32).reshape(SIZE)
        valid = samples[i].valid
        rel = np.abs(got[valid] - samples[i].depth[valid]) / samples[i].depth[valid]
        assert float(np.mean(rel)) < 0.05


def test_no_floor_falls_back_with_the_reason_for_every_frame(cart_bag, tmp_path):
    report = replay_offline(cart_bag, tmp_path / "r", _cfg(), WallBackend())
    gp = report["ground_plane"]
    assert gp["frames_scaled"] == 0 and gp["ratio"] is None
    assert sum(gp["fallbacks"].values()) == FRAMES and "ok" not in gp["fallbacks"]
    assert report["counts"]["rejected"] == FRAMES and report["counts"]["evaluated"] == 0
    reasons = {r["reason"].split(")")[0] for r in report["rejected_frames"]}
    assert all(r.startswith("ground-plane fallback (") for r in reasons), reasons


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("depthart replay: error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (INFO, "needs the camera's height above the floor (--camera-height)"),
        ([*INFO, "--camera-height", "-0.5"], "must be finite and > 0 metres, got -0.5"),
        ([*INFO, "--camera-height", "nan"], "got nan"),
        (["--camera-height", "1.0"], "give the camera info topic (--camera-info-topic)"),
        (["--camera-info-topic", "/nope", "--camera-height", "1.0"], "/nope"),
        (
            [*INFO, "--camera-height", "1.0", "--ground-window", "0"],
            "--ground-window must be >= 1, got 0",
        ),
        ([*INFO, "--camera-height", "1.0", "--imu-topic", "/imu"], "/imu"),
        ([*INFO, "--camera-height", "1.0", "--ground-tilt", "0.5"], "give the IMU's topic"),
        (
            [*INFO, "--camera-height", "1.0", "--imu-topic", "/imu", "--ground-tilt", "0.5"],
            "needs normal 'prior', got 'fit'",
        ),
        (
            [
                *INFO,
                "--camera-height",
                "1",
                "--imu-topic",
                "/imu",
                "--ground-normal",
                "prior",
                "--ground-tilt",
                "1.5",
            ],
            "--ground-tilt must be a share in [0, 1], got 1.5",
        ),
        ([*INFO, "--camera-height", "1.0", "--ground-max-angle", "95"], "--ground-max-angle must"),
        (
            [*INFO, "--camera-height", "1.0", "--vertical-lines", "--lines-agree", "-1"],
            "--lines-agree must be in [0, 90) (0 = off), got -1.0",
        ),
    ],
)
def test_bad_ground_plane_input_is_one_line_and_writes_nothing(
    cart_bag, tmp_path, capsys, extra, message
):
    out = tmp_path / "out"
    args = ["replay", str(cart_bag), *TOPICS, "--out", str(out), "--protocol", "ground_plane"]
    assert main([*args, *extra]) == 1
    assert message in _one_line_error(capsys)
    assert not out.exists()


def test_camera_height_without_the_protocol_is_refused(cart_bag, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["replay", str(cart_bag), *TOPICS, *INFO, "--out", str(out), "--camera-height", "1"]
    assert main(args) == 1
    assert "only used by --protocol ground_plane" in _one_line_error(capsys)
    assert not out.exists()


@pytest.mark.ros
def test_live_replay_through_the_node_scores_as_offline(cart_bag, tmp_path):
    # the node's relative depth comes back and the replay fits the floor on it, frame by frame
    # in order: with no frame dropped, the same fits, scales and scores as offline. The shipped
    # model, since a random one never shows a floor (every frame would fall back)
    pytest.importorskip("rclpy", reason="live replay needs rclpy")
    from depthart_core.checkpoint import default_checkpoint_path
    from depthart_core.runtime import get_backend
    from depthart_ros.replay.process import LiveConfig

    shipped = str(default_checkpoint_path())
    live = LiveConfig(
        shipped,
        domain_id=unique_domain_id(),  # 1..101: DDS ports below the ephemeral range
        startup_timeout_s=90,
        drain_timeout_s=3,
    )
    report = replay_live_as_the_cli(cart_bag, tmp_path / "live", _cfg(), live)
    lv, gp = report["live"], report["ground_plane"]
    assert report["status"].startswith("complete") and lv["published"] == FRAMES
    assert gp["frames_fitted"] == lv["returned"] >= 1  # a dropped frame is never fitted
    assert gp["frames_scaled"] >= 1
    offline = replay_offline(cart_bag, tmp_path / "off", _cfg(), get_backend("torch", shipped))
    assert offline["ground_plane"]["frames_scaled"] == FRAMES  # the floor found in every frame
    if lv["dropped"]:
        pytest.skip(f"{lv['dropped']} frames dropped under load: the smoothers saw other streams")
    for a, b in zip(report["rows"], offline["rows"], strict=True):
        assert a["status"] == b["status"] and a["ground_plane"]["code"] == b["ground_plane"]["code"]
        if b["ground_plane"]["scale"] is not None:
            assert a["ground_plane"]["scale"] == pytest.approx(b["ground_plane"]["scale"], rel=1e-4)
        if b["status"] == "evaluated":
            assert a["metrics"] == pytest.approx(b["metrics"], rel=1e-4)


def test_an_imu_is_refused_where_it_would_be_unused(tmp_path):
    with pytest.raises(ValueError, match="only used by the ground_plane protocol"):
        ReplayConfig("/camera/image_raw", "/camera/depth", imu_topic="/imu/data")
    with pytest.raises(ValueError, match="only with a rig"):
        bags.write_synthetic_bag(tmp_path / "b", 2, size=SIZE, imu_noise_deg=0.5)
    with pytest.raises(ValueError, match="IMU noise must be finite"):
        bags.write_synthetic_bag(tmp_path / "c", 2, size=SIZE, rig="cart", imu_noise_deg=-1)
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_vertical_lines_give_each_frame_its_up_without_an_imu(tmp_path):
    """A cart rig bag at a camera's resolution, camera only: with `vertical_lines` each frame's
    up comes from its image (the report counts them), the floor is measured along it, and the
    true depth's metres come out closer than along the mount prior (which misses the bumps)."""
    size, frames = (480, 640), 6
    bag = tmp_path / "cart640"
    # seed 3's room has tiled walls (seeds 1 and 4 have plain ones: the lines refuse every frame)
    bags.write_synthetic_bag(bag, frames, seed=3, size=size, rig="cart")
    rig = RigEval.named("cart", sequences=1, frames=frames, size=size, seed=3)
    backend = GroundTruthBackend(rig_samples(rig, 0))
    prior_cfg = _cfg(track_units=False, window=1, normal="prior")
    prior = replay_offline(bag, tmp_path / "p", prior_cfg, backend)["ground_plane"]
    lines_cfg = dataclasses.replace(prior_cfg, vertical_lines=True)
    lines = replay_offline(bag, tmp_path / "l", lines_cfg, backend)
    gp = lines["ground_plane"]
    assert gp["vertical_lines"] and gp["up_sources"].get("vertical_lines", 0) >= frames - 2, gp
    assert gp["metric_abs_rel"] < 0.5 * prior["metric_abs_rel"], (gp, prior)
    rows = [r["ground_plane"] for r in lines["rows"] if "ground_plane" in r]
    assert all(r["up_reason"].startswith(("vertical_lines (", "prior (")) for r in rows)
    assert "up from vertical lines: vertical_lines" in (tmp_path / "l" / "report.md").read_text()
    with pytest.raises(ValueError, match="only used by the ground_plane protocol"):
        dataclasses.replace(prior_cfg, protocol="depthart", ground_plane=None, vertical_lines=True)


def test_the_headline_is_split_by_the_up_each_frame_used():
    """Where the metric error comes from: frames fitted along the vertical lines' up and those
    that fell back to the prior are scored apart, and the split adds up to the headline."""

    def row(up, metric, aligned):
        gp = {"up": up, "code": "ok", "scale": 1.0}
        return {"ground_plane": gp, "metrics": {"abs_rel": metric}, "aligned_abs_rel": aligned}

    ev = [
        row("vertical_lines", 0.10, 0.10),
        row("vertical_lines", 0.08, 0.10),
        row("prior (ambiguous)", 0.30, 0.10),
    ]
    by_up = report._errors_by_up(ev)
    assert list(by_up) == ["prior (ambiguous)", "vertical_lines"]
    lines, fell = by_up["vertical_lines"], by_up["prior (ambiguous)"]
    assert lines["frames"] == 2 and lines["metric_abs_rel"] == pytest.approx(0.09)
    assert lines["ratio"] == pytest.approx(0.9) and fell["ratio"] == pytest.approx(3.0)
    total = sum(g["frames"] * g["metric_abs_rel"] for g in by_up.values()) / len(ev)
    assert total == pytest.approx(np.mean([r["metrics"]["abs_rel"] for r in ev]))
    summary = {
        "camera_height_m": 1.0,
        "normal": "prior",
        "frames_scaled": 3,
        "frames_fitted": 3,
        "fallbacks": {},
        "vertical_lines": True,
        "up_sources": {"vertical_lines": 2, "prior (ambiguous)": 1},
        "metric_abs_rel": 0.16,
        "aligned_abs_rel": 0.10,
        "ratio": 1.6,
        "ratio_bar": 1.25,
        "frames_scored": 3,
        "by_up": by_up,
    }
    rep = {
        "mode": "offline",
        "bag": "b",
        "status": "complete",
        "counts": {"frames": 3},
        "ground_plane": summary,
    }
    text = report.format_summary(rep)
    assert (
        "by up: prior (ambiguous) 1 frames ratio 3.00; vertical_lines 2 frames ratio 0.90" in text
    )
