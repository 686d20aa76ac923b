"""The Python API takes its inputs in the units and layouts it documents, or refuses them in one
line naming the bad value: metres not millimetres for a sparse cue, 0 as "no return" in a cue,
uint8 colours for a cloud, calibration matrices as OpenCV returns them, and which frame of a
batch is bad."""

from __future__ import annotations

import numpy as np
import pytest

from depthart_core.metric_scale import fit_metric_scale, resample_sparse
from depthart_core.pointcloud import depth_to_points, pinhole_p, pixel_rays
from depthart_core.runtime.base import Backend

H, W = 48, 64
K = [70.0, 0.0, 31.2, 0.0, 65.0, 24.7, 0.0, 0.0, 1.0]
P = [70.0, 0.0, 31.2, 0.0, 0.0, 65.0, 24.7, 0.0, 0.0, 0.0, 1.0, 0.0]
D = [-0.2, 0.05, 0.001, -0.0005, 0.0]


def _cue(rng: np.random.Generator, shape=(480, 640), n=500) -> np.ndarray:
    """A sparse cue in metres, NaN where there is no return."""
    sparse = np.full(shape, np.nan, np.float32)
    flat = rng.choice(sparse.size, size=n, replace=False)
    sparse.flat[flat] = rng.uniform(0.5, 5.0, n)
    return sparse


def test_resample_sparse_does_not_move_zeros_for_no_return() -> None:
    """A cue that marks "no return" with 0 (image_to_depth, a 16UC1 map in metres) had its
    zeros moved too, and the last pixel landing on an output pixel won: almost always a 0, so
    499 points at 480x640 kept 4 at 48x64 and the fit was refused."""
    rng = np.random.default_rng(0)
    nan_cue = _cue(rng)
    zero_cue = np.nan_to_num(nan_cue, nan=0.0)
    zero_cue[0, 0] = -1.0  # negative: no return either
    want = resample_sparse(nan_cue, (48, 64))
    got = resample_sparse(zero_cue, (48, 64))
    assert np.isfinite(want).sum() > 400
    np.testing.assert_array_equal(got, want)  # NaN where no point landed, as with NaN input
    rel = np.full((48, 64), 0.5, np.float32)
    fit, reason = fit_metric_scale(rel, got)
    assert reason == "ok" and fit.n_points == int(np.isfinite(want).sum())


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.int64])
def test_an_integer_cue_is_refused_as_millimetres(dtype) -> None:
    """A uint16 millimetre map passed as `metric` gave a scale 1000x off with status "ok"."""
    rng = np.random.default_rng(1)
    rel = rng.uniform(0.1, 1.0, (H, W)).astype(np.float32)
    mm = np.zeros((H, W), dtype)
    ys, xs = rng.integers(0, H, 200), rng.integers(0, W, 200)
    mm[ys, xs] = np.round(3000.0 * rel[ys, xs]).astype(dtype)
    want = (
        rf"^metric must be float metres, got dtype {np.dtype(dtype)}: an integer depth is "
        r"millimetres \(REP 118 16UC1\); pass depth / 1000.0 in metres, 0 or NaN where there is "
        r"no return$"
    )
    with pytest.raises(TypeError, match=want):
        fit_metric_scale(rel, mm)
    with pytest.raises(TypeError, match=want.replace("^metric", "^sparse")):
        resample_sparse(mm, (24, 32))
    with pytest.raises(TypeError, match=r"^metric must be float metres .*got dtype bool$"):
        fit_metric_scale(rel, mm > 0)
    fit, reason = fit_metric_scale(rel, mm / 1000.0)  # the conversion the message asks for
    assert reason == "ok" and fit.scale == pytest.approx(3.0, rel=1e-3)


