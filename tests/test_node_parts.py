"""The node's rclpy-free parts: calibration pairing by stamp, the worker's rate handling, the
checks on parameters and camera_info. No ROS processes: threads and fake messages only."""

from __future__ import annotations

import re
import threading
import time
from types import SimpleNamespace

import pytest

pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 sensor_msgs package")

from depthart_ros.calibration import CalibrationPairer  # noqa: E402
from depthart_ros.params import PARAMS, validate_params  # noqa: E402
from depthart_ros.pipeline import FramePipeline, camera_info_problem, run_worker  # noqa: E402

DEFAULTS = {p.name: p.default for p in PARAMS}


def test_pairs_an_image_with_the_calibration_of_its_stamp_in_either_order() -> None:
    pairer = CalibrationPairer()
    pairer.add(100, "info100")
    pairer.add(200, "info200")
    assert pairer.pair(100, time.monotonic()) == ("info100", "paired")  # calibration first
    # image first: the calibration arrives 0.2 s later, inside the wait
    pairer.note_image(300)
    threading.Timer(0.2, pairer.add, args=(300, "info300")).start()
    t0 = time.monotonic()
    assert pairer.pair(300, t0 + 10.0) == ("info300", "paired")
    assert time.monotonic() - t0 < 5.0  # woken by the arrival, not by the deadline
    assert pairer.counts == {"received": 3, "paired": 2}


def test_without_a_pair_the_newest_calibration_is_used_after_one_bounded_wait() -> None:
    pairer = CalibrationPairer()
    pairer.add(0, "static")  # a latched publisher stamps its calibration once
    t0 = time.monotonic()
    assert pairer.pair(500, t0 + 0.3) == ("static", "newest")
    assert time.monotonic() - t0 >= 0.29  # it did wait for a pair
    t1 = time.monotonic()
    assert pairer.pair(600, t1 + 30.0) == ("static", "newest")
    assert time.monotonic() - t1 < 10.0  # and then stopped waiting: one wait, not one per frame
    # a calibration with a recent image's stamp turns waiting back on
    pairer.note_image(700)
    pairer.add(700, "info700")
    pairer.note_image(800)
    threading.Timer(0.2, pairer.add, args=(800, "info800")).start()
    assert pairer.pair(800, time.monotonic() + 10.0) == ("info800", "paired")


def test_no_calibration_at_all_is_missing_and_close_ends_a_wait() -> None:
    pairer = CalibrationPairer()
    assert pairer.pair(1, time.monotonic()) == (None, "missing")
    pairer = CalibrationPairer()
    threading.Timer(0.2, pairer.close).start()
    t0 = time.monotonic()
    assert pairer.pair(1, t0 + 30.0) == (None, "missing")
    assert time.monotonic() - t0 < 10.0


def test_a_new_max_rate_applies_at_once() -> None:
    """A worker pausing for a 0.1 Hz cap (10 s) must take the next frame as soon as the cap is
    lifted, not when the old period runs out."""
    frames = FramePipeline()
    rate = {"hz": 0.1}
    done: list[float] = []

    def process(item):
        done.append(time.monotonic())
        return "processed", ""

    worker = threading.Thread(
        target=run_worker, args=(frames, process, lambda: rate["hz"], lambda exc: True)
    )
    worker.start()
    frames.offer("first")
    deadline = time.monotonic() + 30
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(done) == 1
    frames.offer("second")  # now the worker waits out 10 s for the 0.1 Hz cap
    time.sleep(0.2)
    assert len(done) == 1
    t_change = time.monotonic()
    rate["hz"] = 0.0
    frames.wake()
    while len(done) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    frames.close()
    worker.join(timeout=10)
    assert len(done) == 2 and done[1] - t_change < 5.0, done
    assert not worker.is_alive()


def _run(frames: FramePipeline, process, rate) -> threading.Thread:
    worker = threading.Thread(target=run_worker, args=(frames, process, rate, lambda exc: True))
    worker.start()
    return worker


