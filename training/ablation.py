r"""The experiment DepthART rests on: DepthART vs teacher forcing with identical budgets.

Trains one tokenizer (stage 1), then two transformers from it with the same seed, data, steps and
optimiser, differing only in `mode` (depthart | teacher_forcing). Evaluates both, each decoded
greedily and with the paper's seeded sampling (`--sampling-seed`), plus a trivial
baseline (the mean training depth map, median-aligned like the models), on a held-out synthetic
set whose seed the training never saw, with the paper's protocol (median scale alignment,
AbsRel, delta1_bad = fraction of pixels with max ratio > 1.25). Writes RUN/ablation.{json,md}.

    python training/ablation.py --preset tiny --out runs/ablation_tiny
    python training/ablation.py --preset small --out runs/ablation_small \
        --tokenizer-steps 1500 --steps 2000       # on a GPU: --set device=cuda
    # evaluate runs trained elsewhere (e.g. training/recipes/tiny_30k.sh); --set sets the pool
    # the trivial baseline's mean depth map is taken from
    python training/ablation.py --preset tiny --out runs/ablation_tiny_30k \
        --tokenizer runs/ablation_tiny/tokenizer/checkpoint.safetensors --set data.pool_size=30000 \
        --depthart runs/tiny_30k_depthart/leg2/checkpoint.safetensors \
        --teacher-forcing runs/tiny_30k_teacher_forcing/leg2/checkpoint.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def train_stage(config: str, out: Path, overrides: list[str]) -> Path:
    from depthart_core.rundir import describe_contents
    from depthart_core.training.config import load_train_config
    from depthart_core.training.trainer import CKPT_NAME, Trainer

    ckpt = out / CKPT_NAME
    cfg = load_train_config(ROOT / "training" / "configs" / config, overrides)
    if ckpt.exists() and (out / "DONE").exists():
        saved = json.loads((out / "config.json").read_text())
        now = json.loads(json.dumps(cfg.to_dict()))  # tuples as the saved lists
        how = {"device", "ckpt_every", "log_every", "val_every"}  # how it ran, not what it is
        changed = sorted(k for k in saved.keys() & now.keys() - how if saved[k] != now[k])
        if changed:  # reusing it would report this command's budgets for another run
            raise SystemExit(
                f"{out} was trained with other settings ({', '.join(changed)} differ from this "
                "command's): give another --out, or the same settings to reuse it"
            )
        print(f"reusing {ckpt}")
        return ckpt
    held = describe_contents(out) if out.is_dir() else None  # an interrupted stage goes on
    if held is not None:
        print(f"resuming {out} ({held})")
    trainer = Trainer(cfg, out, resume=held is not None)
    trainer.fit()
    (out / "DONE").write_text(str(trainer.step))
    return ckpt


def mean_depth_baseline(pool_overrides: list[str], preset: str, config: str):
    """The training-set mean of d / q98(d) at the model resolution, resized to each input."""
    import cv2
    import torch

    from depthart_core.config import get_preset
    from depthart_core.tokenizer.codec import decode_depth, encode_depth
    from depthart_core.training.config import load_train_config
    from depthart_core.training.data import make_batches

    cfg = load_train_config(ROOT / "training" / "configs" / config, pool_overrides)
    size = get_preset(preset).image_size
    batches = make_batches(cfg.data, size, 64)
    acc, n = torch.zeros(size, size), 0
    for step in range(min(8, getattr(batches, "steps_per_epoch", 8))):
        b = batches.batch_at(step)
        rel = decode_depth(encode_depth(b["depth"], b["valid"])[0])
        acc += rel.sum(0)
        n += len(rel)
    mean_SS = (acc / n).numpy().astype(np.float32)

    def predict(rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        return cv2.resize(mean_SS, (w, h), interpolation=cv2.INTER_LINEAR)

    return predict


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="tiny", choices=["tiny", "small"])
    p.add_argument("--out", required=True)
    p.add_argument("--tokenizer-steps", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="stage-2 steps for BOTH modes")
    p.add_argument("--eval-count", type=int, default=200)
    p.add_argument("--eval-seed", type=int, default=777)
    p.add_argument("--tokenizer", default=None, help="reuse this stage-1 checkpoint")
    p.add_argument("--set", action="append", default=[], help="override for both stage-2 runs")
    p.add_argument("--depthart", default=None, help="evaluate this DepthART checkpoint")
    p.add_argument(
        "--teacher-forcing", default=None, help="evaluate this teacher-forcing checkpoint"
    )
    p.add_argument("--sampling-seed", type=int, default=0, help="seed of the paper-sampling rows")
    args = p.parse_args(argv)

    from depthart_core.data.synthetic.set import SyntheticSet, write_synthetic_set
    from depthart_core.evaluation.runner import evaluate_predictions
    from depthart_core.runtime.torch_backend import DepthEstimator
    from depthart_core.sampling import describe_sampling, sampling_setting

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pre = args.preset
    # 1. shared tokenizer
    tok = Path(args.tokenizer) if args.tokenizer else None
    if tok is None:
        extra = [f"steps={args.tokenizer_steps}"] if args.tokenizer_steps else []
        tok = train_stage(f"{pre}_tokenizer.yaml", out / "tokenizer", extra)
    # 2. the two modes with identical budgets, seeds and data
    common = [f"init_checkpoint={tok}"] + ([f"steps={args.steps}"] if args.steps else []) + args.set
    given = {"depthart": args.depthart, "teacher_forcing": args.teacher_forcing}
    ckpts = {}
    for mode in ("depthart", "teacher_forcing"):
        if given[mode]:
            ckpts[mode] = Path(given[mode])
        else:
            ckpts[mode] = train_stage(f"{pre}_{mode}.yaml", out / mode, common)
    # 3. held-out synthetic set (seed never used in training) and evaluation
    size = DepthEstimator.from_checkpoint(ckpts["depthart"]).image_size
    eval_dir = out / f"eval_seed{args.eval_seed}"
    if not (eval_dir / "meta.json").exists():
        write_synthetic_set(eval_dir, args.eval_count, args.eval_seed, (size, size))
    ds = SyntheticSet(eval_dir)
    rendered = int(ds.meta["count"])
    if rendered != args.eval_count:  # a set rendered by an earlier command with another count
        raise SystemExit(
            f"{eval_dir} holds {rendered} frames, not --eval-count {args.eval_count}: give "
            f"--eval-count {rendered}, another --out, or remove {eval_dir}"
        )
    # both decodings of each model: greedy argmax and the paper's seeded sampling
    paper = sampling_setting("paper", args.sampling_seed)
    predictors = {}
    for label, mode in (("DepthART", "depthart"), ("Teacher forcing (VAR)", "teacher_forcing")):
        for suffix, s in (("greedy", None), (describe_sampling(paper), paper)):
            est = DepthEstimator.from_checkpoint(ckpts[mode], sampling=s)
            predictors[f"{label}, {suffix}"] = est.predict
    predictors["Trivial: training mean depth"] = mean_depth_baseline(
        common, pre, f"{pre}_depthart.yaml"
    )
    results = {}
    for name, fn in predictors.items():
        res = evaluate_predictions(ds, fn, protocol="depthart")
        results[name] = {k: float(v) for k, v in res.aggregate.items()}
        results[name]["images"] = res.n_images
    scored = min(r["images"] for r in results.values())  # unreadable or empty: not scored
    unread = f", {len(ds) - scored} not scored" if scored < len(ds) else ""
    table = [
        f"| {pre} preset, {scored} held-out synthetic images (seed {args.eval_seed}{unread}) "
        "| AbsRel ↓ | δ1-bad ↓ | MAE (rel.) ↓ |",
        "|---|---|---|---|",
    ]
    for name, r in results.items():
        table.append(f"| {name} | {r['abs_rel']:.4f} | {r['delta1_bad']:.4f} | {r['mae']:.4f} |")
    (out / "ablation.md").write_text("\n".join(table) + "\n")
    (out / "ablation.json").write_text(
        json.dumps(
            {
                "preset": pre,
                "eval_seed": args.eval_seed,
                "eval_count": scored,
                "checkpoints": {k: str(v) for k, v in ckpts.items()},
                "tokenizer": str(tok),
                "results": results,
                "command": " ".join(sys.argv),
            },
            indent=2,
        )
        + "\n"
    )
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
