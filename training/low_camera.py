"""Low cameras (issue #26, item 5): how the tokenizer's round trip and the model do when the
camera is 0.3 m above the floor, against a cart (1.0 m) and a mast (2.0 m), on the rig paths of
`depthart_core.evaluation.ground_plane` (a level robot body, the rig's mounting pitch, bumps).

Per rig: the round trip (sensor depth -> codec -> tokenizer -> decoded, no transformer: the
ceiling any transformer has) and the model's prediction, each median-aligned per frame (the
paper's protocol), and where the error sits: pixels nearer than 10 % of the frame's q98 depth
(the near floor in front of a low camera), and the share of valid pixels that decode to
(almost) zero depth (< 1 % of q98), the failure BENCHMARKS 9 found. `--styles` adds the long
aisles of `depthart synth-bag --style`: "corridor" (camera 2.0-2.4 m, depth to 30 m) and
"warehouse" (a mast from 0.3 m, turns, movers), where the near floor is a few % of q98.

    OMP_NUM_THREADS=1 python training/low_camera.py                      # about 1 min
    python training/low_camera.py --checkpoint runs/x/checkpoint.safetensors --sequences 4
"""

from __future__ import annotations

import argparse
import json
import sys

import cv2
import numpy as np
import torch

from depthart_core.data.synthetic.config import SynthConfig
from depthart_core.data.synthetic.render import batch_sample, render_scenes, sequence_scenes
from depthart_core.evaluation.alignment import median_scale
from depthart_core.evaluation.ground_plane import RIGS, RigEval, rig_samples
from depthart_core.fileutil import atomic_write
from depthart_core.runtime import get_backend
from depthart_core.sampling import SAMPLING_NAMES, sampling_setting

NEAR = 0.10  # of q98: "near" pixels
ZERO = 0.01  # of q98: a pixel that decoded to (almost) nothing


def round_trip(model, depth_HW: np.ndarray, valid_HW: np.ndarray) -> np.ndarray:
    """Sensor depth through the codec and the tokenizer at the model's size, back at full size."""
    S = model.cfg.image_size
    d = cv2.resize(
        np.where(valid_HW, depth_HW, 0).astype(np.float32), (S, S), interpolation=cv2.INTER_NEAREST
    )
    d_t = torch.from_numpy(d)[None]
    rel = model.depth_round_trip(d_t, d_t > 0)[0].numpy()
    h, w = depth_HW.shape
    return cv2.resize(rel, (w, h), interpolation=cv2.INTER_LINEAR)


def frame_stats(rel_HW: np.ndarray, gt_HW: np.ndarray, valid_HW: np.ndarray) -> dict[str, float]:
    """AbsRel after per-frame median alignment: overall and on near pixels; zero share."""
    v = valid_HW & (gt_HW > 0)
    gt, rel = gt_HW[v].astype(np.float64), rel_HW[v].astype(np.float64)
    q98 = np.quantile(gt, 0.98)
    s = median_scale(rel, gt, np.ones_like(gt, dtype=bool))
    err = np.abs(s * rel - gt) / gt
    near = gt < NEAR * q98
    return {
        "abs_rel": float(err.mean()),
        "abs_rel_near": float(err[near].mean()) if near.any() else float("nan"),
        "near_share": float(near.mean()),
        "zero_share": float((rel < ZERO * rel.max()).mean()) if rel.max() > 0 else 1.0,
    }


def style_samples(style: str, sequences: int, frames: int, seed: int) -> list:
    """Every 15th frame of `sequences` paths of an aisle style at 120x160."""
    cfg = SynthConfig.for_style(style, (120, 160))
    out = []
    for q in range(sequences):
        batch = render_scenes(sequence_scenes(seed * 1000 + 100 + q, 15 * frames, cfg)[::15], cfg)
        out += [batch_sample(batch, i, f"{style}_{q}_{i}") for i in range(batch["rgb"].shape[0])]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rigs", nargs="+", default=list(RIGS), choices=list(RIGS))
    ap.add_argument("--styles", nargs="*", default=[], choices=["corridor", "warehouse"])
    ap.add_argument("--sequences", type=int, default=2, help="rooms per rig (2)")
    ap.add_argument("--frames", type=int, default=15, help="frames per room (15)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("--sampling", default="soft", choices=SAMPLING_NAMES)
    ap.add_argument(
        "--round-trip-only",
        action="store_true",
        help="only the tokenizer's rows (a stage-1 checkpoint has no trained transformer)",
    )
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    backend = get_backend(
        "torch", checkpoint=args.checkpoint, threads=0, sampling=sampling_setting(args.sampling)
    )
    model = backend.model  # the same weights: the round trip uses its tokenizer
    sources = ("round trip",) if args.round_trip_only else ("round trip", "model")
    print(f"model: {backend.describe()}", flush=True)
    rows = []
    print(
        "| rig | source | AbsRel | AbsRel, pixels < 10 % of q98 | share of those pixels "
        "| share decoded to ~0 |"
    )
    print("|---|---|---|---|---|---|")
    cases = [(f"{n} {RIGS[n][0]:g} m", n, None) for n in args.rigs]
    cases += [(style, None, style) for style in args.styles]
    for label, name, style in cases:
        if name is not None:
            rig = RigEval.named(name, sequences=args.sequences, frames=args.frames, seed=args.seed)
            samples = [s for q in range(args.sequences) for s in rig_samples(rig, q)]
        else:
            samples = style_samples(style, args.sequences, args.frames, args.seed)
        per: dict[str, list] = {k: [] for k in sources}
        for s in samples:
            per["round trip"].append(
                frame_stats(round_trip(model, s.depth, s.valid), s.depth, s.valid)
            )
            if "model" in per:
                per["model"].append(frame_stats(backend.predict(s.rgb), s.depth, s.valid))
        for source, st in per.items():
            row = {k: float(np.nanmean([r[k] for r in st])) for k in st[0]}
            row.update(rig=label, source=source, frames=len(st))
            rows.append(row)
            print(
                f"| {row['rig']} | {source} | {row['abs_rel']:.3f} | {row['abs_rel_near']:.3f} | "
                f"{row['near_share']:.1%} | {row['zero_share']:.2%} |",
                flush=True,
            )
    if args.json:
        atomic_write(args.json, (json.dumps(rows, indent=2) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
