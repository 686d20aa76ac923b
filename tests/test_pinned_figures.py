"""The math behind published figures, pinned to values worked out by hand.

Each test here was written against a realistic wrong formula (a mean for a median, a ratio
upside down, one index off, a threshold doubled) that the rest of the suite let through; the
values in the comments are computed by hand or by plain numpy independent of the code under test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from depthart_core.evaluation.protocols import (
    EIGEN_METRICS,
    PROTOCOLS,
    evaluate_image,
    paper_eval_size,
)
from depthart_core.evaluation.uncertainty_metrics import (
    FRACTIONS,
    SparsificationTally,
    UncertaintyTally,
    calibration_bins,
    random_curve,
    spearman,
)
from depthart_core.metric_scale import (
    LINE_GAIN,
    MAX_RATIO_ERROR,
    MAX_SCALE_FACTOR,
    MIN_SPREAD,
    ScaleFit,
    fit_metric_scale,
    resample_sparse,
)
from depthart_core.model import SamplingConfig
from depthart_core.pointcloud import depth_to_points, pixel_rays, write_ply
from depthart_core.uncertainty import fit_calibration, sample_spread

# --- uncertainty measures (report.md "## Uncertainty", docs figures) -------------------------

E10 = np.arange(1, 11) / 10.0  # errors 0.1 .. 1.0 of a 10-pixel frame
# three frames with the same errors: scored perfectly, backwards, and half right (the five
# smallest in order, the five largest backwards)
SCORES = (E10, E10[::-1], np.r_[E10[:5], E10[5:][::-1]])


def _curve_by_hand(errors: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Mean error left after removing floor(f N) highest-scored pixels (no ties here)."""
    ranked = [e for _, e in sorted(zip(scores, errors, strict=True), key=lambda p: -p[0])]
    out = []
    for f in FRACTIONS:
        k = int(np.floor(f * len(ranked) + 1e-9))
        out.append(sum(ranked[k:]) / (len(ranked) - k))
    return np.array(out)


def _trapezoid(c: np.ndarray) -> float:
    return sum(0.5 * (c[i] + c[i + 1]) * (FRACTIONS[i + 1] - FRACTIONS[i]) for i in range(49))


def test_sparsification_summary_of_three_frames_by_hand() -> None:
    t = SparsificationTally()
    for s in SCORES:
        t.add(E10, s)
    r = t.summary(0.2)
    # at 20 % two pixels go: frame 1 keeps 0.1..0.8 (mean 0.45), frame 2 keeps 0.3..1.0 (0.65),
    # frame 3 drops the pixels scored 1.0 and 0.9, whose errors are 0.6 and 0.7:
    # (5.5 - 1.3) / 8 = 0.525. Mean over frames (1.625 / 3), not the median 0.525.
    assert r["abs_rel"] == pytest.approx(0.55)
    assert r["abs_rel_after"] == pytest.approx(1.625 / 3)  # 0.541667
    assert r["drop"] == pytest.approx(1 - (1.625 / 3) / 0.55)  # 0.0151515
    # rho: +1, -1 and, frame 3, rank differences (0,0,0,0,0,4,2,0,-2,-4): 1 - 6*40/990 = 0.7576;
    # the mean of the frames 0.2525 (the median would be 0.7576, a flipped sign -0.2525)
    assert t.rhos == pytest.approx([1.0, -1.0, 1 - 240 / 990])
    assert r["spearman_per_frame"] == pytest.approx((1 - 240 / 990) / 3)  # 0.252525
    # AUSE on the mean curves, over the random ranking's AUSE (not the other way up)
    curve = np.mean([_curve_by_hand(E10, s) for s in SCORES], axis=0)
    oracle = _curve_by_hand(E10, E10)
    a, a_rand = _trapezoid(curve - oracle), _trapezoid(np.full(50, 0.55) - oracle)
    assert r["ause"] == pytest.approx(a) and r["ause_random"] == pytest.approx(a_rand)
    assert r["ause_ratio"] == pytest.approx(a / a_rand) == pytest.approx(0.70776, abs=1e-5)
    assert r["aurg"] == pytest.approx(_trapezoid(0.55 - curve))


