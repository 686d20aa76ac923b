"""Does the per-pixel uncertainty predict the error? (issue #25, phase 1)

For each estimator of `depthart_core.uncertainty` on the shipped checkpoint and its default
decoding (or --sampling): fits the calibration (raw score -> expected absolute relative error) on
the frames of --calib-root, then on the unseen frames of --eval-root prints the AbsRel drop when
the 20 % most uncertain pixels of each frame are removed, AUSE against a random ranking's,
Spearman's rho (per frame and pooled), the claimed and observed error in each decile of the
claim, and the cost at 640x480 on one torch thread; the same on scikit-image's Middlebury
motorcycle (one photograph: a sanity check). Errors are |s d - g| / g with the DepthART
protocol's median scale s per frame; frames are scored at their own resolution as `depthart
eval` does (model output resized back). Measures: `depthart_core.evaluation.uncertainty_metrics`.

    depthart synth --out runs/eval_seed931 --count 200 --seed 931 --size 256x256   # evaluation
    depthart synth --out runs/eval_seed932 --count 200 --seed 932 --size 256x256   # calibration
    OMP_NUM_THREADS=1 python training/uncertainty_eval.py --eval-root runs/eval_seed931 \\
        --calib-root runs/eval_seed932 --plot docs/uncertainty_sparsification.png \\
        --json runs/uncertainty/report.json --calibration-dir runs/uncertainty
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import torch

from depthart_core.data.synthetic.set import SyntheticSet, set_problem
from depthart_core.evaluation.uncertainty_metrics import (
    SparsificationTally,
    UncertaintyTally,
    frame_errors,
)
from depthart_core.fileutil import atomic_write
from depthart_core.runtime.preprocess import postprocess, preprocess
from depthart_core.runtime.threads import set_torch_threads
from depthart_core.runtime.torch_backend import DepthEstimator
from depthart_core.sampling import SAMPLING_NAMES, describe_sampling, sampling_setting
from depthart_core.uncertainty import (
    ESTIMATORS,
    LATENT_DEPTH_EXPONENT,
    UncertaintyCalibration,
    depth_and_uncertainty,
    fit_calibration,
    latent_spread,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_photos import photos  # noqa: E402  (a sibling script, not a package)

Frame = tuple[np.ndarray, np.ndarray, np.ndarray]
THRESHOLDS = (
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
)  # uncertainty.max values to tabulate  # rgb HxWx3 uint8, depth HxW, valid HxW


def predict(
    est: DepthEstimator,
    rgbs: list[np.ndarray],
    method: str,
    k: int = 4,
    exponent: float = LATENT_DEPTH_EXPONENT,
    batch: int = 16,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(depth, raw score) at each image's own size, through the backends' pre/post-processing."""
    out = []
    for b0 in range(0, len(rgbs), batch):
        prepared = [preprocess(rgb, est.image_size, est.letterbox) for rgb in rgbs[b0 : b0 + batch]]
        x = torch.from_numpy(np.concatenate([p[0] for p in prepared]))
        with torch.inference_mode():
            if method == "latent":
                depth, score = latent_spread(est.model, x, est.sampling, exponent)
            else:
                depth, score = depth_and_uncertainty(est.model, x, method, est.sampling, k=k)
        for i, (_, geo) in enumerate(prepared):
            out.append((postprocess(depth[i].numpy(), geo), postprocess(score[i].numpy(), geo)))
    return out


