"""`depthart info [CKPT | --preset NAME] [--json]`: config and parameter counts per component
(no argument: the default checkpoint, as every other command finds it)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show a checkpoint's or preset's config and parameter counts")
    p.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        help="a .safetensors checkpoint (default: the shipped one, or $DEPTHART_CHECKPOINT)",
    )
    p.add_argument("--preset", default=None, help="a preset name instead of a checkpoint")
    p.add_argument("--vae", default=None, help="VAR's vae_ch160v4096z32.pth if the file lacks it")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from depthart_core.info import describe_checkpoint, describe_preset
    from depthart_core.text import printable

    if args.checkpoint is not None and args.preset is not None:
        raise ValueError("give one of CHECKPOINT or --preset NAME, not both")
    if args.preset is None and args.checkpoint is None:  # the default, wherever it is installed
        from depthart_core.checkpoint import resolve_checkpoint

        args.checkpoint = str(resolve_checkpoint(None))
    if args.preset and args.vae:
        raise ValueError("--vae is for an authors' checkpoint, not a preset")
    report = (
        describe_preset(args.preset)
        if args.preset
        else describe_checkpoint(args.checkpoint, args.vae, vae_setting="--vae")
    )
    if args.checkpoint is not None:  # a head loaded without, and why (`copied_head`)
        from depthart_core.checkpoint import read_checkpoint_info

        dropped = read_checkpoint_info(args.checkpoint).get("uncertainty_dropped")
        report |= {"uncertainty_dropped": dropped} if dropped else {}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(printable(report["source"]))
    if report.get("sha256"):
        print(f"sha256 {report['sha256']}")
    print(
        f"image size {report['config']['image_size']}, patch_nums "
        f"{report['config']['tokenizer']['patch_nums']}, tokens {report['tokens_per_map']}, "
        f"depth codec {report['config']['tokenizer'].get('depth_codec', 'linear')}, "
        f"uncertainty head width {report['config'].get('uncertainty_width', 0)}"
        + (f", layout {report['layout']}" if "layout" in report else "")
    )
    if "uncertainty_dropped" in report:  # the file's own path in it: escapes shown
        print(f"uncertainty head left out: {printable(report['uncertainty_dropped'])}")
    elif report["config"].get("uncertainty_width", 0):
        print(_head_settings(report))
    for comp, n in report["parameters"].items():
        print(f"  {comp:<32} {n:>14,}")
    for k, v in report.get("metadata", {}).items():  # the file's own text: escapes shown
        print(f"  meta {printable(k)}: {shorten(printable(v))}")
    return 0


MAX_VALUE_CHARS = 120  # a metadata value in the text output; --json has every value whole


def shorten(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """`text` cut to about `limit` characters, saying how long it is, when it is longer."""
    if len(text) <= limit:
        return text
    tail = f"... ({len(text)} chars; --json for all)"
    return text[: max(0, limit - len(tail))] + tail


def _head_settings(report: dict) -> str:
    """A line on the uncertainty head: whether it reads the image context (the config), and the
    decoding it was trained on when its metadata records it (its spread is calibrated on it)."""
    from depthart_core.text import printable

    context = "on" if report["config"].get("uncertainty_context") else "off"
    line = f"uncertainty head: context features {context}"
    head = report.get("metadata", {}).get("uncertainty_head")
    if isinstance(head, dict) and "decoding" in head:
        line += f", trained on {printable(head['decoding'])} decoding"
    return line
