"""`depthart eval`: score checkpoints on benchmark datasets (logic in depthart_core.evaluation).

    depthart eval --checkpoint ckpt.safetensors --dataset nyuv2 --root data/nyu --out runs/eval
    depthart eval --checkpoint a.safetensors --checkpoint b.safetensors \
        --datasets eth3d,tum,nyuv2,ibims1 --roots d/eth3d,d/tum,d/nyu,d/ibims --out runs/table

A checkpoint with the uncertainty head also gets the uncertainty measures unless --no-uncertainty.
A frame that cannot be read is skipped with a warning and listed in the report; the rest are
scored and the exit status is then 1. A dataset with no readable frame is an error when it is the
only one scored (one model, one dataset; nothing written); among several its cells are reported as
not scored, with why, every other dataset and model is scored, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import sys

from depthart_core.cli.args import (
    add_flip_arg,
    add_model_args,
    add_progress_arg,
    remember_defaults,
    sampling_from_args,
    seed_without_effect,
    without_effect,
)


def _eval_size(text: str) -> int | str:
    if text == "paper":
        return text
    try:
        size = int(text)
    except ValueError:
        size = 0
    if not 0 < size <= 4096:
        raise argparse.ArgumentTypeError(
            f"--eval-size must be 'paper' or a side S of 1 to 4096 pixels (scored at SxS), got "
            f"{text!r}"
        )
    return size


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from depthart_core.data.benchmarks import DATASETS
    from depthart_core.evaluation.protocols import PROTOCOLS

    p = subparsers.add_parser(
        "eval",
        help="evaluate on benchmark datasets (DepthART or zero-shot affine protocol)",
        description="Evaluate one or more checkpoints; writes report.json, report.md, samples.png.",
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        default=None,
        metavar="CKPT",
        help="checkpoint to evaluate; repeat to compare (default: the shipped one)",
    )
    p.add_argument(
        "--baseline",
        action="append",
        default=[],
        choices=("constant", "ramp", "mean_depth"),
        help="also score a trivial predictor (repeatable)",
    )
    p.add_argument(
        "--baselines-only",
        action="store_true",
        help="score only the --baseline predictors (no checkpoint)",
    )
    p.add_argument("--dataset", help=f"one dataset: {', '.join(DATASETS)}")
    p.add_argument("--root", help="root directory of --dataset")
    p.add_argument("--datasets", type=_csv, help=f"comma-separated names from {','.join(DATASETS)}")
    p.add_argument("--roots", type=_csv, help="comma-separated roots, one per --datasets entry")
    p.add_argument(
        "--protocol",
        default="depthart",
        choices=sorted(PROTOCOLS),
        help="depthart: median-aligned (the paper's); affine: scale and shift (Marigold's); "
        "affine_disparity: scale and shift in inverse depth; metric: as predicted, no alignment",
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument(
        "--eval-size",
        type=_eval_size,
        default=None,
        help="score at SxS instead of the ground truth's resolution; 'paper': 256, except "
        "iBims-1 at its ground-truth resolution (with pe-fla / pe-ori)",
    )
    p.add_argument(
        "--backend", default="auto", choices=("torch", "onnxruntime", "tensorrt", "auto")
    )
    p.add_argument("--threads", type=int, default=0, help="CPU threads; 0 = auto (see README)")
    p.add_argument("--device", default="cpu", help="torch device for --backend torch")
    p.add_argument("--letterbox", action="store_true", help="aspect-preserving input padding")
    add_flip_arg(p)
    p.add_argument(
        "--no-uncertainty",
        action="store_true",
        help="skip the uncertainty measures: by default a checkpoint with the uncertainty head "
        "also gets them (AbsRel with each frame's 20 %% most uncertain pixels removed, AUSE, "
        "Spearman, claimed vs observed error per decile)",
    )
    add_progress_arg(p)
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--overwrite", action="store_true", help="--out holds a report: move it aside")
    add_model_args(p)
    p.set_defaults(func=run)
    remember_defaults(p)


# what only a model uses: refused with --baselines-only, where no model runs
MODEL_OPTIONS = [
    "backend",
    "threads",
    "device",
    "letterbox",
    "flip_average",
    "no_uncertainty",
    "vae",
    "sampling",
    "seed",
]


def run(args: argparse.Namespace) -> int:
    from depthart_core.evaluation.runner import load_models, run_eval

    if args.baselines_only and args.checkpoint:
        raise ValueError("--baselines-only scores no checkpoint: drop --checkpoint or it")
    if args.baselines_only:  # no model runs: its options would do nothing, said, not ignored
        unused = without_effect(args, MODEL_OPTIONS, "a model (without --baselines-only)")
        if unused:
            raise ValueError(unused)
    unused = seed_without_effect(args)  # set, but doing nothing: said, not ignored
    if unused:
        raise ValueError(unused)
    if args.datasets:
        if args.dataset or args.root:
            raise ValueError("give either --dataset/--root or --datasets/--roots, not both")
        datasets, roots = args.datasets, args.roots or []
    elif args.dataset:
        if args.roots:
            raise ValueError("give either --dataset/--root or --datasets/--roots, not both")
        if not args.root:
            raise ValueError(f"--dataset {args.dataset} needs --root")
        datasets, roots = [args.dataset], [args.root]
    else:
        raise ValueError("no dataset: give --dataset NAME --root DIR or --datasets a,b --roots x,y")
    if args.limit is not None and args.limit <= 0:
        raise ValueError(f"--limit must be positive, got {args.limit}")
    if args.baselines_only and not args.baseline:
        raise ValueError("--baselines-only needs at least one --baseline")
    checkpoints = args.checkpoint or ([] if args.baselines_only else [None])  # None: shipped one
    from depthart_core.checkpoint import default_checkpoint_path
    from depthart_core.rundir import REPORT_MARKERS, claim_run_dir

    # the default too ($DEPTHART_CHECKPOINT may name a run's checkpoint inside --out)
    models = [c or default_checkpoint_path() for c in checkpoints]
    models += [args.vae] if args.vae else []
    lock = claim_run_dir(  # a checkpoint in --out would be moved aside by --overwrite
        args.out, overwrite=args.overwrite, markers=REPORT_MARKERS, inputs=(*roots, *models)
    )
    try:
        models = load_models(
            checkpoints,
            args.baseline,
            args.backend,
            args.letterbox,
            args.device,
            args.threads,
            sampling_from_args(args),
            args.vae,
            flip_average=args.flip_average,
            uncertainty=not args.no_uncertainty,
            vae_setting="--vae",
        )
        data = run_eval(
            models,
            datasets,
            roots,
            args.out,
            args.protocol,
            args.limit,
            args.eval_size,
            progress=not args.no_progress,
        )
    except BaseException:
        lock.abandon()  # a refused dataset or checkpoint leaves no folder holding only a lock
        raise
    print(f"depthart eval: wrote {args.out}/report.md and report.json")
    headed = [m.label for m in models if m.predict_uncertainty is not None]
    if headed:
        print(f"depthart eval: with the uncertainty measures of {', '.join(headed)} (the head)")
    lock.release()
    gone = list(dict.fromkeys(c["dataset"] for c in data.get("not_scored", [])))
    # frames of the datasets scored (those of a dataset not scored: in its own line below)
    unreadable = data["skipped_unreadable"] - sum(len(data["unreadable"][d]) for d in gone)
    if unreadable:  # the rest were scored, but not every frame asked for: not a success
        print(
            f"depthart eval: {unreadable} frame(s) could not be read and were not scored "
            "(listed in report.md and report.json)",
            file=sys.stderr,
        )
    if gone:  # a whole dataset without a result: not a success either
        print(
            f"depthart eval: not scored, none of its frames could be read: {', '.join(gone)} "
            "(the other datasets were; report.md says why)",
            file=sys.stderr,
        )
    return 1 if unreadable or gone else 0
