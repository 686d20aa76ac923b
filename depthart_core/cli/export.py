"""`depthart export --checkpoint CKPT --format onnx|tensorrt [--fp16] --out PATH`."""

from __future__ import annotations

import argparse
from pathlib import Path

from depthart_core.cli.args import remember_defaults, without_effect


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export the whole inference to ONNX or a TensorRT engine")
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--format", choices=("onnx", "tensorrt"), default="onnx")
    p.add_argument("--fp16", action="store_true", help="half precision, norms/softmax in fp32")
    p.add_argument("--out", required=True, help="output .onnx (or .engine for tensorrt)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out (and, for tensorrt, the .onnx graph beside it)",
    )
    p.add_argument("--workspace-mb", type=int, default=1024, help="TensorRT workspace limit")
    p.add_argument("--vae", default=None, help="VAR's VQ-VAE for an authors' checkpoint without it")
    p.add_argument(
        "--sampling",
        default="soft",
        choices=("greedy", "soft"),  # the deterministic settings of depthart_core.sampling
        help="the decoding the graph holds: soft (probability-weighted code embeddings, the "
        "default) or greedy (argmax)",
    )
    p.set_defaults(func=run)
    remember_defaults(p)


def run(args: argparse.Namespace) -> int:
    from depthart_core.checkpoint import CheckpointFile, load_model
    from depthart_core.export.onnx_export import export_onnx
    from depthart_core.fileutil import atomic_write, output_folder, refuse_special_file
    from depthart_core.sampling import sampling_setting

    if args.format != "tensorrt":  # set, but doing nothing: said, not ignored
        unused = without_effect(args, ["workspace_mb"], "--format tensorrt")
        if unused:
            raise ValueError(unused)
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the file to write (e.g. {out}/model.onnx)")
    # what it writes: --out, and for tensorrt the engine's graph beside it
    writes = sorted({out, out.with_suffix(".onnx")} if args.format == "tensorrt" else {out})
    for written in writes:  # before the export's work, not after it
        refuse_special_file(written)
    for written in writes:
        if written.is_file() and not args.overwrite:  # as convert: never replaced unasked
            beside = "" if written == out else f" (--format tensorrt writes its graph beside {out})"
            raise ValueError(
                f"--out {out}: {written} exists{beside}: give --overwrite to replace it, or "
                "another path"
            )
    if args.format == "tensorrt" and args.workspace_mb <= 0:  # before the graph, not after it
        raise ValueError(f"--workspace-mb must be positive, got {args.workspace_mb}")
    from depthart_core.checkpoint import resolve_checkpoint

    source = resolve_checkpoint(args.checkpoint)
    inputs = [source, source.with_suffix(".json")] + ([Path(args.vae)] if args.vae else [])
    for written in {out, out.with_suffix(".onnx")}:  # the engine's graph goes beside it
        if any(written.resolve() == p.resolve() for p in inputs):
            raise ValueError(f"--out {out} would write over the input {written}: pick another")
    if args.format == "tensorrt":
        from depthart_core.runtime.tensorrt_backend import import_tensorrt

        if out.suffix == ".onnx":  # the engine would be written over the graph it came from
            raise ValueError(
                f"--out {out}: --format tensorrt writes the engine there and the graph beside it "
                f"({out.with_suffix('.onnx').name}); give the engine a name such as "
                f"{out.with_suffix('.engine')}"
            )
        import_tensorrt()  # before the ONNX graph is written: with install instructions if absent
        import torch

        if not torch.cuda.is_available():  # the build needs the GPU: said before the graph
            raise RuntimeError(
                "--format tensorrt builds the engine on a CUDA GPU and torch sees none here: "
                "export --format onnx and build the engine on the robot (its first start does)"
            )
    # a read-only or missing-permission folder stops it before the export; a folder it made
    # stays only if something was written into it
    with output_folder(out.parent):
        ckpt = CheckpointFile(args.checkpoint, vae=args.vae, vae_setting="--vae")
        model, _ = load_model(ckpt)
        onnx_path = out if args.format == "onnx" else out.with_suffix(".onnx")
        # --format tensorrt: a graph this run wrote where none was (--overwrite replaces one) is
        # removed if the engine does not follow, so that a rerun is not refused for it
        ours = args.format == "tensorrt" and not onnx_path.exists()
        sampling = sampling_setting(args.sampling)
        atomic_write(  # a failed export leaves neither a partial graph nor a temp file
            onnx_path,
            lambda tmp: export_onnx(
                model,
                tmp,
                checkpoint_sha256=ckpt.model_sha256,
                fp16=args.fp16,
                sampling=sampling,
                final_path=onnx_path,
            ),
        )
        try:
            _report_graph(onnx_path, args)
            if args.format == "tensorrt":
                _build_engine(onnx_path, out, model.cfg.image_size, args)
        except BaseException:  # Ctrl-C or a failed check or build included
            if ours:
                onnx_path.unlink(missing_ok=True)
            raise
    return 0


def _report_graph(onnx_path: Path, args: argparse.Namespace) -> None:
    from depthart_core.export.trt_onnx_ops import unsupported_ops

    missing = unsupported_ops(onnx_path)
    print(
        f"wrote {onnx_path} ({'fp16' if args.fp16 else 'fp32'}, {args.sampling}); operators "
        f"outside TensorRT's ONNX support list: {missing or 'none'}"
    )
    print(
        "note: an exported graph decodes deterministically (soft or greedy) and cannot sample; "
        "the paper's sampling setting (--sampling paper) runs on the torch backend only"
    )


def _build_engine(onnx_path: Path, out: Path, S: int, args: argparse.Namespace) -> None:
    from depthart_core.export.trt_onnx_ops import (
        check_precision,
        check_tensorrt_compatible,
        load_graph,
    )
    from depthart_core.fileutil import atomic_write
    from depthart_core.runtime.tensorrt_backend import build_serialized_engine

    graph = load_graph(onnx_path)  # the backend's checks, before minutes of build
    check_tensorrt_compatible(graph)
    check_precision(graph, "fp16" if args.fp16 else "fp32")
    engine = build_serialized_engine(onnx_path, (1, 3, S, S), args.workspace_mb)
    atomic_write(out, bytes(engine))
    print(f"wrote TensorRT engine {out}")
