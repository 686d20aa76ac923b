"""The exported graph carries no per-node waste that ONNX Runtime pays for on every frame (the
graph is bound by its node count, about 5 us a node at one thread; probe 44i):

- opset 20: the tanh GELU of each FFN pass is one Gelu node, not nine elementwise ones;
- the constant AdaLN modulation (the condition is always the null class) is folded into the
  LayerNorms' affine and the attn.proj / ffn.fc2 weights: no per-token modulation Mul/Add and no
  `ada_lin` weights in the file;
- the cosine attention's L2 normalisation has no Shape -> Expand pair;

and the lean graph still computes what the torch backend computes (fp32 and fp16, with the
uncertainty head), while the torch backend's own numerics are unchanged.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("onnxruntime")
import onnx  # noqa: E402

from depthart_core.export.onnx_export import export_onnx  # noqa: E402
from depthart_core.export.trt_onnx_ops import (  # noqa: E402
    check_precision,
    check_tensorrt_compatible,
)
from depthart_core.runtime.onnx_backend import OnnxRuntimeBackend  # noqa: E402
from depthart_core.runtime.preprocess import preprocess  # noqa: E402
from depthart_core.runtime.torch_backend import DepthEstimator  # noqa: E402


@pytest.fixture(scope="module")
def lean32(tmp_path_factory, headed_model):
    """The shipped architecture with an uncertainty head, exported in fp32."""
    return export_onnx(headed_model, tmp_path_factory.mktemp("lean") / "g32.onnx")


@pytest.fixture(scope="module")
def lean16(tmp_path_factory, headed_model):
    return export_onnx(headed_model, tmp_path_factory.mktemp("lean") / "g16.onnx", fp16=True)


def _block_passes(model) -> int:
    """Block passes the unrolled loop makes: every block once per scale (prefill + steps)."""
    return len(model.transformer.blocks) * len(model.patch_nums)


def _ops(path) -> tuple[onnx.ModelProto, collections.Counter, collections.Counter]:
    """(graph, op counts of the whole graph, op counts inside the transformer blocks)."""
    g = onnx.load(str(path))
    ops = collections.Counter(n.op_type for n in g.graph.node)
    in_blocks = collections.Counter(n.op_type for n in g.graph.node if "/blocks." in n.name)
    return g, ops, in_blocks


def _tanh_gelus(g: onnx.ModelProto) -> int:
    return sum(
        n.op_type == "Gelu" and any(a.name == "approximate" and a.s == b"tanh" for a in n.attribute)
        for n in g.graph.node
    )


def _rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_l2_normalize_is_f_normalize_bit_for_bit() -> None:
    """The attention's normalisation without `expand_as` gives F.normalize's bits (NaN rows of
    fp16 zeros included) and its gradient, so the torch backend and training are unchanged."""
    from depthart_core.transformer.blocks import _l2_normalize

    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        x = torch.randn(2, 3, 9, 16, generator=gen) * torch.rand(2, 3, 9, 1, generator=gen) * 8
        x[:, :, 0] = 0.0  # zero rows: the eps clamp
        x[:, :, 1] = 1e-20  # rows below the eps
        x = x.to(dtype)
        a, b = F.normalize(x, dim=-1), _l2_normalize(x)
        assert torch.equal(a.view(torch.int8), b.view(torch.int8)), dtype
    xa = torch.randn(4, 7, 32, generator=gen, requires_grad=True)
    xb = xa.detach().clone().requires_grad_()
    g = torch.randn(4, 7, 32, generator=gen)
    (F.normalize(xa, dim=-1) * g).sum().backward()
    (_l2_normalize(xb) * g).sum().backward()
    assert torch.equal(xa.grad, xb.grad)


def test_graph_has_one_gelu_per_ffn_pass_and_no_tanh_chain(lean32, headed_model) -> None:
    g, ops, _ = _ops(lean32)
    assert g.opset_import[0].version == 20
    assert _tanh_gelus(g) == _block_passes(headed_model)
    assert ops["Tanh"] == 0 and ops["Pow"] == 0, ops
    # the tokenizer's and the head's exact GELU is one Gelu node too (was Div, Erf, Add, Mul x2)
    assert ops["Erf"] == 0, ops


def test_graph_has_the_modulation_folded_and_no_expand_in_blocks(lean32, headed_model) -> None:
    g, ops, in_blocks = _ops(lean32)
    assert not [t.name for t in g.graph.initializer if "ada_lin" in t.name]
    passes = _block_passes(headed_model)
    # per block pass what is left: Mul = the cosine scale and the attention's two scale
    # factors; Add = the four bias adds (qkv, proj, fc1, fc2) and the two residuals. Unfolded
    # it was 13 Mul and 10 Add a pass (modulation, gammas, the tanh chain).
    assert in_blocks["Mul"] <= 3 * passes, in_blocks
    assert in_blocks["Add"] <= 6 * passes, in_blocks
    assert in_blocks["Expand"] == 0, in_blocks
    # LayerNormalization carries the modulation: blocks 2 a pass, the head norm 1 a scale
    norm_scales = [n.input[1] for n in g.graph.node if n.op_type == "LayerNormalization"]
    assert sum("ln1_weight" in s or "ln2_weight" in s for s in norm_scales) == 2 * passes
    check_tensorrt_compatible(g)  # opset 20 and Gelu are in TensorRT's parser's range


def test_fold_shares_weights_leaves_the_model_untouched_and_agrees(headed_model) -> None:
    from depthart_core.export.onnx_export import fold_constant_modulation
    from depthart_core.transformer.blocks import AdaLNSelfAttn, FoldedAdaLNSelfAttn

    before = {k: v.clone() for k, v in headed_model.state_dict().items()}
    folded = fold_constant_modulation(headed_model)
    var = headed_model.transformer
    assert all(type(b) is AdaLNSelfAttn for b in var.blocks)  # the caller's model: unfolded
    assert all(type(b) is FoldedAdaLNSelfAttn for b in folded.transformer.blocks)
    assert folded.transformer.blocks[0].attn.mat_qkv.weight is var.blocks[0].attn.mat_qkv.weight
    assert folded.tokenizer is headed_model.tokenizer
    after = headed_model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    x, _ = preprocess(_rgb(64, 64, 1), 64)
    x = torch.from_numpy(x)
    r = headed_model.infer(x, with_uncertainty=True)
    f = folded.infer(x, with_uncertainty=True)
    assert all(torch.equal(a, b) for a, b in zip(r.tokens, f.tokens, strict=True))
    assert (r.depth - f.depth).abs().max() < 1e-5
    assert (r.uncertainty - f.uncertainty).abs().max() < 1e-5


@pytest.mark.parametrize("shape", [(64, 64, 3), (37, 91, 3)])
def test_lean_graph_matches_the_torch_backend(lean32, headed_model, shape) -> None:
    """The tolerances of the ONNX parity tests (test_onnx_runtime, test_uncertainty_paths)."""
    torch_be, ort_be = DepthEstimator(headed_model), OnnxRuntimeBackend(lean32)
    x, _ = preprocess(_rgb(*shape[:2], seed=sum(shape)), 64)
    d_t, tok_t = torch_be.run_with_tokens(x)
    d_o, tok_o = ort_be.run_with_tokens(x)
    assert np.array_equal(tok_t, tok_o)
    assert np.abs(d_t - d_o).max() < 1e-3
    (_, u_t), (_, u_o) = torch_be.run_uncertainty(x), ort_be.run_uncertainty(x)
    assert np.abs(u_t - u_o).max() < 0.02 * np.ptp(u_t)


def test_lean_fp16_graph_agrees_with_the_torch_backend(lean16, headed_model) -> None:
    g, ops, in_blocks = _ops(lean16)
    assert _tanh_gelus(g) == _block_passes(headed_model) and ops["Tanh"] == 0, ops
    assert not [t.name for t in g.graph.initializer if "ada_lin" in t.name]
    assert in_blocks["Mul"] <= 3 * _block_passes(headed_model), in_blocks
    check_precision(g, "fp16")
    check_tensorrt_compatible(g)
    x, _ = preprocess(_rgb(64, 64, 5), 64)
    be16, be32 = OnnxRuntimeBackend(lean16), DepthEstimator(headed_model)
    (d16, tok16), (d32, tok32) = be16.run_with_tokens(x), be32.run_with_tokens(x)
    assert np.isfinite(d16).all()
    assert (tok16 == tok32).mean() > 0.8
    assert np.abs(d16 - d32).mean() < 0.05
    (_, u16), (_, u32) = be16.run_uncertainty(x), be32.run_uncertainty(x)
    assert np.median(np.abs(u16 - u32) / u32) < 0.1
