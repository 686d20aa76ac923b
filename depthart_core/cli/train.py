"""`depthart train --config CONFIG.yaml [--set key=value ...] --out RUN_DIR [--resume]`."""

from __future__ import annotations

import argparse

from depthart_core.cli.args import add_progress_arg


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the tokenizer (stage 1) or the transformer (stage 2)",
        description="Runs under torchrun for data parallelism (gloo on CPU, NCCL on GPU).",
    )
    p.add_argument("--config", required=True, help="YAML file in training/configs/")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set optim.lr=3e-4 (repeatable; a key given twice "
        "keeps its last value; with --resume only steps, epochs, ckpt_every, val_every, log_every, "
        "device and precision may differ from the run's own)",
    )
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics, plots)")
    p.add_argument("--resume", action="store_true", help="continue exactly from RUN_DIR's state")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="RUN_DIR holds a run: move it aside to RUN_DIR.old-<time> and start afresh",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads per process; 0 = PyTorch's own choice (training is a batch job that "
        "may take the machine; inference commands default to half the cores instead)",
    )
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depthart_core.training.config import load_train_config
    from depthart_core.training.trainer import CKPT_NAME, Trainer

    cfg = load_train_config(args.config, args.set)
    if args.threads:
        from depthart_core.runtime.threads import set_torch_threads

        set_torch_threads(args.threads)
    trainer = Trainer(
        cfg, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress
    )
    try:
        metrics = trainer.fit(progress=not args.no_progress)
    finally:
        if trainer.is_main:  # at once, also when training failed (not when garbage collected)
            trainer.run_lock.release()
    if trainer.is_main:
        print(f"done: {trainer.step} steps; checkpoint {trainer.run_dir / CKPT_NAME}")
        if metrics:
            print(
                "validation: "
                + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
            )
        print(trainer.next_step())
    return 0
