"""`depthart parity [--checkpoint CKPT] [--count 20] [--seed 4242]`: fp16 vs fp32 exported graph."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parity",
        help="agreement of the fp16 and fp32 ONNX graphs on synthetic frames (ONNX Runtime)",
    )
    p.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    p.add_argument("--count", type=int, default=20, help="synthetic frames (20)")
    p.add_argument("--seed", type=int, default=4242, help="synthetic seed (never used in training)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from depthart_core.runtime.parity import fp16_parity

    print(json.dumps(fp16_parity(args.checkpoint, args.count, args.seed), indent=2))
    return 0
