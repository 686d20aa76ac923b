"""How well a per-pixel uncertainty predicts the error: one small masked function per measure.

The error of a pixel is its absolute relative error after the protocol's alignment,
|p - g| / g (`pixel_abs_rel`). For one frame:

    sparsification_curve  AbsRel of the pixels kept after removing the fraction f most uncertain
                          ones, for f = 0, 0.02, ..., 0.98 (`FRACTIONS`); Ilg et al., "Uncertainty
                          Estimates and Multi-Hypotheses Networks for Optical Flow" (ECCV 2018,
                          sec. 5.2), as Poggi et al. ("On the uncertainty of self-supervised
                          monocular depth estimation", CVPR 2020, sec. 4) use it for depth
    oracle_curve          the same with pixels removed by their true error (the best ranking)
    random_curve          the expectation under a random ranking: the frame's AbsRel at every f
                          (removing random pixels leaves the mean unchanged in expectation)
    curve_area            trapezoidal area under a curve over its fractions
    ause / aurg           area(curve - oracle) and area(random - curve): lower AUSE and higher
                          AURG are better; a random ranking has AURG 0
    spearman              rank correlation with average ranks for ties
    calibration_bins      pixels split into equal-count bins of claimed error (deciles): the mean
                          claimed and mean observed error of each

Pixels with equal scores (a constant or quantised uncertainty) are counted as a random order of
them would be in expectation (`tie_averaged`), so no measure depends on the pixels' raster order.
    threshold_table       what dropping every pixel whose claim exceeds t keeps and drops
    frame_errors          the pixel errors of one frame under its own median scale (the DepthART
                          protocol): what the uncertainty head is trained to predict
    UncertaintyTally      all of the above over a stream of frames (`depthart eval`,
                          training/uncertainty_eval.py)

Curves are per frame and averaged over frames (the per-image mean of every protocol,
`evaluation.protocols`); AUSE and AURG are then taken on the mean curves. Removing a fraction
rounds down to whole pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from depthart_core.evaluation.alignment import median_scale_pairs
from depthart_core.evaluation.metrics import PRED_EPS, masked_pairs
from depthart_core.uncertainty import tie_averaged

FRACTIONS = np.round(np.arange(0, 50) * 0.02, 2)  # 0, 0.02, ..., 0.98


def pixel_abs_rel_pairs(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """|max(p, PRED_EPS) - g| / g of the pixel vectors `p`, `g` as `masked_pairs` returns them."""
    return np.abs(np.maximum(p, PRED_EPS) - g) / g


def pixel_abs_rel(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """|max(p, PRED_EPS) - g| / g of every valid pixel (as `metrics.abs_rel` averages it)."""
    return pixel_abs_rel_pairs(*masked_pairs(pred, gt, valid))


def scaled_pixels(p: np.ndarray, scale: float, dtype: np.dtype) -> np.ndarray:
    """The valid pixels of `scale * pred` as `masked_pairs` would pull them out, from the valid
    pixels `p` of `pred` (of `dtype`): the product in `pred`'s own dtype, as numpy forms it
    with a Python float (a float32 map stays float32), then float64. Raises, as `masked_pairs`
    does, when a product is not finite (an overflowing scale)."""
    scaled = np.asarray(p.astype(dtype, copy=False) * float(scale), dtype=np.float64)
    bad = int(np.count_nonzero(~np.isfinite(scaled)))
    if bad:
        raise ValueError(f"{bad} of {p.size} valid predicted pixels are not finite")
    return scaled


def frame_errors(depth: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """|s d - g| / g of every valid pixel, s = median(g / d) the frame's own scale. The valid
    pixels are pulled out of the maps once."""
    p, g = masked_pairs(depth, gt, valid)
    scaled = scaled_pixels(p, median_scale_pairs(p, g), np.asarray(depth).dtype)
    return pixel_abs_rel_pairs(scaled, g)


def _check_pair(errors: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e, s = np.asarray(errors, np.float64).ravel(), np.asarray(scores, np.float64).ravel()
    if e.shape != s.shape:
        raise ValueError(f"{e.size} errors but {s.size} uncertainty scores")
    if e.size == 0:
        raise ValueError("no pixel to score")
    if not (np.isfinite(e).all() and np.isfinite(s).all()):
        bad = int((~np.isfinite(e)).sum() + (~np.isfinite(s)).sum())
        raise ValueError(f"{bad} non-finite errors or scores")
    return e, s


def sparsification_curve(
    errors: np.ndarray, scores: np.ndarray, fractions: np.ndarray = FRACTIONS
) -> np.ndarray:
    """Mean error of the pixels left after removing the floor(f * N) highest-scored, per f.
    Pixels with equal scores are removed as a random order of them would be in expectation:
    a tie group cut by the count loses its mean error per removed pixel, so a constant score
    gives the random curve, whatever the pixel order."""
    e, s = _check_pair(errors, scores)
    fractions = np.asarray(fractions, np.float64)
    if np.any((fractions < 0) | (fractions >= 1)):
        raise ValueError(f"fractions must lie in [0, 1), got {fractions.tolist()}")
    order = np.argsort(-s, kind="stable")  # most uncertain first
    ranked = tie_averaged(-s[order], e[order])
    tail_sum = np.cumsum(ranked[::-1])[::-1]  # tail_sum[i] = sum of errors ranked i..N-1
    removed = np.floor(fractions * e.size + 1e-9).astype(int)
    return tail_sum[removed] / (e.size - removed)


def oracle_curve(errors: np.ndarray, fractions: np.ndarray = FRACTIONS) -> np.ndarray:
    return sparsification_curve(errors, errors, fractions)


def random_curve(errors: np.ndarray, fractions: np.ndarray = FRACTIONS) -> np.ndarray:
    e, _ = _check_pair(errors, errors)
    return np.full(len(fractions), e.mean())


def curve_area(curve: np.ndarray, fractions: np.ndarray = FRACTIONS) -> float:
    c, f = np.asarray(curve, np.float64), np.asarray(fractions, np.float64)
    if c.shape != f.shape:
        raise ValueError(f"curve has {c.size} points but there are {f.size} fractions")
    return float(np.sum(0.5 * (c[1:] + c[:-1]) * np.diff(f)))


def ause(curve: np.ndarray, oracle: np.ndarray, fractions: np.ndarray = FRACTIONS) -> float:
    return curve_area(np.asarray(curve) - np.asarray(oracle), fractions)


def aurg(curve: np.ndarray, random: np.ndarray, fractions: np.ndarray = FRACTIONS) -> float:
    return curve_area(np.asarray(random) - np.asarray(curve), fractions)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..N, ties sharing the mean of their ranks."""
    x = np.asarray(x, np.float64).ravel()
    order = np.argsort(x, kind="stable")
    sx = x[order]
    starts = np.flatnonzero(np.concatenate([[True], sx[1:] != sx[:-1]]))
    ends = np.concatenate([starts[1:], [x.size]])  # exclusive
    mean_rank = (starts + ends + 1) / 2.0  # mean of (start+1) .. end
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho: the Pearson correlation of average ranks. NaN if either side is
    constant."""
    a, b = _check_pair(a, b)
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = np.sqrt(np.dot(ra, ra) * np.dot(rb, rb))
    return float(np.dot(ra, rb) / den) if den > 0 else float("nan")


def calibration_bins(
    claimed: np.ndarray, observed: np.ndarray, bins: int = 10
) -> list[tuple[float, float, int]]:
    """(mean claimed, mean observed, pixel count) per equal-count bin of the claimed error,
    lowest claim first."""
    c, o = _check_pair(claimed, observed)
    if bins < 1 or c.size < bins:
        raise ValueError(f"cannot split {c.size} pixels into {bins} bins")
    order = np.argsort(c, kind="stable")
    c, o = c[order], tie_averaged(c[order], o[order])  # a tie group split by a bin edge
    parts = np.array_split(np.arange(c.size), bins)
    return [(float(c[p].mean()), float(o[p].mean()), int(p.size)) for p in parts]


def threshold_table(
    claimed: np.ndarray, observed: np.ndarray, thresholds: tuple[float, ...]
) -> list[tuple[float, float, float, float]]:
    """For each threshold t on the claimed error: (t, fraction of pixels with a claim above t,
    mean observed error of the pixels kept, of those dropped); NaN where a side is empty. Pixels
    are pooled over frames (what a fixed `uncertainty.max` does to a stream of frames)."""
    c, o = _check_pair(claimed, observed)
    rows = []
    for t in thresholds:
        drop = c > t
        kept = float(o[~drop].mean()) if (~drop).any() else float("nan")
        dropped = float(o[drop].mean()) if drop.any() else float("nan")
        rows.append((float(t), float(drop.mean()), kept, dropped))
    return rows


def worst_calibration_gap(bins: list[tuple[float, float, int]]) -> float:
    """max over bins of |claimed / observed - 1| (0.25: some decile is 25 % off)."""
    return max(abs(c / o - 1.0) if o > 0 else float("inf") for c, o, _ in bins)


class SparsificationTally:
    """Per-frame curves and rank correlations, summarised over frames (`summary`)."""

    def __init__(self, fractions: np.ndarray = FRACTIONS) -> None:
        self.fractions = np.asarray(fractions, np.float64)
        self.curves: list[np.ndarray] = []
        self.oracles: list[np.ndarray] = []
        self.randoms: list[np.ndarray] = []
        self.rhos: list[float] = []

    def add(self, errors: np.ndarray, scores: np.ndarray) -> None:
        """One frame's valid pixels: their errors and uncertainty scores (higher: less sure)."""
        self.curves.append(sparsification_curve(errors, scores, self.fractions))
        self.oracles.append(oracle_curve(errors, self.fractions))
        self.randoms.append(random_curve(errors, self.fractions))
        self.rhos.append(spearman(scores, errors))

    def summary(self, drop_at: float = 0.2) -> dict:
        """Mean curves; AbsRel before and after removing `drop_at` and the relative drop; AUSE,
        the random ranking's AUSE, their ratio, AURG; Spearman's rho averaged over frames (frames
        with a constant score or error, whose rho is undefined, left out and counted)."""
        if not self.curves:
            raise ValueError("no frame was added")
        hit = np.flatnonzero(np.isclose(self.fractions, drop_at))
        if hit.size != 1:
            raise ValueError(f"{drop_at} is not one of the fractions {self.fractions.tolist()}")
        curve, oracle, rand = (
            np.mean(c, axis=0) for c in (self.curves, self.oracles, self.randoms)
        )
        a, a_rand = ause(curve, oracle, self.fractions), ause(rand, oracle, self.fractions)
        rhos = np.asarray(self.rhos)
        return {
            "frames": len(self.curves),
            "fractions": self.fractions.tolist(),
            "curve": curve.tolist(),
            "oracle": oracle.tolist(),
            "random": rand.tolist(),
            "abs_rel": float(curve[0]),
            "abs_rel_after": float(curve[hit[0]]),
            "drop": float(1.0 - curve[hit[0]] / curve[0]),
            "oracle_drop": float(1.0 - oracle[hit[0]] / oracle[0]),
            "ause": a,
            "ause_random": a_rand,
            "ause_ratio": a / a_rand if a_rand > 0 else float("nan"),
            "aurg": aurg(curve, rand, self.fractions),
            "spearman_per_frame": float(np.nanmean(rhos)) if np.isfinite(rhos).any() else None,
            "spearman_undefined_frames": int((~np.isfinite(rhos)).sum()),
        }


