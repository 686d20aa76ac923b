"""Whole-model ONNX export: normalised image (1, 3, S, S) -> relative depth (1, S, S) + token maps
(+ each pixel's expected relative error (1, S, S) for a checkpoint with the uncertainty head).

One static graph holds the tokenizer encoder and image prefix, the K-scale KV-cached loop (greedy
argmax, or the soft decoding's softmax @ codebook; `depthart_core.sampling`) unrolled with static
shapes (every resize is a constant MatMul, see
`depthart_core.tokenizer.resize`), the decoder and the depth codec. The checkpoint's sha256 is
stored in the graph's metadata so a runtime can refuse an ONNX file made from another checkpoint,
and the decoding too (`depthart_decoding`; a graph without it is greedy) so a runtime can refuse
a graph that decodes otherwise than asked. The input's layout and range and the outputs'
meaning are stamped too, in words (`depthart_input`, `depthart_outputs`), for programs that
feed the graph themselves (README "Using the graph in your own code").

Lean graph (ONNX Runtime's time on it goes by node count, about 5 us a node at one thread):
opset 20, so each GELU is one Gelu node; the AdaLN modulation, a constant since the condition is
always the null class, folded into the LayerNorms' affine and the attn.proj / ffn.fc2 weights
(`fold_constant_modulation`; the caller's model and the torch backend keep the unfolded blocks).

Uncertainty (issue #25): a checkpoint with the learned head (`depthart_core.uncertainty_head`)
exports a third output, "uncertainty", computed in the same pass as the depth
(`DepthART.infer(..., with_uncertainty=True)`), and the metadata `depthart_uncertainty` = "head"
("none" without it). A runtime asks ONNX Runtime only for the outputs it needs.

fp16: weights and activations in half precision with LayerNorm, GroupNorm and the attention
softmax computed in fp32 inside the graph. That is what a strongly typed TensorRT network needs
(TensorRT 10.12+ deprecates the loose FP16 builder flag; 11 removes it). The uncertainty head
stays in fp32 there too: its input features are fp32 (`UncertaintyHead.features`), and it is a
small share of the compute.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import threading
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

# what a graph's readers need (its stamps, its outputs), without torch; re-exported here
from depthart_core.export.onnx_meta import EXPORTER_VERSION as EXPORTER_VERSION
from depthart_core.export.onnx_meta import META_DECODING as META_DECODING
from depthart_core.export.onnx_meta import META_EXPORTER as META_EXPORTER
from depthart_core.export.onnx_meta import META_IMAGE_SIZE as META_IMAGE_SIZE
from depthart_core.export.onnx_meta import META_INPUT as META_INPUT
from depthart_core.export.onnx_meta import META_OUTPUTS as META_OUTPUTS
from depthart_core.export.onnx_meta import META_PRECISION as META_PRECISION
from depthart_core.export.onnx_meta import META_SHA as META_SHA
from depthart_core.export.onnx_meta import META_UNCERTAINTY as META_UNCERTAINTY
from depthart_core.export.onnx_meta import UNCERTAINTY_HEAD as UNCERTAINTY_HEAD
from depthart_core.export.onnx_meta import UNCERTAINTY_OUTPUT as UNCERTAINTY_OUTPUT
from depthart_core.export.onnx_meta import checkpoint_has_head as checkpoint_has_head
from depthart_core.export.onnx_meta import keep_outputs as keep_outputs
from depthart_core.export.onnx_meta import read_onnx_header as read_onnx_header
from depthart_core.export.onnx_meta import read_onnx_metadata as read_onnx_metadata
from depthart_core.model import DepthART, SamplingConfig
from depthart_core.sampling import graph_decoding, runtime_sampling

log = logging.getLogger(__name__)
# 20: the tanh GELU of every FFN is one Gelu node (opset 20's), not nine elementwise ones;
# ONNX Runtime runs opset 20 from 1.17 (setup.py asks 1.18), TensorRT's parser from 10.0
OPSET = 20


def _sharing(module: nn.Module, **replace: nn.Module) -> nn.Module:
    """A copy of `module` that shares its parameters, buffers and submodules, with `replace` in
    place of the named submodules; `module` itself is left as it was."""
    out = copy.copy(module)
    for name in [n for n in vars(out) if callable(getattr(type(module), n, None))]:
        del out.__dict__[name]  # a method wrapped on the instance would run the unfolded model
    out._parameters = dict(module._parameters)
    out._buffers = dict(module._buffers)
    out._modules = {**module._modules, **replace}
    return out


def fold_constant_modulation(model: DepthART) -> DepthART:
    """The model the graph is traced from: `model` with every transformer block's and the head
    norm's AdaLN modulation computed once, for the only condition DepthART uses (the null
    class), and folded into their weights (`AdaLNSelfAttn.folded`). The graph then holds no
    per-token modulation arithmetic (about 230 Mul/Add nodes in the shipped graph) and no
    `ada_lin` weights. A copy that shares every other weight with `model`, which is unchanged:
    the torch backend keeps the unfolded blocks and their numerics."""
    var = model.transformer
    with torch.no_grad():
        block_ada, head_ada = var.modulations(var.condition(1, var.pos_1LC.device))
    blocks = nn.ModuleList(b.folded(a) for b, a in zip(var.blocks, block_ada, strict=True))
    folded = _sharing(var, blocks=blocks, head_nm=var.head_nm.folded(head_ada))
    return _sharing(model, transformer=folded)


class StaticDepthART(nn.Module):
    """The deterministic inference of `DepthART` (greedy by default) as one traceable forward:
    (depth, tokens), plus the uncertainty head's map when the model has the head. It runs
    `model` with its constant modulation folded (`fold_constant_modulation`)."""

    def __init__(self, model: DepthART, sampling: SamplingConfig | None = None) -> None:
        super().__init__()
        graph_decoding(sampling)  # raises for a sampled setting
        self.model = fold_constant_modulation(model)
        self.sampling = runtime_sampling(sampling)  # None: the default decoding (soft)

    @property
    def with_uncertainty(self) -> bool:
        return self.model.uncertainty_head is not None

    def forward(self, image_13SS: torch.Tensor) -> tuple[torch.Tensor, ...]:
        r = self.model.infer(image_13SS, self.sampling, with_uncertainty=self.with_uncertainty)
        tokens_1L = torch.cat([i.flatten(1) for i in r.tokens], dim=1)
        if r.uncertainty is None:
            return r.depth, tokens_1L
        return r.depth, tokens_1L, r.uncertainty.float()


# one fp16 export at a time patches torch.nn.functional (re-entrant: an export inside one)
_ISLANDS_LOCK = threading.RLock()


@contextlib.contextmanager
def fp32_islands():
    """Inside: LayerNorm, GroupNorm and softmax-attention run in fp32 for half inputs, in this
    thread only. The functions are torch.nn.functional's, patched for the whole process (the
    model calls them there), so another thread meanwhile gets the originals with every argument
    it passed, and a second export waits for the first to put them back."""
    with _ISLANDS_LOCK:
        owner = threading.get_ident()
        ln, gn, sdpa = F.layer_norm, F.group_norm, F.scaled_dot_product_attention

        def exporting(x: torch.Tensor) -> bool:
            return threading.get_ident() == owner and x.dtype != torch.float32

        def as_fp32(a, k):
            args = [t.float() if isinstance(t, torch.Tensor) else t for t in a]
            kw = {n: (t.float() if isinstance(t, torch.Tensor) else t) for n, t in k.items()}
            return args, kw

        def layer_norm(x, *a, **k):
            if not exporting(x):
                return ln(x, *a, **k)
            args, kw = as_fp32(a, k)
            return ln(x.float(), *args, **kw).to(x.dtype)

        def group_norm(x, *a, **k):
            if not exporting(x):
                return gn(x, *a, **k)
            args, kw = as_fp32(a, k)
            return gn(x.float(), *args, **kw).to(x.dtype)

        def attention(q, k, v, *a, **kw):
            if not exporting(q):
                return sdpa(q, k, v, *a, **kw)
            opts = dict(zip(("attn_mask", "dropout_p", "is_causal", "scale"), a, strict=False))
            opts |= kw
            if opts.get("dropout_p") or opts.get("is_causal") or opts.get("enable_gqa"):
                raise ValueError(f"fp16 export: attention options {opts} are not supported")
            scale, mask = opts.get("scale"), opts.get("attn_mask")
            # a Python float (shapes are static): traced, the size is a 0-dim tensor, and the
            # exporter types arithmetic on those alone in the default dtype (float64: a double
            # Pow, then a Cast, that TensorRT cannot take)
            s = scale if scale is not None else float(q.shape[-1]) ** -0.5
            logits = (q.float() @ k.float().transpose(-2, -1)) * s
            if mask is not None:
                logits = logits + mask.float()
            return (logits.softmax(-1) @ v.float()).to(q.dtype)

        F.layer_norm, F.group_norm = layer_norm, group_norm
        F.scaled_dot_product_attention = attention
        try:
            yield
        finally:
            F.layer_norm, F.group_norm, F.scaled_dot_product_attention = ln, gn, sdpa


# the factories whose floating result takes the default dtype when none is given
_FACTORIES = frozenset(
    (
        torch.tensor, torch.as_tensor, torch.scalar_tensor, torch.zeros, torch.ones,
        torch.empty, torch.full, torch.arange, torch.range, torch.linspace, torch.logspace,
        torch.eye,
    )
)  # fmt: skip


class _Float32Constants(TorchFunctionMode):
    """In this thread only (torch-function modes are per thread): a factory called without a
    dtype that would make the default dtype (float64 under `torch.set_default_dtype`) makes
    float32, as it would under the default default. torch's ONNX exporter makes its constants
    so (`torch.tensor(2.0)` for a Resize's scales): float64 ones, which ONNX Runtime refuses
    there. The default dtype itself is never set: it is the process's, and another thread's."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if (
            func in _FACTORIES
            and kwargs.get("dtype") is None
            and isinstance(out, torch.Tensor)
            and out.dtype == torch.get_default_dtype() != torch.float32
            and not (args and (isinstance(args[0], torch.Tensor) or hasattr(args[0], "dtype")))
        ):  # not from a tensor or an array, whose dtype it keeps
            return func(*args, **kwargs, dtype=torch.float32)
        return out


