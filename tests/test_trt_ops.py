"""TensorRT ONNX operator and precision checks on graphs built here with onnx.helper."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from depthart_core.export.trt_onnx_ops import (
    check_precision,
    check_tensorrt_compatible,
    has_fp16_tensors,
    support_list_version,
    supported_operators,
    unsupported_ops,
)

OPSET = 17


def _model(nodes, inputs, outputs, initializers=(), functions=(), opset=OPSET) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    imports = [helper.make_opsetid("", opset), helper.make_opsetid("local", 1)]
    model = helper.make_model(graph, opset_imports=imports, functions=list(functions))
    model.ir_version = 8
    return model


def _vi(name, elem=TensorProto.FLOAT, shape=(1, 3, 8, 8)):
    return helper.make_tensor_value_info(name, elem, shape)


def _conv_head(elem=TensorProto.FLOAT) -> onnx.ModelProto:
    """image (1,3,8,8) -> Conv -> Relu -> ReduceMean over C -> depth (1,8,8)."""
    dt = np.float16 if elem == TensorProto.FLOAT16 else np.float32
    w = numpy_helper.from_array(np.ones((1, 3, 3, 3), dt), "w")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("ReduceMean", ["r"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Squeeze", ["m", "axes"], ["depth"]),
    ]
    model = _model(nodes, [_vi("image", elem)], [_vi("depth", elem, (1, 8, 8))], [w, axes])
    onnx.checker.check_model(model, full_check=True)
    return model


def test_support_list_has_the_documented_rows() -> None:
    ops = supported_operators()
    assert support_list_version() == "10.15"
    assert {"Conv", "MatMul", "LayerNormalization", "Softmax", "Resize", "Gelu"} <= ops
    # rows the TensorRT 10.15 table marks "N"
    assert not {"Unique", "Det", "MaxUnpool", "SequenceAt", "ConvInteger"} & ops
    assert len(ops) == 158


def test_support_list_names_are_real_onnx_ops() -> None:
    legacy = {"ImageScaler", "ParametricSoftplus", "ScaledTanh"}
    assert [op for op in supported_operators() - legacy if not onnx.defs.has(op)] == []


def test_supported_graph_passes(tmp_path) -> None:
    path = tmp_path / "ok.onnx"
    onnx.save(_conv_head(), path)
    assert unsupported_ops(path) == []
    check_tensorrt_compatible(path)


def test_unsupported_and_custom_ops_are_reported() -> None:
    nodes = [
        helper.make_node("Unique", ["image"], ["u"]),
        helper.make_node("MyDepthOp", ["u"], ["depth"], domain="com.example"),
    ]
    model = _model(nodes, [_vi("image")], [_vi("depth")])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    assert unsupported_ops(model) == ["Unique", "com.example::MyDepthOp"]
    with pytest.raises(ValueError, match=r"Unique.*com\.example::MyDepthOp"):
        check_tensorrt_compatible(model)


def test_ops_inside_if_branches_are_seen() -> None:
    then_g = helper.make_graph(
        [helper.make_node("Det", ["x2"], ["y"])], "then", [], [_vi("y", shape=())]
    )
    else_g = helper.make_graph(
        [helper.make_node("ReduceSum", ["x2"], ["y2"], keepdims=0)],
        "else",
        [],
        [_vi("y2", shape=())],
    )
    nodes = [
        helper.make_node("Identity", ["image"], ["x2"]),
        helper.make_node("If", ["cond"], ["depth"], then_branch=then_g, else_branch=else_g),
    ]
    model = _model(
        nodes,
        [_vi("image", shape=(2, 2)), _vi("cond", TensorProto.BOOL, ())],
        [_vi("depth", shape=())],
    )
    assert unsupported_ops(model) == ["Det"]


def test_local_function_bodies_are_checked() -> None:
    def fn(op: str) -> onnx.FunctionProto:
        return helper.make_function(
            "local",
            "Block",
            ["x"],
            ["y"],
            [helper.make_node(op, ["x"], ["y"])],
            [helper.make_opsetid("", OPSET)],
        )

    node = helper.make_node("Block", ["image"], ["depth"], domain="local")
    good = _model([node], [_vi("image")], [_vi("depth")], functions=[fn("Relu")])
    bad = _model([node], [_vi("image")], [_vi("depth")], functions=[fn("MaxUnpool")])
    assert unsupported_ops(good) == []
    assert unsupported_ops(bad) == ["MaxUnpool"]


def test_opset_outside_the_documented_range_is_rejected() -> None:
    model = _model(
        [helper.make_node("Relu", ["image"], ["depth"])], [_vi("image")], [_vi("depth")], opset=8
    )
    with pytest.raises(ValueError, match="opset 8 outside the supported range 9-24"):
        check_tensorrt_compatible(model)


def test_precision_is_read_from_the_graph() -> None:
    fp32, fp16 = _conv_head(), _conv_head(TensorProto.FLOAT16)
    assert not has_fp16_tensors(fp32) and has_fp16_tensors(fp16)
    check_precision(fp32, "fp32")
    check_precision(fp16, "fp16")
    with pytest.raises(ValueError, match="no FP16 tensors"):
        check_precision(fp32, "fp16")
    with pytest.raises(ValueError, match="holds FP16 tensors"):
        check_precision(fp16, "fp32")
    with pytest.raises(ValueError, match="'int8'"):
        check_precision(fp32, "int8")


def test_fp16_inside_cast_is_found_with_fp32_io() -> None:
    """Mixed precision with FP32 I/O (ModelOpt AutoCast keep_io_types) still counts as FP16."""
    nodes = [
        helper.make_node("Cast", ["image"], ["h"], to=TensorProto.FLOAT16),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Cast", ["r"], ["depth"], to=TensorProto.FLOAT),
    ]
    model = _model(nodes, [_vi("image")], [_vi("depth")])
    assert has_fp16_tensors(model)
