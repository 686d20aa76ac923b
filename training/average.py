r"""Average the weights of checkpoints fine-tuned from one start (a "model soup", Wortsman et al.
2022; stochastic weight averaging, Izmailov et al. 2018): runs that leave a shared checkpoint for
a short leg each stay in one basin, and their mean is often better than each.

    python training/average.py runs/a/checkpoint.safetensors runs/b/checkpoint.safetensors \
        --out runs/soup.safetensors [--weights 0.5 0.5]

Every checkpoint must have the same model config and the same (frozen) tokenizer, bit for bit:
averaging two codebooks would decode nothing the transformer learned. Integer buffers must be
equal. The output's metadata lists each source with its sha256 and weight.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def average(paths: list[str], weights: list[float] | None = None):
    """(model, metadata): the weighted mean of the checkpoints' weights."""
    import torch

    from depthart_core.checkpoint import (
        load_checkpoint,
        load_state_dict_strict,
        refuse_tokenizer_only,
    )

    if len(paths) < 2:
        raise ValueError(f"averaging needs at least two checkpoints, got {len(paths)}")
    weights = weights or [1.0 / len(paths)] * len(paths)
    finite = all(math.isfinite(w) and w >= 0 for w in weights)  # NaN passes both w < 0 and <= 0
    if len(weights) != len(paths) or not finite or sum(weights) <= 0:
        raise ValueError(f"need one finite, non-negative weight per checkpoint, got {weights}")
    total = sum(weights)
    weights = [w / total for w in weights]
    model, info = load_checkpoint(paths[0])
    refuse_tokenizer_only(info, paths[0])
    states = [model.state_dict()]
    sources = [{"path": str(paths[0]), "sha256": info["sha256"], "weight": weights[0]}]
    for path, w in zip(paths[1:], weights[1:], strict=True):
        other, other_info = load_checkpoint(path)
        refuse_tokenizer_only(other_info, path)
        if other.cfg != model.cfg:
            raise ValueError(f"{path}: model config differs from {paths[0]}'s")
        states.append(other.state_dict())
        sources.append({"path": str(path), "sha256": other_info["sha256"], "weight": w})
    mean = {}
    for k, first in states[0].items():
        same = all(torch.equal(s[k], first) for s in states[1:])
        if k.startswith("tokenizer.") or not first.is_floating_point():
            if not same:
                raise ValueError(
                    f"{k} differs between the checkpoints: only runs from one start, with the "
                    "same frozen tokenizer, can be averaged"
                )
            mean[k] = first
        else:
            mean[k] = sum(w * s[k] for w, s in zip(weights, states, strict=True))
    load_state_dict_strict(model, mean, what="the averaged weights")
    meta = {"averaged_from": sources, "base_metadata": info["metadata"]}
    return model, meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--out", required=True, help="the averaged checkpoint (.safetensors)")
    p.add_argument("--weights", type=float, nargs="+", default=None, help="default: equal")
    args = p.parse_args(argv)

    from depthart_core.checkpoint import save_checkpoint

    try:
        model, meta = average(args.checkpoints, args.weights)
    except (ValueError, OSError) as exc:  # one line, not a traceback
        p.error(str(exc))
    out = save_checkpoint(Path(args.out), model, meta)
    print(f"averaged {len(args.checkpoints)} checkpoints into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
