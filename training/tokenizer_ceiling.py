"""The tokenizer's ceiling on a fine-tuning bag, beside the bars of issue #27 item 1.

For each `depthart finetune` run given, the held-out frames' sensor depth (at the model size, as
the run stored it) goes through the tokenizer and back with no transformer (`depth_round_trip`:
the best any transformer over that tokenizer can do), for the shipped tokenizer and for the
run's own (adapted with --adapt-tokenizer, or the same); each reconstruction is resized back to
its frame's full size and scored exactly as `finetune` scores a model (`finetune.report`, paper
protocol, against the bag's full-size sensor depth). Printed beside the run's fine-tuned score
and item 1's bar, min(0.7 x the training block's mean-depth map, 0.5 x the base model). Where
the round trip is above the bar, no fine-tuned transformer over that tokenizer can meet it. The
fifth column decodes the shipped encoder's continuous latent, unquantized: what the autoencoder
itself loses, before any codebook; the last scores the stored model-size depth itself (holes
filled from the nearest valid pixel): what the model's input size alone loses.

    python training/tokenizer_ceiling.py runs/ft27L7/corridor_s5_adapt=runs/ft27/bags/corridor_s5

The held-out frames are the run's own: topics, stamp tolerance, held-out share, time gap and
scored-frame count come from its `finetune.json` (the topic flags override them, e.g. a depth
topic for a `--teacher` run, which trained without one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from depthart_core.checkpoint import load_checkpoint
from depthart_core.finetune.frames import FrameConfig
from depthart_core.finetune.report import score_predictions
from depthart_core.finetune.run import FinetuneConfig, Prepared, prepare
from depthart_core.rundir import load_safetensors
from depthart_core.runtime.preprocess import postprocess, preprocess
from depthart_core.tokenizer.codec import decode_depth, encode_depth


def round_trip_score(model, run: Path, prep: Prepared, quantized: bool = True) -> float:
    """Paper-protocol AbsRel of `model`'s tokenizer round trip of the run's held-out depth;
    `quantized=False` decodes the encoder's continuous latent instead (the autoencoder alone);
    `model=None` scores the stored model-size depth itself, holes filled from the nearest valid
    pixel: the floor of any model at that size."""
    frames = load_safetensors(run / "frames" / "heldout.safetensors")
    depth, valid = frames["depth"].float(), frames["valid"].bool()
    if len(prep.heldout) != len(depth):
        raise SystemExit(
            f"{run}: {len(depth)} stored held-out frames, but the bag gives {len(prep.heldout)}"
        )
    scored, rows = prep.scored, prep.scored_rows  # finetune scores eval_frames of them
    depth, valid = depth[rows], valid[rows]
    size = depth.shape[-1]  # the model's input size, as the run stored the frames
    with torch.no_grad():
        if model is None:
            pairs = zip(depth.numpy(), valid.numpy(), strict=True)
            rec = np.stack([_fill_holes(d, v) for d, v in pairs])
        elif quantized:
            rec = model.depth_round_trip(depth, valid).numpy()
        else:
            codec = model.cfg.tokenizer.depth_codec
            x_B3HW, _ = encode_depth(depth, valid, codec)
            f_BChw = model.tokenizer.encode_latent(x_B3HW)
            rec = decode_depth(model.tokenizer.decode_f_hat(f_BChw), codec).numpy()
    preds = [
        postprocess(rec[i], preprocess(f.rgb, size, letterbox=False)[1])
        for i, f in enumerate(scored)
    ]
    return score_predictions(preds, scored)["depthart"]["abs_rel"]


def _fill_holes(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    if valid.all() or not valid.any():
        return depth
    idx = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return depth[tuple(idx)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", nargs="+", help="RUN=BAG: a finetune --out folder and its bag")
    ap.add_argument("--checkpoint", default=None, help="the shipped tokenizer (default: default)")
    ap.add_argument("--image-topic", default=None, help="default: the run's")
    ap.add_argument("--depth-topic", default=None, help="default: the run's")
    ap.add_argument("--camera-info-topic", default=None, help="default: the run's")
    args = ap.parse_args(argv)
    try:
        _table(args, ap)
    except (ValueError, OSError, KeyError) as exc:  # FinetuneInputError is a ValueError
        print(f"tokenizer_ceiling: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _run_config(run: Path, args: argparse.Namespace) -> FinetuneConfig:
    """The run's frame selection (its finetune.json), sensor depth scoring every frame."""
    settings = json.loads((run / "finetune.json").read_text())["settings"]
    given = {
        "image_topic": args.image_topic,
        "depth_topic": args.depth_topic,
        "camera_info_topic": args.camera_info_topic,
    }
    frames = settings["frames"] | {k: v for k, v in given.items() if v} | {
        "sensor_scores_only": False
    }  # fmt: skip
    if not frames.get("depth_topic"):
        raise ValueError(f"{run} trained without a depth topic: give --depth-topic to score")
    return FinetuneConfig(frames=FrameConfig(**frames), eval_frames=settings["eval_frames"])


def _table(args: argparse.Namespace, ap: argparse.ArgumentParser) -> None:
    shipped, _ = load_checkpoint(args.checkpoint)
    print(
        "run | item 1 bar | fine-tuned | round trip: shipped tokenizer | the run's tokenizer | "
        "shipped, not quantized | the stored depth itself"
    )
    for spec in args.runs:
        run_s, sep, bag = spec.partition("=")
        if not sep:
            ap.error(f"expected RUN=BAG, got {spec!r}")
        run = Path(run_s)
        report = json.loads((run / "report.json").read_text())
        size = shipped.cfg.image_size
        prep = prepare([bag], _run_config(run, args), size, progress=False)
        own, _ = load_checkpoint(run / "checkpoint.safetensors")
        base = report["before"]["depthart"]["abs_rel"]
        mean_map = report["baseline_mean_depth"]["abs_rel"]
        bar = min(0.7 * mean_map, 0.5 * base)
        print(
            f"{run.name} | {bar:.4f} | {report['after']['depthart']['abs_rel']:.4f} | "
            f"{round_trip_score(shipped, run, prep):.4f} | "
            f"{round_trip_score(own, run, prep):.4f} | "
            f"{round_trip_score(shipped, run, prep, quantized=False):.4f} | "
            f"{round_trip_score(None, run, prep):.4f}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
