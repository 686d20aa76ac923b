"""TensorRT backend: ONNX-side checks run everywhere; engine build and parity need TensorRT + GPU.

The tests marked `tensorrt` build real engines from tiny ONNX graphs made here and compare them
with ONNX Runtime; they skip with a reason where TensorRT or a CUDA GPU is absent.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from depthart_core.export.onnx_export import META_SHA
from depthart_core.runtime.tensorrt_backend import (
    TensorRTBackend,
    engine_input_shape,
    model_sha256,
    tensorrt_available,
)

S = 16
NO_TRT = "tensorrt is not installed (TensorRT's builder cannot be installed in this environment)"


def tiny_onnx(
    batch: int | str = "B", size: int = S, fp16: bool = False, uncertainty: bool = False
) -> onnx.ModelProto:
    """image (B,3,S,S) -> Conv 3x3 -> Tanh -> depth (B,S,S); FP16 inside when `fp16`; with
    `uncertainty` also uncertainty = exp(depth) (B,S,S), as a graph with the head has."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(0, 0.3, (1, 3, 3, 3)).astype(np.float32), "w")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Tanh", ["c"], ["t"]),
        helper.make_node("Squeeze", ["t", "axes"], ["y"]),
    ]
    if fp16:
        w = numpy_helper.from_array(numpy_helper.to_array(w).astype(np.float16), "w")
        nodes.insert(0, helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT16))
        nodes.append(helper.make_node("Cast", ["y"], ["depth"], to=TensorProto.FLOAT))
    else:
        nodes.insert(0, helper.make_node("Identity", ["image"], ["x"]))
        nodes.append(helper.make_node("Identity", ["y"], ["depth"]))
    outputs = [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [batch, size, size])]
    if uncertainty:
        nodes.append(helper.make_node("Exp", ["depth"], ["uncertainty"]))
        outputs.append(
            helper.make_tensor_value_info("uncertainty", TensorProto.FLOAT, [batch, size, size])
        )
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, size, size])],
        outputs,
        initializer=[w, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_onnx(), path)
    return path


# ---- everywhere: no TensorRT needed ----


