"""`depthart eval`: run a predictor over benchmark readers and score it under a protocol.

`evaluate_predictions(dataset, predict_fn, protocol)` takes any callable HxWx3 uint8 RGB -> HxW
depth (a `Backend.predict`, a trivial baseline, another model) and returns per-image rows and the
protocol's aggregate. `run_eval` wires checkpoints, backends and datasets together for the CLI and
writes the reports (`depthart_core.evaluation.report`).

Resolution: predictions come from the same `predict(rgb)` users call, which returns depth at the
input size, and are scored at the ground truth's native resolution. The DepthART paper instead
scores at 256 x 256 against nearest-resized ground truth (except iBims, scored at 640 x 480);
`eval_size=S` reproduces that (prediction resized bilinearly, ground truth and mask by nearest).

Uncertainty (issue #25): a model whose backend has the uncertainty head
(`Model.predict_uncertainty`; on by default, `load_models(uncertainty=False)` / `depthart eval
--no-uncertainty` skip it) is run with `predict(rgb, with_uncertainty=True)`, one pass, scored by
`evaluation.uncertainty_metrics.UncertaintyTally`: the errors are |s d - g| / g with each frame's
median scale s over its valid pixels, always at the ground truth's resolution (the size the head
claims errors at), whatever the protocol and eval size; the pooled measures (Spearman, deciles)
use at most `POOL_PER_FRAME` random pixels of each frame.

A frame whose files cannot be read (`data.benchmarks._io.FRAME_ERRORS`: not decodable, RGB and
depth of different sizes, a missing file) never stops the run: it is skipped with one warning
naming the file and why, listed in the report (`EvalResult.unreadable`), and the metrics are over
the frames scored; `depthart eval` then exits 1. A dataset none of whose frames can be read
raises `NoFrameReadable` naming it: the error of a run of one model on one dataset; in a table of
several (`run_eval`) that cell is reported as not scored, with why, and the rest are scored.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from depthart_core.checkpoint import file_sha256, resolve_checkpoint
from depthart_core.data.benchmarks import canonical_name, get_dataset
from depthart_core.data.benchmarks._io import FRAME_ERRORS
from depthart_core.data.sample import DepthDataset
from depthart_core.data.synthetic.config import SynthConfig
from depthart_core.data.synthetic.render import render_batch
from depthart_core.evaluation import report
from depthart_core.evaluation.planarity import planarity_errors
from depthart_core.evaluation.protocols import (
    aggregate,
    evaluate_image,
    get_protocol,
    paper_eval_size,
)
from depthart_core.evaluation.uncertainty_metrics import UncertaintyTally, frame_errors
from depthart_core.model import SamplingConfig
from depthart_core.rundir import CKPT_NAME
from depthart_core.runtime import get_backend
from depthart_core.tokenizer.codec import decode_depth, encode_depth

log = logging.getLogger(__name__)

PredictFn = Callable[[np.ndarray], np.ndarray]
UncertaintyFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # rgb -> (depth, error)
VIS_MAX_SIDE = 320  # px, the longest side of each panel in samples.png
POOL_PER_FRAME = 10_000  # pixels of each frame in the pooled uncertainty measures
# pixels in the pool over all frames (400 frames' worth, 64 MB): beyond it a uniform sample of
# them (`UncertaintyTally`), so a long set (18,000 frames of a 10-minute stream) fits in memory
POOL_MAX = 4_000_000
# the node's `uncertainty.max` values whose effect the report shows (what each would drop)
UNCERTAINTY_THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.3)


def _uncertainty_summary(tally: UncertaintyTally | None, nonfinite: int) -> dict | None:
    """The tally's summary with the count of non-finite claims left out of it; None without an
    uncertainty, or when no frame had a finite one (logged)."""
    if tally is None:
        return None
    if not tally.frames.curves:
        if nonfinite:
            log.warning("uncertainty not scored: all %d valid pixels' uncertainty is non-finite "
                        "(a broken head?)", nonfinite)  # fmt: skip
        return None
    return {**tally.summary(thresholds=UNCERTAINTY_THRESHOLDS), "nonfinite_pixels": nonfinite}


def constant_baseline(rgb: np.ndarray) -> np.ndarray:
    """Predicts the same depth everywhere: what alignment alone scores."""
    return np.ones(rgb.shape[:2], dtype=np.float32)


def ramp_baseline(rgb: np.ndarray) -> np.ndarray:
    """Depth growing from the bottom row (near) to the top row (far), the ground-plane prior."""
    h, w = rgb.shape[:2]
    rows = np.linspace(2.0, 1.0, h, dtype=np.float32)
    return np.repeat(rows[:, None], w, axis=1)


PRIOR_SEED, PRIOR_COUNT, PRIOR_SIZE = 0, 512, 64


@functools.lru_cache(maxsize=2)
def mean_depth_map(
    seed: int = PRIOR_SEED, count: int = PRIOR_COUNT, size: int = PRIOR_SIZE
) -> np.ndarray:
    """The mean of d / q98(d) (the DepthART depth codec's relative depth) over the first `count`
    frames of the synthetic training stream `seed`, at size x size: the mean-depth-map prior."""
    acc = torch.zeros(size, size, dtype=torch.float64)
    for start in range(0, count, 64):
        idx = list(range(start, min(count, start + 64)))
        b = render_batch(seed, idx, SynthConfig(size=(size, size)))
        acc += decode_depth(encode_depth(b["depth"], b["valid"])[0]).double().sum(0)
    return (acc / count).float().numpy()


def mean_depth_baseline(rgb: np.ndarray) -> np.ndarray:
    """The mean-depth-map prior (synthetic training frames), resized to the input."""
    prior = mean_depth_map()
    return cv2.resize(prior, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)


BASELINES: dict[str, PredictFn] = {
    "constant": constant_baseline,
    "ramp": ramp_baseline,
    "mean_depth": mean_depth_baseline,
}


class NoFrameReadable(ValueError):
    """`evaluate_predictions`: none of a dataset's frames to score could be read. `unreadable`:
    every frame's {"index", "error"}."""

    def __init__(self, dataset: str, unreadable: list[dict]):
        self.dataset, self.unreadable = dataset, unreadable
        super().__init__(
            f"dataset {dataset}: none of the {len(unreadable)} frames to score could be read "
            f"(the first: {unreadable[0]['error']})"
        )


@dataclass
class VisSample:
    """A downsized copy of one scored image for samples.png."""

    name: str
    rgb: np.ndarray
    gt: np.ndarray
    valid: np.ndarray
    pred: np.ndarray  # aligned prediction


@dataclass
class EvalResult:
    dataset: str
    protocol: str
    aggregate: dict[str, float]
    per_image: list[dict]
    skipped_empty: int  # images with no valid pixel (not scored, as in DepthART and Marigold)
    skipped_reader: int  # frames the reader skipped (known dataset gaps)
    timings: dict[str, float]
    depth_range: tuple[float, float] | None = None
    vis: list[VisSample] = field(default_factory=list)
    uncertainty: dict | None = None  # UncertaintyTally.summary, for a model with the head
    # frames whose files could not be read (not scored): {"index": i, "error": why, naming the file}
    unreadable: list[dict] = field(default_factory=list)

    @property
    def n_images(self) -> int:
        return len(self.per_image)


def _resize_for_eval(pred, gt, valid, size: int):
    pred = cv2.resize(pred.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    # nearest about pixel centres, as the prediction's bilinear resize (INTER_NEAREST would
    # take floor(dst * scale): GT shifted up-left of the prediction)
    near = cv2.INTER_NEAREST_EXACT
    gt = cv2.resize(gt.astype(np.float32), (size, size), interpolation=near)
    valid = cv2.resize(valid.astype(np.uint8), (size, size), interpolation=near) > 0
    return pred, gt, valid


def _vis_copy(name, rgb, gt, valid, aligned) -> VisSample:
    h, w = gt.shape
    s = min(1.0, VIS_MAX_SIDE / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    if rgb.shape[:2] != (h, w):
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    near = cv2.INTER_NEAREST
    return VisSample(
        name=name,
        rgb=cv2.resize(rgb, size, interpolation=cv2.INTER_AREA),
        gt=cv2.resize(gt.astype(np.float32), size, interpolation=near),
        valid=cv2.resize(valid.astype(np.uint8), size, interpolation=near) > 0,
        pred=cv2.resize(aligned.astype(np.float32), size, interpolation=near),
    )


def _planarity(s, pred: np.ndarray) -> dict[str, list[float]]:
    """iBims-1 pe-fla / pe-ori of every scorable plane (ground-truth resolution only)."""
    if "planes" not in s.extras:
        return {}
    fla, ori = planarity_errors(s.depth, pred, s.valid, s.extras["calib"], s.extras["planes"])
    return {
        "pe_fla_planes": [v for v in fla if np.isfinite(v)],
        "pe_ori_planes": [v for v in ori if np.isfinite(v)],
    }


def planarity_aggregate(rows: Sequence[dict]) -> dict[str, float]:
    """Mean over all planes of all images, as the official iBims-1 evaluation (none: {})."""
    fla = [v for r in rows for v in r.get("pe_fla_planes", [])]
    ori = [v for r in rows for v in r.get("pe_ori_planes", [])]
    if not fla:
        return {}
    return {"pe_fla": float(np.mean(fla)), "pe_ori": float(np.mean(ori)), "n_planes": len(fla)}


def dataset_range(dataset: DepthDataset) -> tuple[float, float] | None:
    lo, hi = getattr(dataset, "min_depth", None), getattr(dataset, "max_depth", None)
    return None if lo is None or hi is None else (float(lo), float(hi))


@contextlib.contextmanager
def _naming(frame: str) -> Iterator[None]:
    """A ValueError from scoring one frame, with that frame's name in front."""
    try:
        yield
    except ValueError as exc:
        raise ValueError(f"{frame}: {exc}") from exc


def evaluate_predictions(
    dataset: DepthDataset,
    predict_fn: PredictFn,
    protocol: str = "depthart",
    limit: int | None = None,
    eval_size: int | None = None,
    n_vis: int = 4,
    progress: bool = True,
    predict_uncertainty: UncertaintyFn | None = None,
) -> EvalResult:
    """Score `predict_fn` on the first `limit` samples of `dataset` (all when None). With
    `predict_uncertainty` (rgb -> (depth, expected relative error)) that call replaces
    `predict_fn` and the uncertainty is scored too (`EvalResult.uncertainty`)."""
    proto = get_protocol(protocol)
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    if n <= 0:
        raise ValueError(f"nothing to evaluate: dataset has {len(dataset)} samples, limit={limit}")
    vis_idx = set(np.linspace(0, n - 1, min(n_vis, n)).round().astype(int).tolist())
    depth_range = dataset_range(dataset)
    name = getattr(dataset, "name", type(dataset).__name__)
    rows, vis, empty, unc_nonfinite = [], [], 0, 0
    unreadable: list[dict] = []
    tally = (
        UncertaintyTally(POOL_PER_FRAME, pool_max=POOL_MAX)
        if predict_uncertainty is not None
        else None
    )
    t_load = t_pred = t_metric = 0.0
    t_start = time.perf_counter()
    for i in tqdm(range(n), desc=f"eval {name}", disable=not progress, unit="img"):
        t0 = time.perf_counter()
        try:
            s = dataset[i]
        except FRAME_ERRORS as exc:  # this frame's files only: skipped, named, the rest scored
            unreadable.append({"index": i, "error": str(exc)})
            log.warning("%s: frame %d not scored: %s", name, i, exc)
            continue
        t1 = time.perf_counter()
        if predict_uncertainty is None:
            pred, unc = np.asarray(predict_fn(s.rgb)), None
        else:
            pred, unc = map(np.asarray, predict_uncertainty(s.rgb))
        t2 = time.perf_counter()
        t_load, t_pred = t_load + (t1 - t0), t_pred + (t2 - t1)
        if pred.shape != s.depth.shape:
            raise ValueError(
                f"{s.name}: prediction {pred.shape} does not match depth {s.depth.shape}"
            )
        gt, valid = s.depth, s.valid
        if unc is not None and unc.shape != gt.shape:
            raise ValueError(f"{s.name}: uncertainty {unc.shape} does not match depth {gt.shape}")
        if unc is not None and valid.any():  # at the ground truth's resolution, always
            with _naming(s.name):
                errors = frame_errors(pred, gt, valid)
            u_valid = unc[valid]
            finite = np.isfinite(u_valid)  # a non-finite claim is counted, never scored
            if not finite.all():
                n_bad = int((~finite).sum())
                unc_nonfinite += n_bad
                log.warning("%s: %d pixels' uncertainty is not finite; those pixels are left "
                            "out of the uncertainty measures", s.name, n_bad)  # fmt: skip
            if finite.any():
                tally.add(errors[finite], u_valid[finite])
        planes = _planarity(s, pred) if not eval_size else {}
        if eval_size:
            pred, gt, valid = _resize_for_eval(pred, gt, valid, int(eval_size))
        if not valid.any():
            empty += 1
            log.warning("%s: %s has no valid pixel; not scored", name, s.name)
            continue
        with _naming(s.name):  # a NaN or all-zero depth: which frame, not only what
            # the full aligned map only for a frame that is drawn (`vis`): its only use
            r = evaluate_image(pred, gt, valid, proto, depth_range, aligned_map=i in vis_idx)
        t_metric += time.perf_counter() - t2
        rows.append(
            {
                "index": i,
                "name": s.name,
                **r.metrics,
                "scale": r.scale,
                "shift": r.shift,
                "n_valid": r.n_valid,
                "predict_ms": 1000.0 * (t2 - t1),
                **planes,
            }
        )
        if i in vis_idx:
            vis.append(_vis_copy(s.name, s.rgb, gt, valid, r.aligned))
    if len(unreadable) == n:
        raise NoFrameReadable(name, unreadable)
    pred_ms = [row["predict_ms"] for row in rows] or [0.0]
    timings = {
        "total_s": time.perf_counter() - t_start,
        "load_s": t_load,
        "predict_s": t_pred,
        "metrics_s": t_metric,
        "predict_ms_mean": float(np.mean(pred_ms)),
        "predict_ms_median": float(np.median(pred_ms)),
    }
    return EvalResult(
        dataset=name,
        protocol=proto.name,
        aggregate=aggregate(rows, proto) | planarity_aggregate(rows),
        per_image=rows,
        skipped_empty=empty,
        skipped_reader=int(getattr(dataset, "skipped", 0)),
        timings=timings,
        depth_range=depth_range,
        vis=vis,
        uncertainty=_uncertainty_summary(tally, unc_nonfinite),
        unreadable=unreadable,
    )


@dataclass
class Model:
    """One row of the results table: a label and how it predicts."""

    label: str
    predict: PredictFn
    checkpoint: str | None = None
    sha256: str | None = None
    backend: str | None = None
    backend_detail: str | None = None
    predict_uncertainty: UncertaintyFn | None = None  # set when the backend has the head


def _model_name(path: str) -> str:
    """A checkpoint's name in the results: its file's stem, or for a run's own
    `checkpoint.safetensors` (train, finetune) the run folder's name."""
    p = Path(path)
    if p.stem != Path(CKPT_NAME).stem:
        return p.stem
    return p.resolve().parent.name or p.stem


def load_models(
    checkpoints: Sequence[str | None],
    baselines: Sequence[str] = (),
    backend: str = "torch",
    letterbox: bool = False,
    device: str = "cpu",
    threads: int = 0,
    sampling: SamplingConfig | None = None,
    vae: str | Path | None = None,
    flip_average: bool = False,
    uncertainty: bool = True,
    vae_setting: str | None = None,
) -> list[Model]:
    """`sampling`: the decoding of every checkpoint (None: the default, soft); `vae`: VAR's
    VQ-VAE for an authors' checkpoint saved without it (`vae_setting`: what errors call it);
    `flip_average`: see `runtime.base`;
    `uncertainty`: also score the uncertainty of each checkpoint that has the head."""
    models, labels = [], set()
    for ckpt in checkpoints:
        b = get_backend(
            backend,
            ckpt,
            device,
            letterbox=letterbox,
            threads=threads,
            sampling=sampling,
            vae=vae,
            vae_setting=vae_setting,
            flip_average=flip_average,
        )
        info = getattr(b, "info", {}) or {}
        # the shipped default is recorded by its path and hash too (a report names what it scored)
        path = info.get("path") or str(resolve_checkpoint(ckpt) if ckpt is None else ckpt)
        sha = info.get("sha256") or (file_sha256(path) if path and Path(path).is_file() else None)
        stem = _model_name(path) if ckpt is not None else "default"
        label, k = stem, 2
        while label in labels:
            label, k = f"{stem}-{k}", k + 1
        labels.add(label)
        with_unc = (
            functools.partial(b.predict, with_uncertainty=True)
            if uncertainty and b.has_uncertainty
            else None
        )
        models.append(
            Model(
                label,
                b.predict,
                path,
                sha,
                getattr(b, "name", backend),
                b.describe(),
                predict_uncertainty=with_unc,
            )
        )
    for name in baselines:
        if name not in BASELINES:
            raise ValueError(f"unknown baseline {name!r}; choose one of {sorted(BASELINES)}")
        models.append(Model(f"baseline:{name}", BASELINES[name], backend="baseline"))
    return models


def run_eval(
    models: Sequence[Model],
    datasets: Sequence[str],
    roots: Sequence[str | Path],
    out: str | Path,
    protocol: str = "depthart",
    limit: int | None = None,
    eval_size: int | str | None = None,
    progress: bool = True,
) -> dict:
    """Evaluate every model on every dataset; write reports under `out`. Returns report.json's dict.

    One model on one dataset writes `out/report.{json,md}` and `out/samples.png`. Otherwise each
    run goes to `out/<model>/<dataset>/` and `out/report.{json,md}` hold the combined table.
    Either dict's "skipped_unreadable" counts the frames that could not be read (not scored).
    A dataset none of whose frames can be read stops a run of one model on one dataset
    (`NoFrameReadable`); in the combined table its cells are not scored (the report's
    "not_scored" says why) and every other model and dataset is still scored; none scored at all:
    a ValueError naming each dataset's reason, nothing written.
    `eval_size="paper"`: the paper's rule per dataset (`protocols.paper_eval_size`).
    """
    if len(datasets) != len(roots):
        raise ValueError(f"{len(datasets)} dataset(s) {list(datasets)} but {len(roots)} root(s)")
    if not models:
        raise ValueError("no model to evaluate")
    get_protocol(protocol)
    keys = [canonical_name(d) for d in datasets]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:  # results and run folders are keyed by the dataset: one would overwrite another
        raise ValueError(
            f"dataset {', '.join(repeated)} given more than once; evaluate each root on its own "
            "(one --out each)"
        )
    readers = [get_dataset(k, r) for k, r in zip(keys, roots, strict=True)]
    out = Path(out)
    single = len(models) == 1 and len(readers) == 1
    folders: list[str] = []  # one per model: labels that differ can share a safe name
    for m in models:
        name = base = report.safe_name(m.label)
        k = 2
        while name in folders:
            name, k = f"{base}-{k}", k + 1
        folders.append(name)
    runs, not_scored = [], []
    for m, folder in zip(models, folders, strict=True):
        for key, ds in zip(keys, readers, strict=True):
            n = len(ds) if limit is None else min(int(limit), len(ds))
            log.info("evaluating %s on %s (%d images, protocol %s)", m.label, key, n, protocol)
            size = paper_eval_size(key) if eval_size == "paper" else eval_size
            try:
                res = evaluate_predictions(
                    ds,
                    m.predict,
                    protocol,
                    limit,
                    size,
                    progress=progress,
                    predict_uncertainty=m.predict_uncertainty,
                )
            except NoFrameReadable as exc:
                if single:  # the run's only result: its error, nothing written
                    raise
                log.error("%s on %s not scored: %s", m.label, key, exc)
                not_scored.append(
                    {
                        "model": m.label,
                        "dataset": key,
                        "reason": str(exc),
                        "unreadable": exc.unreadable,
                        "checkpoint": m.checkpoint,
                        "checkpoint_sha256": m.sha256,
                        "backend": m.backend,
                    }
                )
                continue
            res.dataset = key
            run_dir = out if single else out / folder / key
            run = report.write_run(run_dir, res, m)
            run["path"] = f"{folder}/{key}/report.json"  # for the combined report to link
            runs.append(run)
    if single:
        return runs[0]
    if not runs:  # nothing scored: no table to write (the first model's reason for each)
        reasons = dict.fromkeys(n["reason"] for n in not_scored[: len(keys)])
        raise ValueError(f"nothing could be scored: {'; '.join(reasons)}")
    return report.write_combined(out, runs, keys, protocol, not_scored=not_scored)
