"""Sparsification, AUSE, Spearman and calibration bins against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from depthart_core.evaluation.uncertainty_metrics import (
    FRACTIONS,
    SparsificationTally,
    UncertaintyTally,
    aurg,
    ause,
    average_ranks,
    calibration_bins,
    curve_area,
    frame_errors,
    oracle_curve,
    pixel_abs_rel,
    random_curve,
    sparsification_curve,
    spearman,
    threshold_table,
    worst_calibration_gap,
)

ERR = np.array([0.1, 0.4, 0.2, 0.3])
HALVES = np.array([0.0, 0.25, 0.5, 0.75])


def test_fractions_are_0_to_98_percent_in_steps_of_2():
    assert len(FRACTIONS) == 50 and FRACTIONS[0] == 0.0 and FRACTIONS[-1] == 0.98
    assert np.allclose(np.diff(FRACTIONS), 0.02)


def test_pixel_abs_rel_by_hand():
    pred = np.array([[1.0, 3.0], [0.0, 5.0]])
    gt = np.array([[2.0, 2.0], [1.0, 9.0]])
    valid = np.array([[True, True], [True, False]])
    # |1-2|/2, |3-2|/2, |1e-6 - 1|/1 (the prediction floor), the invalid pixel left out
    assert np.allclose(pixel_abs_rel(pred, gt, valid), [0.5, 0.5, 1 - 1e-6])


def test_sparsification_removes_the_most_uncertain_first():
    scores = np.array([4.0, 1.0, 3.0, 2.0])  # ranks 0.1 first, then 0.2, 0.3, 0.4
    # remove 0 -> mean of all 0.25; 1 -> (0.4+0.2+0.3)/3; 2 -> (0.4+0.3)/2; 3 -> 0.4
    expected = [0.25, 0.3, 0.35, 0.4]
    assert np.allclose(sparsification_curve(ERR, scores, HALVES), expected)


def test_oracle_removes_the_largest_errors_first():
    # remove 0.4, then 0.3, then 0.2: means 0.25, 0.2, 0.15, 0.1
    assert np.allclose(oracle_curve(ERR, HALVES), [0.25, 0.2, 0.15, 0.1])


def test_fraction_rounds_down_to_whole_pixels():
    # 10 % of 4 pixels is 0.4 pixel: nothing removed; 30 % is 1.2: one removed
    curve = sparsification_curve(ERR, ERR, np.array([0.1, 0.3]))
    assert np.allclose(curve, [0.25, 0.2])


def test_random_curve_is_the_mean():
    assert np.allclose(random_curve(ERR, HALVES), 0.25)


def test_areas_by_hand():
    # trapezoids over 0, 0.25, 0.5, 0.75 of [0.25, 0.3, 0.35, 0.4]: 0.25 * (0.275+0.325+0.375)
    curve = np.array([0.25, 0.3, 0.35, 0.4])
    oracle = np.array([0.25, 0.2, 0.15, 0.1])
    rand = np.full(4, 0.25)
    assert curve_area(curve, HALVES) == pytest.approx(0.25 * 0.975)
    # curve - oracle = [0, .1, .2, .3]: 0.25 * (0.05 + 0.15 + 0.25)
    assert ause(curve, oracle, HALVES) == pytest.approx(0.1125)
    # random - curve = [0, -.05, -.1, -.15]: a ranking worse than random has AURG < 0
    assert aurg(curve, rand, HALVES) == pytest.approx(-0.05625)
    assert ause(oracle, oracle, HALVES) == 0.0


def test_average_ranks_share_ties():
    assert np.allclose(average_ranks(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1.0, 3.5, 2.0])


def test_spearman_by_hand():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert spearman(a, a**3) == pytest.approx(1.0)  # monotone, not linear
    assert spearman(a, -a) == pytest.approx(-1.0)
    # ranks of b = [2, 1, 4, 3, 5]; d = [-1, 1, -1, 1, 0], rho = 1 - 6 * 4 / (5 * 24) = 0.8
    assert spearman(a, np.array([20.0, 10.0, 40.0, 30.0, 50.0])) == pytest.approx(0.8)
    assert np.isnan(spearman(a, np.ones(5)))


def test_calibration_bins_and_gap_by_hand():
    claimed = np.array([0.1, 0.1, 0.2, 0.2])
    observed = np.array([0.1, 0.1, 0.1, 0.3])
    bins = calibration_bins(claimed, observed, bins=2)
    assert bins == [(0.1, 0.1, 2), (0.2, 0.2, 2)]
    assert worst_calibration_gap(bins) == pytest.approx(0.0)
    # a claim of 0.1 where 0.08 is observed is 25 % off
    assert worst_calibration_gap([(0.1, 0.08, 5), (0.2, 0.2, 5)]) == pytest.approx(0.25)


def test_threshold_table_by_hand():
    claimed = np.array([0.05, 0.1, 0.2, 0.4])
    observed = np.array([0.02, 0.1, 0.3, 0.5])
    rows = threshold_table(claimed, observed, (0.1, 0.3, 0.5))
    # t = 0.1 drops the claims 0.2 and 0.4 (0.1 itself is not above it)
    assert rows[0] == pytest.approx((0.1, 0.5, 0.06, 0.4))
    assert rows[1] == pytest.approx((0.3, 0.25, 0.14, 0.5))
    t, frac, kept, dropped = rows[2]
    assert frac == 0.0 and kept == pytest.approx(0.23) and np.isnan(dropped)


def test_tally_summarises_mean_curves():
    t = SparsificationTally(HALVES)
    t.add(ERR, np.array([4.0, 1.0, 3.0, 2.0]))  # the worst ranking: [0.25, 0.3, 0.35, 0.4]
    t.add(ERR, ERR)  # the oracle ranking: [0.25, 0.2, 0.15, 0.1]
    r = t.summary(drop_at=0.25)
    assert np.allclose(r["curve"], [0.25, 0.25, 0.25, 0.25])
    assert r["drop"] == pytest.approx(0.0)
    assert r["oracle_drop"] == pytest.approx(0.2)
    # AUSE of the mean curve 0.25 * (0.025+0.075+0.125) over the same for random: ratio 1
    assert r["ause"] == pytest.approx(r["ause_random"]) and r["ause_ratio"] == pytest.approx(1.0)
    assert r["spearman_per_frame"] == pytest.approx(0.0)  # -1 and +1


def test_the_pool_is_bounded_and_stays_a_uniform_sample_of_every_frame():
    """A long evaluation (18,000 frames of a 10-minute stream) pooled every frame's sample and
    ran out of memory at the end; with `pool_max` the pool stays that size, under it nothing
    changes, and over it each frame is represented in proportion (a uniform sample)."""
    rng = np.random.default_rng(1)
    frames = [(k + 0.5 * rng.random(400), rng.random(400)) for k in range(50)]  # k: the frame
    exact, bounded = UncertaintyTally(), UncertaintyTally(pool_max=20_000)
    small = UncertaintyTally(pool_max=2_000)
    for e, s in frames:
        exact.add(e, s), bounded.add(e, s), small.add(e, s)
    assert bounded.summary() == exact.summary() | {"pooled_of": 20_000}  # under the bound
    got = small.summary()
    assert got["pooled_pixels"] == 2_000 and got["pooled_of"] == 20_000
    pool_errors = small._pool[0]
    per_frame = np.bincount(pool_errors.astype(int), minlength=50)
    assert per_frame.min() > 10 and per_frame.max() < 80  # 40 each on average: all frames in
    assert abs(pool_errors.mean() - 24.75) < 1.5  # late frames not favoured, early not lost


def test_frame_errors_use_the_frames_own_median_scale():
    depth = np.array([[1.0, 2.0], [4.0, 8.0]])
    gt = np.array([[2.0, 4.0], [10.0, 100.0]])
    valid = np.array([[True, True], [True, False]])
    # g / d over valid pixels: 2, 2, 2.5 -> median 2; errors |2d - g| / g: 0, 0, 0.2
    assert np.allclose(frame_errors(depth, gt, valid), [0.0, 0.0, 0.2])


def test_uncertainty_tally_pools_a_sample_per_frame_and_keeps_the_frame_measures():
    rng = np.random.default_rng(0)
    frames = [(rng.random(500), rng.random(500)) for _ in range(3)]
    exact, sampled = UncertaintyTally(), UncertaintyTally(pool_per_frame=100)
    for e, s in frames:
        exact.add(e, s), sampled.add(e, s)
    a, b = exact.summary(), sampled.summary()
    assert a["pooled_pixels"] == 1500 and b["pooled_pixels"] == 300
    for k in ("abs_rel", "abs_rel_after", "ause_ratio", "spearman_per_frame"):  # per frame: all
        assert a[k] == b[k], k
    err, claim = np.concatenate([e for e, _ in frames]), np.concatenate([s for _, s in frames])
    assert a["spearman_pooled"] == pytest.approx(spearman(claim, err))
    assert a["deciles"] == calibration_bins(claim, err)
    assert a["worst_decile_gap"] == worst_calibration_gap(a["deciles"])
    assert [n for _, _, n in b["deciles"]] == [30] * 10
    calibrated = exact.summary(calibrate=lambda r: 2 * r, thresholds=(0.5,))
    assert calibrated["deciles"][0][0] == pytest.approx(2 * a["deciles"][0][0])
    assert calibrated["thresholds"] == threshold_table(2 * claim, err, (0.5,))
    assert calibrated["spearman_pooled"] == a["spearman_pooled"]  # ranks the raw scores
    with pytest.raises(ValueError, match="pool_per_frame must be >= 1"):
        UncertaintyTally(pool_per_frame=0)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="4 errors but 3"):
        sparsification_curve(ERR, np.ones(3))
    with pytest.raises(ValueError, match="non-finite"):
        sparsification_curve(ERR, np.array([1.0, np.nan, 0.0, 0.0]))
    with pytest.raises(ValueError, match="fractions"):
        sparsification_curve(ERR, ERR, np.array([1.0]))
    with pytest.raises(ValueError, match="not one of the fractions"):
        t = SparsificationTally(HALVES)
        t.add(ERR, ERR)
        t.summary(drop_at=0.2)


def test_tied_scores_count_as_a_random_order_not_the_pixel_order():
    """A constant score carries no information: it must give the random curve, drop 0 and
    AUSE/random 1, whichever way up the image is (the stable sort used to remove the top rows)."""
    e = np.repeat(np.linspace(0.3, 0.02, 48)[:, None], 64, 1)
    for frame in (e, e[::-1]):
        t = UncertaintyTally()
        t.add(frame.ravel(), np.full(frame.size, 0.1))
        s = t.summary()
        assert s["drop"] == pytest.approx(0.0, abs=1e-12)
        assert s["ause_ratio"] == pytest.approx(1.0, abs=1e-12)
        assert s["worst_decile_gap"] == pytest.approx(abs(0.1 / frame.mean() - 1))
    # a tie group cut by the count loses its mean per removed pixel: scores (1, 1, 0, 0),
    # errors (0.4, 0.0, 0.1, 0.3); removing 1 of 4 takes 0.2 in expectation
    curve = sparsification_curve([0.4, 0.0, 0.1, 0.3], [1, 1, 0, 0], np.array([0.0, 0.25, 0.5]))
    np.testing.assert_allclose(curve, [0.2, (0.8 - 0.2) / 3, 0.2])


def test_calibration_bins_average_a_tie_group_split_by_a_bin_edge():
    bins = calibration_bins(np.array([0.0, 0.0, 0.0, 1.0]), np.array([0.6, 0.0, 0.0, 0.5]), bins=2)
    assert bins == [(0.0, pytest.approx(0.2), 2), (0.5, pytest.approx((0.2 + 0.5) / 2), 2)]
