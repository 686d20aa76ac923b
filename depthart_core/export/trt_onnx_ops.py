"""What an ONNX graph asks of TensorRT's ONNX parser, checked before a build that takes minutes.

Two checks that need only the `onnx` package (no TensorRT, no GPU):

- operators: every node, including those inside `If`/`Loop`/`Scan` subgraphs and model-local
  functions, must be in TensorRT's published ONNX support matrix, which is committed as
  `depthart_core/data/trt_onnx_operators.txt` (from onnx/onnx-tensorrt `docs/operators.md`; the
  file's header names the version) together with the opset range the parser accepts;
- precision: TensorRT 10.12+ deprecates, and 11 removes, the loose FP16 builder flag, so a
  strongly typed network runs in the types written in the graph. An "fp16" build therefore needs
  FP16 tensors in the ONNX, and an "fp32" build must not carry any (the TensorRT 10.x -> 11.x
  migration guide, "Strongly Typed Networks Are Now Required").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import onnx

DEFAULT_DOMAINS = ("", "ai.onnx")
_HALF_TYPES = (onnx.TensorProto.FLOAT16,)


@functools.cache
def _support_list() -> tuple[frozenset[str], str, tuple[int, int]]:
    text = resources.files("depthart_core.data").joinpath("trt_onnx_operators.txt").read_text()
    version = re.search(r"^#\s*version:\s*(\S+)", text, re.M)
    opset = re.search(r"^#\s*opset:\s*(\d+)-(\d+)", text, re.M)
    if version is None or opset is None:
        raise ValueError("trt_onnx_operators.txt lacks its '# version:' or '# opset:' line")
    ops = frozenset(s for s in map(str.strip, text.splitlines()) if s and not s.startswith("#"))
    return ops, version.group(1), (int(opset.group(1)), int(opset.group(2)))


def supported_operators() -> frozenset[str]:
    """Default-domain ONNX operators TensorRT's parser supports, per the committed list."""
    return _support_list()[0]


def support_list_version() -> str:
    """TensorRT version of the committed list, e.g. "10.15"."""
    return _support_list()[1]


def load_graph(model_or_path: onnx.ModelProto | str | Path) -> onnx.ModelProto:
    """The model's graph without external weights (checks never need the weight bytes)."""
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path
    path = Path(model_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    return onnx.load(str(path), load_external_data=False)


def _nodes(
    graph_nodes, functions: dict[tuple[str, str], onnx.FunctionProto], seen: set[tuple[str, str]]
) -> Iterator[onnx.NodeProto]:
    """Every node, descending into graph attributes and model-local functions."""
    for node in graph_nodes:
        fn_key = (node.domain, node.op_type)
        if fn_key in functions:
            # TensorRT's parser imports a local function by importing its body.
            if fn_key not in seen:
                seen.add(fn_key)
                yield from _nodes(functions[fn_key].node, functions, seen)
            continue
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(attr.g.node, functions, seen)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _nodes(g.node, functions, seen)


def iter_nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    """All operator nodes of `model`: main graph, nested subgraphs, local-function bodies."""
    functions = {(f.domain, f.name): f for f in model.functions}
    return _nodes(model.graph.node, functions, set())


def unsupported_ops(model_or_path: onnx.ModelProto | str | Path) -> list[str]:
    """Sorted op names in the graph that TensorRT's ONNX parser does not list as supported.

    Default-domain ops are named as is ("Unique"); ops from any other domain are reported
    domain-qualified ("com.microsoft::FusedMatMul"), since the parser only knows them through a
    plugin registered under that name.
    """
    model = load_graph(model_or_path)
    supported = supported_operators()
    bad = set()
    for node in iter_nodes(model):
        if node.domain in DEFAULT_DOMAINS:
            if node.op_type not in supported:
                bad.add(node.op_type)
        else:
            bad.add(f"{node.domain}::{node.op_type}")
    return sorted(bad)


def default_opset(model: onnx.ModelProto) -> int | None:
    for imp in model.opset_import:
        if imp.domain in DEFAULT_DOMAINS:
            return imp.version
    return None


def check_tensorrt_compatible(model_or_path: onnx.ModelProto | str | Path) -> None:
    """Raise `ValueError` listing unsupported ops and an out-of-range opset, if any."""
    model = load_graph(model_or_path)
    where = model_or_path if isinstance(model_or_path, (str, Path)) else "ONNX model"
    _, version, (lo, hi) = _support_list()
    problems = []
    bad = unsupported_ops(model)
    if bad:
        problems.append(f"unsupported operators {bad}")
    opset = default_opset(model)
    if opset is not None and not lo <= opset <= hi:
        problems.append(f"opset {opset} outside the supported range {lo}-{hi}")
    if problems:
        raise ValueError(
            f"{where} cannot be built by TensorRT's ONNX parser (support list of TensorRT "
            f"{version}): " + "; ".join(problems)
        )


def has_fp16_tensors(model_or_path: onnx.ModelProto | str | Path) -> bool:
    """True if the graph holds FP16 data: initializers, typed values, or Casts to FLOAT16."""
    model = load_graph(model_or_path)
    graph = model.graph
    if any(t.data_type in _HALF_TYPES for t in graph.initializer):
        return True
    values = list(graph.input) + list(graph.output) + list(graph.value_info)
    if any(v.type.tensor_type.elem_type in _HALF_TYPES for v in values):
        return True
    for node in iter_nodes(model):
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i in _HALF_TYPES:
                return True
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type in _HALF_TYPES:
                return True
    return False


def check_precision(model_or_path: onnx.ModelProto | str | Path, precision: str) -> None:
    """Raise `ValueError` when the graph's own types disagree with the requested precision.

    With strong typing, asking TensorRT for "fp16" on an FP32 graph silently builds FP32 (the
    failure reported against TensorRT 11 in rf-detr #1453); this check makes it loud.
    """
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision must be 'fp32' or 'fp16', got {precision!r}")
    fp16 = has_fp16_tensors(model_or_path)
    where = model_or_path if isinstance(model_or_path, (str, Path)) else "ONNX model"
    if precision == "fp16" and not fp16:
        raise ValueError(
            f"{where} has no FP16 tensors but precision='fp16' was asked: TensorRT 10.12+ builds "
            "strongly typed networks in the graph's own types, so export an FP16 ONNX graph"
        )
    if precision == "fp32" and fp16:
        raise ValueError(
            f"{where} holds FP16 tensors but precision='fp32' was asked: pass precision='fp16' "
            "or export an FP32 graph"
        )
