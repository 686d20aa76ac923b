"""Metrics, alignment and protocols against numbers worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthart_core.evaluation import aggregate, evaluate, evaluate_image, get_protocol
from depthart_core.evaluation import alignment as al
from depthart_core.evaluation import metrics as M

# Five valid pixels (pred, gt): A (3, 5), B (2, 2), C (2, 4), D (3, 2), E (5, 4);
# ratios max(p/g, g/p) = 5/3, 1, 2, 1.5, 1.25 (E exactly on the threshold).
# Two masked pixels that would wreck every metric if counted: (100, 9) and (1, 0).
PRED = np.array([[3, 2, 2, 3], [5, 100, 1, 1]], dtype=np.float32)
GT = np.array([[5, 2, 4, 2], [4, 9, 0, 1]], dtype=np.float32)
VALID = np.array([[1, 1, 1, 1], [1, 0, 0, 0]], dtype=bool)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("abs_rel", (2 / 5 + 0 + 2 / 4 + 1 / 2 + 1 / 4) / 5),  # 0.33
        ("sq_rel", (4 / 5 + 0 + 4 / 4 + 1 / 2 + 1 / 4) / 5),  # 0.51
        ("mae", (2 + 0 + 2 + 1 + 1) / 5),  # 1.2
        ("rmse", math.sqrt((4 + 0 + 4 + 1 + 1) / 5)),  # sqrt(2)
        ("delta1", 1 / 5),  # only B (ratio 1) is < 1.25; E (= 1.25) is not
        ("delta2", 3 / 5),  # B, D (1.5), E (1.25) < 1.5625
        ("delta3", 4 / 5),  # + A (5/3) < 1.953125; C (2) is not
        ("delta1_bad", 3 / 5),  # A, C, D > 1.25; E (= 1.25) is not
    ],
)
def test_metric_values(name, expected):
    assert M.METRICS[name](PRED, GT, VALID) == pytest.approx(expected, rel=1e-12)


def test_log_metrics_values():
    # d = ln(p/g) = ln .6, 0, ln .5, ln 1.5, ln 1.25
    d2 = [math.log(0.6) ** 2, 0.0, math.log(0.5) ** 2, math.log(1.5) ** 2, math.log(1.25) ** 2]
    assert M.rmse_log(PRED, GT, VALID) == pytest.approx(math.sqrt(sum(d2) / 5), rel=1e-12)
    assert M.rmse_log(PRED, GT, VALID) == pytest.approx(0.43717, abs=1e-5)
    # |log10 .6| + |log10 .5| + log10 1.5 + log10 1.25 = 0.22185 + 0.30103 + 0.17609 + 0.09691
    assert M.log10(PRED, GT, VALID) == pytest.approx(0.79588 / 5, abs=1e-5)
    # mean d = ln(.6 * .5 * 1.5 * 1.25) / 5 = ln(0.5625) / 5; silog = 100 sqrt(mean d^2 - mean^2)
    mean = math.log(0.5625) / 5
    assert M.silog(PRED, GT, VALID) == pytest.approx(100 * math.sqrt(sum(d2) / 5 - mean**2))
    assert M.silog(PRED, GT, VALID) == pytest.approx(42.175, abs=1e-3)


def test_bad_and_good_delta1_are_not_complements_at_the_threshold():
    assert M.delta1(PRED, GT, VALID) + M.delta1_bad(PRED, GT, VALID) == pytest.approx(4 / 5)


def test_non_positive_predictions_are_clamped_to_eps():
    pred, gt, valid = np.array([[0.0, -1.0]]), np.array([[1.0, 1.0]]), np.ones((1, 2), bool)
    # both clamp to 1e-6: |1e-6 - 1| / 1 each
    assert M.abs_rel(pred, gt, valid) == pytest.approx(1 - M.PRED_EPS)
    assert M.log10(pred, gt, valid) == pytest.approx(6.0)
    assert M.delta1_bad(pred, gt, valid) == 1.0


@pytest.mark.parametrize("fn", list(M.METRICS.values()))
def test_metrics_reject_bad_inputs(fn):
    with pytest.raises(ValueError, match="empty"):
        fn(PRED, GT, np.zeros_like(VALID))
    with pytest.raises(ValueError, match="shape"):
        fn(PRED[:, :3], GT, VALID)
    with pytest.raises(ValueError, match="ground-truth"):
        fn(PRED, GT, np.ones_like(VALID))  # includes the gt = 0 pixel
    with pytest.raises(TypeError, match="bool"):
        fn(PRED, GT, VALID.astype(np.uint8))


def test_median_scale_is_median_of_ratios():
    pred = np.array([1.0, 2.0, 4.0, 8.0, 1.0])
    gt = np.array([3.0, 4.0, 4.0, 40.0, 1000.0])
    valid = np.array([1, 1, 1, 1, 0], bool)
    # g/p = 3, 2, 1, 5 -> median (2 + 3) / 2; the masked 1000 would move it
    assert al.median_scale(pred, gt, valid) == pytest.approx(2.5)


def test_median_scale_ignores_non_positive_predictions():
    pred, gt = np.array([0.0, 1.0, 2.0, 4.0]), np.array([1.0, 2.0, 6.0, 4.0])
    assert al.median_scale(pred, gt, np.ones(4, bool)) == pytest.approx(2.0)  # ratios 2, 3, 1
    with pytest.raises(ValueError, match="> 0"):
        al.median_scale(np.zeros(3), np.ones(3), np.ones(3, bool))


def test_least_squares_scale_and_shift():
    # s = <p,g>/<p,p> = (2 + 10) / (1 + 4)
    assert al.lstsq_scale(np.array([1.0, 2.0]), np.array([2.0, 5.0]), np.ones(2, bool)) == 2.4
    # p = 0,1,2; g = 1,2,4: s = cov/var = 3/2, t = mean g - s mean p = 7/3 - 3/2
    s, t = al.lstsq_scale_shift(
        np.array([0.0, 1, 2, 50]), np.array([1.0, 2, 4, 0]), np.array([1, 1, 1, 0], bool)
    )
    assert (s, t) == (pytest.approx(1.5), pytest.approx(7 / 3 - 1.5))


def test_disparity_space_alignment_recovers_affine_disparity():
    # pred depth 1, 1/3, 1/5 -> disparity 1, 3, 5; gt disparity = 0.5 * that + 0.5 = 1, 2, 3
    pred, gt = np.array([1.0, 1 / 3, 1 / 5]), np.array([1.0, 1 / 2, 1 / 3])
    depth, s, t = al.lstsq_scale_shift_disparity(pred, gt, np.ones(3, bool))
    assert (s, t) == (pytest.approx(0.5), pytest.approx(0.5))
    np.testing.assert_allclose(depth, gt, rtol=1e-12)
    # a pixel predicted at 0 (its disparity would be 1e6) stays out of the fit, as Marigold's
    # pred > 0 mask; it used to collapse the fit to a constant map
    pred0, gt0 = np.append(pred, 0.0), np.append(gt, 0.25)
    depth0, s0, t0 = al.lstsq_scale_shift_disparity(pred0, gt0, np.ones(4, bool))
    assert (s0, t0) == (pytest.approx(0.5), pytest.approx(0.5))
    np.testing.assert_allclose(depth0[:3], gt, rtol=1e-12)


@pytest.mark.parametrize("method", al.ALIGNMENTS)
def test_every_alignment_rejects_an_empty_mask(method):
    with pytest.raises(ValueError, match="empty"):
        al.align(np.ones((2, 2)), np.ones((2, 2)), np.zeros((2, 2), bool), method)


def test_depthart_protocol_hand_computed():
    pred = np.array([[1.0, 2.0], [4.0, 8.0]])
    gt = np.array([[3.0, 4.0], [4.0, 40.0]])
    r = evaluate_image(pred, gt, np.ones((2, 2), bool), "depthart")
    # s = median(3, 2, 1, 5) = 2.5 -> aligned 2.5, 5, 10, 20
    assert r.scale == pytest.approx(2.5) and r.shift == 0.0
    assert set(r.metrics) == {"abs_rel", "delta1_bad", "mae"}
    assert r.metrics["abs_rel"] == pytest.approx((0.5 / 3 + 1 / 4 + 6 / 4 + 20 / 40) / 4)
    assert r.metrics["delta1_bad"] == pytest.approx(0.5)  # ratios 1.2, 1.25, 2.5, 2
    assert r.metrics["mae"] == pytest.approx((0.5 + 1 + 6 + 20) / 4)


def _random_pair(seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.5, 10.0, size=(24, 32))
    pred = gt * rng.uniform(0.7, 1.4, size=gt.shape) / 3.7  # relative, noisy
    valid = rng.random(gt.shape) > 0.3
    return pred, gt, valid


def test_depthart_protocol_is_scale_invariant():
    pred, gt, valid = _random_pair()
    a, b = evaluate(pred, gt, valid, "depthart"), evaluate(pred * 13.7, gt, valid, "depthart")
    assert a == pytest.approx(b, rel=1e-12)
    assert evaluate(pred + 1.0, gt, valid, "depthart") != pytest.approx(a, rel=1e-6)


def test_affine_protocol_is_scale_and_shift_invariant():
    pred, gt, valid = _random_pair(1)
    a = evaluate(pred, gt, valid, "affine")
    b = evaluate(0.25 * pred + 3.0, gt, valid, "affine")
    assert a == pytest.approx(b, rel=1e-9)


@pytest.mark.parametrize("protocol", ["depthart", "affine", "affine_disparity", "metric"])
def test_perfect_prediction_scores_perfectly(protocol):
    _, gt, valid = _random_pair(2)
    m = evaluate(gt.copy(), gt, valid, protocol, depth_range=(0.1, 20.0))
    assert m["abs_rel"] == pytest.approx(0.0, abs=1e-12)
    if "delta1" in m:
        assert m["delta1"] == 1.0
    if "delta1_bad" in m:
        assert m["delta1_bad"] == 0.0


def test_affine_clips_to_the_dataset_range_and_depthart_does_not():
    pred = np.array([[1.0, 2.0, 3.0]])
    gt = np.array([[1.0, 2.0, 3.0]])
    valid = np.array([[True, True, False]])
    # affine fit on the two valid pixels is exact (s=1, t=0); clipping to (0, 1.5] maps 2 -> 1.5
    m = evaluate(pred, gt, valid, "affine", depth_range=(0.0, 1.5))
    assert m["abs_rel"] == pytest.approx((0 + 0.5 / 2) / 2)
    assert evaluate(pred, gt, valid, "depthart", depth_range=(0.0, 1.5))["abs_rel"] == 0.0


def test_aggregate_is_a_per_image_mean():
    # image 1: one pixel, AbsRel 1; image 2: three pixels, AbsRel 0. Per-image mean 0.5 (a pooled
    # mean over the four pixels would give 0.25).
    rows = [
        {"abs_rel": 1.0, "delta1_bad": 1.0, "mae": 2.0},
        {"abs_rel": 0.0, "delta1_bad": 0.0, "mae": 0.0},
    ]
    assert aggregate(rows, "depthart") == {"abs_rel": 0.5, "delta1_bad": 0.5, "mae": 1.0}
    with pytest.raises(ValueError, match="no image"):
        aggregate([], "depthart")


def test_unknown_protocol_names_the_choices():
    with pytest.raises(ValueError, match="depthart"):
        get_protocol("eigen")


def test_ordinal_agreement_orders_pairs_and_ignores_scale():
    rng = np.random.default_rng(1)
    gt = rng.uniform(1.0, 10.0, (32, 32))
    valid = np.ones_like(gt, dtype=bool)
    assert M.ordinal_agreement(gt, gt, valid) == 1.0
    assert M.ordinal_agreement(np.exp(3.0 * gt) + 7.0, gt, valid) == 1.0  # any monotonic map
    assert M.ordinal_agreement(1.0 / gt, gt, valid) == 0.0  # reversed: disparity as depth
    assert M.ordinal_agreement(np.full_like(gt, 2.0), gt, valid) == 0.5  # ties count one half
    noisy = gt * rng.uniform(0.5, 2.0, gt.shape)
    assert 0.6 < M.ordinal_agreement(noisy, gt, valid) < 1.0


def test_ordinal_agreement_hand_computed_and_masked():
    gt = np.array([[1.0, 2.0, 4.0]])
    pred = np.array([[1.0, 3.0, 2.0]])  # (0,1) and (0,2) agree, (1,2) is reversed
    valid = np.ones_like(gt, dtype=bool)
    assert M.ordinal_agreement(pred, gt, valid, pairs=200_000) == pytest.approx(2 / 3, abs=0.01)
    valid[0, 2] = False  # only the agreeing pair (0,1) remains
    assert M.ordinal_agreement(pred, gt, valid) == 1.0


def test_ordinal_agreement_rejects_unordered_ground_truth_and_bad_arguments():
    gt = np.full((4, 4), 3.0)
    valid = np.ones_like(gt, dtype=bool)
    with pytest.raises(ValueError, match="no sampled pair"):
        M.ordinal_agreement(gt, gt, valid)
    with pytest.raises(ValueError, match="ratio"):
        M.ordinal_agreement(gt, gt, valid, ratio=1.0)


def test_ordinal_agreement_within_rows_takes_away_the_ground_plane_cue():
    h, w = 48, 64
    rows = np.linspace(8.0, 1.0, h)[:, None] * np.ones((1, w))  # floor: far at the top
    gt = rows.copy()
    gt[20:40, 30:50] = 0.8  # a near object standing on it
    valid = np.ones_like(gt, dtype=bool)
    ramp = rows.copy()  # knows the floor, not the object
    assert M.ordinal_agreement(ramp, gt, valid) > 0.8  # the ramp looks good on all pairs...
    same_row = M.ordinal_agreement(ramp, gt, valid, max_row_gap=1)
    assert same_row == pytest.approx(0.5, abs=0.05)  # ...and is a coin toss within rows
    assert M.ordinal_agreement(gt, gt, valid, max_row_gap=1) == 1.0
    valid[:, 60:] = False  # partners on invalid pixels are dropped, not scored
    assert M.ordinal_agreement(gt, gt, valid, max_row_gap=1) == 1.0


def test_figure_ground_counts_pairs_with_the_figure_nearer():
    from depthart_core.evaluation.metrics import figure_ground

    figure = np.zeros((2, 3), bool)
    figure[0, 0] = figure[1, 1] = True
    pred = np.array([[1.0, 2.0, 3.0], [4.0, 2.0, 0.5]])
    # figure {1, 2}, ground {2, 3, 4, 0.5}: 1 is nearer than 3 of 4; 2 nearer than 2, ties 1
    assert figure_ground(pred, figure) == pytest.approx((3 + 2.5) / 8)
    assert figure_ground(np.exp(pred), figure) == figure_ground(pred, figure)  # monotonic
    assert figure_ground(np.ones((2, 3)), figure) == 0.5
    assert figure_ground(-pred, figure) == pytest.approx(1 - (3 + 2.5) / 8)
    with pytest.raises(ValueError, match="some but not all"):
        figure_ground(pred, np.ones((2, 3), bool))
    with pytest.raises(ValueError, match="differ in shape"):
        figure_ground(pred, figure[:, :2])
