"""depthart_core.pointcloud: rays, back-projection, invalid pixels, colour packing, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from depthart_core import pointcloud
from depthart_core.pointcloud import (
    POINT_DTYPE,
    POINT_FIELDS,
    POINT_STEP,
    depth_to_points,
    pinhole_p,
    pixel_rays,
    write_ply,
)

H, W = 48, 64
K = [70.0, 0.0, 31.2, 0.0, 65.0, 24.7, 0.0, 0.0, 1.0]
P = [70.0, 0.0, 31.2, 0.0, 0.0, 65.0, 24.7, 0.0, 0.0, 0.0, 1.0, 0.0]


def _plane_depth(rays_hw2: np.ndarray, n: np.ndarray, d: float) -> np.ndarray:
    """Depth along z of the plane n . X = d seen through each ray (x', y', 1)."""
    return (d / (rays_hw2[..., 0] * n[0] + rays_hw2[..., 1] * n[1] + n[2])).astype(np.float32)


def test_rectified_points_lie_on_the_plane_they_came_from() -> None:
    u, v = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    rays = np.stack([(u - P[2]) / P[0], (v - P[6]) / P[5]], axis=-1)  # written out, not the code's
    n, d = np.array([0.1, -0.3, 1.0]), 2.5
    depth = _plane_depth(rays, n, d)
    cloud = depth_to_points(depth, pixel_rays(H, W, K, P), 1)
    xyz = np.stack([cloud["x"], cloud["y"], cloud["z"]], axis=-1).astype(np.float64)
    np.testing.assert_allclose(xyz @ n, d, rtol=1e-5)
    np.testing.assert_allclose(cloud["z"], depth)
    assert cloud["x"][0, 0] < 0 < cloud["x"][0, -1] and cloud["y"][0, 0] < 0 < cloud["y"][-1, 0]


def test_rectified_ignores_the_stereo_baseline_and_distortion() -> None:
    p_right = list(P)
    p_right[3] = -70.0 * 0.12  # Tx = -fx * B of a right camera
    a = pixel_rays(H, W, K, P)
    b = pixel_rays(H, W, K, p_right, d=[0.2, -0.1, 0, 0, 0], distortion_model="plumb_bob")
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "model, d",
    [
        ("plumb_bob", [-0.28, 0.09, 0.001, -0.0005, -0.01]),
        ("rational_polynomial", [0.3, -0.1, 0.001, 0.002, 0.01, 0.6, -0.05, 0.02]),
        ("equidistant", [0.05, -0.02, 0.004, -0.001]),
    ],
)
def test_raw_rays_reproject_onto_their_pixels(model: str, d: list[float]) -> None:
    """Undistorted rays, projected again through K and D by OpenCV, land on their own pixels."""
    rays = pixel_rays(H, W, K, P, d=d, distortion_model=model, stride=3, image="raw")
    assert rays.shape == (16, 22, 2)
    obj = np.concatenate([rays.reshape(-1, 2), np.ones((rays[..., 0].size, 1))], axis=1)
    Km, Dm = np.asarray(K).reshape(3, 3), np.asarray(d, dtype=np.float64)
    if model == "equidistant":
        px, _ = cv2.fisheye.projectPoints(obj[:, None, :], np.zeros(3), np.zeros(3), Km, Dm)
    else:
        px, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), Km, Dm)
    v, u = np.mgrid[0:H:3, 0:W:3]
    np.testing.assert_allclose(px.reshape(16, 22, 2), np.stack([u, v], axis=-1), atol=1e-2)
    plain = pixel_rays(H, W, K, P, d=[0.0] * 5, distortion_model=model, stride=3, image="raw")
    assert np.abs(rays - plain).max() > 0.01  # the distortion did change the rays


def _reprojected(rays: np.ndarray, k: list[float], d: list[float], model: str) -> np.ndarray:
    obj = np.concatenate([rays.reshape(-1, 2), np.ones((rays[..., 0].size, 1))], axis=1)
    obj = np.nan_to_num(obj.astype(np.float64))
    Km, Dm = np.asarray(k).reshape(3, 3), np.asarray(d, dtype=np.float64)
    if model == "equidistant":
        px, _ = cv2.fisheye.projectPoints(obj[:, None, :], np.zeros(3), np.zeros(3), Km, Dm)
    else:
        px, _ = cv2.projectPoints(obj, np.zeros(3), np.zeros(3), Km, Dm)
    return px.reshape(*rays.shape[:2], 2)


@pytest.mark.parametrize(
    "h, w, k, d, model",
    [  # a RealSense T265 fisheye: its corners lie past 90 degrees, outside the image circle
        (800, 848, [285.7, 0, 418.6, 0, 285.9, 401.6, 0, 0, 1],
         [-0.0061, 0.0433, -0.0407, 0.0076], "equidistant"),
        # a strong barrel lens whose radial polynomial folds back before the corners
        (480, 640, [380.0, 0, 320, 0, 380, 240, 0, 0, 1],
         [-0.32, 0.11, 0, 0, -0.018], "plumb_bob"),
    ],
)  # fmt: skip
def test_raw_pixels_no_ray_reaches_are_nan_not_mirrored(h, w, k, d, model) -> None:
    """Past the lens model's domain OpenCV's undistortion answers with another pixel's ray (a
    mirrored one for the fisheye's corners): those pixels get NaN, every other ray still lands on
    its own pixel, and no ray is past the fold where a farther ray lands nearer the centre."""
    s = 4
    rays = pixel_rays(h, w, k, [0.0] * 12, d=d, distortion_model=model, stride=s, image="raw")
    v, u = np.mgrid[0:h:s, 0:w:s]
    bad = np.isnan(rays[..., 0])
    assert (bad == np.isnan(rays[..., 1])).all()
    assert bad[0, 0] and bad[-1, -1] and not bad[bad.shape[0] // 2, bad.shape[1] // 2]
    assert 0.005 < bad.mean() < 0.3
    err = np.hypot(
        *(_reprojected(rays, k, d, model) - np.stack([u, v], axis=-1)).transpose(2, 0, 1)
    )
    assert err[~bad].max() < 0.5
    cx, cy = k[2], k[5]  # every ray points to its own side of the centre
    assert (np.sign(rays[..., 0][~bad]) == np.sign(u - cx)[~bad]).all()
    assert (np.sign(rays[..., 1][~bad]) == np.sign(v - cy)[~bad]).all()
    r = np.hypot(rays[..., 0], rays[..., 1])[~bad].astype(np.float64)
    if model == "equidistant":  # atan(r) < 90 degrees always; theta_d must still grow with it
        th = np.arctan(r)
        kk = np.asarray(d)
        slope = 1 + sum((2 * i + 3) * kk[i] * th ** (2 * i + 2) for i in range(4))
    else:
        k1, k2, _, _, k3 = d
        slope = 1 + 3 * k1 * r**2 + 5 * k2 * r**4 + 7 * k3 * r**6
    assert slope.min() > 0


@pytest.mark.parametrize("f, d", [(250.0, (-0.3, 0.08, 0, 0, 0)), (280.0, (-0.25, 0.05, 0, 0, 0))])
def test_a_strong_barrel_that_never_folds_has_a_ray_for_every_pixel(f, d) -> None:
    """1 + 3 k1 r^2 + 5 k2 r^4 has no root here: every pixel has its ray. The solver stopped
    short at 40 iterations and the reprojection check then gave thousands of corner pixels NaN."""
    k = [f, 0.0, 319.5, 0.0, f, 239.5, 0.0, 0.0, 1.0]
    rays = pixel_rays(480, 640, k, [0.0] * 12, d=d, distortion_model="plumb_bob", image="raw")
    assert not np.isnan(rays).any()


def _radial_fixed_point(pts, k, d, iterations: int) -> np.ndarray:
    """OpenCV's undistortion of a radial-only D stopped after `iterations` fixed-point steps (0:
    the distorted normalised coordinates themselves): what OpenCV 4.8-4.12 answer at a strong
    barrel's corners, where their iteration does not converge."""
    km = np.asarray(k, dtype=np.float64).reshape(3, 3)
    k1, k2, _, _, k3 = (list(d) + [0.0] * 5)[:5]
    xy_d = (pts.reshape(-1, 2) - km[:2, 2]) / np.diag(km)[:2]
    xy = xy_d.copy()
    for _ in range(iterations):
        r2 = (xy**2).sum(axis=1, keepdims=True)
        xy = xy_d / (1 + k1 * r2 + k2 * r2**2 + k3 * r2**3)
    return xy.reshape(-1, 1, 2)


