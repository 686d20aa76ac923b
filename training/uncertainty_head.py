"""Train the learned uncertainty head (depthart_core/uncertainty_head.py) on a checkpoint's own
errors, and write that checkpoint again with the head inside (issue #25).

For every frame of --train-root (rendered frames; never the evaluation or calibration seeds) the
checkpoint runs once with its default decoding (or --sampling), gathering the head's input at the
model resolution; the target is the frame's per-pixel |s d - g| / g at the frame's own size
(median scale s, the DepthART protocol, as `depthart eval` scores), area-averaged back onto the
model grid with the valid pixels as weights. The head is fitted with the exponential negative
log-likelihood e / u + log u (so u estimates the expected error), left-right mirrored at random;
the last --val-fraction of the frames are held out to report the loss. The transformer, tokenizer
and image encoder are not touched: depth is bit-identical with and without the head.

    depthart synth --out runs/unc_train941 --count 2000 --seed 941 --size 256x256
    OMP_NUM_THREADS=1 python training/uncertainty_head.py --train-root runs/unc_train941 \\
        --out runs/unc_head/checkpoint.safetensors
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from depthart_core.checkpoint import load_state_dict_strict, save_checkpoint
from depthart_core.config import ModelConfig
from depthart_core.data.synthetic.set import SyntheticSet, set_problem
from depthart_core.evaluation.alignment import median_scale
from depthart_core.model import DepthART
from depthart_core.rundir import load_safetensors
from depthart_core.runtime.preprocess import postprocess, preprocess
from depthart_core.runtime.threads import set_torch_threads
from depthart_core.runtime.torch_backend import DepthEstimator
from depthart_core.sampling import SAMPLING_NAMES, describe_sampling, sampling_setting
from depthart_core.uncertainty_head import UncertaintyHead

ERROR_CAP = 2.0  # a pixel off by more than 200 % teaches nothing more than one off by 200 %


def gather(est: DepthEstimator, root: str, batch: int = 32, context: bool = False):
    """(features (N, 6, S, S), target error (N, S, S), weight (N, S, S), the model's own
    features (N, Cctx, H, H) with `context`, else None) for every frame that can be read, on
    the CPU (one whose files are missing or damaged is skipped with a warning, and counted); the
    model runs on `est.device`."""
    ds = SyntheticSet(root)
    n = len(ds)
    S = est.image_size
    feats, targets, weights, contexts = [], [], [], []
    for b0 in tqdm(range(0, n, batch), desc=f"features of {root}", unit="batch"):
        samples = [s for _, s in ds.readable(range(b0, min(b0 + batch, n)))]
        if not samples:  # every frame of this batch unreadable
            continue
        prepared = [preprocess(s.rgb, S, letterbox=False) for s in samples]
        x = torch.from_numpy(np.concatenate([p[0] for p in prepared])).to(est.device)
        with torch.no_grad():  # not inference_mode: the features feed the head's autograd
            _, depth_BSS, head_in = est.model.uncertainty_features(x, est.sampling, context)
        feats.append(head_in.pixels.float().cpu())
        if context:
            contexts.append(head_in.context.float().cpu())
        depth_BSS = depth_BSS.float().cpu()
        for i, (s, (_, geo)) in enumerate(zip(samples, prepared, strict=True)):
            full = postprocess(depth_BSS[i].numpy(), geo)
            scale = median_scale(full, s.depth, s.valid)
            err = np.zeros(full.shape, np.float32)
            v = s.valid
            err[v] = np.minimum(np.abs(scale * full[v] - s.depth[v]) / s.depth[v], ERROR_CAP)
            w = cv2.resize(v.astype(np.float32), (S, S), interpolation=cv2.INTER_AREA)
            e = cv2.resize(err, (S, S), interpolation=cv2.INTER_AREA)
            targets.append(np.where(w > 0, e / np.maximum(w, 1e-6), 0.0).astype(np.float32))
            weights.append(w)
    if ds.unreadable_read:  # each named in a warning above
        print(f"{root}: {len(ds.unreadable_read)} of {n} frames unreadable, skipped")
    if not feats:
        raise SystemExit(f"{root}: none of its {n} frames could be read")
    return (
        torch.cat(feats),
        torch.from_numpy(np.stack(targets)),
        torch.from_numpy(np.stack(weights)),
        torch.cat(contexts) if context else None,
    )


def nll(log_u_BSS: torch.Tensor, err_BSS: torch.Tensor, w_BSS: torch.Tensor) -> torch.Tensor:
    """Weighted mean of e / u + log u (minimised by u = E[e])."""
    per_pixel = err_BSS * torch.exp(-log_u_BSS) + log_u_BSS
    return (w_BSS * per_pixel).sum() / w_BSS.sum().clamp_min(1e-6)


def train(
    head,
    feat,
    err,
    w,
    n_val: int,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    progress: bool = True,
    deadline: float | None = None,
    context: torch.Tensor | None = None,
) -> list[dict]:
    """Fit on all but the last `n_val` frames, report the loss on those: AdamW with a 100-step
    warm-up and a cosine decay; every tensor on the head's device. Past `deadline` (a
    `time.perf_counter()` value) it stops early and logs the step it reached. `context`: the
    model's own features of each frame (N, Cctx, H, H), for a head that reads them."""
    ctx = context if context is not None else feat.new_zeros(len(feat), 0, 1, 1)
    val = (feat[-n_val:], err[-n_val:], w[-n_val:], ctx[-n_val:])
    feat, err, w, ctx = feat[:-n_val], err[:-n_val], w[:-n_val], ctx[:-n_val]

    def forward(f_B6SS: torch.Tensor, c_BCHH: torch.Tensor) -> torch.Tensor:
        return head(f_B6SS, c_BCHH if context is not None else None)

    g = torch.Generator().manual_seed(seed)
    dev = next(head.parameters()).device
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    log = []
    bar = tqdm(range(steps), desc="train uncertainty head", unit="step", disable=not progress)
    for step in bar:
        idx = torch.randint(0, len(feat), (batch,), generator=g).to(feat.device)
        f, e, ww, c = feat[idx], err[idx], w[idx], ctx[idx]
        flip = (torch.rand(batch, generator=g) < 0.5).to(dev)
        f = torch.where(flip[:, None, None, None], f.flip(-1), f)
        c = torch.where(flip[:, None, None, None], c.flip(-1), c)
        e = torch.where(flip[:, None, None], e.flip(-1), e)
        ww = torch.where(flip[:, None, None], ww.flip(-1), ww)
        loss = nll(forward(f, c), e, ww)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
        opt.step()
        sched.step()
        late = deadline is not None and time.perf_counter() > deadline
        if (step + 1) % 250 == 0 or step + 1 == steps or late:
            with torch.no_grad():
                v = float(nll(forward(val[0], val[3]), val[1], val[2]))
            log.append({"step": step + 1, "train_nll": loss.item(), "val_nll": v})
            bar.set_postfix(train=f"{loss.item():.4f}", val=f"{v:.4f}")
        if late:
            break
    return log