def _wait(cond, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    return cond()


def test_a_frame_that_never_reached_the_model_uses_no_rate_period() -> None:
    """A stale frame (or one that did not decode) started the max_rate_hz period: the fresh frame
    behind it waited a whole period and, older by then, could be dropped as stale too."""
    frames = FramePipeline()
    done: list[tuple[str, float]] = []

    def process(item):
        done.append((item, time.monotonic()))
        return ("dropped_stale", "") if item == "stale" else ("processed", "")

    worker = _run(frames, process, lambda: 0.1)  # a 10 s period
    frames.offer("stale")
    assert _wait(lambda: len(done) == 1)
    frames.offer("fresh")
    assert _wait(lambda: len(done) == 2, timeout=5.0), done  # not 10 s later
    frames.offer("next")  # the fresh frame reached the model: this one waits its period
    time.sleep(0.3)
    frames.close()
    worker.join(timeout=10)
    assert [item for item, _ in done] == ["stale", "fresh"] and not worker.is_alive()


def test_a_rate_set_while_the_worker_reads_the_old_one_is_not_missed() -> None:
    """The wake from a max_rate_hz change landing between the worker's read of the rate and
    its pause was lost: frame 2 waited the old 5 s period although the cap was lifted."""
    frames = FramePipeline()
    rate, reads, done = {"hz": 0.2}, [0], []

    def max_rate() -> float:
        hz = rate["hz"]
        reads[0] += 1
        if reads[0] == 2:  # the parameter set lands right after this read
            rate["hz"] = 0.0
            frames.wake()
        return hz

    def process(item):
        done.append(time.monotonic())
        return "processed", ""

    worker = _run(frames, process, max_rate)
    frames.offer(1)
    assert _wait(lambda: len(done) == 1)
    t0 = time.monotonic()
    frames.offer(2)
    assert _wait(lambda: len(done) == 2, timeout=4.0) and done[1] - t0 < 2.0, done
    frames.close()
    worker.join(timeout=10)


def test_rates_that_would_stall_the_node_are_refused() -> None:
    assert validate_params(DEFAULTS | {"max_rate_hz": 0.0}) is None
    assert validate_params(DEFAULTS | {"max_rate_hz": 0.1}) is None
    reason = validate_params(DEFAULTS | {"max_rate_hz": 1e-6})
    assert "max_rate_hz=1e-06" in reason and "at least 0.1" in reason
    reason = validate_params(DEFAULTS | {"debug_min_inference_ms": 10_000.0})
    assert "debug_min_inference_ms=10000.0 is outside [0, 5000]" in reason
    assert "camera_info.wait_s=-1" in validate_params(DEFAULTS | {"camera_info.wait_s": -1})
    assert "max_input_pixels=0" in validate_params(DEFAULTS | {"max_input_pixels": 0})
    # the floor needs the intrinsics: ground_plane without camera_info could never give metres
    no_info = DEFAULTS | {"ground_plane.enabled": True, "use_camera_info": False}
    assert "set use_camera_info true" in validate_params(no_info)
    assert validate_params(no_info | {"use_camera_info": True}) is None


def _info(fx: float) -> SimpleNamespace:
    k = [fx, 0.0, 320.0, 0.0, fx, 240.0, 0.0, 0.0, 1.0]
    p = [fx, 0.0, 320.0, 0.0, 0.0, fx, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    return SimpleNamespace(d=[0.0] * 5, k=k, r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0], p=p)


def test_denormal_and_tiny_focal_lengths_are_refused() -> None:
    assert camera_info_problem(_info(500.0)) is None
    assert camera_info_problem(_info(0.0))[0] == "zero_focal"
    for fx in (1e-320, 1e-30, 1e-4):
        cause, text = camera_info_problem(_info(fx))
        assert cause == "tiny_focal" and f"fx={fx:g}" in text, (fx, text)


def test_a_calibration_with_only_k_is_used_and_republished_with_p_from_k() -> None:
    """A driver that fills K and leaves P zero: the node projects with [K | 0] (as
    image_projection does), so the calibration is kept, and republished with that P."""
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

    from depthart_ros.calibration import camera_info_for

    only_k = _info(500.0)
    only_k.p = [0.0] * 12
    assert camera_info_problem(only_k) is None
    zero_k = _info(0.0)
    zero_k.p = [0.0] * 12
    assert camera_info_problem(zero_k)[0] == "zero_focal"  # uncalibrated stays refused
    msg = CameraInfo(width=640, height=480, k=only_k.k, d=only_k.d, r=only_k.r, p=only_k.p)
    same = camera_info_for(msg, Header(), (480, 640))
    assert list(same.p) == [500.0, 0.0, 320.0, 0.0, 0.0, 500.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    half = camera_info_for(msg, Header(), (240, 320))  # rescaled like K
    assert list(half.p)[:3] == [250.0, 0.0, 159.75] and list(half.k)[:3] == list(half.p)[:3]


def test_a_binned_calibration_for_another_size_goes_out_as_the_depths_own_camera() -> None:
    """A 2x2-binned 256x192 calibration with a 64x48 depth: the republished camera_info is the
    depth's own (64x48, no binning, no ROI), whose K and P are those the cloud projects with;
    one whose binned size is the depth's goes out as it came (consumers reduce it themselves)."""
    from sensor_msgs.msg import CameraInfo, RegionOfInterest
    from std_msgs.msg import Header

    from depthart_core.rosio.image import image_projection
    from depthart_ros.calibration import camera_info_for

    k = [200.0, 0.0, 127.5, 0.0, 200.0, 95.5, 0.0, 0.0, 1.0]
    p = [200.0, 0.0, 127.5, 0.0, 0.0, 200.0, 95.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    binned = CameraInfo(width=256, height=192, k=k, p=p, binning_x=2, binning_y=2)
    out = camera_info_for(binned, Header(), (48, 64))
    assert (out.width, out.height, out.binning_x, out.binning_y) == (64, 48, 0, 0)
    assert list(out.p) == image_projection(binned, (48, 64))[1]
    assert list(out.p)[0] == pytest.approx(50.0)  # fx 200, binned 2x, then 128 -> 64 px
    full = RegionOfInterest(x_offset=0, y_offset=0, width=256, height=192)
    cropped = CameraInfo(width=256, height=192, k=k, p=p, roi=full)
    out = camera_info_for(cropped, Header(), (48, 64))
    assert (out.width, out.height, out.roi.width) == (64, 48, 0)
    assert list(out.p) == image_projection(cropped, (48, 64))[1]
    fits = camera_info_for(binned, Header(), (96, 128))  # 256x192 binned 2x is the depth's size
    assert (fits.width, fits.binning_x, list(fits.p)) == (256, 2, p)


def test_node_dds_profile_is_applied_only_where_nobody_chose_one() -> None:
    from depthart_ros.dds import ASYNC_PROFILE, PROFILE, use_node_profile

    assert PROFILE.is_file() and "<historyMemoryPolicy>DYNAMIC" in PROFILE.read_text()
    env: dict[str, str] = {}
    assert use_node_profile(env) == str(PROFILE)
    assert env == {
        "FASTDDS_DEFAULT_PROFILES_FILE": str(PROFILE),
        "RMW_FASTRTPS_USE_QOS_FROM_XML": "1",
    }
    # rmw_fastrtps takes the writers' publication mode from the XML under USE_QOS_FROM_XML:
    # its own default (synchronous), or what RMW_FASTRTPS_PUBLICATION_MODE asks for
    assert "<kind>SYNCHRONOUS</kind>" in PROFILE.read_text()
    assert "<kind>ASYNCHRONOUS</kind>" not in PROFILE.read_text()
    for mode, want in (("ASYNCHRONOUS", ASYNC_PROFILE), ("SYNCHRONOUS", PROFILE)):
        env = {"RMW_FASTRTPS_PUBLICATION_MODE": mode}
        assert use_node_profile(env) == str(want)
    assert "<kind>ASYNCHRONOUS</kind>" in ASYNC_PROFILE.read_text()
    assert ASYNC_PROFILE.read_text().count("DYNAMIC") == PROFILE.read_text().count("DYNAMIC")
    for chosen in (
        {"FASTDDS_DEFAULT_PROFILES_FILE": "/robot/dds.xml"},
        {"FASTRTPS_DEFAULT_PROFILES_FILE": "/robot/dds.xml"},
        {"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"},
        {"DEPTHART_DDS_PROFILE": "0"},
    ):
        env = dict(chosen)
        assert use_node_profile(env) is None and env == chosen


def test_ground_plane_up_comes_from_the_imu_nearest_in_stamp_else_the_prior() -> None:
    """`MetricScaler` with ground_plane.imu: the IMU attitude nearest the frame's stamp sets the
    fit's up (through the mount pitch); none in time, a message without orientation or a broken
    quaternion leave the prior, each counted, with the reason in `ground_plane_up`."""
    import math

    import numpy as np

    from depthart_core.ground_plane import GroundPlaneConfig, expected_up, fit_ground_plane
    from depthart_ros.metric import MetricScaler

    h, w, f = 120, 160, 100.0
    K = [f, 0.0, (w - 1) / 2, 0.0, f, (h - 1) / 2, 0.0, 0.0, 1.0]
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - K[2]) / f, (v - K[5]) / f, np.ones_like(u)], -1)
    up = expected_up(13.0, 0.0)  # the true camera: 13 deg down, 1.2 m up
    z = np.where(rays @ up < -1e-6, -1.2 / np.minimum(rays @ up, -1e-6), 0.0)
    rel = (np.clip(z, 0, 20) / 5.0).astype(np.float32)
    cfg = dict(DEFAULTS) | {"ground_plane.enabled": True, "ground_plane.imu": True}
    cfg |= {"ground_plane.pitch_deg": 10.0, "ground_plane.normal": "prior"}
    cfg |= {"ground_plane.camera_height_m": 1.2, "ground_plane.window": 1}
    cfg |= {"ground_plane.lines_agree_deg": 4.0}  # the floor check (off by default)
    scaler = MetricScaler(cfg)
    half = math.radians(3.0) / 2  # the body 3 deg nose down: the IMU knows what the prior lacks
    scaler.add_imu(1_000_000_000, (0.0, math.sin(half), 0.0, math.cos(half)))
    scaler.add_imu(1_500_000_000, None)
    depth, why = scaler.to_metres(rel, 1_010_000_000, cfg, K)
    assert why is None and scaler.plane["up"] == "imu"
    assert scaler.state["scale"] == pytest.approx(5.0, rel=1e-3)  # exact along the true up
    prior_cfg = GroundPlaneConfig(camera_height_m=1.2, pitch_deg=10.0, normal="prior")
    prior = fit_ground_plane(rel, K, prior_cfg)
    assert abs(prior.scale / 5.0 - 1.0) > 0.02  # the fixed prior is off by the 3 deg
    scaler.to_metres(rel, 3_000_000_000, cfg, K)  # nothing within 0.05 s
    assert scaler.plane["up"] == "prior (no imu within 0.05 s)"
    assert scaler.state["scale"] == pytest.approx(prior.scale, rel=1e-3)
    scaler.add_imu(4_000_000_000, (0.0, 0.0, 0.0, 0.0))
    scaler.to_metres(rel, 4_000_000_000, cfg, K)
    assert scaler.plane["up"].startswith("prior (IMU orientation must be a unit quaternion")
    diag = scaler.diagnostics()
    assert (diag["imu_received"], diag["imu_no_orientation"], diag["imu_missing"]) == (2, 1, 1)
    assert diag["imu_bad_orientation"] == 1 and diag["ground_plane_up"].startswith("prior")


