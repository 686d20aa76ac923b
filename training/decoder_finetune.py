"""Fine-tune only the tokenizer's decoder of a checkpoint (recipe step 10; BENCHMARKS 2n, 9b).

Stage 1 gave the tokenizer 1,500 steps; its round trip, not the codebook, limits what any
transformer over it can reach (BENCHMARKS 9b). This trains `post_quant_conv` and `decoder` alone
on rendered depth with the stage-1 reconstruction loss (L1 + MSE on the codec's input), the
encoder and the codebook frozen: every frame keeps its tokens, so the transformer needs no
retraining and the new decoder decodes its predictions as they are. Frames are mirrored at
random; the last --val frames are held out to report the loss.

    depthart synth --out runs/dec/train_951 --count 4000 --seed 951 --size 64x64
    depthart synth --out runs/dec/train_952 --count 4000 --seed 952 --size 64x64
    OMP_NUM_THREADS=2 python training/decoder_finetune.py --train-root runs/dec/train_951 \\
        --train-root runs/dec/train_952 --steps 3000 --out runs/dec/dec3000.safetensors \\
        --checkpoint runs/logcodec/L7g/checkpoint.safetensors   # leg L7, before this script
    # then on those and a training pool from the trainer's cache (leg L6's: cameras from 0.3 m)
    OMP_NUM_THREADS=2 python training/decoder_finetune.py \\
        --checkpoint runs/dec/dec3000.safetensors \\
        --pool ~/.cache/depthart/synth/s9_4d58cd1d3d_64px_20000.safetensors \\
        --train-root runs/dec/train_951 --train-root runs/dec/train_952 --steps 4000 \\
        --lr 1.5e-4 --out runs/dec/dec7000.safetensors

`--predicted P` decodes a share P of each batch from the model's own predicted f_hat (its
default soft decoding of the frame's image) instead of the frame's true tokens, toward the same
target: the decoder then learns the latents it is actually given at inference. BENCHMARKS 2n:
2-3 % better at 64 px on held-out frames, but not on seed 777 scored at 256 px (0.0870 ->
0.0863-0.0888 AbsRel), so not shipped. It costs one transformer pass per frame before training
and worsens the round trip that `finetune --adapt-tokenizer` and `tokenizer_ceiling.py` rely on.

The written checkpoint is the input one with the decoder replaced; its uncertainty head, if
any, was trained on the old decoder's depth and should be retrained.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from tqdm import tqdm

from depthart_core.checkpoint import load_checkpoint, save_checkpoint
from depthart_core.data.synthetic.set import SyntheticSet, set_problem
from depthart_core.evaluation.alignment import median_scale
from depthart_core.evaluation.metrics import abs_rel
from depthart_core.rundir import open_safetensors
from depthart_core.runtime.threads import set_torch_threads
from depthart_core.sampling import sampling_setting
from depthart_core.tokenizer.codec import encode_depth
from depthart_core.training.data import POOL_FORMAT, resize_sample


def read_frames(
    roots: list[str], pools: list[str], size: int, resize: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Depth and valid masks (N, S, S) and RGB (N, 3, S, S) uint8 from training pools (the
    trainer's cached `depthart-pool/1` files, `data.pool_size`), then rendered sets (`depthart
    synth`), each in the order given: the held-out frames are the last set's last ones. `resize`:
    rendered frames of another size are resized to the model's as training resizes them."""
    depth, valid, rgb = [], [], []
    for pool in pools:
        with open_safetensors(pool) as f:
            fmt = (f.metadata() or {}).get("format")
            if fmt != POOL_FORMAT or not {"depth", "valid", "rgb"} <= set(f.keys()):
                raise SystemExit(f"{pool}: not a training pool (format {fmt!r})")
            d, v = f.get_tensor("depth").float(), f.get_tensor("valid").bool()
            im = f.get_tensor("rgb")
        if tuple(d.shape[1:]) != (size, size):
            raise SystemExit(
                f"{pool}: frames are {tuple(d.shape[1:])}, the model needs {size}x{size}"
            )
        print(f"read {pool}: {len(d)} frames")
        depth.append(d)
        valid.append(v)
        rgb.append(im)
    for root in roots:
        ds = SyntheticSet(root)
        # a frame whose files are missing or damaged: skipped with a warning, counted
        for _, s in tqdm(ds.readable(), desc=f"read {root}", unit="frame", total=len(ds)):
            if resize and s.depth.shape != (size, size):
                rgb_SS3, d_SS, v_SS = resize_sample(s, size)
                s = dataclasses.replace(s, rgb=rgb_SS3, depth=d_SS, valid=v_SS)
            if s.depth.shape != (size, size):
                raise SystemExit(
                    f"{root}: frames are {s.depth.shape}, the model needs {size}x{size} "
                    "(--resize resizes them)"
                )
            depth.append(torch.from_numpy(s.depth.astype(np.float32))[None])
            valid.append(torch.from_numpy(s.valid)[None])
            rgb.append(torch.from_numpy(np.ascontiguousarray(s.rgb)).permute(2, 0, 1)[None])
        if ds.unreadable_read:  # each named in a warning above
            print(f"{root}: {len(ds.unreadable_read)} of {len(ds)} frames unreadable, skipped")
    if not depth:
        raise SystemExit(f"none of the frames of {', '.join(roots)} could be read")
    return torch.cat(depth), torch.cat(valid), torch.cat(rgb)