def check_roots(ap: argparse.ArgumentParser, roots: list[str]) -> None:
    """Refuse, in one line through the parser, a --train-root that is no rendered set (a shell
    glob that matched nothing arrives as itself)."""
    for root in roots:
        problem = set_problem(root)
        if problem is not None:
            ap.error(f"--train-root {problem}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--train-root",
        required=True,
        action="append",
        help="rendered frames (`depthart synth`); repeat to train on several sets",
    )
    ap.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    ap.add_argument("--out", required=True, help="the checkpoint with the head (.safetensors)")
    ap.add_argument("--sampling", choices=SAMPLING_NAMES, default=None, help="default: the model's")
    ap.add_argument("--width", type=int, default=16, help="head width (16)")
    ap.add_argument(
        "--context",
        action="store_true",
        help="the head also reads the model's own view of the image (the image prefix's last "
        "scale on the latent grid: the conv encoder's features; ModelConfig.uncertainty_context)",
    )
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--head-weights",
        default=None,
        help="put these trained head weights (a head's safetensors, as written by "
        "uncertainty_head_sweep.py) into the checkpoint instead of training; "
        "--train-root is then only recorded",
    )
    given = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(given)
    if args.steps < 1 or args.batch < 1 or args.width < 1 or not 0 < args.val_fraction < 1:
        ap.error("need --steps, --batch, --width >= 1 and 0 < --val-fraction < 1")
    if not args.head_weights:  # the frames it trains on, before the model loads
        check_roots(ap, args.train_root)

    set_torch_threads(args.threads)
    torch.manual_seed(args.seed)
    est = DepthEstimator.from_checkpoint(args.checkpoint)
    # loading leaves the global RNG alone since 2026-12-07; these are the draws it used to make,
    # so that a --seed gives the head it gave before (the shipped head's command reproduces)
    DepthART(est.model.cfg)
    if Path(args.out).resolve() == Path(est.info["path"]).resolve():
        ap.error(f"--out {args.out} is the checkpoint it reads: write the headed one elsewhere")
    if args.sampling:
        est.sampling = sampling_setting(args.sampling)
    base = est.model
    print(f"checkpoint {est.info.get('path')}, decoding {describe_sampling(est.sampling)}")
    if args.head_weights:
        record = Path(args.head_weights).with_suffix(".json")
        if not record.is_file():
            ap.error(
                f"--head-weights: no {record} beside the weights (unpack the sweep's sweep.tgz)"
            )
        sweep = json.loads(record.read_text())
        args.width = sweep["width"]
        trained_for = (sweep.get("checkpoint_sha256"), sweep.get("decoding"))
        this = (est.info.get("sha256"), describe_sampling(est.sampling))
        if trained_for[0] is None:  # a sweep from before the record said
            print(f"warning: {record} does not say which model the head was trained for")
        elif trained_for != this:  # a head learns one model's errors at one decoding
            ap.error(
                f"--head-weights: {record} was trained for checkpoint {trained_for[0][:12]} "
                f"({trained_for[1]}), not {this[0][:12]} ({this[1]}): give that --checkpoint "
                "and --sampling, or train a head for this one"
            )
    if args.head_weights and args.context:
        ap.error("--context: the sweep (uncertainty_head_sweep.py) trains heads without context")
    cfg = ModelConfig.from_dict(
        {
            **base.cfg.to_dict(),
            "uncertainty_width": args.width,
            "uncertainty_context": args.context,
        }
    )
    model = DepthART(cfg)
    state = {k: v for k, v in base.state_dict().items() if not k.startswith("uncertainty_head.")}
    head = UncertaintyHead(args.width, model.uncertainty_context_channels)
    if args.head_weights:
        load_state_dict_strict(head, load_safetensors(args.head_weights), what=args.head_weights)
        n_frames, n_val, log = sweep["train_frames"], sweep["held_out_frames"], sweep["log"]
        steps, seconds = sweep["steps"], sweep["train_seconds"]
        print(f"head weights {args.head_weights} ({sweep['name']}, {n_frames} frames)")
    else:
        t0 = time.perf_counter()
        parts = [gather(est, root, context=args.context) for root in args.train_root]
        feat, err, w = (torch.cat([p[i] for p in parts]) for i in range(3))
        ctx = torch.cat([p[3] for p in parts]) if args.context else None
        n_val = max(1, round(args.val_fraction * len(feat)))
        if len(feat) - n_val < 1:
            ap.error(
                f"{len(feat)} frames with --val-fraction {args.val_fraction:g} leave none to "
                "train on: give more frames (--train-root) or a smaller --val-fraction"
            )
        print(f"{len(feat)} frames ({n_val} held out), {time.perf_counter() - t0:.0f} s")
        t1 = time.perf_counter()
        log = train(
            head, feat, err, w, n_val, args.steps, args.batch, args.lr, args.seed, context=ctx
        )
        n_frames, steps, seconds = len(feat) - n_val, args.steps, time.perf_counter() - t1
    state.update({f"uncertainty_head.{k}": v for k, v in head.state_dict().items()})
    load_state_dict_strict(model, state, what="base checkpoint + uncertainty head")
    meta = dict(est.info.get("metadata", {}))
    meta["uncertainty_head"] = {
        "command": shlex.join(["python", "training/uncertainty_head.py", *given]),
        "base_checkpoint_sha256": est.info.get("sha256"),
        "decoding": describe_sampling(est.sampling),
        "context": args.context,
        "train_roots": args.train_root,
        "frames": n_frames,
        "held_out_frames": n_val,
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "log": log,
    }
    if args.head_weights:  # trained elsewhere (a GPU): where, on what, and how it scored there
        meta["uncertainty_head"]["sweep"] = {k: v for k, v in sweep.items() if k != "log"}
    out = save_checkpoint(args.out, model.eval(), meta)
    print(f"wrote {out}; held-out NLL {log[-1]['val_nll']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