@pytest.fixture
def short_solver(monkeypatch, request):
    """OpenCV's iterative undistortion (4.x's undistortPointsIter, or 5's undistortPoints with
    criteria) replaced by one that stops short; the ray cache cleared before and after."""
    branch, iterations = request.param

    def short(src, camera_matrix, dist_coeffs, *_args, **_kwargs):
        return _radial_fixed_point(np.asarray(src), camera_matrix, dist_coeffs, iterations)

    if branch == "installed":  # OpenCV as it is
        pass
    elif branch == "opencv4":
        monkeypatch.setattr(cv2, "undistortPointsIter", short, raising=False)
    else:
        monkeypatch.delattr(cv2, "undistortPointsIter", raising=False)
        monkeypatch.setattr(cv2, "undistortPoints", short)
    pointcloud._rays.cache_clear()
    yield
    pointcloud._rays.cache_clear()


def _radial_rays(h, w, k, d, s) -> np.ndarray:
    """The exact rays (of every s-th pixel) of a radial-only D that never folds, by bisection on
    r (1 + k1 r^2 + k2 r^4 + k3 r^6) = r_d."""
    k1, k2, _, _, k3 = d
    v, u = np.mgrid[0:h:s, 0:w:s].astype(np.float64)
    xd, yd = (u - k[2]) / k[0], (v - k[5]) / k[4]
    rd = np.hypot(xd, yd)
    lo, hi = np.zeros_like(rd), 2 * rd + 1
    for _ in range(80):
        mid = (lo + hi) / 2
        below = mid * (1 + k1 * mid**2 + k2 * mid**4 + k3 * mid**6) < rd
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    scale = np.divide(lo, rd, out=np.ones_like(rd), where=rd > 0)
    return np.stack([xd * scale, yd * scale], axis=-1)


