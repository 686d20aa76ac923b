"""`depthart bench [--checkpoint CKPT | --preset NAME [--set KEY=VALUE ...]] --backend B --size HxW
[--runs N] [--uncertainty]`. A preset (with --set overrides) is timed with random weights: the speed
of an architecture before anyone trains it (`--set uncertainty_width=16 --uncertainty`: with the
uncertainty head). --uncertainty times the uncertainty pass (depth and each pixel's expected
relative error, `Backend.run_uncertainty`) instead of the plain one."""

from __future__ import annotations

import argparse

from depthart_core.cli.args import (
    add_flip_arg,
    add_model_args,
    parse_size,
    remember_defaults,
    sampling_from_args,
    seed_without_effect,
    without_effect,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="latency per stage, end to end, and against a peer model")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", default=None, help="checkpoint (default: the shipped model)")
    src.add_argument("--preset", default=None, help="benchmark a randomly initialised preset")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --preset: override a model field, e.g. --set image_size=128 "
        "--set tokenizer.patch_nums=[1,2,3,4,6,8,12,16] --set transformer.depth=6 (repeatable)",
    )
    p.add_argument("--backend", default="auto", help="auto|tensorrt|onnxruntime|torch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", help="fp32|bf16|fp16")
    p.add_argument("--threads", type=int, default=0, help="CPU threads; 0 = auto (see README)")
    p.add_argument(
        "--busy-cores",
        type=int,
        default=0,
        metavar="N",
        help="time with N busy-looping processes, each pinned to one core (a loaded robot)",
    )
    p.add_argument(
        "--size", type=parse_size, default=(480, 640), help="input HxW (default 480x640)"
    )
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (3)")
    p.add_argument("--no-peer", action="store_true", help="skip the Depth Anything V2-Small peer")
    p.add_argument("--peer-short-side", type=int, default=518, help="peer resize (DA-V2: 518)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument(
        "--uncertainty",
        action="store_true",
        help="time the uncertainty pass (depth + each pixel's expected relative error, one "
        "pass) instead of the plain one; needs a checkpoint with the uncertainty head (or "
        "--preset ... --set uncertainty_width=16)",
    )
    add_flip_arg(p)
    add_model_args(p)
    p.set_defaults(func=run)
    remember_defaults(p)


def _options_without_effect(args: argparse.Namespace) -> str | None:
    """Options set away from their defaults that only act with another one that is missing."""
    if args.no_peer:
        unused = without_effect(args, ["peer_short_side"], "the peer (without --no-peer)")
        if unused:
            return unused
    return seed_without_effect(args)


