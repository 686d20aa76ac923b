"""Per-pixel uncertainty of a DepthART depth map: three estimators and their calibration.

DepthART predicts a distribution over token maps at every scale (`DepthART.refine_steps` yields
each scale's logits), so it can say where its depth is doubtful. Three estimators, each returning
the depth of the given deterministic decoding and a raw score map (B, S, S) at the model
resolution (a backend resizes both to the input size with the same `postprocess`):

- `latent`, one pass: at every scale, the variance of the code embedding under the token
  distribution the decoding uses, E|e|^2 - |E e|^2 per token (`probs @ |codebook|^2` and
  `probs @ codebook`), bilinearly upsampled to the last scale's latent grid (the scale's
  contribution itself is upsampled bicubically), summed over scales (the scales' draws taken as
  independent) and its square root bilinearly upsampled to pixels; divided by depth**0.25
  (`LATENT_DEPTH_EXPONENT`), as the same latent error is a larger relative error on a near
  surface (measured, not derived). Costs a softmax and two small matmuls per scale.
- `samples`: the spread of K sampled decodings (top-p 0.9, one code per token, seeded), batched as
  one transformer pass of batch B*K and one decoder pass of B*(K+1): per pixel, the root mean
  square deviation of the samples from the deterministic depth, divided by that depth.
- `flip`: |d - mirror(d(mirror(x)))| / d from one pass of batch 2B (the disagreement of the image
  and its left-right mirror, Godard et al., CVPR 2017, sec. 4.3 use the mirrored pass to average).

The raw scores rank pixels; `UncertaintyCalibration` maps one to the expected absolute relative
error of the pixel after the DepthART protocol's median scale (|s d - g| / g), a monotone
piecewise-linear map fitted on rendered frames (`fit_calibration`; training/uncertainty_eval.py
fits and saves it for a checkpoint and records the command).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from depthart_core.fileutil import atomic_write, read_json
from depthart_core.model import DepthART, SamplingConfig
from depthart_core.uncertainty_head import embedding_variance

ESTIMATORS = ("head", "latent", "samples", "flip")
DEPTH_FLOOR = 1e-3  # relative depth (1 = the scene's q98) below which scores stop growing
# The latent spread is divided by depth**LATENT_DEPTH_EXPONENT. Chosen once on calibration frames
# (seed 932, frames 0-79; never the evaluation seed): AUSE / random 0.655 at 0, 0.593 at 0.1,
# 0.574 at 0.2 to 0.3, 0.582 at 0.4, 0.684 at 1 (training/uncertainty_eval.py --scan-exponent).
LATENT_DEPTH_EXPONENT = 0.25
SAMPLE_TOP_P = 0.9  # the paper's nucleus; its top-k 900 exceeds the tiny codebooks
CALIBRATION_FORMAT = "depthart-uncertainty-calibration/1"


# ---------------------------------------------------------------------- estimators
def token_distribution(logits_BlV: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """The distribution the decoding reads a token from (`DepthART.token_probs`)."""
    return DepthART.token_probs(logits_BlV, sampling)


def _to_pixels(map_BHW: torch.Tensor, size: int) -> torch.Tensor:
    up = F.interpolate(map_BHW[:, None], size=(size, size), mode="bilinear", align_corners=False)
    return up[:, 0]


def _decode(model: DepthART, f_hat_BChw: torch.Tensor) -> torch.Tensor:
    return model.decode(f_hat_BChw.float()).float()


def _relative(
    spread_BSS: torch.Tensor, depth_BSS: torch.Tensor, exponent: float = 1.0
) -> torch.Tensor:
    return spread_BSS / depth_BSS.clamp_min(DEPTH_FLOOR).pow(exponent)


@torch.no_grad()
def latent_spread(
    model: DepthART,
    x_B3SS: torch.Tensor,
    sampling: SamplingConfig,
    exponent: float = LATENT_DEPTH_EXPONENT,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(depth (B, S, S), score (B, S, S)) of the deterministic `sampling` in one pass; the
    spread is divided by depth**exponent."""
    _require_deterministic(sampling)
    img_BLCv, f_start = model.prefix_and_start(x_B3SS)
    codebook_VC = model.tokenizer.quantize.embedding.weight
    B, H = x_B3SS.shape[0], model.patch_nums[-1]
    var_BHH = x_B3SS.new_zeros(B, H, H)
    steps = model.refine_steps(img_BLCv, sampling, f_start)
    # f_hat after the last scale is what the decoder reads
    for pn, (_, logits_BlV, f_hat) in zip(model.patch_nums, steps, strict=True):  # noqa: B007
        var_Bl = embedding_variance(token_distribution(logits_BlV, sampling), codebook_VC)
        var_Bhw = var_Bl.view(B, pn, pn)  # tokens are row-major over the pn x pn map
        var_BHH = var_BHH + _to_pixels(var_Bhw, H)
    depth_BSS = _decode(model, f_hat)
    spread_BSS = _to_pixels(var_BHH.sqrt(), depth_BSS.shape[-1])
    return depth_BSS, _relative(spread_BSS, depth_BSS, exponent)