def test_a_slow_frame_still_finds_the_imu_and_cue_of_its_stamp() -> None:
    """A frame is looked up after its inference: with a 250 Hz IMU and a 30 Hz depth cue going on
    for 0.6 s after the frame's stamp (150 IMU messages, 18 cues), the frame still gets the
    attitude and the cue of its own stamp; one older than what is kept is told so."""
    import numpy as np

    from depthart_ros.metric import MetricScaler

    cfg = dict(DEFAULTS) | {"ground_plane.enabled": True, "ground_plane.imu": True}
    cfg |= {"sparse_depth.enabled": True}
    scaler = MetricScaler(cfg)
    t0 = 10_000_000_000
    for k in range(150):
        scaler.add_imu(t0 + k * 4_000_000, (0.0, 0.0, 0.0, 1.0))
    for k in range(18):
        scaler.add_cue(t0 + k * 33_333_333, f"cue{k}")
    assert scaler._frame_up(t0, cfg)[1] == "imu"
    assert scaler.cues.nearest(t0, int(cfg["sparse_depth.max_stamp_diff_s"] * 1e9)) == "cue0"
    for k in range(150, 1000):  # 4 s of IMU: the frame's attitude is dropped by now
        scaler.add_imu(t0 + k * 4_000_000, (0.0, 0.0, 0.0, 1.0))
    up_3, source = scaler._frame_up(t0, cfg)
    assert up_3 is None and "already dropped" in source, source
    rel = np.full((8, 8), 0.5, np.float32)
    for k in range(18, 200):
        scaler.add_cue(t0 + k * 33_333_333, f"cue{k}")
    assert "already dropped" in scaler._sparse_fit(rel, t0, cfg)[1]
    diag = scaler.diagnostics()
    assert diag["imu_dropped_late"] == 1 and "imu_missing" not in diag
    # one unstamped message (a driver's stamp 0) is refused and counted: among stamped ones it
    # would read as the clock going back and empty both buffers
    held = len(scaler.imus), len(scaler.cues)
    assert not scaler.add_imu(0, (0.0, 0.0, 0.0, 1.0)) and not scaler.add_cue(0, "cue")
    assert (len(scaler.imus), len(scaler.cues)) == held
    diag = scaler.diagnostics()
    assert diag["imu_unstamped"] == 1 and diag["sparse_unstamped"] == 1


