"""Scoring one image pulls its valid pixels out of the maps once (`masked_pairs`), and gives the
same numbers, bit for bit, as aligning and scoring with the public `(pred, gt, valid)` functions;
so do the uncertainty errors (`frame_errors`) and the floor-scale evaluation
(`ground_plane.score_frame`), and `depthart eval` builds the full aligned map only for the frames
it draws."""

from __future__ import annotations

import numpy as np
import pytest

from depthart_core.data.sample import DepthSample
from depthart_core.evaluation import alignment as al
from depthart_core.evaluation import ground_plane as GP
from depthart_core.evaluation import metrics as M
from depthart_core.evaluation import protocols as P
from depthart_core.evaluation import runner as R
from depthart_core.evaluation import uncertainty_metrics as UM
from depthart_core.ground_plane import GroundPlaneConfig, GroundPlaneScale, apply_floor_scale

PROTOCOLS = ("depthart", "affine", "affine_disparity", "metric")


def _frame(seed: int, shape: tuple[int, int], dtype=np.float32, inf_share: float = 0.0):
    """A relative prediction of a random scene: about 15 % invalid pixels, their GT NaN, inf, 0
    or negative and some of their predictions NaN (and with `inf_share` inf); some valid
    predictions 0 or negative."""
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.3, 12.0, shape).astype(dtype)
    pred = (gt * rng.lognormal(0.0, 0.3, shape) * 0.37 + rng.normal(0, 0.2, shape)).astype(dtype)
    valid = rng.random(shape) > 0.15
    kind = rng.integers(0, 4, shape)
    for k, value in enumerate((np.nan, np.inf, 0.0, -1.0)):
        gt[~valid & (kind == k)] = value
    pred[~valid & (rng.random(shape) < 0.3)] = np.nan
    if inf_share:
        pred[~valid & (rng.random(shape) < inf_share)] = np.inf
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

    for module in (M, al, P, UM, GP):
        monkeypatch.setattr(module, "masked_pairs", counting, raising=False)
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


def _frame_inf(seed: int, shape: tuple[int, int], dtype=np.float32):
    """`_frame` with some invalid predictions inf too."""
    return _frame(seed, shape, dtype, inf_share=0.1)


@pytest.fixture(scope="module")
def rig_frames():
    """Two rendered cart frames: (rel, gt, valid, K, up, floor), rel the ground truth x 0.31
    with NaN, inf and 0 pixels, and a pixel whose metres overflow float32."""
    rig = GP.RigEval.named("cart", sequences=1, frames=2)
    out = GP.rig_frames(rig, 0)
    rng = np.random.default_rng(0)
    frames = []
    for i in range(out["rgb"].shape[0]):
        gt = out["depth"][i].numpy().astype(np.float64)
        valid = out["valid"][i].numpy()
        K = out["K"][i].numpy().astype(np.float64)
        up = out["pose"][i, :3, :3].numpy().T @ np.array([0.0, 1.0, 0.0])
        rel = gt * 0.31 * rng.lognormal(0.0, 0.02, gt.shape)
        rel[rng.random(gt.shape) < 0.01] = np.nan
        rel[rng.random(gt.shape) < 0.005] = np.inf
        rel[rng.random(gt.shape) < 0.005] = 0.0
        rel.flat[np.flatnonzero(valid)[:3]] = 1e39  # metres that overflow float32
        frames.append((rel, gt, valid, K, up, GP.true_floor(gt, valid, K, up, rig.height_m)))
    return rig, frames


def _state(rig):
    return GroundPlaneScale(
        GroundPlaneConfig(camera_height_m=rig.height_m, pitch_deg=rig.mount_pitch_deg)
    )


