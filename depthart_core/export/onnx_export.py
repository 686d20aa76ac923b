"""Whole-model ONNX export: normalised image (1, 3, S, S) -> relative depth (1, S, S) + token maps.

One static graph holds the tokenizer encoder and image prefix, the K-scale KV-cached loop (greedy
argmax, or the soft decoding's softmax @ codebook; `depthart_core.sampling`) unrolled with static
shapes (every resize is a constant MatMul, see
`depthart_core.tokenizer.resize`), the decoder and the depth codec. The checkpoint's sha256 is
stored in the graph's metadata so a runtime can refuse an ONNX file made from another checkpoint,
and the decoding too (`depthart_decoding`; a graph without it is greedy) so a runtime can refuse
a graph that decodes otherwise than asked.

fp16: weights and activations in half precision with LayerNorm, GroupNorm and the attention
softmax computed in fp32 inside the graph. That is what a strongly typed TensorRT network needs
(TensorRT 10.12+ deprecates the loose FP16 builder flag; 11 removes it).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from depthart_core.model import DepthART, SamplingConfig
from depthart_core.sampling import graph_decoding
from depthart_core.tokenizer.codec import decode_depth

log = logging.getLogger(__name__)
OPSET = 17
META_SHA = "depthart_checkpoint_sha256"
META_PRECISION = "depthart_precision"
META_IMAGE_SIZE = "depthart_image_size"
META_DECODING = "depthart_decoding"


class StaticDepthART(nn.Module):
    """The deterministic inference of `DepthART` (greedy by default) as one traceable forward."""

    def __init__(self, model: DepthART, sampling: SamplingConfig | None = None) -> None:
        super().__init__()
        graph_decoding(sampling)  # raises for a sampled setting
        self.model = model
        self.sampling = sampling or SamplingConfig()

    def forward(self, image_13SS: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        img_BLCv, f_start = m.prefix_and_start(image_13SS)
        idx_list, f_hat, _ = m.generate_from_prefix(img_BLCv, self.sampling, f_start)
        depth_1SS = decode_depth(m.tokenizer.decode_f_hat(f_hat).float())
        tokens_1L = torch.cat([i.flatten(1) for i in idx_list], dim=1)
        return depth_1SS, tokens_1L


@contextlib.contextmanager
def fp32_islands():
    """Inside: LayerNorm, GroupNorm and softmax-attention run in fp32 for half inputs."""
    ln, gn, sdpa = F.layer_norm, F.group_norm, F.scaled_dot_product_attention

    def layer_norm(x, *a, **k):
        if x.dtype == torch.float32:
            return ln(x, *a, **k)
        args = [t.float() if isinstance(t, torch.Tensor) else t for t in a]
        kw = {n: (t.float() if isinstance(t, torch.Tensor) else t) for n, t in k.items()}
        return ln(x.float(), *args, **kw).to(x.dtype)

    def group_norm(x, *a, **k):
        if x.dtype == torch.float32:
            return gn(x, *a, **k)
        args = [t.float() if isinstance(t, torch.Tensor) else t for t in a]
        kw = {n: (t.float() if isinstance(t, torch.Tensor) else t) for n, t in k.items()}
        return gn(x.float(), *args, **kw).to(x.dtype)

    def attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None):
        if q.dtype == torch.float32:
            return sdpa(q, k, v, attn_mask=attn_mask, scale=scale)
        s = scale if scale is not None else q.shape[-1] ** -0.5
        logits = (q.float() @ k.float().transpose(-2, -1)) * s
        if attn_mask is not None:
            logits = logits + attn_mask.float()
        return (logits.softmax(-1) @ v.float()).to(q.dtype)

    F.layer_norm, F.group_norm, F.scaled_dot_product_attention = layer_norm, group_norm, attention
    try:
        yield
    finally:
        F.layer_norm, F.group_norm, F.scaled_dot_product_attention = ln, gn, sdpa


def export_onnx(
    model: DepthART,
    out_path: str | Path,
    checkpoint_sha256: str = "",
    fp16: bool = False,
    check: bool = True,
    sampling: SamplingConfig | None = None,
) -> Path:
    """Trace the static graph, save it, stamp metadata, run onnx.checker. Returns the path.
    `sampling`: the deterministic decoding the graph holds (None: greedy)."""
    import onnx  # optional dependency: the `onnx` extra (torch exports without it)

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    S = model.cfg.image_size
    wrapper = StaticDepthART(model, sampling).eval()
    dtype = torch.float16 if fp16 else torch.float32
    if fp16:  # never touch the caller's model
        wrapper = StaticDepthART(copy.deepcopy(model), sampling).eval().half()
    dummy = torch.zeros(1, 3, S, S, dtype=dtype)
    ctx = fp32_islands() if fp16 else contextlib.nullcontext()
    with torch.no_grad(), ctx, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about Python ints; shapes are static
        wrapper(dummy)  # fills the resize-matrix cache so tracing sees them as constants
        torch.onnx.export(
            wrapper,
            (dummy,),
            str(out_path),
            input_names=["image"],
            output_names=["depth", "tokens"],
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    graph = onnx.load(str(out_path))
    meta = {
        META_SHA: checkpoint_sha256,
        META_PRECISION: "fp16" if fp16 else "fp32",
        META_IMAGE_SIZE: str(S),
        META_DECODING: graph_decoding(sampling),
    }
    for k, v in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(graph, str(out_path))
    if check:
        onnx.checker.check_model(str(out_path))
    log.info(
        "exported %s (%s, %s, opset %d, %.1f MB)",
        out_path,
        meta[META_PRECISION],
        meta[META_DECODING],
        OPSET,
        out_path.stat().st_size / 1e6,
    )
    return out_path


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    import onnx  # optional dependency: the `onnx` extra

    graph = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in graph.metadata_props}
