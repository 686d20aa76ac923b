"""Does the uncertainty head's ranking grow with its width and its data? (issue #25, on a GPU)

The width-24 head (2,000 frames) removed half the error the oracle removes; more data and steps
at width 24 did not change that on the CPU (BENCHMARKS 11). This script asks the rest
of the question where it is cheap to ask: on a lent GPU it gathers the checkpoint's head inputs
once for many rendered frames (`prepare`), then trains one head per variant on them (`train`,
run one process per variant side by side) and scores each on unseen frames with the measures of
issue #25 that need no calibration (drop at 20 %, AUSE / random, Spearman per frame; calibration
is refitted on the CPU by `uncertainty_eval.py` for a head that is kept).

    # on the GPU machine: frames, then the cached inputs, then the variants in parallel
    u=$(mktemp -d)   # a fresh folder of your own, not a fixed name under /tmp
    depthart synth --out $u/train_9500 --count 1000 --seed 9500 --size 256x256   # and so on
    python training/uncertainty_head_sweep.py prepare --train-root $u/train_9500 ... \\
        --eval-root $u/eval_931 --device cuda --cache $u/cache.safetensors
    python training/uncertainty_head_sweep.py train --cache $u/cache.safetensors --device cuda \\
        --name w48 --width 48 --steps 12000 --batch 32 --out $OUT/sweep

The cache is one safetensors file (the tensors, and JSON in its metadata for the rest): nothing
is ever unpickled. A cache.pt of the older, pickled format is refused: rebuild it with prepare.
Each variant writes NAME.json (its scores, held-out NLL, time) and NAME.safetensors (the head's
weights only: `uncertainty_head.py --head-weights` puts them into a checkpoint).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import save_file
from tqdm import tqdm

from depthart_core.data.synthetic.set import SyntheticSet
from depthart_core.evaluation.uncertainty_metrics import SparsificationTally, frame_errors
from depthart_core.rundir import open_safetensors
from depthart_core.runtime.preprocess import Geometry, postprocess, preprocess
from depthart_core.runtime.torch_backend import DepthEstimator
from depthart_core.sampling import SAMPLING_NAMES, describe_sampling, sampling_setting
from depthart_core.uncertainty_head import UncertaintyHead

sys.path.insert(0, str(Path(__file__).resolve().parent))
from uncertainty_head import gather, train  # noqa: E402  (a sibling script)

CACHE_FORMAT = "depthart-uncertainty-sweep-cache/1"
# the non-tensor fields of a cache, kept as JSON in the safetensors metadata
CACHE_FIELDS = ("train_roots", "eval_root", "checkpoint", "checkpoint_sha256", "decoding")


class CacheError(ValueError):
    """A --cache file this script did not write in its current format."""


def save_cache(path: str | Path, cache: dict) -> None:
    """Write `cache` (what `prepare` gathered) as one safetensors file: the tensors, each
    evaluation frame's errors and valid mask as its own tensor, and the rest (the geometries as
    plain numbers, the roots, the checkpoint) as JSON in the metadata. Nothing is pickled."""
    ev = cache["eval"]
    tensors = {k: cache[k].detach().cpu().contiguous() for k in ("feat", "err", "w")}
    tensors["eval.feat"] = ev["feat"].detach().cpu().contiguous()
    for j, (e, v) in enumerate(zip(ev["errors"], ev["valids"], strict=True)):
        tensors[f"eval.errors.{j}"] = torch.from_numpy(np.array(e, copy=True, order="C"))
        tensors[f"eval.valids.{j}"] = torch.from_numpy(np.array(v, dtype=bool, order="C"))
    meta = {k: cache.get(k) for k in CACHE_FIELDS}
    meta["eval_geos"] = [dataclasses.asdict(g) for g in ev["geos"]]
    save_file(tensors, str(path), metadata={"format": CACHE_FORMAT, "json": json.dumps(meta)})


def load_cache(path: str | Path) -> dict:
    """The dict `save_cache` wrote, read with safetensors only; raises CacheError (one line)
    for any other file, an old pickled cache.pt included, without running anything in it."""
    if not Path(path).is_file():
        raise CacheError("no such file: write it with prepare")
    try:
        with open_safetensors(path) as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as exc:
        # an old cache.pt (a pickle) lands here: it is never unpickled
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CacheError(
            f"not a safetensors cache ({why}; an old pickled cache.pt?): rebuild it with prepare"
        ) from None
    if meta.get("format") != CACHE_FORMAT:
        raise CacheError(
            f"format {meta.get('format')!r}, not {CACHE_FORMAT!r}: rebuild it with prepare"
        )
    try:
        fields = json.loads(meta["json"])
        geos = [Geometry(**g) for g in fields["eval_geos"]]
        n_eval = len(geos)
        cache = {k: fields.get(k) for k in CACHE_FIELDS}
        cache.update({k: tensors[k] for k in ("feat", "err", "w")})
        cache["eval"] = {
            "feat": tensors["eval.feat"],
            "errors": [tensors[f"eval.errors.{j}"].numpy() for j in range(n_eval)],
            "geos": geos,
            "valids": [tensors[f"eval.valids.{j}"].numpy() for j in range(n_eval)],
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise CacheError(
            f"an incomplete or damaged cache ({type(exc).__name__}: {exc}): rebuild it with prepare"
        ) from None
    if len(cache["eval"]["feat"]) != n_eval:
        raise CacheError(
            f"{len(cache['eval']['feat'])} evaluation frames but {n_eval} geometries: "
            "rebuild it with prepare"
        )
    return cache


def eval_inputs(est: DepthEstimator, root: str, batch: int = 32) -> dict:
    """The head's inputs of every evaluation frame, with its per-pixel errors at its own size."""
    ds = SyntheticSet(root)
    S = est.image_size
    feats, errors, geos, valids = [], [], [], []
    for b0 in tqdm(range(0, len(ds), batch), desc=f"evaluation frames of {root}", unit="batch"):
        # a frame whose files are missing or damaged: skipped with a warning, counted
        samples = [s for _, s in ds.readable(range(b0, min(b0 + batch, len(ds))))]
        if not samples:  # every frame of this batch unreadable
            continue
        prepared = [preprocess(s.rgb, S, letterbox=False) for s in samples]
        x = torch.from_numpy(np.concatenate([p[0] for p in prepared])).to(est.device)
        with torch.no_grad():
            _, depth_BSS, head_in = est.model.uncertainty_features(x, est.sampling, False)
        feats.append(head_in.pixels.float().cpu())
        depth_BSS = depth_BSS.float().cpu()
        for i, (s, (_, geo)) in enumerate(zip(samples, prepared, strict=True)):
            errors.append(frame_errors(postprocess(depth_BSS[i].numpy(), geo), s.depth, s.valid))
            geos.append(geo)
            valids.append(s.valid)
    if ds.unreadable_read:  # each named in a warning above
        print(f"{root}: {len(ds.unreadable_read)} of {len(ds)} frames unreadable, skipped")
    if not feats:
        raise SystemExit(f"{root}: none of its {len(ds)} frames could be read")
    return {"feat": torch.cat(feats), "errors": errors, "geos": geos, "valids": valids}


