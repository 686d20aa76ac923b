"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse


def parse_size(text: str) -> tuple[int, int]:
    """'480x640' -> (480, 640) as (H, W); a single number means a square; at least 2x2."""
    parts = text.lower().split("x")
    try:
        hw = [int(p) for p in parts]
    except ValueError:
        hw = []
    if len(hw) == 1:
        hw = hw * 2
    if len(hw) != 2 or min(hw) < 2:
        raise argparse.ArgumentTypeError(f"size must look like HxW (e.g. 480x640), got {text!r}")
    return hw[0], hw[1]
