"""Argument types shared by the subcommands."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from contextlib import contextmanager

# a config field -> the option that sets it, so that a refusal names what the user typed
OPTION_OF_FIELD = {
    "max_dt_s": "--max-dt",
    "imu_max_dt_s": "--imu-max-dt",
    "max_frames": "--max-frames",
    "sparse_points": "--sparse-points",
    "sparse_fit": "--sparse-fit",
    "depth_range": "--depth-range",
    "pred_topic": "--pred-topic",
    "heldout": "--heldout",
    "gap_s": "--split-gap",
    "min_valid": "--min-valid",
    "steps": "--steps",
    "batch_size": "--batch-size",
    "eval_frames": "--eval-frames",
    "adapt_tokenizer": "--adapt-tokenizer",
    "lr": "--lr",
    "pitch_deg": "--ground-pitch",
    "roll_deg": "--ground-roll",
    "window": "--ground-window",
    "tilt": "--ground-tilt",
    "max_normal_angle_deg": "--ground-max-angle",
    "lines_agree_deg": "--lines-agree",
}


@contextmanager
def options_named(options: dict[str, str] = OPTION_OF_FIELD) -> Iterator[None]:
    """Re-raise a config's `ValueError("<field> must ...")` as `"<--option> must ..."`."""
    try:
        yield
    except ValueError as exc:
        text = str(exc)
        field = re.match(r"(\w+) must ", text)
        if field is None or field.group(1) not in options:
            raise
        raise ValueError(options[field.group(1)] + text[field.end(1) :]) from exc


def remember_defaults(p: argparse.ArgumentParser) -> None:
    """Keep the parser's option defaults on its namespace (`args.option_defaults`: dest ->
    (option, default)); call it after the last argument, so `options_set` can tell the options
    a user set from those left alone without restating any default."""
    options = [a for a in p._actions if a.option_strings]  # not the positionals
    p.set_defaults(
        option_defaults={a.dest: (max(a.option_strings, key=len), a.default) for a in options}
    )


def options_set(args: argparse.Namespace, dests: list[str]) -> list[str]:
    """The options (as typed, e.g. `--ground-pitch`) of `dests` set away from their defaults."""
    defaults = args.option_defaults
    return [defaults[d][0] for d in dests if getattr(args, d) != defaults[d][1]]


def without_effect(args: argparse.Namespace, dests: list[str], needed: str) -> str | None:
    """ "--a, --b set, but it only takes effect with NEEDED" for the options of `dests` the user
    set (call it only where NEEDED is missing), else None."""
    idle = options_set(args, dests)
    return f"{', '.join(idle)} set, but it only takes effect with {needed}" if idle else None


def seed_without_effect(args: argparse.Namespace, dest: str = "seed") -> str | None:
    """--seed (the option of `dest`) set away from its default while --sampling is not paper
    (the only one it seeds)."""
    return None if args.sampling == "paper" else without_effect(args, [dest], "--sampling paper")


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


def add_progress_arg(p: argparse.ArgumentParser) -> None:
    """--no-progress: no progress bars on stderr (for logs and batch jobs); every command with
    long work has it."""
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--vae (for the authors' checkpoint without its VQ-VAE), --sampling and --seed."""
    p.add_argument(
        "--vae",
        default=None,
        help="VAR's vae_ch160v4096z32.pth, for an authors' DepthART checkpoint without the VQ-VAE "
        "(default: that file beside the checkpoint)",
    )
    add_sampling_args(p, "--seed")


def add_sampling_args(p: argparse.ArgumentParser, seed_option: str) -> None:
    """--sampling, and `seed_option` (its seed: --seed, or --sampling-seed where a command's
    --seed seeds something else)."""
    p.add_argument(
        "--sampling",
        default="soft",
        choices=("greedy", "soft", "paper"),  # depthart_core.sampling.SAMPLING_NAMES (a test)
        help="soft: each token adds the probability-weighted mean of the code embeddings (the "
        "default, most accurate: BENCHMARKS.md 2h); greedy: argmax; paper: top-k 900 / top-p 0.9 "
        "/ mean of 5 sampled codes (torch only)",
    )
    p.add_argument(seed_option, type=int, default=0, help="seed of --sampling paper (repeatable)")


def add_flip_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--flip-average",
        action="store_true",
        help="also run each frame mirrored left-right and average the two depth maps "
        "(more accurate, half the frame rate; BENCHMARKS.md 2e)",
    )


def sampling_from_args(args: argparse.Namespace, dest: str = "seed"):
    """The SamplingConfig of --sampling and its seed (the option of `dest`)."""
    from depthart_core.sampling import sampling_setting

    return sampling_setting(args.sampling, getattr(args, dest))
