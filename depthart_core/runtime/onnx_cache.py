"""The one ONNX export cache, shared by the ONNX Runtime and TensorRT backends.

A checkpoint is exported once per precision and decoding, to

    <cache root>/onnx/<checkpoint sha256[:16]>_<precision>.onnx              greedy
    <cache root>/onnx/<checkpoint sha256[:16]>_<precision>_<decoding>.onnx   e.g. soft

(cache root: `depthart_core.fileutil.cache_root`), and reused by every later process. The graph is
written through a temp file and a rename, so a reader never finds a half-written one. The
backends check the checkpoint hash stamped in the graph's metadata before they run it.

A checkpoint with the uncertainty head exports a graph with the "uncertainty" output. Its hash
differs from any headless checkpoint's, so the two never share a cache entry; a graph cached for
it by an exporter from before the head (no `depthart_uncertainty` = "head" stamp) is exported
again rather than served without the head.
"""

from __future__ import annotations

import logging
from pathlib import Path

from depthart_core.checkpoint import CheckpointFile
from depthart_core.export.onnx_export import (
    META_UNCERTAINTY,
    UNCERTAINTY_HEAD,
    checkpoint_has_head,
    export_onnx,
    read_onnx_metadata,
)
from depthart_core.fileutil import atomic_write, cache_root
from depthart_core.model import SamplingConfig
from depthart_core.sampling import graph_decoding

log = logging.getLogger(__name__)


def onnx_cache_path(sha256: str, precision: str, decoding: str = "greedy") -> Path:
    suffix = "" if decoding == "greedy" else f"_{decoding}"  # greedy keeps its older name
    return cache_root() / "onnx" / f"{sha256[:16]}_{precision}{suffix}.onnx"


def cached_onnx(
    ckpt: CheckpointFile, precision: str = "fp32", sampling: SamplingConfig | None = None
) -> Path:
    """The checkpoint's exported graph at `precision` with the deterministic decoding `sampling`
    (None: greedy), exported (once) if not cached yet.

    Only "fp16" exports a half-precision graph; any other name (fp32, and bf16, which ONNX
    Runtime has no kernels for) gets an fp32 graph, cached under that name as before.
    """
    path = onnx_cache_path(ckpt.sha256, precision, graph_decoding(sampling))
    if path.is_file() and not _lacks_head(path, ckpt):
        return path
    if path.is_file():
        log.info("%s lacks the uncertainty output of %s's head: exporting again", path, ckpt.path)
    log.info("exporting %s to %s (once; cached)", ckpt.path, path)
    model, _ = ckpt.load()
    fp16 = precision == "fp16"
    atomic_write(
        path,
        lambda tmp: export_onnx(
            model, tmp, checkpoint_sha256=ckpt.sha256, fp16=fp16, sampling=sampling
        ),
    )
    return path


def _lacks_head(path: Path, ckpt: CheckpointFile) -> bool:
    """A cached graph without the head's output for a checkpoint that has the head."""
    return checkpoint_has_head(ckpt) and (
        read_onnx_metadata(path).get(META_UNCERTAINTY) != UNCERTAINTY_HEAD
    )
