"""fp16 vs fp32 agreement of the exported graph on synthetic frames (ONNX Runtime on the CPU).

    python -m depthart_core.export.parity [--checkpoint CKPT] [--count 20] [--seed 4242]

Reports the share of identical token maps and the depth error of the fp16 graph (LayerNorm,
GroupNorm and attention softmax kept in fp32) against the fp32 graph, on frames from a synthetic
seed the model never saw.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--seed", type=int, default=4242)
    args = p.parse_args(argv)

    from depthart_core.data.synthetic.config import SynthConfig
    from depthart_core.data.synthetic.render import render_frame
    from depthart_core.runtime.onnx_backend import OnnxRuntimeBackend
    from depthart_core.runtime.preprocess import preprocess

    b32 = OnnxRuntimeBackend.from_checkpoint(args.checkpoint, precision="fp32")
    b16 = OnnxRuntimeBackend.from_checkpoint(args.checkpoint, precision="fp16")
    S = b32.image_size
    same, err_mean, err_max = [], [], []
    for i in range(args.count):
        rgb = render_frame(args.seed, i, SynthConfig(size=(S, S))).rgb
        x, _ = preprocess(rgb, S)
        d32, t32 = b32.run_with_tokens(x)
        d16, t16 = b16.run_with_tokens(x)
        same.append(float((t32 == t16).mean()))
        err_mean.append(float(np.abs(d32 - d16).mean()))
        err_max.append(float(np.abs(d32 - d16).max()))
    out = {
        "frames": args.count,
        "token_agreement": float(np.mean(same)),
        "depth_abs_err_mean": float(np.mean(err_mean)),
        "depth_abs_err_max": float(np.max(err_max)),
        "backend": "onnxruntime CPU",
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
