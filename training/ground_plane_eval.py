"""Metric depth from the floor (issue #26, item 3): the shipped model's depth scaled by the
ground plane and the known camera height, with no per-frame alignment, against the same
predictions median-aligned per frame, on rendered camera paths at 0.3 m, 1.0 m and 2.0 m.
The logic is `depthart_core.evaluation.ground_plane`; this wires the model to it and prints a
Markdown table (the model's rows and the ground truth's, which check the plane fit alone).

    OMP_NUM_THREADS=1 python training/ground_plane_eval.py                # about 1-2 min
    python training/ground_plane_eval.py --rigs wheeled --sequences 4 --json runs/gp.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from depthart_core.cli.args import parse_size
from depthart_core.evaluation.ground_plane import (
    RIGS,
    UP_SOURCES,
    RigEval,
    evaluate_rig,
    format_table,
    summary_row,
)
from depthart_core.fileutil import atomic_write
from depthart_core.ground_plane import GroundPlaneConfig
from depthart_core.runtime import get_backend
from depthart_core.sampling import SAMPLING_NAMES, sampling_setting


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rigs", nargs="+", default=list(RIGS), choices=list(RIGS))
    ap.add_argument("--sequences", type=int, default=2, help="rooms per rig (2)")
    ap.add_argument("--frames", type=int, default=15, help="frames per room (15)")
    ap.add_argument("--frame-step", type=int, default=10, help="path frames between two (10)")
    ap.add_argument("--pitch-wobble", type=float, default=3.0, help="degrees (3)")
    ap.add_argument("--roll-wobble", type=float, default=2.0, help="degrees (2)")
    ap.add_argument(
        "--hand-held",
        action="store_true",
        help="keep the generator's hand-held path pitch (0-20 deg down, unknown to the prior)",
    )
    ap.add_argument(
        "--up",
        default="prior",
        choices=UP_SOURCES,
        help="the fit's up: prior (the mount's pitch, as the node) or true (each frame's true up, "
        "as a per-frame gravity measurement would give it) or lines (each frame's vertical "
        "lines, else horizon, camera only; needs a real camera's resolution, e.g. --size 480x640)",
    )
    ap.add_argument(
        "--up-noise-deg", type=float, default=0.0, help="with --up true: Gaussian noise per axis"
    )
    ap.add_argument("--window", type=int, default=None, help="the smoother's window (default 9)")
    ap.add_argument(
        "--tilt",
        type=float,
        default=0.0,
        help="with --up true or lines: the share of the floor's tilt taken out (the node's "
        "ground_plane.tilt; the 'prior' normal rows only)",
    )
    ap.add_argument(
        "--max-angle", type=float, default=None, help="floor normal tolerance (default 35 deg)"
    )
    ap.add_argument("--size", type=parse_size, default=(120, 160), help="rendered HxW (120x160)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", default=None, help="default: the shipped model")
    ap.add_argument("--backend", default="torch")
    ap.add_argument(
        "--sampling", default="soft", choices=SAMPLING_NAMES, help="decoding (soft, the default's)"
    )
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--gt-only", action="store_true", help="only the ground-truth check")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    for name in ("sequences", "frames", "frame_step"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.tilt and args.up == "prior":
        ap.error(f"--tilt {args.tilt:g} straightens toward a measured up: needs --up true or lines")
    ground: dict[str, object] = {"tilt": args.tilt}
    if args.window is not None:
        ground["window"] = args.window
    if args.max_angle is not None:
        ground["max_normal_angle_deg"] = args.max_angle
    try:  # bad settings are refused before the model loads
        ground_cfg = dataclasses.replace(GroundPlaneConfig(normal="prior"), **ground)
    except ValueError as exc:
        ap.error(str(exc))
    predict = None
    if not args.gt_only:
        backend = get_backend(
            args.backend,
            checkpoint=args.checkpoint,
            threads=args.threads,
            sampling=sampling_setting(args.sampling),
        )
        predict = backend.predict
        print(f"model: {backend.describe()}", flush=True)
    rows = []
    for name in args.rigs:
        t0 = time.perf_counter()
        rig = RigEval.named(
            name,
            sequences=args.sequences,
            frames=args.frames,
            frame_step=args.frame_step,
            level_path=not args.hand_held,
            pitch_wobble_deg=args.pitch_wobble,
            roll_wobble_deg=args.roll_wobble,
            size=args.size,
            seed=args.seed,
            up_source=args.up,
            up_noise_deg=args.up_noise_deg,
            ground=ground_cfg,
        )
        stats = evaluate_rig(rig, predict)
        rows += [summary_row(name, rig, key, st) for key, st in stats.items()]
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print(format_table(rows))
    if args.json:
        atomic_write(Path(args.json), json.dumps(rows, indent=2).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