def _score_frame_as_before(stats, state, rel_HW, gt_HW, valid_HW, K_33, up_3, fit_up_3, floor_HW):
    """The old `score_frame`, with the public `(pred, gt, valid)` functions."""
    stats.frames += 1
    valid_HW = valid_HW & np.isfinite(rel_HW)
    s_med = al.median_scale(rel_HW, gt_HW, valid_HW)
    aligned = M.abs_rel(s_med * rel_HW, gt_HW, valid_HW)
    stats.aligned_all.append(aligned)
    fit, applied = state.update(rel_HW, K_33, None, fit_up_3)
    if fit.code == "ok":
        cos = float(np.clip(np.dot(fit.normal_3, up_3), -1.0, 1.0))
        stats.normal_err_deg.append(np.degrees(np.arccos(cos)).item())
    if applied.scale is None:
        stats.fallbacks[fit.code] += 1
        return
    metric_HW = apply_floor_scale(rel_HW, K_33, applied.scale, fit)
    stats.metric.append(M.abs_rel(metric_HW, gt_HW, valid_HW & np.isfinite(metric_HW)))
    stats.aligned.append(aligned)
    stats.scale_err.append(applied.scale / s_med - 1.0)
    if floor_HW is not None:
        floor_HW = floor_HW & valid_HW
        s_floor = float(np.median(gt_HW[floor_HW] / rel_HW[floor_HW])) if floor_HW.any() else s_med
        stats.floor_oracle.append(M.abs_rel(s_floor * rel_HW, gt_HW, valid_HW))


# -- frame_errors ---------------------------------------------------------------------------


def test_frame_errors_extracts_once(extractions):
    pred, gt, valid = _frame_inf(0, (48, 64))
    UM.frame_errors(pred, gt, valid)
    assert len(extractions) == 1  # was 2 (the median scale, then the scaled map again)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32])
def test_frame_errors_bit_identical_to_the_public_functions(dtype):
    for seed, shape in [(0, (37, 53)), (1, (37, 53)), (2, (120, 160))]:
        pred, gt, valid = _frame_inf(seed, shape, np.float32 if dtype is np.int32 else dtype)
        if dtype is np.int32:  # millimetres: the scaled map is float64
            pred = (np.nan_to_num(pred, nan=0.0, posinf=0.0) * 1000).astype(np.int32)
        # float32 x a Python float is float32: the scaled pixels keep that rounding
        want = UM.pixel_abs_rel(al.median_scale(pred, gt, valid) * pred, gt, valid)
        got = UM.frame_errors(pred, gt, valid)
        assert got.dtype == np.float64 and np.array_equal(got, want)
    pred, gt, valid = _frame_inf(3, (37, 53), np.float32)  # float32 depth, float64 ground truth
    want = UM.pixel_abs_rel(al.median_scale(pred, gt, valid) * pred, gt.astype(float), valid)
    assert np.array_equal(UM.frame_errors(pred, gt.astype(float), valid), want)


def test_frame_errors_by_hand_and_float32_rounding():
    depth = np.array([[1.0, 2.0], [4.0, 8.0]])
    gt = np.array([[2.0, 4.0], [10.0, 100.0]])
    valid = np.array([[True, True], [True, False]])
    assert UM.frame_errors(depth, gt, valid).tolist() == [0.0, 0.0, 0.2]  # s = 2: exact
    d32 = np.array([[0.1, 0.3, 0.7]], np.float32)
    g = np.array([[0.2, 0.5, 1.3]], np.float32)
    s = float(np.median(g.astype(float) / d32.astype(float)))
    scaled = (d32 * s).astype(np.float64)  # rounded to float32 first, as `s * depth` was
    want = (np.abs(scaled - g.astype(np.float64)) / g.astype(np.float64)).ravel()
    assert UM.frame_errors(d32, g, np.ones((1, 3), bool)).tolist() == want.tolist()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflows are the point
def test_frame_errors_errors_unchanged():
    ok, g = np.ones((2, 3), bool), np.full((2, 3), 2.0)
    with pytest.raises(ValueError, match="^valid mask is empty"):
        UM.frame_errors(np.ones((2, 3)), g, ~ok)
    with pytest.raises(ValueError, match="^2 of 6 valid predicted pixels are not finite$"):
        UM.frame_errors(np.array([[np.inf, 1, 1], [np.nan, 1, 1]]), g, ok)
    with pytest.raises(ValueError, match="^median scale: none of the 6 valid predicted pixels"):
        UM.frame_errors(-np.ones((2, 3)), g, ok)
    tiny = np.array([[1e-30] * 3, [1e-30, 1e-30, 0.0]], np.float32)  # s * d overflows float32
    with pytest.raises(ValueError, match="^6 of 6 valid predicted pixels are not finite$"):
        UM.frame_errors(tiny, np.full((2, 3), 1e30, np.float32), ok)