def test_abs_rel_after_is_read_at_the_drop_fraction_itself() -> None:
    # 100 pixels, errors 0.01 .. 1.00 scored by themselves: at 20 % the 20 largest go and
    # 0.01..0.80 stay, mean (80 * 81 / 2) / 100 / 80 = 0.405 (at 22 %: 0.395)
    e = np.arange(1, 101) / 100.0
    t = SparsificationTally()
    t.add(e, e)
    r = t.summary(0.2)
    assert r["abs_rel_after"] == pytest.approx(0.405)
    assert r["drop"] == pytest.approx(1 - 0.405 / 0.505)
    assert t.summary(0.22)["abs_rel_after"] == pytest.approx(0.395)


def test_random_ranking_keeps_the_mean_not_the_median() -> None:
    # removing random pixels leaves the mean in expectation: (0.1 * 3 + 0.9) / 4 = 0.3
    assert random_curve(np.array([0.1, 0.1, 0.1, 0.9]), np.array([0.0, 0.5])).tolist() == (
        pytest.approx([0.3, 0.3])
    )


def test_pooled_spearman_ranks_the_raw_scores_not_the_calibrated_claims() -> None:
    # a calibration flat above 0.5 ties the claims of the five largest scores; the pooled rho is
    # of the raw scores (a perfect ranking, 1.0), not of the tied claims
    t = UncertaintyTally()
    t.add(E10, E10)
    r = t.summary(calibrate=lambda s: np.minimum(s, 0.5), bins=2)
    assert r["spearman_pooled"] == pytest.approx(1.0)
    assert spearman(np.minimum(E10, 0.5), E10) < 0.95  # what ranking the claims would give


def test_a_frame_one_pixel_over_the_per_frame_cap_is_sampled_down() -> None:
    t = UncertaintyTally(pool_per_frame=5)
    t.add(E10[:6], E10[:6])
    t.add(E10[:5], E10[:5])  # at the cap: all of it
    r = t.summary(bins=2)
    assert r["pooled_pixels"] == 10 and r["pooled_of"] == 10


def test_the_reservoir_keeps_each_pixel_with_equal_chance() -> None:
    # pool of one pixel, two one-pixel frames: Algorithm R keeps the second with chance 1 / 2
    # (a slot drawn from 0..2 would give 1 / 3; never replacing the last slot, 0)
    second = 0
    for seed in range(400):
        t = UncertaintyTally(pool_max=1, seed=seed)
        t.add(np.array([1.0]), np.array([1.0]))
        t.add(np.array([2.0]), np.array([2.0]))
        second += int(t._pool[0][0] == 2.0)
    assert 160 < second < 240  # binomial(400, 1/2): 200 +- 10 (1/3 would give 133 +- 9)


def test_the_reservoir_pool_is_a_uniform_sample_of_ten_frames() -> None:
    # ten frames of 50 pixels, a pool of 50: each frame ~10 % of it, in every seed on average
    counts = np.zeros(10)
    for seed in range(20):
        t = UncertaintyTally(pool_max=50, seed=seed)
        for k in range(10):
            t.add(np.full(50, float(k + 1)), np.linspace(0.0, 1.0, 50))
        counts += np.bincount(t._pool[0].astype(int) - 1, minlength=10)
    share = counts / counts.sum()  # 1000 pooled pixels: 100 +- 9 per frame
    assert share.min() > 0.07 and share.max() < 0.13


def test_an_undefined_rho_is_nan_without_a_warning() -> None:
    # a frame with a constant score has no rank correlation: NaN, quietly (not 0 / 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(spearman(np.ones(4), E10[:4]))


def test_as_many_pixels_as_bins_is_one_pixel_per_bin() -> None:
    assert calibration_bins(E10, E10, bins=10) == [(e, e, 1) for e in E10.tolist()]


