"""How far the lines' up is from the true up, camera only (issue #26; BENCHMARKS 10).

On the rendered rig paths of `training/ground_plane_eval.py` (the same rooms for the same seeds
and size), each frame's up from its vertical lines, else its horizon's vanishing points
(`depthart_core.vertical_lines.up_from_lines`, the mount's pitch as the prior), is compared with
the renderer's true up, beside the mount prior's own error (the robot's bumps it misses). Per
rig: how many frames gave an up from each source and why the others did not, the angle error's
median / 90th percentile / max (and the median per source), and the lines' time per frame. No
model runs.

    python training/vertical_lines_eval.py --seeds 0 1 --size 480x640       # about 1.5 min
    # the paths of `depthart synth-bag --rig RIG --seed S --frames 60 --size 480x640`:
    python training/vertical_lines_eval.py --seeds 5 6 --sequences 1 --frames 60
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter

import numpy as np

from depthart_core.cli.args import parse_size


def angle_deg(a_3, b_3) -> float:
    cos = float(np.dot(a_3, b_3) / (np.linalg.norm(a_3) * np.linalg.norm(b_3)))
    return math.degrees(math.acos(min(1.0, abs(cos))))


def main(argv: list[str] | None = None) -> int:
    from depthart_core.evaluation.ground_plane import RIGS, RigEval, rig_frames
    from depthart_core.ground_plane import expected_up
    from depthart_core.vertical_lines import up_from_lines

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--sequences", type=int, default=4, help="rooms per rig and seed (4)")
    ap.add_argument("--frames", type=int, default=15, help="frames per room (15)")
    ap.add_argument("--size", type=parse_size, default=(480, 640), help="rendered HxW (480x640)")
    args = ap.parse_args(argv)
    for name in ("sequences", "frames"):
        if getattr(args, name) < 1:
            ap.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    for name in RIGS:
        errs, prior_errs, codes, seconds = [], [], Counter(), 0.0
        by_source: dict[str, list[float]] = {"vertical": [], "horizon": []}
        for seed in args.seeds:
            rig = RigEval.named(
                name, sequences=args.sequences, frames=args.frames, seed=seed, size=args.size
            )
            prior_3 = expected_up(rig.mount_pitch_deg)
            for seq in range(rig.sequences):
                out = rig_frames(rig, seq)
                for i in range(out["rgb"].shape[0]):
                    true_3 = out["pose"][i, :3, :3].numpy().T @ np.array([0.0, 1.0, 0.0])
                    t0 = time.perf_counter()
                    found = up_from_lines(
                        out["rgb"][i].permute(1, 2, 0).numpy(), out["K"][i].numpy(), prior_3
                    )
                    seconds += time.perf_counter() - t0
                    codes[found.source if found.code == "ok" else found.code] += 1
                    prior_errs.append(angle_deg(prior_3, true_3))
                    if found.up_3 is not None:
                        errs.append(angle_deg(np.array(found.up_3), true_3))
                        by_source[found.source].append(errs[-1])
        n = sum(codes.values())
        e = np.array(errs) if errs else np.array([float("nan")])
        refused = ", ".join(
            f"{k} {v}" for k, v in codes.items() if k not in ("vertical", "horizon")
        )
        per_source = ", ".join(
            f"{k} {len(v)}" + (f" median {np.median(v):.2f}" if v else "")
            for k, v in by_source.items()
        )
        print(
            f"{name} ({RIGS[name][0]:g} m, {args.size[0]}x{args.size[1]}, seeds "
            f"{' '.join(map(str, args.seeds))}): up from the lines in "
            f"{len(errs)}/{n} frames ({per_source}; {refused or 'none refused'}); "
            f"angle to the true up median {np.median(e):.2f} deg, p90 {np.percentile(e, 90):.2f}, "
            f"max {e.max():.1f}; the mount prior's median {np.median(prior_errs):.2f}; "
            f"{1000 * seconds / n:.1f} ms a frame",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