@pytest.mark.parametrize(
    "rgb",
    [
        np.full((H, W, 3), 0.5, np.float32),  # float [0, 1]: packed as black
        np.full((H, W, 3), 300, np.uint16),  # 16 bit: spilled into the byte above red
        np.full((H, W, 3), 5, np.int64),
    ],
    ids=["float32", "uint16", "int64"],
)
def test_cloud_colours_must_be_uint8(rgb) -> None:
    rays = pixel_rays(H, W, [], pinhole_p(H, W, 60.0))
    depth = np.full((H, W), 2.0, np.float32)
    with pytest.raises(
        TypeError, match=rf"^rgb must have dtype uint8 \(0-255 RGB\), got {rgb.dtype}$"
    ):
        depth_to_points(depth, rays, 1, rgb)
    with pytest.raises(TypeError, match=r"^rgb must be a numpy array \(HxWx3 uint8\), got list$"):
        depth_to_points(depth, rays, 1, rgb.tolist())
    with pytest.raises(ValueError, match=r"rgb must be \(48, 64\)x3, got \(48, 32, 3\)"):
        depth_to_points(depth, rays, 1, np.zeros((H, W // 2, 3), np.uint8))
    packed = depth_to_points(depth, rays, 1, np.full((H, W, 3), 200, np.uint8))["rgb"]
    assert (packed.view(np.uint32) == 0xC8C8C8).all()


K33, P34, D15 = np.array(K).reshape(3, 3), np.array(P).reshape(3, 4), np.array(D).reshape(1, 5)


@pytest.mark.parametrize(
    ("k", "p", "d", "image"),
    [
        (K, P34, (), "rectified"),
        (K, P34.tolist(), (), "rectified"),
        (K33, P, D, "raw"),
        (K, P, D15, "raw"),
        (K33.tolist(), P, D15.tolist(), "raw"),
    ],
    ids=["P 3x4", "P nested list", "K 3x3", "D 1x5", "K and D nested lists"],
)
def test_calibration_matrices_are_taken_as_opencv_returns_them(k, p, d, image) -> None:
    """K as 3x3 (cv2.calibrateCamera), D as 1x5, P as 3x4 or a nested list crashed with "only
    0-dimensional arrays can be converted to Python scalars"; they give the flat lists' rays."""
    model = "plumb_bob" if image == "raw" else ""
    want = pixel_rays(H, W, K, P, D if image == "raw" else (), model, image=image)
    np.testing.assert_array_equal(pixel_rays(H, W, k, p, d, model, image=image), want)


def test_a_wrong_calibration_size_still_says_how_many_values_it_had() -> None:
    with pytest.raises(ValueError, match=r"P must have 12 values \(3x4\), got 9"):
        pixel_rays(H, W, K, K33)
    with pytest.raises(ValueError, match=r"K must have 9 values \(3x3\), got 12"):
        pixel_rays(H, W, P34, P, image="raw")


class _Stub(Backend):
    name, image_size = "stub", 16

    def run(self, x_B3SS: np.ndarray) -> np.ndarray:
        return x_B3SS[:, 0].astype(np.float32)


def test_predict_batch_names_the_bad_frame() -> None:
    """A bad frame among ten said "rgb must have dtype uint8 ..." without which one."""
    rgb = np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    frames = [rgb] * 5 + [rgb.astype(np.float32)] + [rgb] * 4
    be = _Stub()
    with pytest.raises(
        TypeError, match=r"^frame 5 must have dtype uint8 \(0-255 RGB\), got float32$"
    ):
        be.predict_batch(frames)
    with pytest.raises(
        ValueError, match=r"^frame 2 must have shape HxWx3 \(RGB\), got \(30, 40\)$"
    ):
        be.predict_batch([rgb, rgb, rgb[..., 0]])
    with pytest.raises(TypeError, match=r"^rgb must have dtype uint8 \(0-255 RGB\), got float32$"):
        be.predict(frames[5])  # a single frame keeps its name
    assert [d.shape for d in be.predict_batch([rgb, rgb])] == [(30, 40), (30, 40)]