class _ThreeSamples:
    """A stand-in model: the deterministic decoding is depth 5 everywhere, the k = 3 draws of
    each image are 5 - 2, 5 and 5 + 1."""

    def prefix_and_start(self, x):
        return torch.zeros(x.shape[0], 1), None

    def generate_from_prefix(self, img, sampling, f_start):
        n = img.shape[0]
        if sampling.deterministic:
            return None, torch.zeros(n, 1, 2, 2), None
        offset = torch.tensor([-2.0, 0.0, 1.0]).repeat(n // 3)  # image b's draws adjacent
        return None, offset[:, None, None, None].expand(n, 1, 2, 2).clone(), None

    def decode(self, f):
        return 5.0 + f[:, 0]


def test_sample_spread_is_the_rms_deviation_from_the_deterministic_depth() -> None:
    # sqrt(((-2)^2 + 0^2 + 1^2) / 3) = sqrt(5/3) = 1.291, over the depth 5 (the mean absolute
    # deviation would be 1, the standard deviation of the samples about their own mean 1.53)
    depth, score = sample_spread(_ThreeSamples(), torch.zeros(2, 3, 8, 8), SamplingConfig(), k=3)
    assert torch.all(depth == 5.0)
    assert torch.allclose(score, torch.full((2, 2, 2), (5 / 3) ** 0.5 / 5.0))


def test_calibration_knots_are_bin_means_and_need_two_pixels_per_bin() -> None:
    # two bins of three: scores (1, 2, 3) and (4, 5, 6), mean errors 0.3 / 3 and 1.9 / 3 (the
    # medians would be 0 and 0.4)
    errors = np.array([0.0, 0.0, 0.3, 0.4, 0.4, 1.1])
    cal = fit_calibration("latent", np.arange(1.0, 7.0), errors, bins=2)
    assert cal.scores == pytest.approx((2.0, 5.0))
    assert cal.errors == pytest.approx((0.1, 1.9 / 3))
    fit_calibration("latent", np.arange(1.0, 7.0), errors, bins=3)  # 6 pixels: enough for 3
    with pytest.raises(ValueError, match="needs >= 6 finite pixels, got 5"):
        fit_calibration("latent", np.arange(1.0, 6.0), errors[:5], bins=3)


# --- evaluation protocols (README "evaluation", the paper table) ------------------------------

V44 = np.ones((4, 4), dtype=bool)


def test_metric_protocol_does_not_align() -> None:
    # metres in, metres scored: twice the depth is AbsRel 1.0 (a median scale would make it 0)
    r = evaluate_image(np.full((4, 4), 4.0), np.full((4, 4), 2.0), V44, "metric")
    assert r.metrics["abs_rel"] == pytest.approx(1.0) and (r.scale, r.shift) == (1.0, 0.0)
    assert r.metrics["rmse"] == pytest.approx(2.0) and r.metrics["mae"] == pytest.approx(2.0)


def test_a_negative_prediction_is_floored_before_every_metric_including_mae() -> None:
    # aligned -1 m is floored to 1e-6 m: MAE 2 - 1e-6 (not 3), the map reports the floor
    r = evaluate_image(np.full((4, 4), -1.0), np.full((4, 4), 2.0), V44, "metric")
    assert r.metrics["mae"] == pytest.approx(2.0 - 1e-6) and r.aligned.min() == 1e-6
    with pytest.raises(ValueError, match="lo < hi"):
        evaluate_image(np.full((4, 4), 2.0), np.full((4, 4), 2.0), V44, "metric", (2.0, 2.0))


def test_affine_disparity_fits_in_disparity_space() -> None:
    # 1/p = 0.5/g + 0.1 is affine in disparity: the disparity fit is exact; a depth-space line
    # (np.polyfit, by hand) cannot follow the curve
    g = np.linspace(1.0, 5.0, 16).reshape(4, 4)
    p = 1.0 / (0.5 / g + 0.1)
    assert evaluate_image(p, g, V44, "affine_disparity").metrics["abs_rel"] < 1e-9
    a, b = np.polyfit(p.ravel(), g.ravel(), 1)
    depth_line = float(np.mean(np.abs(a * p + b - g) / g))  # ~0.0655
    got = evaluate_image(p, g, V44, "affine").metrics["abs_rel"]
    assert got == pytest.approx(depth_line, rel=1e-9) and got > 0.06


def test_affine_protocols_report_every_eigen_metric() -> None:
    # Marigold's eval reports AbsRel, SqRel, RMSE, RMSE log, log10, SILog and delta 1..3
    assert EIGEN_METRICS == (
        "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog",
        "delta1", "delta2", "delta3",
    )  # fmt: skip
    for name in ("affine", "affine_disparity", "metric"):
        assert set(PROTOCOLS[name].metrics) == {*EIGEN_METRICS, "mae"}
    # rmse_log of a uniform factor 2: |ln 2|
    r = evaluate_image(np.full((4, 4), 4.0), np.full((4, 4), 2.0), V44, "metric")
    assert r.metrics["rmse_log"] == pytest.approx(np.log(2.0))


def test_paper_eval_size_is_256_except_ibims_at_ground_truth_resolution() -> None:
    assert [paper_eval_size(d) for d in ("eth3d", "tum", "nyuv2")] == [256, 256, 256]
    assert paper_eval_size("ibims1") is None


# --- point cloud PLY (README "pointcloud", the RViz figures) -----------------------------------


def test_ply_vertices_are_x_y_z_in_that_order(tmp_path) -> None:
    # f = 100, principal point (0, 0), depth 2: pixel (u=2, v=1) is x = 2/100*2 = 0.04,
    # y = 1/100*2 = 0.02, z = 2, the last vertex of a 2x3 image
    rays = pixel_rays(2, 3, [], [100, 0, 0, 0, 0, 100, 0, 0, 0, 0, 1, 0])
    cloud = depth_to_points(np.full((2, 3), 2.0), rays)
    assert write_ply(tmp_path / "c.ply", cloud) == 6
    head, body = (tmp_path / "c.ply").read_bytes().split(b"end_header\n", 1)
    assert b"property float x\nproperty float y\nproperty float z\n" in head
    rows = np.frombuffer(body, dtype=[("xyz", "<f4", 3), ("c", "u1", 3)])
    np.testing.assert_allclose(rows["xyz"][-1], [0.04, 0.02, 2.0], rtol=1e-6)
    np.testing.assert_allclose(rows["xyz"][1], [0.02, 0.0, 2.0], rtol=1e-6)  # (u=1, v=0)


# --- metric scale from sparse cues (README "metric depth", the LiDAR figures) ------------------


def _fit(rel, met, mode="scale_shift", **kw):
    return fit_metric_scale(np.asarray(rel, float)[None], np.asarray(met, float)[None], mode, **kw)


def test_apply_at_exactly_zero_metres_is_too_close() -> None:
    out = ScaleFit(1.0, -1.0, "scale_shift", 2, 2, 0.0).apply(np.array([1.0, 2.0]))
    assert out.tolist() == [-np.inf, 1.0]  # 1 * 1 - 1 = 0 m: not a measurement


def test_scale_inliers_are_three_robust_sigmas_of_the_log_ratio() -> None:
    # log ratios log 2 +- 0.01 (20 each), so MAD 0.01, sigma 1.4826 * 0.01, 3 sigma 0.0445:
    # +-0.035 is in (beyond 2 sigma and beyond 3 unscaled MADs), +-0.06 is out
    rel = np.r_[np.linspace(0.5, 1.5, 20), np.linspace(0.5, 1.5, 20), 1.0, 1.0, 1.0, 1.0]
    dev = np.r_[np.full(20, 0.01), np.full(20, -0.01), 0.035, -0.035, 0.06, -0.06]
    fit, reason = _fit(rel, 2.0 * rel * np.exp(dev), "scale")
    assert reason == "ok" and (fit.n_points, fit.n_inliers) == (44, 42)
    # the median of an even count of log ratios is midway between log 2 - 0.01 and log 2 + 0.01:
    # exactly 2 (the median of the ratios themselves would be 2 cosh 0.01 = 2.0001)
    assert fit.scale == pytest.approx(2.0, rel=1e-9)


def _line_with_outliers():
    # met = 2 rel + 1 with residuals +-0.01 (each rel twice, so least squares gives the exact
    # line), plus +-0.035 and +-0.1 at rel 0.6. MAD 0.01, 3 sigma = 0.0445: 82 inliers of 84.
    rel1 = np.linspace(0.2, 1.0, 40)
    rel = np.r_[rel1, rel1, 0.6, 0.6, 0.6, 0.6]
    res = np.r_[np.full(40, 0.01), np.full(40, -0.01), 0.035, -0.035, 0.1, -0.1]
    return rel, 2.0 * rel + 1.0 + res, res


def test_scale_shift_inliers_and_abs_rel_by_hand() -> None:
    rel, met, res = _line_with_outliers()
    fit, reason = _fit(rel, met)
    assert reason == "ok" and fit.mode == "scale_shift"
    assert fit.scale == pytest.approx(2.0, rel=1e-9) and fit.shift == pytest.approx(1.0, rel=1e-9)
    assert (fit.n_points, fit.n_inliers) == (84, 82)
    inl = np.abs(res) < 0.05  # the 82 inliers: median |residual| / metric over them
    assert fit.abs_rel == pytest.approx(float(np.median(np.abs(res[inl]) / met[inl])), rel=1e-9)
    assert fit.abs_rel == pytest.approx(0.0045883, rel=1e-4)


def test_the_valid_mask_limits_the_points() -> None:
    rel = np.linspace(0.1, 1.0, 100).reshape(10, 10)
    met = 3.0 * rel
    met[:, :5] = 9.0 * rel[:, :5]  # a wrong cue where the mask says invalid
    valid = np.zeros((10, 10), dtype=bool)
    valid[:, 5:] = True
    fit, _ = fit_metric_scale(rel, met, "scale", valid=valid)
    assert fit.scale == pytest.approx(3.0) and fit.n_points == 50


def test_exactly_min_points_is_enough() -> None:
    rel = np.linspace(0.5, 1.5, 20)
    fit, reason = _fit(rel, 2.0 * rel, "scale", min_points=20)
    assert reason == "ok" and fit.n_points == 20
    fit, reason = _fit(rel, 2.0 * rel, "scale", min_points=21)
    assert fit is None and "20 < min_points 21" in reason


def test_too_few_inliers_is_refused() -> None:
    # 16 of 30 points at ratio 2 exactly, 14 scattered: MAD 0, so only the 16 are inliers
    rel = np.linspace(0.5, 1.5, 30)
    ratio = np.r_[np.full(16, 2.0), np.linspace(3.0, 9.0, 14)]
    fit, reason = _fit(rel, ratio * rel, "scale", min_points=20)
    assert fit is None and "too few inliers: 16 of 30" in reason


def test_spread_is_q90_minus_q10_over_the_median() -> None:
    # cue 1.0 (60 points) and 1.051 (40): (1.051 - 1) / 1 = 0.051 >= MIN_SPREAD (over q90 it
    # would be 0.0485); prediction 1.0 and 1.06: the exact line 0.85 rel + 0.15
    assert MIN_SPREAD == 0.05
    rel = np.r_[np.full(60, 1.0), np.full(40, 1.06)]
    met = np.r_[np.full(60, 1.0), np.full(40, 1.051)]
    fit, reason = _fit(rel, met)
    assert reason == "ok" and fit.mode == "scale_shift"
    assert fit.scale == pytest.approx(0.85) and fit.shift == pytest.approx(0.15)
    # 15 % / 70 % / 15 % at three depths: q10 and q90 see the ends (spread 0.4 / 3.2), an
    # interquartile spread would be 0
    rel = np.r_[np.full(15, 1.0), np.full(70, 1.1), np.full(15, 1.2)]
    fit, reason = _fit(rel, 2.0 * rel + 1.0)
    assert reason == "ok" and fit.scale == pytest.approx(2.0) and fit.shift == pytest.approx(1.0)
    # a cue spread by (1.057 - 1.033) / 1.045 = 2.3 % is refused (a fifth of MIN_SPREAD, 1 %,
    # would let it through)
    rel = np.linspace(1.0, 2.0, 50)
    fit, reason = _fit(rel, 0.03 * rel + 1.0)
    assert fit is None and "nearly) constant" in reason


def test_a_cue_that_falls_as_the_prediction_rises_is_refused() -> None:
    # met = 3 - rel: a negative scale, refused; the median ratio 2 would fit it (median error
    # 7.7 % < MAX_RATIO_ERROR), but a cue ordered against the prediction is no cue for it
    rel = np.linspace(0.9, 1.1, 40)
    fit, reason = _fit(rel, 3.0 - rel)
    assert fit is None and "scale -1" in reason


def test_the_scale_range_is_ten_times_the_median_ratio() -> None:
    assert MAX_SCALE_FACTOR == 10.0
    # met = rel + 57 on rel 0.5..5.5: the median ratio is 60 / 3 = 20, the scale 1 is 20x below
    # it (within 30x): refused, and the ratio misses the cue by more than MAX_RATIO_ERROR
    rel = np.linspace(0.5, 5.5, 41)
    met = rel + 57.0
    assert np.median(met / rel) == pytest.approx(20.0)
    fit, reason = _fit(rel, met)
    assert fit is None and "10x away" in reason
    # a few points at a tiny prediction have huge ratios: the median ignores them (the mean
    # would be ~50, 25x the scale 2, and the exact line refused)
    rel = np.r_[np.linspace(1.0, 2.0, 38), 1e-3, 1e-3]
    met = 2.0 * rel + 1.0
    assert np.mean(met / rel) > 20 * 2.0
    fit, reason = _fit(rel, met)
    assert reason == "ok" and fit.mode == "scale_shift" and fit.scale == pytest.approx(2.0)


def _two_depths(shift: float, noise: float):
    # 20 pixels at rel 1, 20 at rel 3, met = (3 rel + shift) (1 +- noise), each (rel, sign) ten
    # times: least squares gives the exact line (3, shift); every line error is noise/(1+-noise)
    rel = np.r_[np.full(10, 1.0), np.full(10, 3.0)]
    rel = np.r_[rel, rel]
    sign = np.r_[np.full(20, 1.0), np.full(20, -1.0)]
    met = (3.0 * rel + shift) * (1.0 + noise * sign)
    err_line = np.median(np.abs(3.0 * rel + shift - met) / met)
    ratio = np.median(met / rel)
    err_ratio = np.median(np.abs(ratio * rel - met) / met)
    return rel, met, err_line, err_ratio


def test_a_shift_must_beat_the_median_ratio_by_line_gain() -> None:
    assert LINE_GAIN == 0.05
    # shift 0.047: the line's error is 2.8 % below the ratio's: not enough, the ratio stands in
    rel, met, err_line, err_ratio = _two_depths(0.047, 0.005)
    assert 1 - LINE_GAIN < err_line / err_ratio < 1.0 and 1e-3 < err_line < 1e-2
    fit, reason = _fit(rel, met)
    assert reason == "ok" and fit.mode == "scale" and fit.shift == 0.0
    # shift 0.05: 8.5 % below: the line is used
    rel, met, err_line, err_ratio = _two_depths(0.05, 0.005)
    assert err_line / err_ratio < 1 - LINE_GAIN
    fit, reason = _fit(rel, met)
    assert reason == "ok" and fit.mode == "scale_shift" and fit.shift == pytest.approx(0.05)


def test_the_ratio_stands_in_only_within_max_ratio_error() -> None:
    assert MAX_RATIO_ERROR == 0.15
    # +-20 % noise and no shift: the line earns nothing and the ratio misses by ~21 % (> 15 %)
    rel, met, err_line, err_ratio = _two_depths(0.0, 0.2)
    assert 0.15 < err_ratio < 0.3 and err_line > (1 - LINE_GAIN) * err_ratio
    fit, reason = _fit(rel, met)
    assert fit is None and "not 5% below" in reason


def test_the_stand_in_ratio_error_is_over_its_inliers() -> None:
    # a cue proportional to the prediction (+-0.5 %) plus one point 3x too far and one 3x too
    # near: the line earns no shift, the median ratio stands in (the geometric mean of the two
    # middle ratios 3 * 1.005 and 3 * 0.995: 3 q, q = sqrt(1 - 0.005**2)), the two points are its
    # outliers, and its abs_rel is the median over the 40 inliers, midway between
    # 1 - q / 1.005 and q / 0.995 - 1 (over all 42 points it would be the larger of the two)
    rel, met, _, _ = _two_depths(0.0, 0.005)
    fit, reason = _fit(np.r_[rel, 1.0, 3.0], np.r_[met, 9.0, 3.0])
    q = np.sqrt(1 - 0.005**2)
    assert reason == "ok" and fit.mode == "scale" and fit.scale == pytest.approx(3 * q, rel=1e-12)
    assert (fit.n_points, fit.n_inliers) == (42, 40)
    assert fit.abs_rel == pytest.approx((1 - q / 1.005 + q / 0.995 - 1) / 2, rel=1e-9)


def test_resample_keeps_each_axis_to_its_own_ratio() -> None:
    # 4x4 -> 2x8: rows halve, columns double. A point at (row 1, col 1) has its centre at
    # (1.5, 1.5): row floor(1.5 / 2) = 0, column floor(1.5 * 2) = 3; (3, 2) -> (1, 5)
    sparse = np.full((4, 4), np.nan)
    sparse[1, 1], sparse[3, 2] = 5.0, 7.0
    out = resample_sparse(sparse, (2, 8))
    assert np.argwhere(np.isfinite(out)).tolist() == [[0, 3], [1, 5]]
    assert out[0, 3] == 5.0 and out[1, 5] == 7.0
    # 8 -> 2 columns: centres 2.5 and 5.5 land in floor(0.625) = 0 and floor(1.375) = 1 (the
    # pixel that contains them; rounding would put both in column 1)
    sparse = np.full((1, 8), np.nan)
    sparse[0, 2], sparse[0, 5] = 1.0, 2.0
    assert resample_sparse(sparse, (1, 2)).tolist() == [[1.0, 2.0]]
