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
    """The result as JSON (a figure that is not a finite number as null, and then status 1 and
    one line on stderr naming those figures, the backend and the precision: nothing measured)."""
    import json
    import math
    import sys

    from depthart_core.runtime.parity import fp16_parity, nonfinite_figures

    result = fp16_parity(
        args.checkpoint, args.count, args.seed, args.backend, args.device, args.precision
    )
    bad = nonfinite_figures(result)
    shown = {
        k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.items()
    }  # NaN is no JSON
    print(json.dumps(shown, indent=2))
    if not bad:
        return 0
    backend, precision = result.get("backend", args.backend), result.get("precision", "?")
    total = result.get("depth_pixels_per_run", "?")
    whose = "".join(
        f"; the {run} run gave {n} of {total} depth pixels non-finite"
        for run, n in (result.get("nonfinite_depth") or {}).items()
    )
    values = ", ".join(str(result.get(k)) for k in bad)
    print(
        f"depthart parity: error: {', '.join(bad)} not finite ({values}) on {backend}, "
        f"{precision} against fp32{whose}{_known_cause(backend, precision)}",
        file=sys.stderr,
    )
    return 1


def _known_cause(backend: str, precision: str) -> str:
    """ONNX Runtime 1.19.0 and 1.19.2 give fp16 graphs all-NaN depth (setup.py refuses 1.19.*)."""
    if not (backend.startswith("onnxruntime") and precision == "fp16"):
        return ""
    try:
        import onnxruntime
    except ImportError:
        return ""
    version = getattr(onnxruntime, "__version__", "")
    if version.startswith("1.19."):
        return f"; onnxruntime {version} gives fp16 graphs NaN depth: install another version"
    return ""