def test_missing_tensorrt_is_reported_with_install_hint(monkeypatch, onnx_file) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` fail
    ok, why = tensorrt_available()
    assert not ok
    assert "pip install tensorrt-cu12" in why and "JetPack" in why
    with pytest.raises(RuntimeError, match="tensorrt is not importable.*pip install tensorrt"):
        TensorRTBackend(onnx_file, S)


def test_auto_backend_logs_the_short_cause_and_explicit_tensorrt_the_guide(
    monkeypatch, caplog, tiny_checkpoint
) -> None:
    from depthart_core.runtime import get_backend

    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with caplog.at_level("INFO", logger="depthart_core.runtime"):
        backend = get_backend("auto", checkpoint=tiny_checkpoint, threads=1)
    assert backend.name != "tensorrt"
    skip = [r.getMessage() for r in caplog.records if "skipping tensorrt" in r.getMessage()]
    assert len(skip) == 1 and "tensorrt is not importable (ModuleNotFoundError" in skip[0]
    assert "Install TensorRT" not in caplog.text  # one short line on every auto start
    with pytest.raises(RuntimeError, match="tensorrt is not importable.*pip install tensorrt"):
        get_backend("tensorrt", checkpoint=tiny_checkpoint)


def test_tensorrt_older_than_10_is_not_used_and_auto_moves_on(monkeypatch, tiny_checkpoint) -> None:
    """JetPack 5's TensorRT 8 lacks strongly typed networks: refused with its version, so `auto`
    takes ONNX Runtime or torch instead of failing at the build."""
    import types

    from depthart_core.runtime import get_backend

    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.2"))
    ok, why = tensorrt_available()
    assert not ok and "tensorrt 8.6.2 is older than 10" in why, why
    assert get_backend("auto", checkpoint=tiny_checkpoint, threads=1).name != "tensorrt"


def test_a_tensorrt_without_a_version_is_refused_in_one_line(monkeypatch, tmp_path) -> None:
    """A folder named tensorrt on sys.path imports as a namespace package with no __version__:
    refused as not TensorRT's package, naming where it was found, not an AttributeError."""
    import types

    fake = types.ModuleType("tensorrt")
    fake.__path__ = [str(tmp_path / "tensorrt")]
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    ok, why = tensorrt_available()
    assert not ok and "has no __version__" in why and str(tmp_path / "tensorrt") in why, why


def test_engine_key_names_the_gpu_model() -> None:
    """Orin Nano, NX and AGX share sm_87: the GPU model is part of the engine's key and file."""
    from depthart_core.runtime.engine_cache import EngineKey

    nano = EngineKey("ab" * 32, "fp16", (1, 3, 64, 64), "10.3.0", "sm_87", "orin_7gb")
    agx = EngineKey("ab" * 32, "fp16", (1, 3, 64, 64), "10.3.0", "sm_87", "orin_61gb")
    assert nano.stem != agx.stem and nano.stem.endswith("_trt10.3.0_sm_87_orin_7gb")
    assert nano.hardware == "trt10.3.0_sm_87_orin_7gb"
    with pytest.raises(ValueError, match="file-name-safe"):
        EngineKey("ab" * 32, "fp16", (1, 3, 64, 64), "10.3.0", "sm_87", "Orin/../x")


def test_export_tensorrt_refuses_an_onnx_out(tmp_path, capsys) -> None:
    """The engine would be written over the graph it was built from."""
    from depthart_core.cli import main

    out = tmp_path / "model.onnx"
    assert main(["export", "--format", "tensorrt", "--out", str(out)]) == 1
    assert "give the engine a name such as" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_export_tensorrt_without_a_gpu_stops_before_the_graph(tmp_path, monkeypatch, capsys):
    """TensorRT installed but no GPU: the build would fail after the whole ONNX export, and the
    graph left beside the engine then refused the rerun; now one line before any work."""
    import types

    from depthart_core.cli import main

    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    out = tmp_path / "model.engine"
    assert main(["export", "--format", "tensorrt", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "builds the engine on a CUDA GPU and torch sees none" in err, err
    assert err.count("\n") == 1 and not out.exists() and not out.with_suffix(".onnx").exists()


def test_export_tensorrt_whose_build_fails_leaves_no_graph_to_refuse_the_rerun(
    tmp_path, monkeypatch, capsys
):
    """The graph --format tensorrt writes beside the engine is this run's: a failed build (or
    check) removes it, so the rerun is not refused for a file the user never made."""
    import types

    from depthart_core.cli import main
    from depthart_core.runtime import tensorrt_backend

    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    builds = []

    def failing_build(*args, **kwargs):
        builds.append(args[0])
        raise RuntimeError("TensorRT: out of workspace (a stand-in build failure)")

    monkeypatch.setattr(tensorrt_backend, "build_serialized_engine", failing_build)
    out = tmp_path / "model.engine"
    for _ in range(2):  # the rerun meets the same failure, not "model.onnx exists"
        assert main(["export", "--format", "tensorrt", "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert "out of workspace" in err, err
        assert not out.exists() and not out.with_suffix(".onnx").exists()
    assert builds == [out.with_suffix(".onnx")] * 2
    # a Ctrl-C while the graph is read back, before the build: removed too
    from depthart_core.export import trt_onnx_ops

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(trt_onnx_ops, "unsupported_ops", interrupted)
    assert main(["export", "--format", "tensorrt", "--out", str(out)]) == 130
    assert not out.with_suffix(".onnx").exists()
    # with --overwrite the graph replaced one that was there: the new graph stays
    monkeypatch.setattr(trt_onnx_ops, "unsupported_ops", lambda path: [])
    out.with_suffix(".onnx").write_bytes(b"an older graph")
    argv = ["export", "--format", "tensorrt", "--out", str(out), "--overwrite"]
    assert main(argv) == 1
    assert out.with_suffix(".onnx").read_bytes()[:2] != b"an" and len(builds) == 3


def test_engine_input_shape_static_and_dynamic_batch() -> None:
    assert engine_input_shape(tiny_onnx(batch="B"), S) == (1, 3, S, S)
    assert engine_input_shape(tiny_onnx(batch=4), S) == (4, 3, S, S)
    with pytest.raises(ValueError, match=r"\['B', 3, 32, 32\]|\[-1, 3, 32, 32\]"):
        engine_input_shape(tiny_onnx(size=32), S)
    renamed = tiny_onnx()
    renamed.graph.input[0].name = "pixels"
    with pytest.raises(ValueError, match=r"no input 'image'.*\['pixels'\]"):
        engine_input_shape(renamed, S)


def test_model_hash_is_file_sha256_and_covers_external_weights(tmp_path, onnx_file) -> None:
    model = onnx.load(onnx_file)
    assert model_sha256(onnx_file, model) == hashlib.sha256(onnx_file.read_bytes()).hexdigest()
    ext = tmp_path / "ext.onnx"
    onnx.save(model, ext, save_as_external_data=True, location="ext.bin", size_threshold=0)
    graph = onnx.load(ext, load_external_data=False)
    before = model_sha256(ext, graph)
    data = bytearray((tmp_path / "ext.bin").read_bytes())
    data[0] ^= 0xFF
    (tmp_path / "ext.bin").write_bytes(bytes(data))
    assert model_sha256(ext, graph) != before


def test_checkpoint_hash_is_checked_against_export_metadata(monkeypatch, tmp_path) -> None:
    model = tiny_onnx()
    helper.set_model_props(model, {META_SHA: "ab" * 32})
    path = tmp_path / "stamped.onnx"
    onnx.save(model, path)
    with pytest.raises(ValueError, match=f"sha256 {'ab' * 32} .*expected {'cd' * 32}"):
        TensorRTBackend(path, S, expected_model_hash="cd" * 32)
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(RuntimeError, match="tensorrt is not importable"):  # the hash check passed
        TensorRTBackend(path, S, expected_model_hash="AB" * 32)


def test_bad_inputs_raise_before_touching_tensorrt(onnx_file) -> None:
    with pytest.raises(ValueError, match="sha256 unrecorded .*expected 0000"):
        TensorRTBackend(onnx_file, S, expected_model_hash="0000")
    with pytest.raises(ValueError, match="no FP16 tensors"):
        TensorRTBackend(onnx_file, S, precision="fp16")
    with pytest.raises(ValueError, match="image_size must be a positive int, got 0"):
        TensorRTBackend(onnx_file, 0)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        TensorRTBackend(onnx_file.parent / "missing.onnx", S)


# ---- TensorRT + CUDA GPU ----


@pytest.fixture
def trt_gpu():
    pytest.importorskip("tensorrt", reason=NO_TRT)
    ok, why = tensorrt_available()
    if not ok:
        pytest.skip(why)


def _ort(model_path, x: np.ndarray, name: str = "depth") -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return sess.run([name], {"image": x})[0]


@pytest.mark.tensorrt
def test_engine_matches_onnxruntime_and_is_cached(trt_gpu, tmp_path, onnx_file) -> None:
    x = np.random.default_rng(1).uniform(-1, 1, (3, 3, S, S)).astype(np.float32)
    cache = tmp_path / "engines"
    backend = TensorRTBackend(onnx_file, S, cache_dir=cache)
    assert backend.engine_built and backend.batch == 1 and backend.name == "tensorrt"
    y = backend.run(x)  # batch 3 through a batch-1 engine
    assert y.shape == (3, S, S) and y.dtype == np.float32
    np.testing.assert_allclose(y, _ort(onnx_file, x), atol=5e-3)  # TF32 convolutions
    assert list(cache.glob("timing_trt*.cache"))
    again = TensorRTBackend(onnx_file, S, cache_dir=cache)
    assert not again.engine_built and again.engine_path == backend.engine_path
    np.testing.assert_array_equal(again.run(x), y)
    depth = again.predict(np.zeros((20, 30, 3), np.uint8))
    assert depth.shape == (20, 30) and np.isfinite(depth).all()


@pytest.mark.tensorrt
def test_fp16_graph_builds_strongly_typed(trt_gpu, tmp_path) -> None:
    path = tmp_path / "tiny_fp16.onnx"
    onnx.save(tiny_onnx(batch=2, fp16=True), path)
    x = np.random.default_rng(2).uniform(-1, 1, (2, 3, S, S)).astype(np.float32)
    backend = TensorRTBackend(path, S, precision="fp16", cache_dir=tmp_path / "engines")
    assert backend.batch == 2 and "fp16" in backend.describe()
    np.testing.assert_allclose(backend.run(x), _ort(path, x), atol=1e-2)


@pytest.mark.tensorrt
def test_engine_with_an_uncertainty_output_returns_it(trt_gpu, tmp_path) -> None:
    """An engine built from a graph with the head's output: `run_uncertainty` returns depth and
    uncertainty from one execution (batch 3 through a batch-1 engine); an engine without it
    refuses, naming the backend."""
    path = tmp_path / "tiny_unc.onnx"
    onnx.save(tiny_onnx(batch=1, uncertainty=True), path)
    x = np.random.default_rng(3).uniform(-1, 1, (3, 3, S, S)).astype(np.float32)
    backend = TensorRTBackend(path, S, cache_dir=tmp_path / "engines")
    assert backend.has_uncertainty
    depth, unc = backend.run_uncertainty(x)
    assert depth.shape == unc.shape == (3, S, S) and unc.dtype == np.float32
    for name, got in (("depth", depth), ("uncertainty", unc)):
        ref = np.concatenate([_ort(path, x[i : i + 1], name) for i in range(3)])
        np.testing.assert_allclose(got, ref, atol=5e-3)  # TF32 convolutions
    np.testing.assert_allclose(unc, np.exp(depth), rtol=1e-5)  # the same execution's depth
    np.testing.assert_array_equal(backend.run(x), depth)
    d, u = backend.predict(np.zeros((20, 30, 3), np.uint8), with_uncertainty=True)
    assert d.shape == u.shape == (20, 30) and (u > 0).all()
    plain_path = tmp_path / "tiny.onnx"
    onnx.save(tiny_onnx(batch=1), plain_path)
    plain = TensorRTBackend(plain_path, S, cache_dir=tmp_path / "engines")
    assert not plain.has_uncertainty
    with pytest.raises(ValueError, match="tensorrt.*no uncertainty"):
        plain.run_uncertainty(x)


def test_a_timing_cache_that_cannot_be_looked_up_starts_empty(tmp_path, monkeypatch):
    """In a cache folder you cannot enter (another user's), looking up the timing cache raises
    PermissionError; the build starts with an empty one instead of failing (the engine is then
    built and used unstored)."""
    from pathlib import Path

    from depthart_core.runtime import tensorrt_backend

    made = []

    class Config:  # the two calls `_load_timing_cache` makes of TensorRT's IBuilderConfig
        def create_timing_cache(self, data):
            made.append(bytes(data))
            return object()

    from depthart_core.runtime import engine_cache

    path = tmp_path / "locked" / "timing_sm87.cache"
    path.parent.mkdir()
    path.write_bytes(b"timings of another user")  # there, but its folder cannot be entered
    opened = []

    def locked_open(file, *args, **kwargs):  # the tests run as root: a chmod would not stop it
        opened.append(Path(file))
        if Path(file) == path:
            raise PermissionError(13, "Permission denied", str(file))
        return open(file, *args, **kwargs)

    monkeypatch.setattr(engine_cache, "open", locked_open, raising=False)
    assert tensorrt_backend._load_timing_cache(Config(), path) is not None
    assert opened == [path] and made == [b""]