def run(args: argparse.Namespace) -> int:
    unused = _options_without_effect(args)  # set, but doing nothing: said, not ignored
    if unused:
        raise ValueError(unused)
    import json
    import platform
    import tempfile
    from datetime import date

    import numpy as np
    import torch

    from depthart_core.checkpoint import resolve_checkpoint
    from depthart_core.runtime import get_backend
    from depthart_core.runtime.bench import current_rss_mb, peak_rss_mb, time_backend, time_peer
    from depthart_core.runtime.cpu_load import busy_cores
    from depthart_core.runtime.threads import resolve_threads, set_torch_threads

    if args.runs < 1 or args.warmup < 0 or args.busy_cores < 0:
        raise ValueError(
            f"--runs must be >= 1, --warmup and --busy-cores >= 0; got {args.runs}, "
            f"{args.warmup}, {args.busy_cores}"
        )
    if args.json:
        from depthart_core.fileutil import check_creatable

        check_creatable(args.json)  # before the benchmark, not after it
    ckpt = args.checkpoint
    if args.set and not args.preset:
        raise SystemExit(
            f"depthart bench: --set {args.set[0]} needs --preset (a checkpoint's "
            "architecture is fixed by its weights)"
        )
    n_params = None
    if args.preset:
        from depthart_core.checkpoint import save_checkpoint
        from depthart_core.config import get_preset, with_overrides
        from depthart_core.model import DepthART
        from depthart_core.training.config import parse_set

        try:
            cfg = with_overrides(get_preset(args.preset), parse_set(args.set))
        except (TypeError, ValueError) as exc:
            raise SystemExit(
                f"depthart bench: --preset {args.preset} {' '.join(args.set)}: {exc}"
            ) from None
        torch.manual_seed(0)
        model = DepthART(cfg)
        n_params = {
            "tokenizer": sum(p.numel() for p in model.tokenizer.parameters()),
            "transformer": sum(p.numel() for p in model.transformer.parameters()),
        }
        # random weights, only to be loaded (and exported) once: not left behind in /tmp
        preset_dir = tempfile.TemporaryDirectory(prefix="depthart-bench-")
        ckpt = save_checkpoint(f"{preset_dir.name}/{args.preset}.safetensors", model)
    try:
        backend = get_backend(
            args.backend,
            checkpoint=ckpt,
            device=args.device,
            precision=args.precision,
            threads=args.threads,
            sampling=sampling_from_args(args),
            vae=args.vae,
            vae_setting="--vae",
            flip_average=args.flip_average,
        )
    finally:
        if args.preset:
            preset_dir.cleanup()
    h, w = args.size
    rgb = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    result = {
        "date": date.today().isoformat(),
        "device": f"{args.device} ({platform.processor() or platform.machine()}, "
        f"{resolve_threads(args.threads)} threads)",
        "model": " ".join([args.preset, *args.set])
        if args.preset
        else str(resolve_checkpoint(ckpt)),  # the file read ($DEPTHART_CHECKPOINT's too)
        "parameters": n_params,
        "backend": backend.describe(),
        "input": [h, w],
        "model_input": backend.image_size,
        "busy_cores": args.busy_cores,
    }
    rss_before = current_rss_mb()  # the model and any one-time ONNX export are in the peak
    # the backend's GPU (cuda:1's, not the current device's), its timed runs alone: not the peer
    gpu = torch.device(args.device) if args.device.startswith("cuda") else None
    peak_cuda = None
    with busy_cores(args.busy_cores) as cores:
        if cores:
            print(f"busy-looping processes on core(s) {cores}")
        if gpu is not None and torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats(gpu)
        result |= time_backend(backend, rgb, args.runs, args.warmup, args.uncertainty)
        if gpu is not None and torch.cuda.is_available():
            peak_cuda = torch.cuda.max_memory_allocated(gpu) / 2**20
        result["rss_mb"] = current_rss_mb()  # resident after the timed runs
        if not args.no_peer:  # the same load, threads and device as DepthART had
            set_torch_threads(args.threads)
            dev = gpu if gpu is not None else torch.device("cpu")
            peer = time_peer(rgb, dev, max(3, args.runs // 2), 1, args.peer_short_side)
    result["rss_before_timing_mb"] = rss_before
    result["peak_rss_mb"] = peak_rss_mb()  # of the process: loading (and an export) included
    if peak_cuda is not None:
        result["peak_cuda_mb"] = peak_cuda
    print(f"{result['backend']} on {result['device']}, input {h}x{w} -> {backend.image_size}^2")
    if args.uncertainty:
        print("  timing the uncertainty pass: depth + expected relative error per pixel (model)")
    if n_params:
        print(
            f"  parameters   tokenizer {n_params['tokenizer'] / 1e6:.2f} M, "
            f"transformer {n_params['transformer'] / 1e6:.2f} M"
        )
    for stage, s in result["stages"].items():
        print(f"  {stage:<12} median {s['median_ms']:8.2f} ms   p90 {s['p90_ms']:8.2f} ms")
    rss = result["rss_mb"]
    print(
        f"  frames/s     {result['fps']:.1f}   RSS {rss:.0f} MB after the runs"
        if rss is not None
        else f"  frames/s     {result['fps']:.1f}",
        f"(process peak {result['peak_rss_mb']:.0f} MB, loading included)",
    )
    if not args.no_peer:
        result["peer"] = peer
        ratio = (
            peer["stages"]["end_to_end"]["median_ms"] / result["stages"]["end_to_end"]["median_ms"]
        )
        result["speedup_vs_peer"] = ratio
        print(
            f"  peer {peer['name']} at {peer['input'][0]}x{peer['input'][1]}: "
            f"{peer['stages']['end_to_end']['median_ms']:.1f} ms ({peer['fps']:.2f} frames/s)"
        )
        word = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
        print(f"  DepthART is {word} than the peer")
    if args.json:  # atomic: a failed write keeps an earlier file whole, and names the file
        from depthart_core.fileutil import atomic_write

        atomic_write(args.json, (json.dumps(result, indent=2) + "\n").encode())
        print(f"wrote {args.json}")
    return 0
