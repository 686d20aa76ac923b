r"""Copy a trained run's checkpoint to checkpoints/ with its provenance in the metadata.

    python training/ship.py runs/tiny_long/checkpoint.safetensors \
        --eval runs/ablation_tiny_30k/ablation.json --command "..." --command "..."

The shipped file is what `depthart predict`, the node and `make demo` use by default.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_checkpoint")
    p.add_argument("--out", default=str(ROOT / "checkpoints" / "depthart_tiny_cnn.safetensors"))
    p.add_argument("--command", action="append", default=[], help="training commands, in order")
    p.add_argument("--eval", default=None, help="an ablation.json / report.json to embed")
    p.add_argument("--note", default="")
    args = p.parse_args(argv)

    from depthart_core.checkpoint import load_checkpoint, refuse_tokenizer_only, save_checkpoint

    try:
        evaluation = json.loads(Path(args.eval).read_text()) if args.eval else None
        model, info = load_checkpoint(args.run_checkpoint)
        refuse_tokenizer_only(info, args.run_checkpoint)  # it would replace the default model
    except (ValueError, OSError) as exc:  # one line (a bad --eval too), before anything is written
        p.error(str(exc))
    meta = dict(info["metadata"])
    meta["training_commands"] = args.command
    meta["source_run"] = str(args.run_checkpoint)
    if evaluation is not None:
        meta["held_out_evaluation"] = evaluation
    if args.note:
        meta["note"] = args.note
    out = save_checkpoint(args.out, model, meta)
    print(f"shipped {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
