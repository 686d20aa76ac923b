"""depthart_core.metric_scale: robust relative -> metric alignment from sparse cues."""

from __future__ import annotations

import numpy as np
import pytest

from depthart_core.metric_scale import StampMatcher, fit_metric_scale, resample_sparse

RNG = np.random.default_rng(0)


def _scene(n_points: int, outlier_frac: float = 0.0, shape=(60, 80)):
    rel = RNG.uniform(0.1, 1.0, size=shape).astype(np.float32)
    sparse = np.full(shape, np.nan, np.float32)
    flat = RNG.choice(rel.size, size=n_points, replace=False)
    ys, xs = np.unravel_index(flat, shape)
    n_out = int(outlier_frac * n_points)
    return rel, sparse, ys, xs, n_out


def test_median_ratio_scale_is_exact_without_noise() -> None:
    rel, sparse, ys, xs, _ = _scene(300)
    sparse[ys, xs] = 3.0 * rel[ys, xs]
    fit, reason = fit_metric_scale(rel, sparse, "scale", min_points=20)
    assert reason == "ok" and fit is not None
    assert fit.scale == pytest.approx(3.0, rel=1e-6) and fit.shift == 0.0
    assert fit.n_points == 300 and fit.abs_rel < 1e-6
    np.testing.assert_allclose(fit.apply(rel), 3.0 * rel, rtol=1e-6)


def test_scale_ignores_outliers() -> None:
    rel, sparse, ys, xs, n_out = _scene(400, outlier_frac=0.25)
    sparse[ys, xs] = 2.0 * rel[ys, xs] * RNG.normal(1.0, 0.01, size=ys.size)
    sparse[ys[:n_out], xs[:n_out]] *= 5.0  # a quarter of the points are 5x too far
    fit, _ = fit_metric_scale(rel, sparse, "scale")
    assert fit is not None and fit.scale == pytest.approx(2.0, rel=0.01)
    assert fit.n_inliers <= 400 - n_out + 5
    mean_ratio = np.nanmean(sparse / rel)  # what a non-robust fit would give
    assert abs(mean_ratio - 2.0) > 0.5


def test_scale_and_shift_with_outliers() -> None:
    rel, sparse, ys, xs, n_out = _scene(500, outlier_frac=0.15)
    sparse[ys, xs] = 1.5 * rel[ys, xs] + 0.8
    sparse[ys[:n_out], xs[:n_out]] = RNG.uniform(0.1, 20.0, size=n_out)
    fit, reason = fit_metric_scale(rel, sparse, "scale_shift")
    assert reason == "ok" and fit is not None
    assert fit.scale == pytest.approx(1.5, rel=1e-3) and fit.shift == pytest.approx(0.8, abs=1e-3)
    scale_only, _ = fit_metric_scale(rel, sparse, "scale")  # cannot represent the offset
    assert abs(scale_only.scale * 0.55 - (1.5 * 0.55 + 0.8)) > 0.05


def test_too_few_points_returns_none_with_reason() -> None:
    rel, sparse, ys, xs, _ = _scene(5)
    sparse[ys, xs] = rel[ys, xs]
    fit, reason = fit_metric_scale(rel, sparse, "scale", min_points=20)
    assert fit is None and "too few" in reason and "5" in reason
    # invalid cues do not count: NaN, zero, negative, and pixels where relative is invalid
    rel2, sparse2, ys, xs, _ = _scene(30)
    sparse2[ys, xs] = 1.0
    sparse2[ys[:15], xs[:15]] = 0.0
    rel2[ys[15:20], xs[15:20]] = np.nan
    fit, reason = fit_metric_scale(rel2, sparse2, "scale", min_points=12)
    assert fit is None and "10 < min_points 12" in reason


def test_degenerate_fits_are_refused() -> None:
    rel = np.full((10, 10), 0.5, np.float32)
    sparse = np.full((10, 10), 2.0, np.float32)
    fit, reason = fit_metric_scale(rel, sparse, "scale_shift")
    assert fit is None and "constant" in reason
    rel = RNG.uniform(0.1, 1.0, (10, 10)).astype(np.float32)
    fit, reason = fit_metric_scale(rel, 5.0 - 3.0 * rel, "scale_shift")  # inverted relation
    assert fit is None and "not usable" in reason
    with pytest.raises(ValueError, match="affine"):
        fit_metric_scale(rel, rel, "affine")
    with pytest.raises(ValueError, match=r"\(10, 10\).*\(5, 5\)"):
        fit_metric_scale(rel, rel[:5, :5], "scale")


def test_apply_marks_non_positive_as_invalid() -> None:
    rel, sparse, ys, xs, _ = _scene(100)
    sparse[ys, xs] = 2.0 * rel[ys, xs] - 0.5
    fit, _ = fit_metric_scale(rel, sparse, "scale_shift")
    out = fit.apply(np.array([0.1, 0.5, np.nan], np.float32))
    assert np.isnan(out[0]) and out[1] == pytest.approx(0.5, rel=1e-4) and np.isnan(out[2])


def test_resample_sparse_moves_points_without_interpolating() -> None:
    sparse = np.full((4, 6), np.nan, np.float32)
    sparse[0, 0], sparse[3, 5], sparse[2, 1] = 1.0, 2.0, 3.0
    up = resample_sparse(sparse, (8, 12))
    assert np.isfinite(up).sum() == 3
    # each point lands on the pixel that contains its centre: floor((y + 0.5) * 2)
    assert up[1, 1] == 1.0 and up[7, 11] == 2.0 and up[5, 3] == 3.0
    down = resample_sparse(sparse, (2, 3))
    assert set(down[np.isfinite(down)].tolist()) <= {1.0, 2.0, 3.0}


def test_stamp_matcher_nearest_within_tolerance() -> None:
    m = StampMatcher(maxlen=3)
    for t in (100, 200, 300, 400):
        m.add(t, f"cue{t}")
    assert len(m) == 3  # the oldest (100) fell out
    assert m.nearest(290, tolerance_ns=20) == "cue300"
    assert m.nearest(250, tolerance_ns=49) is None
    assert m.nearest(110, tolerance_ns=20) is None
    assert StampMatcher().nearest(0, 10**9) is None