def test_ground_plane_up_comes_from_the_vertical_lines_where_no_imu_is_in_time() -> None:
    """`MetricScaler` with ground_plane.vertical_lines (camera only): the image's vertical edges
    give the fit its up (the scale exact along the true up, which the prior misses by 3 deg); an
    image without them, or none at the depth's size, leaves the prior, counted and said why."""
    import cv2
    import numpy as np

    from depthart_core.ground_plane import expected_up
    from depthart_ros.metric import MetricScaler

    h, w, f = 480, 640, 400.0
    K = [f, 0.0, (w - 1) / 2, 0.0, f, (h - 1) / 2, 0.0, 0.0, 1.0]
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - K[2]) / f, (v - K[5]) / f, np.ones_like(u)], -1)
    up = expected_up(13.0, 0.0)  # the true camera: 13 deg down, 1.2 m up; the prior says 10
    z = np.where(rays @ up < -1e-6, -1.2 / np.minimum(rays @ up, -1e-6), 0.0)
    rel = (np.clip(z, 0, 20) / 5.0).astype(np.float32)
    # poles (world verticals: along `up`) at 2-6 m, drawn through K
    image = np.full((h, w, 3), 190, np.uint8)
    fwd = np.cross(np.array([1.0, 0.0, 0.0]), up)  # level forward, in the optical frame
    for x in np.linspace(-2.5, 2.5, 11):
        base = x * np.array([1.0, 0.0, 0.0]) + (2.0 + abs(x)) * fwd - 1.2 * up
        ends = [base, base + 2.4 * up]
        pix = [
            tuple(int(round(16 * c)) for c in (f * e[0] / e[2] + K[2], f * e[1] / e[2] + K[5]))
            for e in ends
        ]
        cv2.line(image, pix[0], pix[1], (30, 30, 30), 3, cv2.LINE_AA, 4)
    cfg = dict(DEFAULTS) | {"ground_plane.enabled": True, "ground_plane.vertical_lines": True}
    cfg |= {"ground_plane.pitch_deg": 10.0, "ground_plane.normal": "prior"}
    cfg |= {"ground_plane.camera_height_m": 1.2, "ground_plane.window": 1}
    cfg |= {"ground_plane.lines_agree_deg": 4.0}  # the floor check (off by default)
    scaler = MetricScaler(cfg)
    depth, why = scaler.to_metres(rel, 1_000_000_000, cfg, K, image)
    assert why is None and scaler.plane["up"].startswith("vertical_lines"), scaler.plane
    assert scaler.state["scale"] == pytest.approx(5.0, rel=5e-3)  # along the true up
    scaler.to_metres(rel, 2_000_000_000, cfg, K, np.full((h, w, 3), 128, np.uint8))
    said = scaler.plane["up"]
    assert said.startswith("prior (") and "no vertical structure" in said
    assert abs(scaler.state["scale"] / 5.0 - 1.0) > 0.02  # the prior is off by the 3 deg
    scaler.to_metres(rel, 3_000_000_000, cfg, K, image[::2, ::2])
    assert "depth's size" in scaler.plane["up"]
    # a floor 7 deg from the lines' up (the model's, or the lines' mistake): the prior is used
    up20 = expected_up(20.0, 0.0)
    z20 = np.where(rays @ up20 < -1e-6, -1.2 / np.minimum(rays @ up20, -1e-6), 0.0)
    scaler.to_metres((np.clip(z20, 0, 20) / 5.0).astype(np.float32), 4_000_000_000, cfg, K, image)
    said = scaler.plane["up"]
    assert re.match(r"prior \(the floor is \d+\.\d deg from the lines' up > 4\)", said), said
    diag = scaler.diagnostics()
    assert (diag["vertical_lines_ok"], diag["vertical_lines_few_lines"]) == (2, 1)
    assert (diag["vertical_lines_no_image"], diag["vertical_lines_floor_disagrees"]) == (1, 1)
    # no vertical edge but a tiled floor: the horizon's vanishing points give the up
    tiles = np.full((h, w, 3), 190, np.uint8)
    right = np.array([1.0, 0.0, 0.0])
    ahead = np.cross(up, right)  # level forward, in front of the camera
    for i, x in enumerate(np.arange(-4.0, 4.0, 0.5)):
        for j, d in enumerate(np.arange(1.5, 9.0, 0.5)):
            if (i + j) % 2:
                corners = [(x, d), (x + 0.5, d), (x + 0.5, d + 0.5), (x, d + 0.5)]
                c_43 = np.array([a * right + b * ahead - 1.2 * up for a, b in corners])
                pix_42 = np.stack([f * c_43[:, 0] / c_43[:, 2] + K[2], f * c_43[:, 1] / c_43[:, 2]])
                pix_42 = np.stack([pix_42[0], pix_42[1] + K[5]], axis=1)
                cv2.fillPoly(tiles, [np.round(16 * pix_42).astype(np.int32)], (60, 60, 60), 16, 4)
    scaler.to_metres(rel, 5_000_000_000, cfg, K, tiles)
    assert scaler.plane["up"].startswith("horizon ("), scaler.plane
    assert scaler.state["scale"] == pytest.approx(5.0, rel=1e-2)  # along the true up
    assert scaler.diagnostics()["vertical_lines_horizon"] == 1
    # tilt needs a measured up: the lines are one
    tilted = cfg | {"ground_plane.tilt": 0.75}
    assert validate_params(tilted) is None
    assert "needs ground_plane.imu or ground_plane.vertical_lines" in validate_params(
        tilted | {"ground_plane.vertical_lines": False}
    )


def test_an_impossible_latency_is_counted_not_kept() -> None:
    """A frame stamped 0 (a driver that never sets stamps) or by another clock has a latency of
    decades; it is counted apart, so the percentiles stay those of the real frames."""
    from depthart_ros.pipeline import LATENCY_PLAUSIBLE_MS, frame_stats

    frames = FramePipeline()
    for latency in (40.0, 1.8e12, -1e10, 60.0, -5.0):  # -5 ms: a small clock skew, kept
        frames.record(latency, 10.0)
    snap = frames.snapshot()
    assert snap["latency_ms"] == [40.0, 60.0, -5.0] and snap["latency_implausible"] == 2
    stats = frame_stats(snap, (0.0, 0, 0), 1.0)
    assert float(stats["latency_p95_ms"]) < 60.0 and stats["latency_implausible"] == 2
    assert LATENCY_PLAUSIBLE_MS == 3_600_000.0
    # a stamp of 0 under sim time (now = 90 s): 90 s looked like a real latency
    from depthart_ros.pipeline import frame_latency_ms

    frames.record(frame_latency_ms(90_000_000_000, 0), 10.0)
    assert frames.snapshot()["latency_implausible"] == 3
    assert frame_latency_ms(90_000_000_000, 89_960_000_000) == 40.0


def test_sparse_max_m_zero_means_no_upper_bound() -> None:
    """max_m 0 passes the parameter check as "no bound" (as max_depth does); the cue then keeps
    every point above min_m, where it used to keep none."""
    import numpy as np

    from depthart_core.rosio.messages import image_msg
    from depthart_ros.metric import MetricScaler

    cfg = {p.name: p.default for p in PARAMS} | {"sparse_depth.enabled": True}
    cfg |= {"sparse_depth.max_m": 0.0}
    assert validate_params(cfg) is None
    rel = np.random.default_rng(0).uniform(0.2, 1.0, (24, 32)).astype(np.float32)
    sparse = np.full(rel.shape, np.nan, np.float32)
    sparse[::2, ::2] = 1000.0 * (rel[::2, ::2] + 0.01)  # 210-1010 m: above the default max_m
    scaler = MetricScaler(cfg)
    scaler.add_cue(5, image_msg(sparse, "32FC1", 5, "cam"))
    metres, reason = scaler.to_metres(rel, 5, cfg, None)
    assert reason is None and float(np.median(metres / rel)) == pytest.approx(1000.0, rel=0.05)
    cfg["sparse_depth.max_m"] = 200.0
    scaler = MetricScaler(cfg)
    scaler.add_cue(5, image_msg(sparse, "32FC1", 5, "cam"))
    _, reason = scaler.to_metres(rel, 5, cfg, None)
    assert "too few" in reason  # the bound still applies when set


