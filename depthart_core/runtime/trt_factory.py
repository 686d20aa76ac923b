"""Build a TensorRT backend from a checkpoint: export (cached) ONNX, then the engine cache."""

from __future__ import annotations

from pathlib import Path

from depthart_core.runtime.tensorrt_backend import TensorRTBackend


def tensorrt_from_checkpoint(
    checkpoint: str | Path | None,
    onnx_path: str | Path | None,
    precision: str = "fp32",
    letterbox: bool = False,
) -> TensorRTBackend:
    from depthart_core.checkpoint import file_sha256, read_checkpoint_info, resolve_checkpoint
    from depthart_core.runtime.onnx_backend import cache_dir

    if precision not in ("fp32", "fp16"):
        raise ValueError(f"TensorRT precision must be fp32 or fp16, got {precision!r}")
    ckpt = resolve_checkpoint(checkpoint)
    sha = file_sha256(ckpt)
    size = int(read_checkpoint_info(ckpt)["config"]["image_size"])
    if onnx_path is None:
        onnx_path = cache_dir() / "onnx" / f"{sha[:16]}_{precision}.onnx"
        if not Path(onnx_path).is_file():
            from depthart_core.checkpoint import load_checkpoint
            from depthart_core.export.onnx_export import export_onnx

            model, _ = load_checkpoint(ckpt)
            export_onnx(model, onnx_path, checkpoint_sha256=sha, fp16=precision == "fp16")
    return TensorRTBackend(
        onnx_path, size, precision=precision, letterbox=letterbox, expected_model_hash=sha
    )
