"""Ground-plane scale (`depthart_core.ground_plane`) on depth maps built analytically: a pinhole
camera at a known height, pitch and roll above a floor plane, with a wall, a ramp or boxes in
view. The relative depth is the metric depth divided by a known scale, so every recovered scale
has an exact expected value (camera height / plane distance = that scale)."""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest

from depthart_core.data.synthetic.scene import look_rotation
from depthart_core.ground_plane import (
    GroundPlaneConfig,
    GroundPlaneScale,
    ScaleSmoother,
    apply_floor_scale,
    check_camera_height,
    check_up,
    diagnostics,
    expected_up,
    fit_ground_plane,
    frame_units_ratio,
    frame_up,
    imu_up,
    optical_from_body,
    projection_p,
)
from depthart_core.pointcloud import pinhole_p

SIZE = (120, 160)  # H, W
TRUE_SCALE = 7.3  # metres per relative unit


def camera(hfov: float = 70.0, size: tuple[int, int] = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(K (3, 3), normalised rays (H, W, 3) with z = 1) of an ideal pinhole camera."""
    h, w = size
    P = np.asarray(pinhole_p(h, w, hfov)).reshape(3, 4)
    K = P[:, :3]
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    return K, rays


def hit(rays: np.ndarray, normal: np.ndarray, offset: float) -> np.ndarray:
    """Depth z along each ray to the plane normal . p = offset (inf where it is behind)."""
    denom = rays @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        z = offset / denom
    return np.where(np.isfinite(z) & (z > 0), z, np.inf)


def scene(
    height: float = 1.0,
    pitch: float = 0.0,
    roll: float = 0.0,
    wall: float | None = 6.0,
    ramp_deg: float = 0.0,
    hfov: float = 70.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(metric depth (H, W), K) of a camera `height` m above a floor (tilted by `ramp_deg` about
    the camera's right axis, rising away from it) with a wall `wall` m ahead (horizontally)."""
    K, rays = camera(hfov)
    up = expected_up(pitch, roll)
    ahead = np.array([0.0, 0.0, 1.0]) - up[2] * up
    ahead /= np.linalg.norm(ahead)
    a = math.radians(ramp_deg)
    floor_n = math.cos(a) * up - math.sin(a) * ahead  # still through the point below the camera
    depth = hit(rays, floor_n, -height)
    if wall is not None:
        depth = np.minimum(depth, hit(rays, ahead, wall))
    return np.where(np.isfinite(depth), depth, 0.0), K


def relative(metric: np.ndarray) -> np.ndarray:
    return (metric / TRUE_SCALE).astype(np.float32)


@pytest.mark.parametrize(
    "height, pitch, roll",
    [(0.3, 0.0, 0.0), (1.0, 15.0, 0.0), (2.0, 30.0, 5.0), (1.2, -5.0, -8.0), (0.5, 10.0, 3.0)],
)
def test_scale_recovered_from_the_floor(height, pitch, roll):
    metric, K = scene(height, pitch, roll)
    rng = np.random.default_rng(1)
    noisy = relative(metric) * rng.normal(1.0, 0.01, metric.shape).astype(np.float32)
    cfg = GroundPlaneConfig(camera_height_m=height)  # no pitch/roll prior: the fit finds them
    fit = fit_ground_plane(noisy, K, cfg)
    assert fit.code == "ok", fit.reason
    assert fit.scale == pytest.approx(TRUE_SCALE, rel=0.01)
    assert fit.normal_angle_deg == pytest.approx(math.hypot(pitch, roll), abs=1.0)
    assert (
        fit.inlier_fraction > 0.4
    )  # the wall fills part of the floor region (most when looking up)
    true_up = expected_up(pitch, roll)
    assert np.degrees(np.arccos(np.clip(np.dot(fit.normal_3, true_up), -1, 1))) < 1.0


def test_k_and_p_give_the_same_fit_and_the_fit_repeats():
    metric, K = scene(0.8, 12.0)
    P = projection_p(K)
    assert P == [*K[0], 0.0, *K[1], 0.0, *K[2], 0.0]
    rel = relative(metric)
    a = fit_ground_plane(rel, K, GroundPlaneConfig(camera_height_m=0.8))
    b = fit_ground_plane(rel, np.asarray(P).reshape(3, 4), GroundPlaneConfig(camera_height_m=0.8))
    assert a == b
    assert a.scale == pytest.approx(TRUE_SCALE, rel=1e-3)


def test_objects_on_the_floor_are_outliers():
    """Boxes standing on a third of the floor region: the fit keeps the floor."""
    metric, K = scene(1.0, 20.0)
    _, rays = camera()
    box = hit(rays, np.array([0.0, 0.0, 1.0]), 1.6)  # a fronto-parallel face 1.6 m ahead
    cols = np.zeros(SIZE, bool)
    cols[:, 20:75] = True
    metric = np.where(cols & (box < metric), box, metric)
    fit = fit_ground_plane(relative(metric), K, GroundPlaneConfig(camera_height_m=1.0))
    assert fit.code == "ok", fit.reason
    assert fit.scale == pytest.approx(TRUE_SCALE, rel=0.01)
    assert 0.4 < fit.inlier_fraction < 0.9


def test_pitch_prior_narrows_the_tolerance():
    """A camera pitched 40 deg down: outside the default 35 deg tolerance around level, inside
    a 10 deg tolerance around the configured 40 deg prior."""
    metric, K = scene(1.5, 40.0, wall=None)
    level = fit_ground_plane(relative(metric), K, GroundPlaneConfig(camera_height_m=1.5))
    assert level.scale is None and level.code == "normal_far_from_up", level
    prior = GroundPlaneConfig(camera_height_m=1.5, pitch_deg=40.0, max_normal_angle_deg=10.0)
    fit = fit_ground_plane(relative(metric), K, prior)
    assert fit.code == "ok" and fit.scale == pytest.approx(TRUE_SCALE, rel=0.01)
    assert fit.normal_angle_deg < 0.5


def test_camera_looking_at_a_wall_falls_back():
    metric, K = scene(1.0, 0.0, wall=0.6)  # every lower-half ray meets the wall first
    fit = fit_ground_plane(relative(metric), K, GroundPlaneConfig(camera_height_m=1.0))
    assert fit.scale is None
    assert fit.code == "normal_far_from_up"
    assert fit.reason.startswith("no floor in view")
    assert fit.normal_angle_deg == pytest.approx(90.0, abs=1.0)
    assert fit.inlier_fraction > 0.9  # the wall is a good plane, just not the floor
    assert "from the pitch prior of 0 deg)" in fit.reason
    measured = fit_ground_plane(relative(metric), K, GroundPlaneConfig(), 1.0, expected_up(0, 0))
    assert measured.code == "normal_far_from_up" and "pitch prior" not in measured.reason
    assert measured.reason.endswith("from this frame's measured up (IMU or vertical lines))")


def test_floor_hidden_by_invalid_depth_falls_back():
    """The lower half of the image has no depth (a bumper, a glare, the node's NaN)."""
    metric, K = scene(1.0, 10.0)
    rel = relative(metric)
    rel[SIZE[0] // 2 :] = np.nan
    fit = fit_ground_plane(rel, K, GroundPlaneConfig(camera_height_m=1.0))
    assert fit.scale is None and fit.code == "no_floor"
    assert "0 valid points below the camera" in fit.reason


def test_floor_occluded_by_clutter_falls_back():
    """Fronto-parallel boxes at 24 different depths tile the lower image: no plane holds 30 %."""
    metric, K = scene(1.0, 10.0)
    _, rays = camera()
    h, w = SIZE
    for i, (r0, c0) in enumerate((r, c) for r in range(h // 2, h, 15) for c in range(0, w, 27)):
        face = hit(rays, np.array([0.0, 0.0, 1.0]), 0.5 + 0.13 * i)
        metric[r0 : r0 + 15, c0 : c0 + 27] = face[r0 : r0 + 15, c0 : c0 + 27]
    fit = fit_ground_plane(relative(metric), K, GroundPlaneConfig(camera_height_m=1.0))
    assert fit.scale is None
    assert fit.code == "few_inliers", fit.reason
    assert fit.inlier_fraction < 0.3


def test_steep_ramp_is_not_the_floor():
    metric, K = scene(1.0, 10.0, wall=None, ramp_deg=55.0)
    fit = fit_ground_plane(relative(metric), K, GroundPlaneConfig(camera_height_m=1.0))
    assert fit.scale is None and fit.code == "normal_far_from_up", fit.reason
    assert fit.normal_angle_deg == pytest.approx(math.hypot(55.0 + 10.0, 0.0), abs=2.0)
    gentle, K = scene(1.0, 10.0, wall=None, ramp_deg=5.0)  # inside the tolerance: accepted
    assert fit_ground_plane(relative(gentle), K, GroundPlaneConfig(camera_height_m=1.0)).scale


def test_noisy_floor_has_too_few_inliers():
    metric, K = scene(1.0, 15.0)
    rng = np.random.default_rng(0)
    rel = relative(metric) * rng.lognormal(0.0, 0.5, metric.shape).astype(np.float32)
    fit = fit_ground_plane(rel, K, GroundPlaneConfig(camera_height_m=1.0))
    assert fit.scale is None and fit.code == "few_inliers", fit.reason
    assert "< 30%" in fit.reason


def test_absurd_scale_is_refused():
    """Depth in micro-units (a unit mix-up): scale 7.3e6 m per unit is outside the range."""
    metric, K = scene(1.0, 15.0)
    fit = fit_ground_plane((metric * 1e6 / TRUE_SCALE).astype(np.float32), K, GroundPlaneConfig())
    assert fit.scale is None and fit.code == "scale_out_of_range"
    assert "implausible scale" in fit.reason and fit.inlier_fraction > 0.9
    ok = fit_ground_plane(relative(metric), K, GroundPlaneConfig(scale_range=(1.0, 10.0)))
    assert ok.scale == pytest.approx(TRUE_SCALE, rel=0.01)
    narrow = fit_ground_plane(relative(metric), K, GroundPlaneConfig(scale_range=(1.0, 5.0)))
    assert narrow.code == "scale_out_of_range"


@pytest.mark.parametrize("bad", [0.0, -0.3, float("nan"), float("inf"), "tall", None])
def test_bad_camera_height_is_refused_with_its_value(bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        check_camera_height(bad)
    with pytest.raises(ValueError, match="camera height"):
        GroundPlaneConfig(camera_height_m=bad)
    if bad is not None:  # None means "the configured height"
        metric, K = scene()
        with pytest.raises(ValueError, match="camera height"):  # a runtime override, same check
            fit_ground_plane(relative(metric), K, GroundPlaneConfig(), camera_height_m=bad)


def test_runtime_height_override_scales_the_result():
    metric, K = scene(1.0, 10.0)
    fit = fit_ground_plane(relative(metric), K, GroundPlaneConfig(), camera_height_m=2.0)
    assert fit.scale == pytest.approx(2.0 * TRUE_SCALE, rel=0.01)


def test_bad_config_and_inputs_raise_naming_the_value():
    with pytest.raises(ValueError, match="floor_region"):
        GroundPlaneConfig(floor_region=0.0)
    with pytest.raises(ValueError, match=r"scale_range.*\(5.0, 1.0\)"):
        GroundPlaneConfig(scale_range=(5.0, 1.0))
    with pytest.raises(ValueError, match=r"9 or 12 values\), got 6"):
        projection_p([1.0] * 6)
    with pytest.raises(ValueError, match="HxW"):
        fit_ground_plane(np.ones((4, 4, 3), np.float32), np.eye(3))


def test_expected_up_follows_rep103():
    """Pitch down 25 deg: the renderer's camera (`look_rotation`, world y up) sees world up at
    the same optical-frame vector; roll right-side-down tilts up toward -x."""
    th = math.radians(25.0)
    cam_R = look_rotation(np.array([0.0, -math.sin(th), math.cos(th)]))  # columns: x, y, z
    np.testing.assert_allclose(expected_up(25.0, 0.0), cam_R.T @ [0.0, 1.0, 0.0], atol=1e-12)
    assert expected_up(0.0, 10.0)[0] < 0
    np.testing.assert_allclose(expected_up(0.0, 0.0), [0.0, -1.0, 0.0], atol=1e-12)


def test_smoother_rejects_a_one_frame_jump_and_accepts_a_persistent_one():
    sm = ScaleSmoother(window=5, jump_ratio=1.3, persist=3)
    assert sm.update(4.0).status == "first"
    for s in (4.1, 3.9, 4.0):
        assert sm.update(s).status == "updated"
    one = sm.update(8.0)  # one bad frame
    assert one.status == "held" and one.scale == pytest.approx(4.0)
    assert sm.update(4.05).scale == pytest.approx(4.0)  # and it is forgotten
    applied = [sm.update(s) for s in (8.0, 8.2, 7.9)]  # a real change (new floor, new height)
    assert [a.status for a in applied] == ["held", "held", "jump_accepted"]
    assert [a.scale for a in applied[:2]] == [pytest.approx(4.0)] * 2
    assert applied[2].scale == pytest.approx(8.0)
    assert sm.update(8.1).scale == pytest.approx(8.05)  # median of the new history


def test_smoother_fallback_and_interrupted_jump():
    sm = ScaleSmoother(window=5, jump_ratio=1.3, persist=3)
    sm.update(4.0)
    none = sm.update(None, "no floor in view: ...")
    assert none.scale is None and none.status == "no_fit" and none.detail.startswith("no floor")
    for s in (8.0, 8.0, 20.0, 20.0):  # two jumps to different levels: neither persists
        assert sm.update(s).status == "held"
    assert sm.update(20.0).status == "jump_accepted"
    sm.reset()
    assert sm.update(1.0).status == "first"
    with pytest.raises(ValueError, match="jump_ratio"):
        ScaleSmoother(jump_ratio=1.0)


def test_smoother_forgets_a_scale_the_floor_left_long_ago():
    """Fewer than `persist` frames without a fit: the memory holds (a new level is a jump to
    confirm). `persist` or more in a row: the memory is stale and the next fit starts over."""
    sm = ScaleSmoother(window=1, jump_ratio=1.3, persist=3)
    sm.update(4.0)
    for _ in range(2):
        sm.update(None, "no floor in view")
    assert sm.update(6.0).status == "held"  # two misses: still a jump against 4
    sm.reset()
    sm.update(4.0)
    for _ in range(3):
        assert sm.update(None, "no floor in view").scale is None
    first = sm.update(6.0)
    assert first.status == "first" and first.scale == pytest.approx(6.0)
    assert sm.update(6.1).status == "updated"


def test_stream_follows_the_relative_unit_from_frame_to_frame():
    """DepthART's relative unit is each frame's own: the same metric view comes back divided by
    another factor as the view changes. Here it grows 1.5x per frame (each step a 'jump' for
    the smoother): with `track_units` the scale applied is every frame's own within 1 %; the
    raw-scale smoother holds the first one and is off by the units' drift."""
    metric, K = scene(1.0, 10.0)
    units = [TRUE_SCALE * 1.5**i for i in range(5)]
    tracked = GroundPlaneScale(GroundPlaneConfig(camera_height_m=1.0))
    raw = GroundPlaneScale(GroundPlaneConfig(camera_height_m=1.0, track_units=False))
    for i, u in enumerate(units):
        rel = (metric / u).astype(np.float32)
        _, a = tracked.update(rel, K)
        _, b = raw.update(rel, K)
        assert a.scale == pytest.approx(u, rel=0.01), (i, a)
        assert a.status == ("first" if i == 0 else "updated")
        if 0 < i < 3:  # held until the jump has persisted jump_persist (3) frames
            assert b.status == "held" and b.scale == pytest.approx(units[0], rel=0.01)


def test_units_ratio_and_a_stream_that_changes_size():
    a = np.full((10, 12), 2.0, np.float32)
    b = np.full((10, 12), 4.0, np.float32)
    b[0, :5] = np.nan  # invalid pixels are skipped; outliers do not move the median
    b[1, :5] = 400.0
    assert frame_units_ratio(a, b) == pytest.approx(0.5)
    assert frame_units_ratio(a, b[:5]) is None  # another aspect
    assert frame_units_ratio(a, np.full((20, 24), 8.0, np.float32)) == pytest.approx(0.25)
    assert frame_units_ratio(np.zeros_like(a), b) is None  # nothing valid in both
    metric, K = scene(1.0, 10.0)
    gp = GroundPlaneScale(GroundPlaneConfig(camera_height_m=1.0))
    assert gp.update(relative(metric), K)[1].status == "first"
    half = metric[::2, ::2]  # the camera switched to half its resolution: the memory is kept
    K_half = K.copy()
    K_half[:2] /= 2.0
    _, applied = gp.update(relative(half), K_half)
    assert applied.status == "updated" and applied.scale == pytest.approx(TRUE_SCALE, rel=0.02)
    crop = metric[:, : metric.shape[1] // 2]  # another aspect: the unit change is unknown
    _, applied = gp.update(relative(crop), K)
    assert applied.status == "first"
    with pytest.raises(ValueError, match="units"):
        ScaleSmoother().rescale(float("nan"))


def test_stream_state_and_diagnostics():
    metric, K = scene(0.4, 5.0)
    gp = GroundPlaneScale(GroundPlaneConfig(camera_height_m=0.4))
    fit, applied = gp.update(relative(metric), K)
    assert applied.scale == pytest.approx(TRUE_SCALE, rel=0.01)
    d = diagnostics(fit, applied)
    assert d["frame fit"] == "ok" and "fallback reason" not in d
    assert float(d["scale"]) == pytest.approx(TRUE_SCALE, rel=0.01)
    wall, K = scene(0.4, 0.0, wall=0.5)
    fit, applied = gp.update(relative(wall), K)
    d = diagnostics(fit, applied)
    assert applied.scale is None and d["scale"].startswith("none")
    assert d["fallback reason"].startswith("no floor in view")


def test_floor_beside_a_near_wall_is_not_cut_at_the_corner():
    """A mast camera (2 m, 25 deg down) facing a wall 2.5 m ahead: floor and wall share the
    lower image (the floor 60 % of it), and a slab through their corner also holds many points
    within the threshold; the refit must not drift from the floor toward it. (With the wall at
    2.0 m, a third of the points on the floor, the corner slab costs less than the floor at the
    default 6 % threshold and wins: a known limit, scale off by 22 %.)"""
    metric, K = scene(2.0, 25.0, wall=2.5)
    cfg = GroundPlaneConfig(camera_height_m=2.0, pitch_deg=25.0)
    fit = fit_ground_plane(relative(metric), K, cfg)
    assert fit.code == "ok", fit.reason
    assert fit.scale == pytest.approx(TRUE_SCALE, rel=0.01)
    assert fit.normal_angle_deg < 1.0


def test_prior_normal_measures_the_distance_along_the_prior():
    """normal="prior": exact when the prior is; a prior 3 deg off costs about D/h * 3 deg."""
    metric, K = scene(1.0, 12.0, wall=None)
    exact = GroundPlaneConfig(camera_height_m=1.0, pitch_deg=12.0, normal="prior")
    assert fit_ground_plane(relative(metric), K, exact).scale == pytest.approx(TRUE_SCALE, 1e-3)
    off = dataclasses.replace(exact, pitch_deg=15.0)
    off_fit = fit_ground_plane(relative(metric), K, off)
    fitted = fit_ground_plane(relative(metric), K, dataclasses.replace(off, normal="fit"))
    assert fitted.scale == pytest.approx(TRUE_SCALE, rel=1e-3)  # the fit does not need it
    assert abs(off_fit.scale / TRUE_SCALE - 1.0) > 0.05
    with pytest.raises(ValueError, match="normal must be one of"):
        GroundPlaneConfig(normal="imu")


def test_a_measured_up_replaces_the_prior_for_one_frame():
    """`up_3` (a per-frame gravity, e.g. from an IMU) overrides the configured prior: a prior 4
    deg off with a 2 deg tolerance refuses the floor; the measured up accepts it, and with
    normal="prior" measures the distance along it exactly."""
    metric, K = scene(1.0, 14.0, roll=2.0, wall=None)
    cfg = GroundPlaneConfig(
        camera_height_m=1.0, pitch_deg=10.0, max_normal_angle_deg=2.0, normal="prior"
    )
    refused = fit_ground_plane(relative(metric), K, cfg)
    assert refused.scale is None and refused.code == "normal_far_from_up", refused
    assert "the pitch prior of 10 deg)" in refused.reason  # the up it was measured from
    measured = fit_ground_plane(relative(metric), K, cfg, up_3=expected_up(14.0, 2.0))
    assert measured.code == "ok", measured.reason
    assert measured.scale == pytest.approx(TRUE_SCALE, rel=1e-3)
    assert measured.normal_angle_deg < 0.5
    # the stream passes it through, frame by frame
    fit, applied = GroundPlaneScale(cfg).update(relative(metric), K, None, expected_up(14.0, 2.0))
    assert fit == measured and applied.scale == pytest.approx(TRUE_SCALE, rel=1e-3)


def test_an_estimated_up_the_floor_disagrees_with_is_dropped_for_the_prior():
    """`update(..., up_estimated=True)` (the vertical lines' up): a floor fitted more than
    `lines_agree_deg` from it means one of the two is wrong, and the frame is fitted along the
    prior, saying why; an up within it is kept; an IMU's up (not an estimate) is never dropped;
    a frame with no floor stays refused (nothing to disagree with)."""
    metric, K = scene(1.0, 12.0, wall=None)  # the true camera: 12 deg down
    cfg = GroundPlaneConfig(
        camera_height_m=1.0, pitch_deg=12.0, normal="prior", window=1, lines_agree_deg=4.0
    )
    wrong_3, near_3 = expected_up(12.0, 7.0), expected_up(12.0, 2.5)  # 7 / 2.5 deg of roll off
    prior_fit = fit_ground_plane(relative(metric), K, cfg)
    fit, applied = GroundPlaneScale(cfg).update(relative(metric), K, None, wrong_3, True)
    off_deg = math.degrees(math.acos(float(wrong_3 @ expected_up(12.0, 0.0))))  # about 6.8
    said = re.fullmatch(r"the floor is (\d+\.\d) deg from the lines' up > 4", fit.up_dropped)
    assert said and float(said.group(1)) == pytest.approx(off_deg, abs=0.3), fit
    assert dataclasses.replace(fit, up_dropped="") == prior_fit  # fitted along the prior
    assert applied.scale == pytest.approx(TRUE_SCALE, rel=1e-3)
    kept, _ = GroundPlaneScale(cfg).update(relative(metric), K, None, wrong_3)  # an IMU's
    assert kept.up_dropped == "" and kept.normal_angle_deg == pytest.approx(off_deg, abs=0.3)
    assert abs(kept.scale / TRUE_SCALE - 1.0) > 0.002  # measured along the wrong up
    near, _ = GroundPlaneScale(cfg).update(relative(metric), K, None, near_3, True)
    assert near.up_dropped == "" and 2.0 < near.normal_angle_deg < 4.0
    loose = dataclasses.replace(cfg, lines_agree_deg=8.0)
    loose_fit, _ = GroundPlaneScale(loose).update(relative(metric), K, None, wrong_3, True)
    assert loose_fit.up_dropped == ""
    wall, Kw = scene(1.0, 0.0, wall=0.6)  # every lower-half ray meets the wall: no floor
    level = dataclasses.replace(cfg, pitch_deg=0.0)
    none, _ = GroundPlaneScale(level).update(relative(wall), Kw, None, expected_up(0.0, 7.0), True)
    assert none.code == "normal_far_from_up" and none.up_dropped == "", none
    off, _ = GroundPlaneScale(dataclasses.replace(cfg, lines_agree_deg=0.0)).update(
        relative(metric), K, None, wrong_3, True
    )
    assert off.up_dropped == "" and GroundPlaneConfig().lines_agree_deg == 0.0  # off by default
    for bad in (-1.0, 90.0, float("nan")):
        with pytest.raises(
            ValueError, match=rf"lines_agree_deg must be in \[0, 90\) \(0 = off\), got {bad!r}"
        ):
            GroundPlaneConfig(lines_agree_deg=bad)


def tilted(metric: np.ndarray, K: np.ndarray, w_3: np.ndarray) -> np.ndarray:
    """The relative depth of a model that misjudges the camera's pitch: its inverse depth off by
    a field linear in the ray, r . w (a plane stays a plane, tilted), times the unknown scale."""
    _, rays = camera()
    with np.errstate(divide="ignore"):
        inv = np.where(metric > 0, 1.0 / metric, np.nan) + rays @ w_3
    return np.where(inv > 0, 1.0 / (TRUE_SCALE * inv), 0.0).astype(np.float32)


def _abs_rel(pred: np.ndarray, metric: np.ndarray) -> float:
    ok = (metric > 0) & np.isfinite(pred) & (pred > 0)
    return float(np.mean(np.abs(pred[ok] - metric[ok]) / metric[ok]))


def test_tilt_straightens_a_floor_the_model_tilted():
    """A model whose scene is tilted (inverse depth + r.w, w across the true up: a pitch it
    misjudged) puts the floor 4 deg off the measured up. Scaling alone leaves the far floor and
    the wall a fraction off; tilt 1 takes the floor's tilt out and gives every pixel its metres
    (exact on the floor, to second order in w elsewhere), tilt 0.5 half way. Without a measured
    up the share is not applied: the prior cannot know this frame's tilt."""
    up = expected_up(10.0, 0.0)
    metric, K = scene(1.0, 10.0, wall=5.0)
    across = np.cross(up, [1.0, 0.0, 0.0])  # in the up/forward plane, perpendicular to up
    rel = tilted(metric, K, 0.07 * across / np.linalg.norm(across))
    base = GroundPlaneConfig(camera_height_m=1.0, pitch_deg=10.0, normal="prior")
    plain = fit_ground_plane(rel, K, base, up_3=up)
    assert plain.code == "ok" and plain.normal_angle_deg > 3.0, plain
    assert plain.tilt_share == 0.0 and plain.tilt_3 == (0.0, 0.0, 0.0)
    scaled = apply_floor_scale(rel, K, plain.scale, plain)
    assert np.array_equal(scaled, rel * np.float32(plain.scale))  # scale only: bit for bit
    err = {0.0: _abs_rel(scaled, metric)}
    for share in (0.5, 1.0):
        fit = fit_ground_plane(rel, K, dataclasses.replace(base, tilt=share), up_3=up)
        assert fit.code == "ok" and fit.tilt_share == pytest.approx(share), fit
        err[share] = _abs_rel(apply_floor_scale(rel, K, fit.scale, fit), metric)
    assert err[0.0] > 0.05, err
    assert err[1.0] < 0.15 * err[0.0], err
    assert err[1.0] < err[0.5] < err[0.0], err
    # exact wherever the factor lies in the range the floor's candidates support; beyond it (the
    # far floor above the searched rows, the wall) the factor is clipped to that range's end
    fit = fit_ground_plane(rel, K, dataclasses.replace(base, tilt=1.0), up_3=up)
    out = apply_floor_scale(rel, K, fit.scale, fit)
    lo, hi = fit.tilt_factor_range
    ok = (metric > 0) & (rel > 0)
    factor = np.where(ok, out / np.where(ok, rel * fit.scale, 1.0), 0.0)
    inside = ok & (factor > lo * (1 + 1e-4)) & (factor < hi * (1 - 1e-4))
    assert inside.mean() > 0.3
    assert np.allclose(out[inside], metric[inside], rtol=2e-3)
    assert _abs_rel(out[ok & ~inside], metric[ok & ~inside]) < 0.3 * err[0.0]
    # no measured up in this frame: the prior's up, and scale only
    prior = fit_ground_plane(rel, K, dataclasses.replace(base, tilt=1.0))
    assert prior.tilt_share == 0.0 and prior.scale == pytest.approx(
        fit_ground_plane(rel, K, base).scale
    )


def test_an_extreme_tilt_is_corrected_only_as_far_as_the_floor_allows():
    """A floor 20 deg off the measured up is the depth failing, not a pitch to undo: the share is
    lowered until no floor point moves by more than 2x, and no pixel's factor leaves the range
    the floor's inliers take (nothing extrapolated to infinity past the corrected horizon)."""
    up = expected_up(10.0, 0.0)
    metric, K = scene(1.0, 10.0, wall=8.0)
    across = np.cross(up, [1.0, 0.0, 0.0])
    rel = tilted(metric, K, 0.45 * across / np.linalg.norm(across))
    cfg = GroundPlaneConfig(
        camera_height_m=1.0, pitch_deg=10.0, normal="prior", tilt=1.0, max_normal_angle_deg=60.0
    )
    fit = fit_ground_plane(rel, K, cfg, up_3=up)
    assert fit.code == "ok" and fit.normal_angle_deg > 15.0, fit
    assert 0.0 < fit.tilt_share < 1.0, fit
    lo, hi = fit.tilt_factor_range
    assert 0.5 - 1e-6 <= lo <= hi <= 2.0 + 1e-6 and (lo < 0.51 or hi > 1.99), fit
    out = apply_floor_scale(rel, K, fit.scale, fit)
    ok = rel > 0
    factor = out[ok] / (rel[ok] * fit.scale)
    assert np.isfinite(out[ok]).all()
    assert factor.min() >= lo * (1 - 1e-5) and factor.max() <= hi * (1 + 1e-5)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_a_bad_tilt_share_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match="tilt must be a share in"):
        GroundPlaneConfig(normal="prior", tilt=bad)
    with pytest.raises(ValueError, match="needs normal 'prior', got 'fit'"):
        GroundPlaneConfig(tilt=0.5)


@pytest.mark.parametrize(
    "bad, match",
    [((0.0, -1.0), "3 finite numbers"), ((0.0, np.nan, 0.0), "3 finite"), ((0, -9.81, 0), "unit")],
)
def test_a_bad_measured_up_is_refused_naming_it(bad, match):
    with pytest.raises(ValueError, match=match):
        check_up(bad)
    metric, K = scene(1.0, 0.0)
    with pytest.raises(ValueError, match=match):
        fit_ground_plane(relative(metric), K, GroundPlaneConfig(), up_3=np.asarray(bad, float))
    assert np.allclose(check_up((0.0, -1.02, 0.0)), (0.0, -1.0, 0.0))


def _q(axis: str, deg: float) -> tuple[float, float, float, float]:
    """The unit quaternion (x, y, z, w) of a rotation by `deg` about a body axis."""
    h = math.radians(deg) / 2
    v = {"x": (1, 0, 0), "y": (0, 1, 0), "z": (0, 0, 1)}[axis]
    return (v[0] * math.sin(h), v[1] * math.sin(h), v[2] * math.sin(h), math.cos(h))


def _mul(a, b):
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return (
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    )


def test_imu_attitude_gives_the_up_in_the_optical_frame():
    """REP 103/145: a level IMU gives the mount's up; pitching the body nose down (about y) adds
    to the mount's pitch, rolling it right side down (about x) is a roll; the heading is
    irrelevant."""
    rot = optical_from_body(12.0, -4.0)
    assert np.allclose(rot @ rot.T, np.eye(3)) and np.linalg.det(rot) == pytest.approx(1.0)
    assert np.allclose(imu_up((0, 0, 0, 1), 12.0, -4.0), expected_up(12.0, -4.0))
    for yaw in (0.0, 75.0, -160.0):
        q = _mul(_q("z", yaw), _q("y", 3.0))
        assert np.allclose(imu_up(q, 10.0), expected_up(13.0, 0.0))
    assert np.allclose(imu_up(_q("x", 5.0)), expected_up(0.0, 5.0))
    assert np.allclose(imu_up(np.array(_q("y", 3.0)) * 1.2, 10.0), expected_up(13.0, 0.0))


@pytest.mark.parametrize("bad", [(0, 0, 0, 0), (0, 0, 0, float("nan")), (0, 0, 1), (0, 0, 0, 3)])
def test_a_bad_imu_orientation_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match="unit quaternion"):
        imu_up(bad)


def test_frame_up_says_where_the_up_came_from():
    up, source = frame_up(_q("y", 3.0), 10.0, 0.0, 0.05)
    assert source == "imu" and np.allclose(up, expected_up(13.0, 0.0))
    assert frame_up(None, 10.0, 0.0, 0.05) == (None, "prior (no imu within 0.05 s)")
    up, source = frame_up((0.0, 0.0, 0.0, 0.0), 10.0, 0.0, 0.05)
    assert up is None and source.startswith("prior (IMU orientation must be a unit quaternion")


def test_rig_rooms_keep_their_seeds_and_every_seed_that_fits_is_taken(monkeypatch):
    """The ground-plane rigs' rooms draw from seed x 100000 + height cm x 100 + sequence (the
    BENCHMARKS figures' bags): unchanged; the seed is checked as given, up to the largest whose
    rooms' seeds fit the generator's (below 2**32), not as the derived number."""
    from depthart_core.data.synthetic.render import MAX_SEED
    from depthart_core.evaluation import ground_plane as gp

    seen = []
    monkeypatch.setattr(gp, "sequence_scenes", lambda seed, *a: seen.append(seed) or [])
    gp.rig_scenes(gp.RigEval.named("mast", sequences=3, frames=1, seed=7), 2)
    gp.rig_scenes(gp.RigEval.named("wheeled", frames=1, seed=0), 0)
    assert seen == [7 * 100_000 + 200 * 100 + 2, 30 * 100]
    for rig, (height, _) in gp.RIGS.items():
        for sequences in (1, 2):
            top = gp.max_rig_seed(height, sequences)
            assert top == 42949
            assert gp.room_seed(top, height, sequences - 1) <= MAX_SEED
            assert gp.room_seed(top + 1, height, 0) > MAX_SEED
            gp.RigEval.named(rig, sequences=sequences, seed=top)
            for bad in (top + 1, -1, 1.5):
                with pytest.raises(ValueError, match=f"seed {bad!r} with a rig .* 0 to {top}"):
                    gp.RigEval.named(rig, sequences=sequences, seed=bad)