def _floor(h: int = 60, w: int = 80, pitch: float = 13.0, height: float = 1.2):
    """(relative depth, P) of a level floor seen from `height` m at `pitch` deg down."""
    import math

    import numpy as np

    from depthart_core.ground_plane import expected_up

    f = 0.5 * w / math.tan(math.radians(35))
    P = [f, 0.0, (w - 1) / 2, 0.0, 0.0, f, (h - 1) / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - P[2]) / f, (v - P[6]) / f, np.ones_like(u)], -1)
    up = expected_up(pitch, 0.0)
    z = np.where(rays @ up < -1e-6, -height / np.minimum(rays @ up, -1e-6), 0.0)
    return (np.clip(z, 0, 20) / 5.0).astype(np.float32), P


def test_the_floor_starts_over_after_frames_the_sparse_cue_took() -> None:
    """With both sources on, frames the cue wins never reach the floor's smoother: its memory
    (and the last frame it carried its unit from) must not meet the floor's next frame, which
    it met 2.8x off, held for two frames by the jump rule."""
    import numpy as np

    from depthart_core.rosio.messages import image_msg
    from depthart_ros.metric import MetricScaler

    rel, P = _floor()
    cfg = dict(DEFAULTS) | {"ground_plane.enabled": True, "sparse_depth.enabled": True}
    cfg |= {"ground_plane.camera_height_m": 1.2, "ground_plane.pitch_deg": 13.0}
    scaler = MetricScaler(cfg)
    scaler.to_metres(rel * 3.0, 1_000_000_000, cfg, P)  # the floor, in another relative unit
    assert scaler.state["source"] == "ground_plane" and scaler.ground._prev_hw is not None
    sparse = np.where(rel > 0, rel * 5.0, np.nan).astype(np.float32)
    scaler.add_cue(2_000_000_000, image_msg(sparse, "32FC1", 2_000_000_000, "cam"))
    scaler.to_metres(rel, 2_000_000_000, cfg, P)
    assert scaler.state["source"] == "sparse_depth"
    assert scaler.ground._prev_hw is None and not scaler.ground.smoother._history
    depth, why = scaler.to_metres(rel, 5_000_000_000, cfg, P)  # the cue gone: the floor again
    assert why is None and scaler.state["scale"] == pytest.approx(5.0, rel=1e-2)


def test_the_floor_starts_over_when_the_stamps_go_back() -> None:
    """A bag played in a loop: its first frame after the loop is a scene cut. The smoother held
    the old pass's scale against the jump (two frames of wrong metres) and carried the relative
    unit across the cut; stamps going back more than the kept span now start it over."""
    from depthart_core.ground_plane import frame_units_ratio
    from depthart_ros.metric import MetricScaler

    rel, P = _floor()
    cfg = dict(DEFAULTS) | {"ground_plane.enabled": True}
    cfg |= {"ground_plane.camera_height_m": 1.2, "ground_plane.pitch_deg": 13.0}
    scaler = MetricScaler(cfg)
    for k in range(5):  # the end of the first pass
        scaler.to_metres(rel, 10_000_000_000 + k * 100_000_000, cfg, P)
    assert scaler.state["scale"] == pytest.approx(5.0, rel=1e-2)
    # the loop, 9 s earlier: another view (pitched 20 deg), in a relative unit the frame-to-frame
    # tracking reads as unchanged, so only the cut tells the two apart
    other, _ = _floor(pitch=20.0)
    other = other / frame_units_ratio(rel[::4, ::4], other[::4, ::4])
    scaler.to_metres(other, 1_000_000_000, cfg, P)
    assert scaler.state["source"] == "ground_plane"
    assert scaler.plane["smoothing"].startswith("first")
    assert scaler.state["scale"] == pytest.approx(float(scaler.plane["raw_scale"]), rel=1e-3)


def test_the_floor_starts_over_after_a_forward_gap_in_the_stamps() -> None:
    """A camera paused a minute (or restarted, or a bag seeked forward): the next frame is a
    scene cut as a loop's is. Only a backward jump started the smoother over; after +60 s it
    held the old scene's scale for two frames (metres 2.7x off) before taking the new one."""
    from depthart_core.ground_plane import frame_units_ratio
    from depthart_ros.metric import MetricScaler

    rel, P = _floor()
    cfg = dict(DEFAULTS) | {"ground_plane.enabled": True}
    cfg |= {"ground_plane.camera_height_m": 1.2, "ground_plane.pitch_deg": 13.0}
    scaler = MetricScaler(cfg)
    t = 10_000_000_000
    for _ in range(5):
        scaler.to_metres(rel, t, cfg, P)
        t += 100_000_000
    assert scaler.plane["smoothing"].startswith("updated")  # 0.1 s apart: one scene
    # a minute later: another view, in a relative unit the tracking reads as unchanged
    other, _ = _floor(pitch=20.0)
    other = other / frame_units_ratio(rel[::4, ::4], other[::4, ::4])
    scaler.to_metres(other, t + 60_000_000_000, cfg, P)
    assert scaler.plane["smoothing"].startswith("first"), scaler.plane["smoothing"]
    assert scaler.state["scale"] == pytest.approx(float(scaler.plane["raw_scale"]), rel=1e-3)
    # a gap within the limit (metric.FLOOR_GAP_S, 2 s) is no cut
    scaler.to_metres(other, t + 61_800_000_000, cfg, P)
    assert not scaler.plane["smoothing"].startswith("first"), scaler.plane["smoothing"]


def test_a_slow_node_keeps_smoothing_and_still_cuts_at_a_pause() -> None:
    """A node that runs at 0.3 Hz (max_rate_hz, a slow CPU): its frames are 3.3 s apart, more
    than the 2 s gap, but they are one scene; a pause of a minute among them is still a cut."""
    from depthart_ros.metric import MetricScaler

    rel, P = _floor()
    cfg = dict(DEFAULTS) | {"ground_plane.enabled": True}
    cfg |= {"ground_plane.camera_height_m": 1.2, "ground_plane.pitch_deg": 13.0}
    scaler = MetricScaler(cfg)
    t, said = 10_000_000_000, []
    for step_s in (0, 3.3, 3.3, 3.3, 3.3, 60.0, 3.3, 3.3):
        t += int(step_s * 1e9)
        scaler.to_metres(rel, t, cfg, P)
        said.append(scaler.plane["smoothing"].split(":")[0].split()[0])
    # the first step (no interval known yet) and the pause start over; the rest smooth
    assert said == ["first", "first", "updated", "updated", "updated", "first", "updated",
                    "updated"], said  # fmt: skip


