"""Two checks behind the ablation's findings (BENCHMARKS.md section 2).

    # can the pipeline learn at all? memorise 16 frames with a stage-2 objective
    python training/diagnostics.py overfit runs/ablation_tiny/tokenizer/checkpoint.safetensors \
        --mode teacher_forcing
    # greedy vs the paper's sampling (T=1, top-p 0.9, mean of 5 embeddings) on a held-out set
    python training/diagnostics.py sampling runs/ablation_tiny/eval_seed777 \
        runs/ablation_tiny/depthart/checkpoint.safetensors \
        runs/ablation_tiny/teacher_forcing/checkpoint.safetensors
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch


def overfit(tokenizer_ckpt: str, mode: str, steps: int, frames: int) -> None:
    from depthart_core.checkpoint import load_checkpoint
    from depthart_core.data.synthetic import SynthConfig, render_batch
    from depthart_core.evaluation.protocols import evaluate
    from depthart_core.tokenizer.codec import decode_depth, encode_depth
    from depthart_core.training.objectives import (
        depthart_loss,
        prepare_inputs,
        teacher_forcing_loss,
    )

    torch.manual_seed(0)
    m, _ = load_checkpoint(tokenizer_ckpt)
    S = m.cfg.image_size
    b = render_batch(5, list(range(frames)), SynthConfig(size=(S, S)))
    img, f_D = prepare_inputs(m, b["rgb"], b["depth"], b["valid"])
    m.tokenizer.requires_grad_(False)
    opt = torch.optim.AdamW(m.transformer.parameters(), 1e-3)
    loss_fn = teacher_forcing_loss if mode == "teacher_forcing" else depthart_loss
    depth, valid = b["depth"].numpy(), b["valid"].numpy()

    def abs_rel(pred: np.ndarray) -> float:
        rows = zip(pred, depth, valid, strict=True)
        return float(np.mean([evaluate(p, g, v)["abs_rel"] for p, g, v in rows]))

    for step in range(steps + 1):
        out = loss_fn(m, img, f_D)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        if step % 100 == 0:
            m.eval()
            with torch.no_grad():
                pred = m.predict_normalized(b["rgb"].float() / 127.5 - 1).numpy()
            m.train()
            print(
                f"step {step}: loss {out.loss.item():.3f} token acc {out.logs['acc']:.3f} "
                f"train-set AbsRel {abs_rel(pred):.4f}",
                flush=True,
            )
    with torch.no_grad():
        rec = decode_depth(m.tokenizer(encode_depth(b["depth"], b["valid"])[0])[0]).numpy()
    print(f"tokenizer ceiling (encode-quantize-decode) AbsRel {abs_rel(rec):.4f}")


def sampling(eval_root: str, ckpts: list[str], limit: int) -> None:
    from depthart_core.data.synth_set import SyntheticSet
    from depthart_core.estimator import DepthEstimator
    from depthart_core.evaluation.runner import evaluate_predictions
    from depthart_core.model import SamplingConfig

    ds = SyntheticSet(eval_root)
    modes = {
        "greedy": None,
        "paper: T=1, top-k 900, top-p 0.9, mean of 5": SamplingConfig(
            greedy=False, temperature=1.0, top_k=900, top_p=0.9, n_samples=5, seed=0
        ),
    }
    for ck in ckpts:
        for name, s in modes.items():
            est = DepthEstimator.from_checkpoint(ck, sampling=s)
            r = evaluate_predictions(ds, est.predict, "depthart", limit=limit, progress=False)
            a = r.aggregate
            print(f"{ck}: {name}: AbsRel {a['abs_rel']:.4f} delta1_bad {a['delta1_bad']:.4f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("overfit")
    o.add_argument("tokenizer_checkpoint")
    o.add_argument("--mode", choices=("teacher_forcing", "depthart"), default="teacher_forcing")
    o.add_argument("--steps", type=int, default=300)
    o.add_argument("--frames", type=int, default=16)
    s = sub.add_parser("sampling")
    s.add_argument("eval_root")
    s.add_argument("checkpoints", nargs="+")
    s.add_argument("--limit", type=int, default=100)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.cmd == "overfit":
        overfit(args.tokenizer_checkpoint, args.mode, args.steps, args.frames)
    else:
        sampling(args.eval_root, args.checkpoints, args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
