"""Scoring one image pulls its valid pixels out of the maps once (`masked_pairs`), and gives the
same numbers, bit for bit, as aligning and scoring with the public `(pred, gt, valid)` functions."""

from __future__ import annotations

import numpy as np
import pytest

from depthart_core.evaluation import alignment as al
from depthart_core.evaluation import metrics as M
from depthart_core.evaluation import protocols as P

PROTOCOLS = ("depthart", "affine", "affine_disparity", "metric")


def _frame(seed: int, shape: tuple[int, int], dtype=np.float32):
    """A relative prediction of a random scene: about 15 % invalid pixels, their GT NaN, inf, 0
    or negative and some of their predictions NaN; some valid predictions 0 or negative."""
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.3, 12.0, shape).astype(dtype)
    pred = (gt * rng.lognormal(0.0, 0.3, shape) * 0.37 + rng.normal(0, 0.2, shape)).astype(dtype)
    valid = rng.random(shape) > 0.15
    kind = rng.integers(0, 4, shape)
    for k, value in enumerate((np.nan, np.inf, 0.0, -1.0)):
        gt[~valid & (kind == k)] = value
    pred[~valid & (rng.random(shape) < 0.3)] = np.nan
    pred[valid & (rng.random(shape) < 0.02)] = 0.0
    pred[valid & (rng.random(shape) < 0.02)] *= -1
    return pred, gt, valid


@pytest.fixture
def extractions(monkeypatch):
    """Counts `masked_pairs` calls from every module that scoring goes through."""
    calls = []
    real = M.masked_pairs

    def counting(pred, gt, valid):
        calls.append(np.shape(pred))
        return real(pred, gt, valid)

    for module in (M, al, P):
        monkeypatch.setattr(module, "masked_pairs", counting)
    return calls


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_extraction_per_image(extractions, protocol):
    pred, gt, valid = _frame(0, (48, 64))
    P.evaluate_image(pred, gt, valid, protocol, (0.5, 8.0))
    assert len(extractions) == 1  # was 5 (depthart) or 12 (check, alignment, 10 metrics)


def test_ground_plane_scoring_extracts_once_per_map(extractions):
    # `depthart replay --protocol ground_plane` scores each frame twice (frames.score_frame): the
    # relative prediction median-aligned (aligned_abs_rel) and the floor's metres, unaligned
    pred, gt, valid = _frame(1, (48, 64))
    P.evaluate(pred, gt, valid, "depthart", (0.5, 8.0))
    P.evaluate(pred * 2.7, gt, valid, "metric", (0.5, 8.0))
    assert len(extractions) == 2  # was 5 + 12


def test_evaluate_builds_no_full_aligned_map(monkeypatch):
    maps = []
    real = P.apply_alignment

    def spy(x, *args):
        maps.append(np.ndim(x))
        return real(x, *args)

    monkeypatch.setattr(P, "apply_alignment", spy)
    pred, gt, valid = _frame(2, (48, 64))
    P.evaluate(pred, gt, valid, "affine", (0.5, 8.0))
    assert maps == [1]  # the valid pixels only
    r = P.evaluate_image(pred, gt, valid, "affine", (0.5, 8.0), aligned_map=False)
    assert r.aligned is None


def _scored_as_before(pred, gt, valid, protocol, depth_range):
    """The old `evaluate_image`, step by step with the public functions."""
    proto = P.get_protocol(protocol)
    aligned, s, t = al.align(pred, gt, valid, proto.alignment)
    if proto.clip_to_range and depth_range is not None:
        aligned = np.clip(aligned, *depth_range)
    aligned = np.maximum(aligned, M.PRED_EPS)
    return {name: M.METRICS[name](aligned, gt, valid) for name in proto.metrics}, s, t, aligned


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("depth_range", [None, (0.5, 8.0)])
def test_bit_identical_to_the_public_functions(protocol, depth_range):
    frames = [_frame(seed, (37, 53), dtype) for seed in range(3) for dtype in (np.float32, float)]
    frames.append(_frame(7, (480, 640)))
    for pred, gt, valid in frames:
        want, s, t, aligned = _scored_as_before(pred, gt, valid, protocol, depth_range)
        r = P.evaluate_image(pred, gt, valid, protocol, depth_range)
        assert r.metrics == want and list(r.metrics) == list(want)  # exact, and in order
        assert (r.scale, r.shift, r.n_valid) == (s, t, int(valid.sum()))
        assert r.aligned.dtype == np.float64 and np.array_equal(r.aligned, aligned, equal_nan=True)
        assert P.evaluate(pred, gt, valid, protocol, depth_range) == want


def test_pair_metrics_match_the_map_metrics():
    pred, gt, valid = _frame(3, (37, 53))
    pairs = M.PixelPairs.from_maps(pred, gt, valid)
    assert M.score_pairs(pairs, M.METRICS) == {n: f(pred, gt, valid) for n, f in M.METRICS.items()}
    assert M.delta(pred, gt, valid, 4) == float(np.mean(pairs.ratio < M.DELTA_BASE**4))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflows are the point
def test_errors_unchanged():
    ok, g = np.ones((2, 3), bool), np.full((2, 3), 2.0)
    with pytest.raises(ValueError, match="^valid mask is empty"):
        P.evaluate(np.ones((2, 3)), g, ~ok)
    with pytest.raises(ValueError, match="^2 of 6 valid predicted pixels are not finite$"):
        P.evaluate(np.array([[np.inf, 1, 1], [np.nan, 1, 1]]), g, ok)
    # a median scale that overflows: the aligned prediction is inf, or NaN where it was 0
    tiny = np.array([[1e-310] * 3, [1e-310, 1e-310, 0.0]])
    with pytest.raises(ValueError, match="^6 of 6 valid predicted pixels are not finite$"):
        P.evaluate(tiny, np.full((2, 3), 1e300), ok)
    # a ground truth whose disparity overflows
    gt = np.array([[1e-310, 1, 1], [1, 1, 1]])
    with pytest.raises(ValueError, match="^1 of 6 valid ground-truth pixels are not finite"):
        P.evaluate(np.ones((2, 3)), gt, ok, "affine_disparity")
    with pytest.raises(ValueError, match="^disparity fit: none of the 6 valid pixels is > 0$"):
        P.evaluate(-np.ones((2, 3)), g, ok, "affine_disparity")
    with pytest.raises(ValueError, match="^median scale: none of the 6 valid predicted pixels"):
        P.evaluate(-np.ones((2, 3)), g, ok)