def score(head: UncertaintyHead, ev: dict, batch: int = 64) -> dict:
    """Drop at 20 %, AUSE / random and Spearman per frame of the head's u on the evaluation set."""
    dev = next(head.parameters()).device
    tally = SparsificationTally()
    with torch.no_grad():
        for b0 in range(0, len(ev["feat"]), batch):
            u_BSS = head(ev["feat"][b0 : b0 + batch].to(dev)).exp().float().cpu().numpy()
            for i, u_SS in enumerate(u_BSS):
                j = b0 + i
                u = postprocess(u_SS, ev["geos"][j])[ev["valids"][j]]
                tally.add(ev["errors"][j], u.astype(np.float64))
    s = tally.summary()
    keys = ("abs_rel", "abs_rel_after", "drop", "oracle_drop", "ause_ratio")
    return {
        "eval_frames": s["frames"],
        **{k: s[k] for k in keys},
        "spearman_per_frame": s["spearman_per_frame"],
    }


def prepare(args) -> int:
    est = DepthEstimator.from_checkpoint(args.checkpoint, device=args.device)
    if args.sampling:
        est.sampling = sampling_setting(args.sampling)
    Path(args.cache).parent.mkdir(parents=True, exist_ok=True)  # not after a long gather
    t0 = time.perf_counter()
    parts = [gather(est, root, batch=args.batch) for root in args.train_root]
    feat, err, w = (torch.cat([p[i] for p in parts]) for i in range(3))
    ev = eval_inputs(est, args.eval_root, batch=args.batch)
    save_cache(
        args.cache,
        {
            "feat": feat,
            "err": err,
            "w": w,
            "eval": ev,
            "train_roots": args.train_root,
            "eval_root": args.eval_root,
            "checkpoint": None if est.info.get("path") is None else str(est.info["path"]),
            # the model and decoding whose errors the heads learn (uncertainty_head.py checks)
            "checkpoint_sha256": est.info.get("sha256"),
            "decoding": describe_sampling(est.sampling),
        },
    )
    print(
        f"{len(feat)} training and {len(ev['feat'])} evaluation frames gathered in "
        f"{time.perf_counter() - t0:.0f} s -> {args.cache}"
    )
    return 0