def errors_and_scores(frames: list[Frame], preds) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per frame, over its valid pixels: |s d - g| / g (median scale s) and the raw score."""
    return [
        (frame_errors(depth, gt, valid), score[valid].astype(np.float64))
        for (_, gt, valid), (depth, score) in zip(frames, preds, strict=True)
    ]


def tally(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    t = SparsificationTally()
    for err, raw in pairs:
        t.add(err, raw)
    return t.summary()


def score(pairs: list[tuple[np.ndarray, np.ndarray]], calib: UncertaintyCalibration | None) -> dict:
    """The sparsification summary, pooled Spearman and the calibration by deciles of the claim
    (every pixel pooled); `calib` None: the scores are the claims (the head's map)."""
    t = UncertaintyTally(pool_per_frame=None)
    for err, raw in pairs:
        t.add(err, raw)
    return t.summary(calibrate=calib, thresholds=THRESHOLDS)


def timing(est: DepthEstimator, rgb: np.ndarray, method: str, k: int, calib, runs: int) -> dict:
    """Median wall and CPU ms per frame, end to end, plain and with uncertainty, the two runs
    interleaved so that a change in the machine's load hits both alike."""

    def plain():
        return est.predict(rgb)

    def with_uncertainty():
        depth, raw = predict(est, [rgb], method, k)[0]
        return depth, raw if calib is None else calib(raw)

    fns = {"plain": plain, "uncertainty": with_uncertainty}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for i in range(runs + 3):  # 3 warm-up rounds
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            if i >= 3:
                times[name].append(((time.perf_counter() - w0), (time.process_time() - c0)))
    out = {}
    for name, ts in times.items():
        wall, cpu = (1e3 * float(np.median([t[j] for t in ts])) for j in (0, 1))
        out[name] = {"wall_ms": wall, "cpu_ms": cpu, "fps": 1e3 / wall}
    return out


def load(root: str, count: int) -> list[Frame]:
    """The set's first `count` frames that can be read: one whose files are missing or damaged
    is skipped with a warning and the set's next frame stands in for it; where too few are
    left, those there are (both said)."""
    ds = SyntheticSet(root)
    if len(ds) < count:
        raise ValueError(f"{root} holds {len(ds)} frames, --count asks for {count}")
    frames = [(s.rgb, s.depth, s.valid) for _, s in islice(ds.readable(), count)]
    if ds.unreadable_read:  # each named in a warning above
        print(f"{root}: {len(ds.unreadable_read)} unreadable frame(s) skipped")
    if not frames:
        raise SystemExit(f"{root}: none of its {len(ds)} frames could be read")
    if len(frames) < count:
        print(f"{root}: {len(frames)} of --count {count} frames could be read; using those")
    return frames


def check_roots(ap: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse, in one line through the parser and before the checkpoint loads, a root that is no
    rendered set or holds fewer frames than --count (`load` raised after the model had loaded).
    --scan-exponent reads only --calib-root."""
    roots = [("--calib-root", args.calib_root)]
    roots += [] if args.scan_exponent else [("--eval-root", args.eval_root)]
    for option, root in roots:
        problem = set_problem(root)
        if problem is not None:
            ap.error(f"{option} {problem}")
        if (n := len(SyntheticSet(root))) < args.count:
            ap.error(
                f"{option} {root} holds {n} frames, --count asks for {args.count}; give "
                f"--count {n} or a larger set"
            )


def parse_method(spec: str) -> tuple[str, int]:
    """`latent`, `flip`, `samples` (K=4) or `samples:K`."""
    name, _, k = spec.partition(":")
    if name not in ESTIMATORS or (k and name != "samples"):
        raise argparse.ArgumentTypeError(f"bad estimator {spec!r}: {list(ESTIMATORS)} or samples:K")
    if k and (not k.isdigit() or int(k) < 2):
        raise argparse.ArgumentTypeError(f"bad estimator {spec!r}: K must be an integer >= 2")
    return name, int(k or 4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--eval-root", required=True, help="synthetic set never used elsewhere")
    ap.add_argument("--calib-root", required=True, help="another unseen set, to fit calibration")
    ap.add_argument("--count", type=int, default=200, help="frames of each set (200)")
    ap.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    ap.add_argument("--sampling", choices=SAMPLING_NAMES, default=None, help="default: the model's")
    ap.add_argument(
        "--methods",
        nargs="+",
        type=parse_method,
        default=[("latent", 4), ("samples", 4), ("samples", 8), ("flip", 4)],
        help="latent, flip, samples:K (default: latent samples:4 samples:8 flip)",
    )
    ap.add_argument("--runs", type=int, default=30, help="timed frames per setting (30)")
    ap.add_argument("--plot", default=None, help="sparsification plot (PNG)")
    ap.add_argument("--json", default=None, help="full report (JSON)")
    ap.add_argument("--calibration-dir", default=None, help="write calibration_<method>.json")
    ap.add_argument(
        "--scan-exponent",
        type=float,
        nargs="+",
        default=None,
        help="only print the latent spread's AUSE / random on the --calib-root frames for each "
        "exponent of depth it is divided by (how LATENT_DEPTH_EXPONENT was chosen)",
    )
    args = ap.parse_args(argv)
    if args.count < 1 or args.runs < 1:
        ap.error(f"need --count >= 1 and --runs >= 1; got {args.count}, {args.runs}")
    check_roots(ap, args)

    set_torch_threads(1)
    est = DepthEstimator.from_checkpoint(args.checkpoint)
    if args.sampling:
        est.sampling = sampling_setting(args.sampling)
    decoding = describe_sampling(est.sampling)
    sha = est.info.get("sha256", "?")
    print(f"checkpoint {est.info.get('path')} sha256 {sha[:12]}, decoding {decoding}", flush=True)
    calib_frames = load(args.calib_root, args.count)
    calib_rgbs = [f[0] for f in calib_frames]
    if args.scan_exponent:
        for a in args.scan_exponent:
            r = tally(errors_and_scores(calib_frames, predict(est, calib_rgbs, "latent", 4, a)))
            print(
                f"latent / depth^{a:g}: AUSE / random {r['ause_ratio']:.3f}, drop at 20 % "
                f"{100 * r['drop']:.1f} %, Spearman per frame {r['spearman_per_frame']:.3f}"
            )
        return 0
    eval_frames = load(args.eval_root, args.count)
    moto_name, moto_rgb, moto_depth = photos()[0]
    moto = [(moto_rgb, moto_depth, moto_depth > 0)]
    rgb640 = cv2.resize(eval_frames[0][0], (640, 480), interpolation=cv2.INTER_LINEAR)
    command = "python training/uncertainty_eval.py " + " ".join(sys.argv[1:])

    results = {}
    for method, k in args.methods:
        label = f"samples:{k}" if method == "samples" else method
        t0 = time.perf_counter()
        fit_pairs = errors_and_scores(calib_frames, predict(est, calib_rgbs, method, k))
        calib = fit_calibration(
            method,
            np.concatenate([r for _, r in fit_pairs]),
            np.concatenate([e for e, _ in fit_pairs]),
            provenance={
                "checkpoint_sha256": est.info.get("sha256"),
                "decoding": decoding,
                "k": k if method == "samples" else None,
                "frames": f"{args.calib_root} ({len(calib_frames)} frames)",
                "command": command,
            },
        )
        # the head's map is published as it is (a claim in error units already): its deciles
        # and thresholds are the map's, not a refit's; the refit is reported beside them
        claims = None if method == "head" else calib
        eval_preds = predict(est, [f[0] for f in eval_frames], method, k)
        eval_pairs = errors_and_scores(eval_frames, eval_preds)
        synth = score(eval_pairs, claims)
        if method == "head":
            synth["refit_worst_decile_gap"] = score(eval_pairs, calib)["worst_decile_gap"]
        photo = score(errors_and_scores(moto, predict(est, [moto_rgb], method, k)), claims)
        speed = timing(est, rgb640, method, k, claims, args.runs)
        results[label] = {
            "synthetic": synth,
            "motorcycle": photo,
            "speed_640x480": speed,
            "calibration": calib.to_dict(),
        }
        if args.calibration_dir:
            name = label.replace(":", "")
            calib.save(Path(args.calibration_dir) / f"calibration_{name}.json")
        print(_rows(label, synth, photo, speed), f"({time.perf_counter() - t0:.0f} s)", flush=True)
        for t, frac, kept, dropped in synth["thresholds"]:
            print(
                f"  {label}: max {t:g}: drops {100 * frac:.1f} % of pixels; mean error kept "
                f"{kept:.4f}, dropped {dropped:.4f}"
            )

    print(_table(results))
    if args.json:
        report = {
            "decoding": decoding,
            "checkpoint": est.info.get("path"),
            "sha256": est.info.get("sha256"),
            "command": command,
            "methods": results,
        }
        atomic_write(args.json, (json.dumps(report, indent=1) + "\n").encode())
    if args.plot:
        _plot(results, args.plot, decoding, moto_name)
    return 0


def _rows(label: str, synth: dict, photo: dict, speed: dict) -> str:
    dec = " ".join(f"{c:.3f}/{o:.3f}" for c, o, _ in synth["deciles"])
    u, p = speed["uncertainty"], speed["plain"]
    return (
        f"{label}: synthetic AbsRel {synth['abs_rel']:.4f} -> {synth['abs_rel_after']:.4f} "
        f"({-100 * synth['drop']:+.1f} %, oracle {-100 * synth['oracle_drop']:+.1f} %), "
        f"AUSE/random {synth['ause_ratio']:.3f}, Spearman {synth['spearman_per_frame']:.3f} "
        f"per frame / {synth['spearman_pooled']:.3f} pooled, worst decile "
        f"{100 * synth['worst_decile_gap']:.0f} %; deciles claimed/observed {dec}; motorcycle "
        f"AbsRel {-100 * photo['drop']:+.1f} %, AUSE/random {photo['ause_ratio']:.3f}, Spearman "
        f"{photo['spearman_per_frame']:.3f}; 640x480: {u['wall_ms']:.1f} ms wall / "
        f"{u['cpu_ms']:.1f} ms CPU (plain {p['wall_ms']:.1f} / {p['cpu_ms']:.1f})"
    )


def _table(results: dict) -> str:
    rows = [
        "| estimator | drop at 20 % (>= 30 %; oracle) | AUSE / random (<= 0.5) | Spearman per "
        "frame / pooled (>= 0.4) | worst decile (<= 25 %) | frames/s 640x480, 1 thread (>= 15): "
        "with / without, wall (CPU) | motorcycle: drop, AUSE / random, Spearman |",
        "|" + "---|" * 7,
    ]
    for label, r in results.items():
        s, p = r["synthetic"], r["motorcycle"]
        u, plain = r["speed_640x480"]["uncertainty"], r["speed_640x480"]["plain"]
        flat = s.get("spearman_undefined_frames", 0)  # frames whose rho is undefined
        rho = f"{s['spearman_per_frame']:.3f} / {s['spearman_pooled']:.3f}"
        rho += f" ({flat} flat frames left out)" if flat else ""
        rows.append(
            f"| {label} | {100 * s['drop']:.1f} % ({100 * s['oracle_drop']:.1f} %) | "
            f"{s['ause_ratio']:.3f} | {rho} | "
            f"{100 * s['worst_decile_gap']:.0f} % | {u['fps']:.1f} / {plain['fps']:.1f} "
            f"({1e3 / u['cpu_ms']:.1f} / {1e3 / plain['cpu_ms']:.1f}) | "
            f"{100 * p['drop']:.1f} %, {p['ause_ratio']:.3f}, {p['spearman_per_frame']:.3f} |"
        )
    return "\n".join(rows)


def _plot(results: dict, path: str, decoding: str, photo: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in (
        (axes[0], "synthetic", "unseen synthetic frames"),
        (axes[1], "motorcycle", photo),
    ):
        first = next(iter(results.values()))[key]
        f = 100 * np.asarray(first["fractions"])
        for m, r in results.items():
            ax.plot(f, r[key]["curve"], label=m)
        ax.plot(f, first["oracle"], "k--", label="oracle (true error)")
        ax.plot(f, first["random"], "k:", label="random")
        ax.set_xlabel("most uncertain pixels removed (%)")
        ax.set_ylabel("AbsRel of the rest")
        ax.set_title(f"{title} ({first['frames']} frame{'s' if first['frames'] > 1 else ''})")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"Sparsification, shipped checkpoint, {decoding} decoding")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