def test_an_image_stamped_0_says_so_and_does_not_wait_for_a_cue() -> None:
    """A driver that never stamps its images: the cue and the IMU pair by stamp, so the frame
    gets neither. It was told "no sparse_depth within 0.05 s" though a cue came with every
    frame, after waiting the whole sparse_depth.wait_s each frame (stamp 0 read as a new
    stream's); now it says the image is unstamped, at once, counted per source."""
    import numpy as np

    from depthart_core.rosio.messages import image_msg
    from depthart_ros.metric import MetricScaler

    rel, P = _floor()
    t = 100_000_000_000  # the cue's clock: any stamp more than 2 s after 0
    sparse = np.where(rel > 0, rel * 5.0, np.nan).astype(np.float32)
    cfg = dict(DEFAULTS) | {"sparse_depth.enabled": True}
    scaler = MetricScaler(cfg)
    scaler.add_cue(t, image_msg(sparse, "32FC1", t, "cam"))
    t0 = time.monotonic()
    depth, why = scaler.to_metres(rel, 0, cfg, P, cue_deadline=t0 + 2.0)
    assert time.monotonic() - t0 < 1.0  # no wait for a cue that cannot pair
    assert why == "sparse_depth: image stamped 0: sparse_depth cannot be paired by stamp", why
    assert scaler.diagnostics()["sparse_image_unstamped"] == 1
    # the floor with an IMU: the prior's up, said why; the floor itself needs no stamp
    cfg = dict(DEFAULTS) | {"ground_plane.enabled": True, "ground_plane.imu": True}
    cfg |= {"ground_plane.camera_height_m": 1.2, "ground_plane.pitch_deg": 13.0}
    scaler = MetricScaler(cfg)
    scaler.add_imu(t, (0.0, 0.0, 0.0, 1.0))
    depth, why = scaler.to_metres(rel, 0, cfg, P)
    assert why is None and scaler.state["source"] == "ground_plane"
    assert scaler.plane["up"] == "prior (image stamped 0: imu cannot be paired by stamp)"
    diag = scaler.diagnostics()
    assert diag["imu_image_unstamped"] == 1 and "imu_missing" not in diag
    # which sources make the node warn of an unstamped image
    assert scaler.paired_by_stamp == ("imu",)
    both = cfg | {"sparse_depth.enabled": True}
    assert MetricScaler(both).paired_by_stamp == ("sparse_depth", "imu")
    assert not MetricScaler(cfg | {"ground_plane.imu": False}).paired_by_stamp


def test_a_cue_of_another_aspect_ratio_is_refused_not_stretched() -> None:
    import numpy as np

    from depthart_core.rosio.messages import image_msg
    from depthart_ros.metric import MetricScaler

    cfg = dict(DEFAULTS) | {"sparse_depth.enabled": True}
    rel = np.random.default_rng(0).uniform(0.2, 1.0, (90, 160)).astype(np.float32)
    scaler = MetricScaler(cfg)
    scaler.add_cue(5, image_msg(np.full((120, 160), 3.0, np.float32), "32FC1", 5, "cam"))
    _, why = scaler.to_metres(rel, 5, cfg, None)
    assert "another aspect ratio" in why and scaler.diagnostics()["sparse_rejected.aspect"] == 1
    scaler.add_cue(6, image_msg(np.full((45, 80), 3.0, np.float32), "32FC1", 6, "cam"))
    assert scaler.to_metres(rel, 6, cfg, None)[1] is None  # the same shape at half size: used


def test_a_fit_that_puts_pixels_behind_the_camera_marks_them_too_close() -> None:
    """scale_shift with a negative shift: the nearest pixels' metres come out <= 0. They were
    NaN ("no return", which a costmap ignores); they are -inf (too close) and counted."""
    import numpy as np

    from depthart_core.metric_scale import ScaleFit

    fit = ScaleFit(10.0, -1.0, "scale_shift", 10, 10, 0.0)
    out = fit.apply(np.array([0.05, 0.1, 0.5, np.nan], np.float32))
    assert np.isneginf(out[:2]).all() and out[2] == pytest.approx(4.0) and np.isnan(out[3])


def test_matcher_starts_over_when_the_clock_goes_back() -> None:
    """A bag played in a loop or a simulator reset: stamps jump back. The matcher evicted every
    new item against the old newest stamp, so frames found no cue and no IMU."""
    from depthart_core.metric_scale import StampMatcher

    m = StampMatcher(maxlen=20, span_s=2.0)
    for k in range(60):
        m.add(100_000_000_000 + k * 33_333_333, f"a{k}")
    for k in range(40):  # the loop: 98 s earlier
        m.add(2_000_000_000 + k * 33_333_333, f"b{k}")
    assert m.nearest(2_000_000_000 + 36 * 33_333_333, 10_000_000) == "b36"
    assert not m.dropped_near(2_000_000_000 + 36 * 33_333_333, 10_000_000)


def test_close_says_when_the_worker_does_not_stop(monkeypatch) -> None:
    """A frame stuck in the backend outlives close()'s wait: a warning names it, close returns."""
    from depthart_ros import node as node_mod

    release = threading.Event()
    worker = threading.Thread(target=release.wait, daemon=True)
    worker.start()
    warnings: list[str] = []
    core = SimpleNamespace(
        frames=FramePipeline(),
        calibration=CalibrationPairer(),
        worker=worker,
        get_logger=lambda: SimpleNamespace(warning=warnings.append),
        _forget_threads=lambda: None,
    )
    monkeypatch.setattr(node_mod, "CLOSE_JOIN_S", 0.05)
    node_mod.DepthArtCore.close(core)
    assert len(warnings) == 1 and "did not stop within 0.05 s" in warnings[0]
    release.set()
    worker.join(5.0)
    node_mod.DepthArtCore.close(core)  # a stopped worker: nothing to say
    assert len(warnings) == 1


def test_input_silence_counts_from_the_newest_image_or_from_start():
    from depthart_ros.pipeline import input_silence

    assert input_silence(None, 100.0, 104.0, 5.0, "/cam") is None  # starting up
    said = input_silence(None, 100.0, 106.0, 5.0, "/cam")
    assert said == "no image on /cam in the 6 s since the node started listening"
    assert input_silence(103.0, 100.0, 107.0, 5.0, "/cam") is None
    assert input_silence(103.0, 100.0, 109.0, 5.0, "/cam") == "no image on /cam for 6 s"
    assert input_silence(None, 100.0, 1e9, 0.0, "/cam") is None  # off
    # an image from before a reactivation: counted from the reactivation
    assert input_silence(90.0, 100.0, 104.0, 5.0, "/cam") is None