def export_onnx(
    model: DepthART,
    out_path: str | Path,
    checkpoint_sha256: str = "",
    fp16: bool = False,
    check: bool = True,
    sampling: SamplingConfig | None = None,
    final_path: str | Path | None = None,
) -> Path:
    """Trace the static graph, save it, stamp metadata, run onnx.checker. Returns the path.
    `sampling`: the deterministic decoding the graph holds (None: the default, soft);
    `final_path`: where the graph will live, for the log line, where `out_path` is a temporary
    file that an atomic write moves there.

    The graph is traced into memory and checked there, and Python writes the file: torch's and
    onnx.checker's C++ take a path as UTF-8 and refuse one that is not (a Latin-1 folder name,
    '\\udce9' in Python), torch's with the whole graph in its message. A graph holds its weights
    (no external data: protobuf's 2 GB limit is far above DepthART's models). It is traced in
    float32 whatever the process's default dtype (`_Float32Constants`: under float64 the
    exporter made float64 Resize constants that ONNX Runtime refuses), without setting it, and
    draws nothing from torch's global RNG."""
    import onnx  # optional dependency: the `onnx` extra (torch exports without it)

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    S = model.cfg.image_size
    dtype = torch.float16 if fp16 else torch.float32
    # the fold is computed in float32; fp16 converts a deep copy (never the caller's model)
    source = copy.deepcopy(model) if fp16 else model
    wrapper = StaticDepthART(source, sampling).eval()
    if fp16:
        wrapper.half()
        if wrapper.with_uncertainty:  # an fp32 island: its input features are fp32
            wrapper.model.uncertainty_head.float()
    dummy = torch.zeros(1, 3, S, S, dtype=dtype)
    ctx = fp32_islands() if fp16 else contextlib.nullcontext()
    outputs = ["depth", "tokens"] + ([UNCERTAINTY_OUTPUT] if wrapper.with_uncertainty else [])
    traced = io.BytesIO()
    with _Float32Constants(), torch.no_grad(), ctx, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about Python ints; shapes are static
        wrapper(dummy)  # fills the resize-matrix cache so tracing sees them as constants
        torch.onnx.export(
            wrapper,
            (dummy,),
            traced,
            input_names=["image"],
            output_names=outputs,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    graph = onnx.load_model_from_string(traced.getvalue())
    del traced
    meta = {
        META_SHA: checkpoint_sha256,
        META_PRECISION: "fp16" if fp16 else "fp32",
        META_IMAGE_SIZE: str(S),
        META_DECODING: graph_decoding(sampling),
        META_UNCERTAINTY: UNCERTAINTY_HEAD if wrapper.with_uncertainty else "none",
        META_EXPORTER: EXPORTER_VERSION,
        META_INPUT: input_contract(S, fp16),
        META_OUTPUTS: output_contract(S, wrapper.with_uncertainty),
    }
    graph.doc_string = f"DepthART monocular depth; {meta[META_INPUT]}"
    for k, v in meta.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = k, v
    if check:
        onnx.checker.check_model(graph)
    out_path.write_bytes(graph.SerializeToString())
    log.info(
        "exported %s (%s, %s, uncertainty %s, opset %d, %.1f MB)",
        final_path or out_path,
        meta[META_PRECISION],
        meta[META_DECODING],
        meta[META_UNCERTAINTY],
        OPSET,
        out_path.stat().st_size / 1e6,
    )
    return out_path


def input_contract(size: int, fp16: bool) -> str:
    """The input `image` as `runtime.preprocess.preprocess` makes it, in words."""
    dtype = "float16" if fp16 else "float32"
    return (
        f"image: {dtype} [1, 3, {size}, {size}], RGB (not BGR), channels first, each 8-bit "
        f"value x as x / 127.5 - 1 (in [-1, 1]); the frame resized to {size}x{size} "
        "(stretched; per axis cv2.INTER_AREA where it shrinks, INTER_LINEAR where it grows, one "
        "pass per axis where one shrinks and the other grows), or letterboxed onto a grey (0) "
        "canvas"
    )


def output_contract(size: int, with_uncertainty: bool) -> str:
    """The outputs, in words: what they mean and how to bring them to the frame's size."""
    text = (
        f"depth: float32 [1, {size}, {size}], relative depth along the optical axis, "
        "proportional to metres with one unknown scale per frame (1 = the frame's 98th "
        "percentile of depth); resize to the frame's HxW (crop a letterbox first) by the same "
        "per-axis rule as the input; "
        "tokens: int64, the decoded token maps (not needed for depth)"
    )
    if with_uncertainty:
        text += (
            f"; uncertainty: float32 [1, {size}, {size}], each pixel's expected relative "
            "error |s d - g| / g after the frame's median scale s (0.1 = about 10 % off)"
        )
    return text