class UncertaintyTally:
    """The issue #25 measures over a stream of frames: per-frame sparsification and Spearman
    (`SparsificationTally`), and, on the pixels pooled over frames, Spearman, the calibration by
    deciles of the claim and the threshold table.

    `pool_per_frame`: at most this many pixels of each frame (drawn at random, seeded) join the
    pool; None pools every pixel (exact, memory grows with the frames: 16 bytes per pixel).
    `pool_max`: at most this many pixels in the pool over all frames; beyond it each new pixel
    replaces a random one (reservoir sampling, seeded), so the pool stays a uniform sample of
    every pixel offered and memory stays bounded however many frames come; None: no bound.
    """

    def __init__(
        self, pool_per_frame: int | None = None, seed: int = 0, pool_max: int | None = None
    ) -> None:
        if pool_per_frame is not None and pool_per_frame < 1:
            raise ValueError(f"pool_per_frame must be >= 1 or None, got {pool_per_frame}")
        if pool_max is not None and pool_max < 1:
            raise ValueError(f"pool_max must be >= 1 or None, got {pool_max}")
        self.pool_per_frame, self.pool_max = pool_per_frame, pool_max
        self.frames = SparsificationTally()
        self._rng = np.random.default_rng(seed)
        self._errors: list[np.ndarray] = []  # until the pool is full
        self._scores: list[np.ndarray] = []
        self._pool: tuple[np.ndarray, np.ndarray] | None = None  # (errors, scores), once full
        self.offered = 0  # pixels offered to the pool so far

    def add(self, errors: np.ndarray, scores: np.ndarray) -> None:
        """One frame's valid pixels: their errors and uncertainty scores (higher: less sure)."""
        e, s = _check_pair(errors, scores)
        self.frames.add(e, s)
        if self.pool_per_frame is not None and e.size > self.pool_per_frame:
            pick = self._rng.choice(e.size, self.pool_per_frame, replace=False)
            e, s = e[pick], s[pick]
        start, self.offered = self.offered, self.offered + e.size
        cap = self.pool_max
        if cap is None or self.offered <= cap:
            self._errors.append(e)
            self._scores.append(s)
            return
        if self._pool is None:  # the pool fills up: one array each from here on
            room = cap - start
            self._errors.append(e[:room])
            self._scores.append(s[:room])
            self._pool = (np.concatenate(self._errors), np.concatenate(self._scores))
            self._errors, self._scores = [], []
            e, s, start = e[room:], s[room:], cap
        index = start + np.arange(e.size)  # each pixel's place in the stream offered
        slot = self._rng.integers(0, index + 1)  # Algorithm R: kept with probability cap / (i+1)
        kept = slot < cap
        self._pool[0][slot[kept]] = e[kept]
        self._pool[1][slot[kept]] = s[kept]

    def summary(
        self,
        drop_at: float = 0.2,
        calibrate: Callable[[np.ndarray], np.ndarray] | None = None,
        thresholds: tuple[float, ...] = (),
        bins: int = 10,
    ) -> dict:
        """`SparsificationTally.summary`, plus `spearman_pooled`, `deciles` (claimed, observed,
        pixels per bin), `worst_decile_gap` and, given `thresholds`, `thresholds` (see
        `threshold_table`). `calibrate` maps a raw score to the claimed error (None: the scores
        are the claims, as the head's are)."""
        report = self.frames.summary(drop_at)
        if self._pool is not None:
            err, raw = self._pool
        else:
            err, raw = np.concatenate(self._errors), np.concatenate(self._scores)
        claim = raw if calibrate is None else np.asarray(calibrate(raw), np.float64)
        report["pooled_pixels"] = int(err.size)
        report["pooled_of"] = int(self.offered)  # more than pooled: a uniform sample of them
        report["spearman_pooled"] = spearman(raw, err)
        report["deciles"] = calibration_bins(claim, err, bins=bins)
        report["worst_decile_gap"] = worst_calibration_gap(report["deciles"])
        if thresholds:
            report["thresholds"] = threshold_table(claim, err, thresholds)
        return report