def test_points_without_camera_info_by_choice_say_what_to_set():
    """use_camera_info false: no camera_info will ever come, so the skipped cloud says so
    instead of "no camera_info yet"."""
    from collections import Counter

    import numpy as np

    from depthart_ros import node as node_mod

    warned: list[tuple[str, str]] = []
    core = SimpleNamespace(
        cfg=dict(DEFAULTS) | {"use_camera_info": False},
        points_counts=Counter(),
        _warn=lambda key, text: warned.append((key, text)),
    )
    node_mod.DepthArtCore._publish_points(core, None, None, np.ones((2, 2), np.float32), None)
    assert core.points_counts == {"skipped.use_camera_info_off": 1}
    assert warned and "use_camera_info is false" in warned[0][1]


def test_points_skipped_for_a_calibration_of_another_aspect_say_so():
    """A camera_info came but was not used (another aspect ratio): the skipped cloud is counted
    and said as that, not as "no camera_info yet"."""
    from collections import Counter

    import numpy as np

    from depthart_ros import node as node_mod

    warned: list[tuple[str, str]] = []
    why = "camera_info describes a 320x180 image, this one is 320x240"
    core = SimpleNamespace(
        cfg=dict(DEFAULTS),
        points_counts=Counter(),
        camera_info_mismatch=why,
        _warn=lambda key, text: warned.append((key, text)),
    )
    node_mod.DepthArtCore._publish_points(core, None, None, np.ones((2, 2), np.float32), None)
    assert core.points_counts == {"skipped.camera_info_aspect": 1}
    assert warned == [("points.camera_info_aspect",
                       f"not publishing depth/points: camera_info not used: {why}")]  # fmt: skip
    core.camera_info_mismatch = ""  # none received yet: said as that
    node_mod.DepthArtCore._publish_points(core, None, None, np.ones((2, 2), np.float32), None)
    assert core.points_counts["skipped.no_camera_info"] == 1


def test_descriptor_ranges_are_floats_for_float_parameters():
    """rclpy hands a FloatingPointRange's bounds to C unchecked: an int bound reads as 5e-324
    in `ros2 param describe`, and ROS_PYTHON_CHECK_FIELDS=1 refuses it at start-up."""
    from depthart_ros.node import _descriptor

    ranged = [p for p in PARAMS if p.lo is not None and isinstance(p.default, float)]
    assert any(isinstance(p.hi, int) for p in ranged)  # the case that went wrong
    for p in ranged:
        (r,) = _descriptor(p).floating_point_range
        assert type(r.from_value) is float and type(r.to_value) is float, p.name
        assert (r.from_value, r.to_value) == (p.lo, p.hi), p.name


def test_a_calibration_of_another_aspect_is_named():
    from sensor_msgs.msg import CameraInfo, RegionOfInterest

    from depthart_ros.calibration import aspect_problem

    assert aspect_problem(CameraInfo(width=640, height=480), (240, 320)) is None  # rescaled
    assert aspect_problem(CameraInfo(width=0, height=0), (240, 320)) is None  # no size said
    said = aspect_problem(CameraInfo(width=640, height=480), (360, 640))
    assert said.startswith("camera_info describes a 640x480 image, this one is 640x360")
    binned = CameraInfo(width=1280, height=960, binning_x=2, binning_y=2)
    assert aspect_problem(binned, (480, 640)) is None
    roi = RegionOfInterest(x_offset=0, y_offset=120, width=1280, height=720)
    assert aspect_problem(CameraInfo(width=1280, height=960, roi=roi), (360, 640)) is None


def test_ground_plane_options_without_the_ground_plane_are_refused():
    """ground_plane.imu / vertical_lines / tilt with ground_plane.enabled false did nothing,
    silently (no imu subscription, relative output); they are refused, named."""
    said = validate_params(DEFAULTS | {"ground_plane.imu": True})
    assert said == ("ground_plane.imu set, but ground_plane.enabled is false: they only take "
                    "effect with the ground-plane scale on")  # fmt: skip
    lines = DEFAULTS | {"ground_plane.vertical_lines": True, "ground_plane.normal": "prior"}
    said = validate_params(lines | {"ground_plane.tilt": 0.5})
    assert said.startswith("ground_plane.vertical_lines, ground_plane.tilt set, but")
    on = DEFAULTS | {"ground_plane.enabled": True, "ground_plane.imu": True}
    assert validate_params(on) is None


def test_a_node_leaves_its_process_flushed_without_exit_time_finalizers():
    """After a clean shutdown both nodes leave through `leave_process`: what they wrote (Python's
    and C's stdio, logging) is flushed, the status is theirs, and the interpreter's exit-time
    finalizers (one of torch's crashed a lifecycle node after "model released") do not run."""
    pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import atexit, ctypes, logging, sys
        from depthart_ros.node import leave_process
        atexit.register(lambda: print("finalizer ran", flush=True))
        logging.basicConfig(stream=sys.stderr, level=logging.INFO)
        logging.getLogger("x").info("logged")
        print("python line", end="")
        ctypes.CDLL(None).printf(b"c line")  # C stdio, buffered: a pipe is not a terminal
        leave_process(3)
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 3, res
    assert "python line" in res.stdout and "c line" in res.stdout, res.stdout
    assert "finalizer ran" not in res.stdout and "INFO:x:logged" in res.stderr, res
    from pathlib import Path

    ros = Path(__file__).resolve().parents[1] / "depthart_ros"
    for main in ("node", "lifecycle_node"):  # both mains end there
        text = (ros / f"{main}.py").read_text()
        assert "spin_until_shutdown(node, " in text and "    leave_process(0)\n" in text, main


def test_camera_info_is_named_beside_its_image_as_image_transport_does():
    from depthart_ros.calibration import camera_info_beside

    assert camera_info_beside("/camera/image_raw") == "/camera/camera_info"
    assert camera_info_beside("/image") == "/camera_info"  # the defaults: unchanged
    assert camera_info_beside("/front/cam/color/image_rect") == "/front/cam/color/camera_info"