def check_frames(ap: argparse.ArgumentParser, pools: list[str], roots: list[str]) -> None:
    """Refuse, in one line through the parser, a --pool that is no safetensors file or a
    --train-root that is no rendered set (a shell glob that matched nothing arrives as itself),
    before the model loads."""
    for pool in pools:
        glob = " (a pattern that matched nothing?)" if set("*?[") & set(pool) else ""
        if not Path(pool).is_file():
            ap.error(f"--pool {pool!r}: no such file{glob}")
        try:  # its format is checked as it is read
            with open_safetensors(pool):
                pass
        except (OSError, SafetensorError) as exc:
            ap.error(f"--pool {pool}: not a readable safetensors file ({exc})")
    for root in roots:
        problem = set_problem(root)
        if problem is not None:
            ap.error(f"--train-root {problem}")


def codes_and_targets(model, d_NSS, v_NSS, batch: int = 256):
    """(f_hat (N, C, h, w) from the frozen encoder and codebook, codec input (N, 3, S, S))."""
    tok, codec = model.tokenizer, model.cfg.tokenizer.depth_codec
    xs, fs = [], []
    with torch.no_grad():
        for b in tqdm(range(0, len(d_NSS), batch), desc="encode", unit="batch"):
            x_B3SS, _ = encode_depth(d_NSS[b : b + batch], v_NSS[b : b + batch], codec)
            _, f_hat, _ = tok.quantize.quantize(tok.encode_latent(x_B3SS))
            xs.append(x_B3SS)
            fs.append(f_hat)
    return torch.cat(fs), torch.cat(xs)


def predicted_codes(model, rgb_N3SS_u8, sampling: str, batch: int = 256) -> torch.Tensor:
    """The f_hat the model itself predicts from each frame's image (`sampling`: soft or
    greedy), the latent the decoder actually decodes at inference."""
    setting = sampling_setting(sampling)
    fs = []
    with torch.no_grad():
        for b in tqdm(range(0, len(rgb_N3SS_u8), batch), desc="predict", unit="batch"):
            rgb_B3SS = rgb_N3SS_u8[b : b + batch].float() / 127.5 - 1.0
            fs.append(model.generate(rgb_B3SS, setting)[1])
    return torch.cat(fs)