@pytest.mark.parametrize(
    "short_solver",
    [("opencv4", 0), ("opencv4", 2), ("opencv5", 0), ("opencv5", 2)],
    indirect=True,
)
def test_rays_opencv_left_short_are_refined_not_nan(short_solver) -> None:
    """OpenCV 4.8-4.12 (and Ubuntu's python3-opencv) stop short of a strong barrel's corner
    rays; the reprojection check then gave ~31,000 of them NaN, and the point clouds of a
    wide-angle camera lost their corners. Newton steps on the model's projection find them."""
    k = [250.0, 0.0, 319.5, 0.0, 250.0, 239.5, 0.0, 0.0, 1.0]
    d = (-0.3, 0.08, 0.0, 0.0, 0.0)
    h, w, s = 480, 640, 3  # the last row and column are 477 and 639
    rays = pixel_rays(h, w, k, [0.0] * 12, d=d, distortion_model="plumb_bob", stride=s, image="raw")
    corners = rays[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert not np.isnan(corners).any(), corners
    assert not np.isnan(rays).any()
    np.testing.assert_allclose(rays, _radial_rays(h, w, k, d, s), atol=1e-4)


@pytest.mark.parametrize("short_solver", [("opencv4", 0), ("opencv5", 2)], indirect=True)
def test_refined_rays_still_stop_at_the_fold(short_solver) -> None:
    """Refining a short answer finds no ray past the fold of the radial curve: those pixels
    (the corners here) stay NaN, and every other ray lands on its own pixel."""
    h, w, s = 480, 640, 4
    k, d = [380.0, 0, 320, 0, 380, 240, 0, 0, 1], [-0.32, 0.11, 0, 0, -0.018]
    rays = pixel_rays(h, w, k, [0.0] * 12, d=d, distortion_model="plumb_bob", stride=s, image="raw")
    bad = np.isnan(rays[..., 0])
    assert bad[0, 0] and bad[-1, -1] and not bad[bad.shape[0] // 2, bad.shape[1] // 2]
    assert 0.005 < bad.mean() < 0.3
    v, u = np.mgrid[0:h:s, 0:w:s]
    err = np.hypot(
        *(_reprojected(rays, k, d, "plumb_bob") - np.stack([u, v], -1)).transpose(2, 0, 1)
    )
    assert err[~bad].max() < 0.5
    r = np.hypot(rays[..., 0], rays[..., 1])[~bad].astype(np.float64)
    assert (1 - 0.96 * r**2 + 0.55 * r**4 - 0.126 * r**6).min() > 0  # d(r_d)/dr: inside the fold


@pytest.mark.parametrize(
    "short_solver", [("installed", 0), ("opencv4", 0), ("opencv5", 2)], indirect=True
)
def test_pixels_past_the_fold_get_no_mirrored_ray(short_solver) -> None:
    """r_d(r) = r (1 - 0.45 r^2 + 0.25 r^4 - 0.08 r^6) peaks at r = 1.19 (r_d = 0.758), inside
    the image corners. Newton steps started from the pixel ran past that peak to where r_d < 0
    and gave 5594 corner pixels rays mirrored through the centre (pixel (5, 0) [1.585, 0.899],
    down and to the right): past the image circle every pixel is NaN, and every finite ray is
    inside the fold, on its own side of the centre and lands on its own pixel."""
    h, w, f, s = 720, 1280, 600.0, 5
    k = [f, 0.0, 640.0, 0.0, f, 360.0, 0.0, 0.0, 1.0]
    d = [-0.45, 0.25, 0.0, 0.0, -0.08]
    rays = pixel_rays(h, w, k, [0.0] * 12, d=d, distortion_model="plumb_bob", stride=s, image="raw")
    bad = np.isnan(rays[..., 0])
    assert (bad == np.isnan(rays[..., 1])).all()
    assert bad[[0, 0, -1, -1, 0], [0, -1, 0, -1, 1]].all(), rays[0, :2]  # (5, 0): rays[0, 1]
    v, u = np.mgrid[0:h:s, 0:w:s].astype(np.float64)
    px = _reprojected(rays, k, d, "plumb_bob")
    mirrored = np.sum((px - [640.0, 360.0]) * rays, axis=-1) <= 0
    assert not (mirrored & ~bad & (np.hypot(u - 640, v - 360) > 1)).any()
    err = np.hypot(*(px - np.stack([u, v], axis=-1)).transpose(2, 0, 1))
    assert err[~bad].max() < 0.5
    r = np.hypot(rays[..., 0], rays[..., 1])[~bad].astype(np.float64)
    assert (1 - 1.35 * r**2 + 1.25 * r**4 - 0.56 * r**6).min() > 0  # d(r_d)/dr: inside the fold
    rho = np.hypot(u - 640, v - 360) / f  # distorted radius; the curve's image circle is 0.758
    assert bad[rho > 0.76].all() and not bad[rho < 0.75].any()


def test_rays_next_to_a_pole_of_the_denominator_are_found() -> None:
    """This rational_polynomial's denominator 1 + k4 r^2 + k5 r^4 + k6 r^6 reaches 0 at r = 0.655,
    just outside the image; the curve grows over the whole image (its rays reach r = 0.449).
    OpenCV answered a third of the pixels with rays past the pole; shortened to just inside it
    they land ~1e16 px away, no Newton step moved them, and 33.7 % of the rays were NaN. Steps
    from the ray of the radial curve in the pixel's direction find every one of them."""
    h, w, s = 480, 640, 4
    k = [394.055, 0.0, 327.745, 0.0, 394.663, 255.509, 0.0, 0.0, 1.0]
    d = [1.4002, -0.5525, -0.0006, 0.001, 2.2302, -2.1718, -0.4546, 0.2095]
    m = "rational_polynomial"
    rays = pixel_rays(h, w, k, [0.0] * 12, d=d, distortion_model=m, stride=s, image="raw")
    bad = np.isnan(rays[..., 0])
    assert (bad == np.isnan(rays[..., 1])).all()
    assert bad.mean() < 0.05, f"{100 * bad.mean():.1f} % of the rays are NaN"
    v, u = np.mgrid[0:h:s, 0:w:s]
    err = np.hypot(*(_reprojected(rays, k, d, m) - np.stack([u, v], -1)).transpose(2, 0, 1))
    assert err[~bad].max() < 0.5
    cx, cy = k[2], k[5]  # every ray points to its own side of the centre
    assert (np.sign(rays[..., 0][~bad]) == np.sign(u - cx)[~bad]).all()
    assert (np.sign(rays[..., 1][~bad]) == np.sign(v - cy)[~bad]).all()
    # inside the fold: up to the longest ray the denominator stays positive and r_d(r) grows
    k1, k2, _, _, k3, k4, k5, k6 = d
    r = np.linspace(0.0, np.hypot(rays[..., 0], rays[..., 1])[~bad].max(), 20_001)
    den = 1 + k4 * r**2 + k5 * r**4 + k6 * r**6
    assert den.min() > 0
    assert (np.diff(r * (1 + k1 * r**2 + k2 * r**4 + k3 * r**6) / den) > 0).all()


def test_invalid_depth_gives_nan_points_and_the_cloud_stays_organized() -> None:
    depth = np.full((H, W), 3.0, np.float32)
    depth[0, 0], depth[0, 2], depth[2, 0], depth[2, 2] = np.nan, -np.inf, np.inf, 0.0
    cloud = depth_to_points(depth, pixel_rays(H, W, K, P, stride=2), 2)
    assert cloud.shape == (H // 2, W // 2) and cloud.dtype == POINT_DTYPE
    bad = np.isnan(cloud["z"])
    assert bad[0, 0] and bad[0, 1] and bad[1, 0] and bad[1, 1] and bad.sum() == 4
    assert np.isnan(cloud["x"][bad]).all() and np.isnan(cloud["y"][bad]).all()
    assert np.isfinite(cloud["x"][~bad]).all()


def test_colour_is_packed_as_pcl_reads_it() -> None:
    depth = np.ones((H, W), np.float32)
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 128, 1
    cloud = depth_to_points(depth, pixel_rays(H, W, K, P), 1, rgb)
    packed = cloud["rgb"].view(np.uint32)
    assert (packed == 0xFF8001).all()
    raw = cloud.tobytes()
    assert len(raw) == H * W * POINT_STEP
    for name, offset in POINT_FIELDS:  # each field where the PointField says it is
        first = np.frombuffer(raw[offset : offset + 4], "<f4")[0]
        assert first == cloud[name][0, 0] or (np.isnan(first) and np.isnan(cloud[name][0, 0]))


def test_bad_calibrations_and_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="'fisheye'"):
        pixel_rays(H, W, K, P, d=[0.1] * 4, distortion_model="fisheye", image="raw")
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        pixel_rays(H, W, K, P, stride=0)
    with pytest.raises(ValueError, match="'left'"):
        pixel_rays(H, W, K, P, image="left")
    with pytest.raises(ValueError, match="fx=0"):
        pixel_rays(H, W, K, [0.0] * 12)
    for bad in (np.nan, np.inf):  # NaN passed "fx <= 0" and gave NaN rays: "no floor in view"
        with pytest.raises(ValueError, match=f"P focal lengths must be positive and finite.*{bad}"):
            pixel_rays(H, W, K, [bad, *P[1:]])
        with pytest.raises(ValueError, match=f"K focal lengths .*fy={bad}"):
            pixel_rays(H, W, [*K[:4], bad, *K[5:]], P, image="raw")
    with pytest.raises(ValueError, match="P principal point must be finite, got cx=nan"):
        pixel_rays(H, W, K, [P[0], 0.0, np.nan, *P[3:]])
    with pytest.raises(ValueError, match="equidistant D must have 4 values, got 5"):
        pixel_rays(H, W, K, P, d=[0.1] * 5, distortion_model="equidistant", image="raw")
    with pytest.raises(ValueError, match=r"rays are \(48, 64\)"):
        depth_to_points(np.ones((H, W)), pixel_rays(H, W, K, P), 2)


def test_ply_keeps_only_valid_points(tmp_path) -> None:
    depth = np.full((H, W), 2.0, np.float32)
    depth[:10] = np.nan
    rgb = np.full((H, W, 3), (10, 20, 30), np.uint8)
    n = write_ply(tmp_path / "c.ply", depth_to_points(depth, pixel_rays(H, W, K, P), 1, rgb))
    head, body = (tmp_path / "c.ply").read_bytes().split(b"end_header\n", 1)
    assert n == (H - 10) * W and f"element vertex {n}".encode() in head
    rows = np.frombuffer(body, dtype=[("xyz", "<f4", 3), ("c", "u1", 3)])
    assert len(rows) == n and (rows["xyz"][:, 2] == 2.0).all() and (rows["c"] == (10, 20, 30)).all()


def test_pinhole_p_from_a_field_of_view() -> None:
    p = pinhole_p(480, 640, 90.0)
    assert p[0] == pytest.approx(320.0) and p[5] == pytest.approx(320.0)
    assert (p[2], p[6]) == (319.5, 239.5)
    with pytest.raises(ValueError, match="got 0"):
        pinhole_p(480, 640, 0)