def test_camera_info_silence_is_said_while_images_come_and_none_ever_did():
    from depthart_ros.calibration import camera_info_silence

    topic = "/camera/camera_info"
    assert camera_info_silence(None, 103.5, 100.0, 104.0, 5.0, topic) is None  # starting up
    said = camera_info_silence(None, 105.5, 100.0, 106.0, 5.0, topic)
    assert said and said.startswith(
        "no camera_info on /camera/camera_info in the 6 s since the node started listening"
    )
    # one came (a latched or static one need not come again): no warning
    assert camera_info_silence(101.0, 105.5, 100.0, 106.0, 5.0, topic) is None
    # no images (their own warning says so), images stopped too, or from before a reactivation
    assert camera_info_silence(None, None, 100.0, 106.0, 5.0, topic) is None
    assert camera_info_silence(None, 100.5, 100.0, 106.0, 5.0, topic) is None
    assert camera_info_silence(None, 95.0, 100.0, 99.0 + 5.5, 5.0, topic) is None
    assert camera_info_silence(None, 105.5, 100.0, 1e9, 0.0, topic) is None  # off


def test_an_impossible_device_is_refused_before_the_model_loads(monkeypatch):
    """CUDA where nothing can run on it is refused before the load (an ONNX export takes
    seconds, a TensorRT build minutes), naming the node's `device` parameter, not the CLI's
    --device."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("needs a PyTorch without CUDA")
    from depthart_ros import node as node_mod

    def load(*args, **kwargs):
        raise AssertionError("the model load (ONNX export) started")

    monkeypatch.setattr(node_mod, "get_backend", load)
    cpu_ort = ["CPUExecutionProvider"]
    from depthart_core.runtime import base

    monkeypatch.setattr(base, "onnxruntime_providers", lambda: cpu_ort)
    for backend in ("auto", "onnxruntime", "torch", "tensorrt"):
        core = SimpleNamespace(
            cfg=dict(DEFAULTS) | {"backend": backend, "device": "cuda:1"},
            get_logger=lambda: SimpleNamespace(info=print, warning=print, error=print),
            context=SimpleNamespace(ok=lambda: True),
        )
        with pytest.raises(ValueError, match="device parameter") as refused:
            node_mod.DepthArtCore._load_model(core)
        assert "'cuda:1'" in str(refused.value) and "--device" not in str(refused.value)
    # where ONNX Runtime has CUDA, auto and onnxruntime go on (torch and a sampled decoding not)
    cuda_ort = ["CUDAExecutionProvider", *cpu_ort]
    monkeypatch.setattr(base, "onnxruntime_providers", lambda: cuda_ort)
    advice = node_mod.DEVICE_ADVICE
    base.check_device_runnable("auto", "cuda", deterministic=True, advice=advice)
    base.check_device_runnable("onnxruntime", "cuda", deterministic=True, advice=advice)
    for backend, deterministic in (("torch", True), ("auto", False)):
        with pytest.raises(ValueError, match="device parameter"):
            base.check_device_runnable(backend, "cuda", deterministic, advice=advice)
    base.check_device_runnable("torch", "cpu", deterministic=True, advice=advice)


# rclpy.init's messages as rcl 9 (Jazzy's rclpy on PyPI) raised them
RCL_ERRORS = [
    (
        "failed to initialize rcl: Couldn't parse params file: '--params-file /x/nope.yaml'. "
        "Error: Error opening YAML file, at /project/src/parser.c:271, at "
        "/project/src/rcl/arguments.c:415",
        "failed to initialize rcl: Couldn't parse params file: '--params-file /x/nope.yaml'. "
        "Error: Error opening YAML file",
    ),
    (
        "failed to initialize rcl: Couldn't parse params file: '--params-file broken.yaml'. "
        "Error: Sequences can only be values and not keys in params. Error at line 1\n, at "
        "/project/src/parse.c:835, at /project/src/rcl/arguments.c:415",
        "failed to initialize rcl: Couldn't parse params file: '--params-file broken.yaml'. "
        "Error: Sequences can only be values and not keys in params. Error at line 1",
    ),
    (
        "failed to initialize logging: Failed to create log directory '/srv/afile/log': 20, at "
        "/project/src/rcl_logging_spdlog.cpp:153",
        "failed to initialize logging: Failed to create log directory '/srv/afile/log': Not a "
        "directory; set ROS_LOG_DIR",
    ),
]


@pytest.mark.parametrize("raised, said", RCL_ERRORS, ids=["missing", "broken", "log_dir"])
def test_rclpy_inits_error_is_one_line_without_rcls_source_lines(raised: str, said: str):
    pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
    from depthart_ros.node import rcl_init_problem

    line = rcl_init_problem(RuntimeError(raised))
    assert line.startswith(said) and "\n" not in line and ".c:" not in line, line


def test_a_domain_id_that_is_no_number_is_named(monkeypatch):
    pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
    from depthart_ros.node import rcl_init_problem

    monkeypatch.setenv("ROS_DOMAIN_ID", "abc")
    raised = "failed to initialize rcl: ROS_DOMAIN_ID is not an integral number, at /rcl/d.c:49"
    assert rcl_init_problem(RuntimeError(raised)) == (
        "failed to initialize rcl: ROS_DOMAIN_ID is not an integral number (ROS_DOMAIN_ID='abc')"
    )


def test_rclpy_init_failing_is_status_1_and_ctrl_c_in_it_a_clean_stop(monkeypatch, capfd):
    """Both nodes' `main` start with `init_or_exit`: a failure is the FATAL line, Ctrl-C status 0
    (`shut_down_during_start_up` cannot tell: no context is ok before init)."""
    pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
    from depthart_ros import node as node_mod

    def leave(status: int):
        raise SystemExit(status)

    def init(exc: BaseException):
        def raising(args=None):
            raise exc

        return raising

    monkeypatch.setattr(node_mod, "leave_process", leave)
    monkeypatch.setattr(node_mod.rclpy, "init", init(RuntimeError(RCL_ERRORS[0][0])))
    with pytest.raises(SystemExit) as ended:
        node_mod.init_or_exit(["--ros-args", "--params-file", "/x/nope.yaml"])
    assert ended.value.code == 1
    err = capfd.readouterr().err
    assert f"[depthart_node]: cannot start: {RCL_ERRORS[0][1]}\n" in err, err
    monkeypatch.setattr(node_mod.rclpy, "init", init(KeyboardInterrupt()))
    with pytest.raises(SystemExit) as ended:
        node_mod.init_or_exit(None)
    assert ended.value.code == 0
    err = capfd.readouterr().err
    assert "stopped during start-up" in err and "cannot start" not in err, err
    # the node's logger unusable: the line goes to stderr as the program's
    monkeypatch.setattr(node_mod, "get_logger", lambda name: None)
    monkeypatch.setattr(node_mod.rclpy, "init", init(RuntimeError("bad")))
    with pytest.raises(SystemExit) as ended:
        node_mod.init_or_exit(None)
    assert ended.value.code == 1 and "depthart_node: cannot start: bad\n" in capfd.readouterr().err