def reconstruction(tok, f_hat, x) -> torch.Tensor:
    recon = tok.decode_f_hat(f_hat)
    return F.l1_loss(recon, x) + F.mse_loss(recon, x)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--train-root", action="append", default=[], help="rendered 64 px frames")
    ap.add_argument(
        "--pool",
        action="append",
        default=[],
        help="a training pool (the trainer's cache: ~/.cache/depthart/synth/s9_*.safetensors)",
    )
    ap.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    ap.add_argument("--out", default=None, help="the checkpoint written (needed unless --score)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--val", type=int, default=400, help="held-out frames (the last ones)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--predicted",
        type=float,
        default=0.0,
        help="share of each batch decoded from the model's own predicted f_hat instead of the "
        "frame's true tokens (0: the round trip only)",
    )
    ap.add_argument(
        "--score",
        action="store_true",
        help="only print the held-out scores of --checkpoint's decoder (the log's step 0)",
    )
    ap.add_argument(
        "--resize",
        action="store_true",
        help="resize rendered frames of another size to the model's (as training does)",
    )
    ap.add_argument(
        "--sampling", default="soft", choices=["soft", "greedy"], help="for --predicted"
    )
    given = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(given)
    if args.steps < 1 or args.batch < 1 or args.val < 1 or not args.lr > 0:
        ap.error("need --steps, --batch, --val >= 1 and --lr > 0")
    if not 0.0 <= args.predicted <= 1.0:
        ap.error(f"--predicted {args.predicted}: a share in [0, 1]")
    if args.out is None and not args.score:
        ap.error("give --out (or --score to only score)")
    if not args.train_root and not args.pool:
        ap.error("give frames: --train-root and/or --pool")
    check_frames(ap, args.pool, args.train_root)
    set_torch_threads(args.threads)
    model, info = load_checkpoint(args.checkpoint)
    tok = model.tokenizer
    d_NSS, v_NSS, rgb_N3SS = read_frames(
        args.train_root, args.pool, model.cfg.image_size, args.resize
    )
    if len(d_NSS) <= args.val:
        ap.error(f"{len(d_NSS)} frames: need more than --val {args.val}")
    f_hat, x = codes_and_targets(model, d_NSS, v_NSS)
    f_pred = predicted_codes(model, rgb_N3SS, args.sampling) if args.predicted > 0 else None
    n = len(x) - args.val
    d_val, v_val = d_NSS[n:], v_NSS[n:]
    del d_NSS, v_NSS, rgb_N3SS
    params = [*tok.post_quant_conv.parameters(), *tok.decoder.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * s / args.steps)),
    )
    g = torch.Generator().manual_seed(0)

    def val_abs_rel(f) -> float:
        """Held-out AbsRel of the decoded depth, median-aligned per frame (the paper's)."""
        with torch.no_grad():
            d_VSS = model.decode(f).numpy()
        errs = []
        for d, g, v in zip(d_VSS, d_val.numpy(), v_val.numpy(), strict=True):
            errs.append(abs_rel(median_scale(d, g, v) * d, g, v))
        return float(np.mean(errs))

    def evaluate() -> dict:
        with torch.no_grad():
            row = {"val": float(reconstruction(tok, f_hat[n:], x[n:]))}
        row["val_abs_rel_round_trip"] = val_abs_rel(f_hat[n:])
        if f_pred is not None:
            with torch.no_grad():
                row["val_predicted"] = float(reconstruction(tok, f_pred[n:], x[n:]))
            row["val_abs_rel_predicted"] = val_abs_rel(f_pred[n:])
        return row

    log = [{"step": 0, **evaluate()}]
    print(log[0])
    if args.score:
        return 0
    bar = tqdm(range(args.steps), desc="decoder", unit="step")
    for step in bar:
        idx = torch.randint(0, n, (args.batch,), generator=g)
        flip = (torch.rand(args.batch, generator=g) < 0.5)[:, None, None, None]
        fb = f_hat[idx]
        if f_pred is not None:
            own = (torch.rand(args.batch, generator=g) < args.predicted)[:, None, None, None]
            fb = torch.where(own, f_pred[idx], fb)
        fb = torch.where(flip, fb.flip(-1), fb)
        xb = torch.where(flip, x[idx].flip(-1), x[idx])
        loss = reconstruction(tok, fb, xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if (step + 1) % 250 == 0 or step + 1 == args.steps:
            log.append({"step": step + 1, "train": loss.item(), **evaluate()})
            print(log[-1])
            bar.set_postfix(val=f"{log[-1]['val']:.5f}")
    for p in model.parameters():
        p.requires_grad_(False)
    meta = dict(info.get("metadata", {}))
    meta["decoder_finetune"] = {
        "command": shlex.join(["python", "training/decoder_finetune.py", *given]),
        "base_checkpoint_sha256": info.get("sha256"),
        "train_roots": args.train_root,
        "pools": args.pool,
        "frames": n,
        "held_out_frames": args.val,
        "predicted_share": args.predicted,
        "sampling": args.sampling,
        "log": log,
    }
    out = save_checkpoint(args.out, model.eval(), meta)
    print(f"wrote {out}; held-out reconstruction loss {log[0]['val']:.5f} -> {log[-1]['val']:.5f}")
    if model.uncertainty_head is not None:  # it learned the old decoder's errors
        print(
            f"warning: {out} keeps the uncertainty head trained on the old decoder's depth; "
            "retrain it (training/uncertainty_head.py --checkpoint this file) before using it"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
