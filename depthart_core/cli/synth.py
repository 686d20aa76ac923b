"""`depthart synth --out DIR --count N --seed S --size HxW`: write a synthetic RGB-D set.

The layout is documented in `depthart_core.data.synthetic.set`; frames come from
`depthart_core.data.synthetic` and are reproducible from (seed, index).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depthart_core.cli.args import add_progress_arg, parse_size


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="render a synthetic indoor RGB-D set to disk")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--count", type=int, required=True, help="number of frames")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument("--size", type=parse_size, default=(128, 128), help="HxW (default 128x128)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing set in --out")
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish a set an earlier run left part-way (Ctrl-C, a full disk); same settings",
    )
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depthart_core.data.synthetic.set import PARTIAL, write_synthetic_set
    from depthart_core.fileutil import read_json

    try:
        root = write_synthetic_set(
            args.out,
            args.count,
            args.seed,
            args.size,
            progress=not args.no_progress,
            overwrite=args.overwrite,
            resume=args.resume,
        )
    except (KeyboardInterrupt, OSError) as exc:
        partial = Path(args.out) / PARTIAL
        if not partial.is_file():
            raise
        # what was complete is kept: say how to go on (an error stays one line)
        done = read_json(partial, "interrupted synthetic set").get("written")
        kept = f"{done} of {args.count} frames are kept in {args.out}"
        if isinstance(exc, KeyboardInterrupt):
            print(f"depthart synth: stopped; {kept}: run the same command with --resume to "
                  "finish", file=sys.stderr)  # fmt: skip
            raise
        from depthart_core.fileutil import describe_os_error

        raise RuntimeError(
            f"{describe_os_error(exc)}; {kept}: free the space, then run the same command with "
            "--resume"
        ) from exc
    print(f"wrote {args.count} frames ({args.size[0]}x{args.size[1]}, seed {args.seed}) to {root}")
    return 0