@torch.no_grad()
def sample_spread(
    model: DepthART, x_B3SS: torch.Tensor, sampling: SamplingConfig, k: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(depth of the deterministic `sampling`, RMS deviation of `k` seeded samples from it / it).

    The image prefix is computed once; the K samples of every image run as one batch of B*K."""
    _require_deterministic(sampling)
    if k < 2:
        raise ValueError(f"sample spread needs k >= 2 samples, got k={k}")
    img_BLCv, f_start = model.prefix_and_start(x_B3SS)
    B = x_B3SS.shape[0]
    _, f_det, _ = model.generate_from_prefix(img_BLCv, sampling, f_start)
    draw = SamplingConfig(greedy=False, top_p=SAMPLE_TOP_P, n_samples=1, seed=seed)
    img_NLCv = img_BLCv.repeat_interleave(k, dim=0)  # N = B*K, image b's samples adjacent
    f_start_N = None if f_start is None else f_start.repeat_interleave(k, dim=0)
    _, f_smp, _ = model.generate_from_prefix(img_NLCv, draw, f_start_N)
    depth_MSS = _decode(model, torch.cat([f_det, f_smp]))  # M = B + B*K, one decoder pass
    depth_BSS, samples_BKSS = depth_MSS[:B], depth_MSS[B:].unflatten(0, (B, k))
    rms_BSS = (samples_BKSS - depth_BSS[:, None]).square().mean(1).sqrt()
    return depth_BSS, _relative(rms_BSS, depth_BSS)


@torch.no_grad()
def flip_disagreement(
    model: DepthART, x_B3SS: torch.Tensor, sampling: SamplingConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """(depth, |d - mirror(d(mirror(x)))| / d) from one pass of batch 2B."""
    _require_deterministic(sampling)
    B = x_B3SS.shape[0]
    _, f_hat, _ = model.generate(torch.cat([x_B3SS, x_B3SS.flip(-1)]), sampling)
    depth_2BSS = _decode(model, f_hat)
    depth_BSS, mirrored_BSS = depth_2BSS[:B], depth_2BSS[B:].flip(-1)
    return depth_BSS, _relative((depth_BSS - mirrored_BSS).abs(), depth_BSS)


def depth_and_uncertainty(
    model: DepthART,
    x_B3SS: torch.Tensor,
    method: str = "latent",
    sampling: SamplingConfig | None = None,
    k: int = 4,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The depth of `sampling` (default greedy) and the raw score of `method` (ESTIMATORS)."""
    sampling = sampling or SamplingConfig()
    if method == "head":
        _require_deterministic(sampling)
        r = model.infer(x_B3SS, sampling, with_uncertainty=True)
        return r.depth, r.uncertainty
    if method == "latent":
        return latent_spread(model, x_B3SS, sampling)
    if method == "samples":
        return sample_spread(model, x_B3SS, sampling, k=k, seed=seed)
    if method == "flip":
        return flip_disagreement(model, x_B3SS, sampling)
    raise ValueError(f"unknown uncertainty estimator {method!r}; choose one of {list(ESTIMATORS)}")


def _require_deterministic(sampling: SamplingConfig) -> None:
    if not sampling.deterministic:
        raise ValueError(
            "uncertainty is reported for a deterministic decoding (greedy or soft); a sampled "
            "depth is itself one draw of what the estimators measure"
        )


# ---------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class UncertaintyCalibration:
    """Raw score -> expected absolute relative error of the pixel, piecewise linear through
    `knots` (score, error) pairs with both increasing; constant beyond the end knots."""

    method: str
    scores: tuple[float, ...]
    errors: tuple[float, ...]
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in ESTIMATORS:
            raise ValueError(f"calibration for unknown estimator {self.method!r}")
        s, e = np.asarray(self.scores, float), np.asarray(self.errors, float)
        if s.ndim != 1 or s.size < 2 or s.shape != e.shape:
            raise ValueError(
                f"calibration needs >= 2 (score, error) knots of equal count, got {s.size} "
                f"scores and {e.size} errors"
            )
        if not (np.isfinite(s).all() and np.isfinite(e).all()):
            raise ValueError("calibration knots must be finite")
        if np.any(np.diff(s) <= 0) or np.any(np.diff(e) < 0) or e[0] < 0:
            raise ValueError(
                f"calibration knots must have increasing scores and non-decreasing errors >= 0, "
                f"got scores {list(s)} errors {list(e)}"
            )

    def __call__(self, score: np.ndarray) -> np.ndarray:
        """Expected |s d - g| / g per pixel. A NaN or infinite score gives NaN (never a finite
        claim that would hide it), for the caller to count and mask."""
        score = np.asarray(score, dtype=np.float32)
        out = np.interp(score, self.scores, self.errors).astype(np.float32)
        return np.where(np.isfinite(score), out, np.float32(np.nan))

    def to_dict(self) -> dict:
        return {"format": CALIBRATION_FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict, source: str = "calibration") -> UncertaintyCalibration:
        if d.get("format") != CALIBRATION_FORMAT:
            raise ValueError(f"{source}: format {d.get('format')!r}, expected {CALIBRATION_FORMAT}")
        unknown = set(d) - {"format", "method", "scores", "errors", "provenance"}
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {sorted(unknown)}")
        return cls(
            d["method"], tuple(d["scores"]), tuple(d["errors"]), dict(d.get("provenance", {}))
        )

    def save(self, path: str | Path) -> None:
        atomic_write(path, (json.dumps(self.to_dict(), indent=1) + "\n").encode())

    @classmethod
    def load(cls, path: str | Path) -> UncertaintyCalibration:
        return cls.from_dict(read_json(path, "uncertainty calibration"), str(path))


def isotonic(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The non-decreasing sequence closest to `values` in weighted least squares (pool adjacent
    violators)."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for v, w in zip(np.asarray(values, float), np.asarray(weights, float), strict=True):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([np.full(int(n), m) for m, _, n in blocks])


def tie_groups(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) of each run of equal values in a sorted array, end exclusive."""
    k = np.asarray(sorted_keys)
    starts = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))
    return starts, np.concatenate([starts[1:], [k.size]])


def tie_averaged(sorted_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`values` (in the keys' sorted order) with each run of equal keys replaced by the run's
    mean: what any split of a tie group gets in expectation over a random order of its pixels."""
    v = np.asarray(values, np.float64)
    starts, ends = tie_groups(sorted_keys)
    sums = np.add.reduceat(v, starts) if v.size else v
    return np.repeat(sums / (ends - starts), ends - starts)


def fit_calibration(
    method: str,
    scores: np.ndarray,
    errors: np.ndarray,
    bins: int = 20,
    provenance: dict | None = None,
) -> UncertaintyCalibration:
    """Equal-count bins of the raw score; a knot at each bin's mean score with the bin's mean
    error, made non-decreasing by isotonic regression. Bins whose knots coincide merge."""
    s, e = np.asarray(scores, np.float64).ravel(), np.asarray(errors, np.float64).ravel()
    if s.shape != e.shape:
        raise ValueError(f"{s.size} scores but {e.size} errors")
    ok = np.isfinite(s) & np.isfinite(e)
    if ok.sum() < 2 * bins:
        raise ValueError(f"calibration needs >= {2 * bins} finite pixels, got {int(ok.sum())}")
    s, e = s[ok], e[ok]
    order = np.argsort(s, kind="stable")
    s, e = s[order], tie_averaged(s[order], e[order])  # tied scores: no pixel-order effect
    parts = np.array_split(np.arange(s.size), bins)
    knot_s = np.array([s[p].mean() for p in parts])
    knot_e = np.array([e[p].mean() for p in parts])
    weight = np.array([p.size for p in parts], float)
    # bins whose knots coincide (a tie group wider than a bin) merge into one count-weighted knot
    starts, ends = tie_groups(knot_s)
    merged_w = np.add.reduceat(weight, starts)
    merged_e = np.add.reduceat(knot_e * weight, starts) / merged_w
    knot_e = isotonic(merged_e, merged_w)
    return UncertaintyCalibration(
        method, tuple(map(float, knot_s[starts])), tuple(map(float, knot_e)), provenance or {}
    )
