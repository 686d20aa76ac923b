"""`depthart parity [--checkpoint CKPT] [--count 20] [--seed 4242] [--backend torch --device cuda
--precision fp16|bf16]`: reduced precision against fp32 (default: the exported fp16 graph)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parity",
        help="agreement of fp16 (or bf16) and fp32 on synthetic frames (default: the ONNX graphs "
        "on ONNX Runtime; --backend torch --device cuda: autocast on a GPU)",
    )
    p.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    p.add_argument("--count", type=int, default=20, help="synthetic frames (20)")
    p.add_argument("--seed", type=int, default=4242, help="synthetic seed (never used in training)")
    p.add_argument(
        "--backend", default="onnxruntime", choices=("onnxruntime", "torch"), help="(onnxruntime)"
    )
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (cpu)")
    p.add_argument(
        "--precision",
        default="fp16",
        choices=("fp16", "bf16"),
        help="against fp32 (fp16; torch on the CPU: bf16 only)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from depthart_core.runtime.parity import fp16_parity

    result = fp16_parity(
        args.checkpoint, args.count, args.seed, args.backend, args.device, args.precision
    )
    print(json.dumps(result, indent=2))
    return 0
