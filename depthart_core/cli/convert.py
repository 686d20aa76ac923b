"""`depthart convert MODEL.safetensors [--vae VAE.pth] --out OURS.safetensors`.

Writes the DepthART authors' released checkpoint as a DepthART-ROS checkpoint (safetensors with
the config inside, plus the JSON sidecar), so later loads skip the layout mapping and need no VAE.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="convert the authors' DepthART model.safetensors to our checkpoint format"
    )
    p.add_argument("checkpoint", help="the authors' model.safetensors (bulatko/DepthART)")
    p.add_argument("--vae", default=None, help="VAR's vae_ch160v4096z32.pth if the file lacks it")
    p.add_argument("--out", required=True, help="output .safetensors (never one of the inputs)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from depthart_core.checkpoint import convert_authors_checkpoint

    out = convert_authors_checkpoint(args.checkpoint, args.out, args.vae, args.overwrite)
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0