# -- ground_plane.score_frame ---------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflowing metres
def test_score_frame_extracts_once(extractions, rig_frames):
    rig, frames = rig_frames
    stats = GP.SourceStats()
    GP.score_frame(stats, _state(rig), *frames[0][:5], None, frames[0][5])
    assert len(stats.metric) == len(stats.floor_oracle) == 1  # every AbsRel was taken
    assert len(extractions) == 1  # was 4: median scale, aligned, metric and floor-oracle AbsRel


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("normal", ["prior", "fit"])
def test_score_frame_bit_identical_to_the_public_functions(rig_frames, dtype, normal):
    rig, frames = rig_frames
    cfg = GroundPlaneConfig(
        camera_height_m=rig.height_m, pitch_deg=rig.mount_pitch_deg, normal=normal
    )
    new, old = GP.SourceStats(), GP.SourceStats()
    s_new, s_old = GroundPlaneScale(cfg), GroundPlaneScale(cfg)
    for k, (rel, gt, valid, K, up, floor) in enumerate(frames * 2):
        rel = rel.astype(dtype)
        floor = floor if k % 2 == 0 else None
        GP.score_frame(new, s_new, rel, gt, valid, K, up, None, floor)
        _score_frame_as_before(old, s_old, rel, gt, valid, K, up, None, floor)
    assert len(new.metric) >= 2 and new.floor_oracle  # the metric and oracle branches ran
    assert new == old  # every list exact


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_score_frame_metres_all_overflowing_still_raises(monkeypatch, rig_frames):
    rig, frames = rig_frames
    monkeypatch.setattr(GP, "apply_floor_scale", lambda rel, *_: np.full(rel.shape, np.inf))
    with pytest.raises(ValueError, match="^valid mask is empty: no pixel to score$"):
        GP.score_frame(GP.SourceStats(), _state(rig), *frames[0][:5], None, None)


# -- depthart eval: the aligned map only where drawn ----------------------------------------


class _Frames:
    name, skipped, min_depth, max_depth = "fake", 0, 0.5, 8.0

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> DepthSample:
        _, gt, valid = _frame_inf(100 + i, (48, 64))
        rgb = np.full((48, 64, 3), i, np.uint8)
        return DepthSample(rgb, np.where(valid, gt, 0).astype(np.float32), valid, f"f{i}")


def _predict(rgb):
    return np.nan_to_num(_frame_inf(100 + int(rgb[0, 0, 0]), (48, 64))[0], nan=1.0, posinf=1.0)


def _run(n_vis, protocol="affine", **kw):
    return R.evaluate_predictions(_Frames(6), _predict, protocol, n_vis=n_vis, progress=False, **kw)


def test_eval_builds_the_aligned_map_only_for_drawn_frames(monkeypatch):
    built = []
    real = R.evaluate_image

    def spy(*args, **kw):
        r = real(*args, **kw)
        built.append(r.aligned is not None)
        return r

    monkeypatch.setattr(R, "evaluate_image", spy)
    res = _run(n_vis=2)
    assert built == [True, False, False, False, False, True]  # frames 0 and 5 are drawn
    assert [v.name for v in res.vis] == ["f0", "f5"]
    built.clear()
    _run(n_vis=0)
    assert built == [False] * 6


@pytest.mark.parametrize("protocol", ["depthart", "affine_disparity", "metric"])
@pytest.mark.parametrize("eval_size", [None, 32])
def test_eval_results_unchanged(monkeypatch, protocol, eval_size):
    def unc(rgb):
        d = _predict(rgb)
        return d, np.abs(d) * 0.1 + 0.01

    new = _run(3, protocol, eval_size=eval_size, predict_uncertainty=unc)
    real = R.evaluate_image
    monkeypatch.setattr(  # as before: every frame's map built
        R, "evaluate_image", lambda *a, aligned_map=True: real(*a, aligned_map=True)
    )
    old = _run(3, protocol, eval_size=eval_size, predict_uncertainty=unc)

    def rows(res):
        return [{k: v for k, v in r.items() if k != "predict_ms"} for r in res.per_image]

    assert rows(new) == rows(old) and new.aggregate == old.aggregate
    assert new.uncertainty == old.uncertainty
    assert len(new.vis) == len(old.vis) == 3
    for a, b in zip(new.vis, old.vis, strict=True):
        assert a.name == b.name and np.array_equal(a.pred, b.pred)