def train_variant(args) -> int:
    cache = load_cache(args.cache)
    dev = torch.device(args.device)
    n = len(cache["feat"]) if args.frames is None else min(args.frames, len(cache["feat"]))
    n_val = max(1, round(0.1 * n))
    feat, err, w = (cache[k][:n].to(dev) for k in ("feat", "err", "w"))
    torch.manual_seed(args.seed)
    head = UncertaintyHead(args.width).to(dev)
    t0 = time.perf_counter()
    deadline = None if args.max_seconds is None else t0 + args.max_seconds
    log = train(
        head,
        feat,
        err,
        w,
        n_val,
        args.steps,
        args.batch,
        args.lr,
        args.seed,
        progress=False,
        deadline=deadline,
    )
    seconds = time.perf_counter() - t0
    head.eval()
    val_nll = log[-1]["val_nll"]  # the last step is always logged
    device = torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev)
    row = {
        "name": args.name,
        "width": args.width,
        "train_frames": n - n_val,
        "held_out_frames": n_val,
        "train_roots": cache["train_roots"],
        "checkpoint": cache.get("checkpoint"),
        "checkpoint_sha256": cache.get("checkpoint_sha256"),
        "decoding": cache.get("decoding"),
        "device": device,
        "torch": torch.__version__,
        "steps": log[-1]["step"],
        "planned_steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "train_seconds": round(seconds, 1),
        "val_nll": val_nll,
        "params": sum(p.numel() for p in head.parameters()),
        **score(head, cache["eval"]),
        "log": log,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()},
        str(out / f"{args.name}.safetensors"),
        metadata={"width": str(args.width)},
    )
    (out / f"{args.name}.json").write_text(json.dumps(row, indent=1))
    print(json.dumps({k: v for k, v in row.items() if k != "log"}))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="gather the head's inputs once")
    p.add_argument("--train-root", action="append", required=True)
    p.add_argument("--eval-root", required=True)
    p.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    p.add_argument("--sampling", choices=SAMPLING_NAMES, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--cache", required=True, help="the safetensors file to write")
    t = sub.add_parser("train", help="train and score one variant")
    t.add_argument("--cache", required=True)
    t.add_argument("--name", required=True)
    t.add_argument("--width", type=int, default=24)
    t.add_argument("--frames", type=int, default=None, help="the first N frames (default: all)")
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch", type=int, default=16)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="stop training after this long (the schedule is then cut short)",
    )
    t.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        return prepare(args)
    try:
        return train_variant(args)
    except CacheError as exc:
        ap.error(f"--cache {args.cache}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
