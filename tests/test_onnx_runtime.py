"""Whole-model ONNX export and ONNX Runtime parity with PyTorch; backend selection and errors."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
import onnx  # noqa: E402

from depthart_core.checkpoint import file_sha256, save_checkpoint  # noqa: E402
from depthart_core.export.onnx_export import (  # noqa: E402
    EXPORTER_VERSION,
    export_onnx,
    read_onnx_metadata,
)
from depthart_core.runtime import get_backend  # noqa: E402
from depthart_core.runtime.onnx_backend import OnnxRuntimeBackend  # noqa: E402
from depthart_core.runtime.torch_backend import DepthEstimator  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_model, tiny_checkpoint):
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(tiny_model, path, checkpoint_sha256=file_sha256(tiny_checkpoint))
    return path


def test_graph_is_valid_static_and_stamped(exported, tiny_checkpoint):
    model = onnx.load(str(exported))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version >= 17
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 64]
    assert read_onnx_metadata(exported)["depthart_checkpoint_sha256"] == file_sha256(
        tiny_checkpoint
    )


README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("fp16", [False, True])
def test_readme_lines_feeding_the_graph_give_predict(tiny_model, tiny_checkpoint, tmp_path, fp16):
    """A consumer with only README's "Using the graph in your own code" lines and the graph's
    metadata gets what the product's ONNX Runtime backend gives on the same graph; the metadata
    states the input's layout, range, channel order and precision, and each output."""
    import cv2

    graph = tmp_path / "depthart_tiny_cnn.onnx"
    export_onnx(tiny_model, graph, checkpoint_sha256=file_sha256(tiny_checkpoint), fp16=fp16)
    meta = read_onnx_metadata(graph)
    wanted = "float16" if fp16 else "float32"
    assert meta["depthart_input"].startswith(f"image: {wanted} [1, 3, 64, 64], RGB (not BGR)")
    assert "x / 127.5 - 1" in meta["depthart_input"], meta
    assert meta["depthart_outputs"].startswith("depth: float32 [1, 64, 64], relative depth")
    assert onnx.load(str(graph)).doc_string.endswith(meta["depthart_input"])
    text = README.read_text()
    section = text[text.index("**Using the graph in your own code**") :]
    start = section.index("```python\n") + 10
    code = section[start : section.index("\n```", start)]
    if fp16:  # as the comment there says
        code = code.replace("[None]", "[None].astype(np.float16)")
    rgb = np.random.default_rng(5).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "frame.png"), rgb[:, :, ::-1])
    scope: dict = {}
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "README", "exec"), scope)  # the README's lines as written
    finally:
        os.chdir(cwd)
    backend = OnnxRuntimeBackend(graph, expected_sha256=file_sha256(tiny_checkpoint))
    expected = backend.predict(rgb)
    assert scope["depth"].shape == expected.shape == (120, 160)
    assert np.abs(scope["depth"] - expected).max() < 1e-5


@pytest.mark.parametrize("shape", [(481, 641, 3), (37, 91, 3), (64, 64, 3)])
def test_onnxruntime_matches_torch(exported, tiny_checkpoint, shape):
    torch_be = DepthEstimator.from_checkpoint(tiny_checkpoint)
    ort_be = OnnxRuntimeBackend(exported, expected_sha256=file_sha256(tiny_checkpoint))
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    from depthart_core.runtime.preprocess import preprocess

    x, _ = preprocess(rgb, 64)
    d_t, tok_t = torch_be.run_with_tokens(x)
    d_o, tok_o = ort_be.run_with_tokens(x)
    assert np.array_equal(tok_t, tok_o)
    assert np.abs(d_t - d_o).max() < 1e-3
    assert np.abs(torch_be.predict(rgb) - ort_be.predict(rgb)).max() < 1e-3


def test_onnx_from_another_checkpoint_is_refused(exported, tiny_model, tmp_path):
    import torch

    other = tmp_path / "other.safetensors"
    with torch.no_grad():
        tiny_model.transformer.head.bias.add_(1.0)
    try:
        save_checkpoint(other, tiny_model)
    finally:
        with torch.no_grad():
            tiny_model.transformer.head.bias.sub_(1.0)
    with pytest.raises(ValueError, match="exported from checkpoint sha256"):
        OnnxRuntimeBackend.from_checkpoint(other, onnx_path=exported)
    # a graph given alone (no checkpoint named) is not held against the shipped default's hash
    alone = get_backend("onnxruntime", onnx_path=exported, threads=1)
    assert alone.onnx_path == exported


def test_auto_with_a_graph_it_cannot_run_says_so(tmp_path):
    """`get_backend("auto", onnx_path=...)` with a file that is not a graph returned the torch
    backend on the shipped default, another model than the one given, with one INFO line."""
    bad = tmp_path / "notgraph.onnx"
    bad.write_text('{"not": "a graph"}')
    with pytest.raises(ValueError, match=r"onnx_path .*notgraph.onnx.*no runtime could run it"):
        get_backend("auto", onnx_path=bad, threads=1)
    from depthart_core.sampling import sampling_setting

    with pytest.raises(ValueError, match=r"onnx_path .*notgraph.onnx.* with paper"):
        get_backend("auto", onnx_path=bad, threads=1, sampling=sampling_setting("paper"))


def test_every_backend_applies_its_threads_to_opencv_too(tiny_checkpoint, exported):
    import cv2

    for name, kw in (("onnxruntime", {"onnx_path": exported}), ("torch", {})):
        cv2.setNumThreads(7)
        get_backend(name, tiny_checkpoint, threads=1, **kw)
        assert cv2.getNumThreads() == 1, name


def test_get_backend_auto_and_errors(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path))
    be = get_backend("auto", checkpoint=tiny_checkpoint)
    assert be.name == "onnxruntime"  # TensorRT is absent here, so auto falls back to ORT
    assert list(tmp_path.glob("onnx/*_fp32_soft.onnx"))
    with pytest.raises(ValueError, match="unknown backend 'tflite'"):
        get_backend("tflite", checkpoint=tiny_checkpoint)
    with pytest.raises(ValueError, match="precision"):
        get_backend("torch", checkpoint=tiny_checkpoint, precision="int4")
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        OnnxRuntimeBackend(tmp_path / "missing.onnx")


def test_fp16_graph_keeps_norms_in_fp32_and_agrees(tiny_model, tmp_path):
    path = export_onnx(tiny_model, tmp_path / "fp16.onnx", fp16=True)
    g = onnx.load(str(path))
    assert g.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    for node in g.graph.node:
        if node.op_type in ("LayerNormalization", "InstanceNormalization", "Softmax"):
            assert _input_is_float32(g, node), node.name
    be16 = OnnxRuntimeBackend(path)
    rgb = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    from depthart_core.runtime.preprocess import preprocess

    x, _ = preprocess(rgb, 64)
    d16, tok16 = be16.run_with_tokens(x)
    d32, tok32 = DepthEstimator(tiny_model).run_with_tokens(x)
    assert (tok16 == tok32).mean() > 0.8
    assert np.abs(d16 - d32).mean() < 0.05


def _input_is_float32(graph, node) -> bool:
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(graph)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    types |= {i.name: i.data_type for i in inferred.graph.initializer}
    return types.get(node.input[0], onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT


def test_exported_graph_uses_only_tensorrt_operators(exported):
    from depthart_core.export.trt_onnx_ops import check_tensorrt_compatible, unsupported_ops

    assert unsupported_ops(exported) == []
    check_tensorrt_compatible(exported)


def test_missing_backend_requested_explicitly_says_how_to_install(tiny_checkpoint):
    from depthart_core.runtime.tensorrt_backend import tensorrt_available

    if tensorrt_available()[0]:
        pytest.skip("TensorRT is installed here")
    with pytest.raises(RuntimeError, match="(?i)install"):
        get_backend("tensorrt", checkpoint=tiny_checkpoint)


def test_auto_reads_hashes_and_loads_the_checkpoint_once(tiny_checkpoint, tmp_path, monkeypatch):
    """TensorRT absent, ONNX Runtime failing after its export: the torch fallback reuses the
    model the export loaded, and the file is hashed once along the whole chain."""
    import depthart_core.checkpoint as checkpoint
    import depthart_core.checkpoint_file as checkpoint_file

    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path))
    checkpoint._sha256_of.cache_clear()
    hashes, loads = [], []

    def counting_sha(path):
        hashes.append(path)
        return file_sha256_uncached(path)

    def counting_load(path, device="cpu", vae=None, vae_setting=None):
        loads.append(path)
        return load_checkpoint_uncached(path, device, vae, vae_setting)

    def no_session(self, *args, **kwargs):
        raise RuntimeError("no ONNX Runtime session here")

    file_sha256_uncached, load_checkpoint_uncached = (
        checkpoint.sha256_file,
        checkpoint.load_checkpoint,
    )
    monkeypatch.setattr(checkpoint_file, "sha256_file", counting_sha)
    monkeypatch.setattr(checkpoint, "load_checkpoint", counting_load)
    monkeypatch.setattr(OnnxRuntimeBackend, "__init__", no_session)
    be = get_backend("auto", checkpoint=tiny_checkpoint)
    assert be.name == "torch"
    assert list(tmp_path.glob("onnx/*_fp32_soft.onnx"))  # ONNX Runtime got as far as its export
    assert len(hashes) == 1 and len(loads) == 1
    assert be.info["sha256"] == file_sha256_uncached(tiny_checkpoint)
    checkpoint._sha256_of.cache_clear()


def test_parity_command_on_the_shipped_checkpoint(tmp_path, monkeypatch, capsys):
    """BENCHMARKS section 5 measured 93 % identical tokens and 0.009 mean depth error."""
    import json

    from depthart_core.cli import main

    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path))
    assert main(["parity", "--count", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 3
    assert 0.7 < out["token_agreement"] <= 1.0
    assert 0.0 < out["depth_abs_err_mean"] < 0.03 and out["depth_abs_err_max"] < 0.5
    assert sorted(p.name[17:] for p in tmp_path.glob("onnx/*.onnx")) == [
        "fp16_soft.onnx",
        "fp32_soft.onnx",
    ]  # the default decoding


def test_parity_on_torch_compares_bf16_with_fp32(tiny_checkpoint):
    """The torch path (for a GPU's fp16 / bf16): bf16 autocast on the CPU differs from fp32, yet
    stays close to it; a wrong combination is refused with its values named."""
    from depthart_core.runtime.parity import fp16_parity

    out = fp16_parity(tiny_checkpoint, count=2, backend="torch", device="cpu", precision="bf16")
    assert out["frames"] == 2 and out["precision"] == "bf16" and out["backend"] == "torch cpu"
    assert 0.0 <= out["token_agreement"] <= 1.0
    assert 0.0 < out["depth_abs_err_mean"] < 0.5  # bf16 is not bit-identical, and not far off
    with pytest.raises(ValueError, match="'bf16'"):
        fp16_parity(tiny_checkpoint, count=1, precision="bf16")  # ONNX Runtime: fp16 graph only
    with pytest.raises(ValueError, match="'tensorrt'"):
        fp16_parity(tiny_checkpoint, count=1, backend="tensorrt")
    with pytest.raises(ValueError, match="CUDA"):
        fp16_parity(tiny_checkpoint, count=1, backend="torch", precision="fp16")


def _count_exports(monkeypatch, cache: Path) -> list[dict]:
    """The ONNX cache in `cache`; each export it makes appends its keywords to the list."""
    import depthart_core.runtime.onnx_cache as onnx_cache

    monkeypatch.setenv("DEPTHART_CACHE", str(cache))
    exports: list[dict] = []
    real_export = onnx_cache.export_onnx

    def counting_export(model, path, **kwargs):
        exports.append(kwargs)
        return real_export(model, path, **kwargs)

    monkeypatch.setattr(onnx_cache, "export_onnx", counting_export)
    return exports


def test_onnx_runtime_and_tensorrt_share_one_export(tiny_checkpoint, tmp_path, monkeypatch):
    """TensorRT's from_checkpoint exports into the same ONNX cache that ONNX Runtime then reads:
    one export per checkpoint and precision (TensorRT itself is absent here, so it stops there)."""
    from depthart_core.runtime.tensorrt_backend import TensorRTBackend

    exports = _count_exports(monkeypatch, tmp_path)
    with pytest.raises(ValueError, match="fp32 or fp16, got 'bf16'"):
        TensorRTBackend.from_checkpoint(tiny_checkpoint, precision="bf16")
    with pytest.raises(RuntimeError, match="tensorrt"):
        TensorRTBackend.from_checkpoint(tiny_checkpoint, precision="fp32")
    (cached,) = tmp_path.glob("onnx/*_fp32_soft.onnx")
    be = OnnxRuntimeBackend.from_checkpoint(tiny_checkpoint, precision="fp32")
    assert be.onnx_path == cached and len(exports) == 1
    assert exports[0]["checkpoint_sha256"] == file_sha256(tiny_checkpoint)


def test_soft_graph_matches_torch_soft_and_is_stamped(tmp_path, monkeypatch):
    """The soft decoding (softmax @ codebook at every scale) in the exported graph: on the
    shipped model, whose logits are far from uniform, it matches torch's soft decoding and
    differs from greedy; the cache keeps one graph per decoding and a runtime refuses a graph
    that decodes otherwise than asked."""
    from depthart_core.checkpoint import CheckpointFile
    from depthart_core.runtime.preprocess import preprocess
    from depthart_core.sampling import sampling_setting

    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path))
    soft = sampling_setting("soft")
    ckpt = CheckpointFile(None)
    ort_soft = get_backend("onnxruntime", ckpt.path, sampling=soft, threads=1)
    ort_greedy = get_backend("onnxruntime", ckpt.path, sampling=sampling_setting("greedy"))
    ort_default = get_backend("onnxruntime", ckpt.path, threads=1)
    assert ort_default.onnx_path == ort_soft.onnx_path  # no sampling: the default, soft
    torch_soft = get_backend("torch", ckpt.path, sampling=soft, threads=1)
    assert read_onnx_metadata(ort_soft.onnx_path)["depthart_decoding"] == "soft"
    assert ort_soft.onnx_path.name.endswith("_fp32_soft.onnx")
    assert ort_greedy.onnx_path.name.endswith("_fp32.onnx") and "soft" in ort_soft.describe()
    rgb = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    x, _ = preprocess(rgb, torch_soft.image_size)
    d_t, tok_t = torch_soft.run_with_tokens(x)
    d_o, tok_o = ort_soft.run_with_tokens(x)
    assert (tok_t == tok_o).mean() > 0.99 and np.abs(d_t - d_o).max() < 1e-3
    assert np.abs(d_o - ort_greedy.run(x)).mean() > 1e-3  # soft is not greedy in disguise
    with pytest.raises(ValueError, match="decodes 'greedy', not 'soft'"):
        OnnxRuntimeBackend.from_checkpoint(ckpt, onnx_path=ort_greedy.onnx_path, sampling=soft)
    with pytest.raises(ValueError, match="cannot sample"):
        export_onnx(torch_soft.model, tmp_path / "x.onnx", sampling=sampling_setting("paper"))


def test_processes_starting_at_once_export_once_and_never_see_a_half_record(
    tiny_checkpoint, tmp_path, monkeypatch, caplog
):
    """Two nodes starting together on an empty cache (threads here: each opens the lock file
    itself, so their flocks exclude each other as two processes' do): one exports, the other
    waits and takes that graph; after an upgrade (a graph of an older exporter) likewise, and
    neither warns that the graph no longer matches its record."""
    import threading

    import depthart_core.runtime.onnx_cache as onnx_cache
    from depthart_core.checkpoint import CheckpointFile

    exports = _count_exports(monkeypatch, tmp_path)
    real_record = onnx_cache._record

    def slow_record(path):  # widens the moment between the graph's rename and its record's
        time.sleep(0.3)
        real_record(path)

    monkeypatch.setattr(onnx_cache, "_record", slow_record)
    ckpt = CheckpointFile(tiny_checkpoint)

    def start_two() -> list:
        got: list = []
        threads = [
            threading.Thread(target=lambda: got.append(onnx_cache.cached_onnx(ckpt, "fp32")))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        return got

    paths = start_two()
    assert len(paths) == 2 and paths[0] == paths[1] and len(exports) == 1
    old = onnx.load(str(paths[0]))  # as an older exporter wrote it
    kept = [e for e in old.metadata_props if e.key != "depthart_exporter"]
    del old.metadata_props[:]
    old.metadata_props.extend(kept)
    onnx.save(old, str(paths[0]))
    real_record(paths[0])
    caplog.clear()
    assert len(start_two()) == 2 and len(exports) == 2
    assert "no longer matches" not in caplog.text
    assert caplog.text.count("exporter version 1") == 1


def test_a_damaged_or_edited_cached_graph_is_exported_again(
    tiny_checkpoint, tmp_path, monkeypatch, caplog
):
    """A cached graph that no longer parses (a truncated copy), or parses but no longer matches
    the sha256 recorded beside it, is exported again with a warning, not failed on or served;
    a soft decoding asked for with a seed (which soft ignores) is the same cached graph."""
    import depthart_core.runtime.onnx_cache as onnx_cache
    from depthart_core.checkpoint import CheckpointFile
    from depthart_core.sampling import graph_decoding, sampling_setting

    exports = _count_exports(monkeypatch, tmp_path)
    ckpt = CheckpointFile(tiny_checkpoint)
    path = onnx_cache.cached_onnx(ckpt, "fp32", sampling_setting("soft"))
    good = path.read_bytes()
    assert graph_decoding(sampling_setting("soft", seed=3)) == "soft"
    assert onnx_cache.cached_onnx(ckpt, "fp32", sampling_setting("soft", seed=3)) == path
    assert len(exports) == 1

    path.write_bytes(good[: len(good) // 2])  # truncated
    assert onnx_cache.cached_onnx(ckpt, "fp32") == path and len(exports) == 2
    assert "is damaged" in caplog.text and "exporting it again" in caplog.text
    assert path.read_bytes() == good  # the export is deterministic: the same graph again
    model = onnx.load(str(path))
    w = next(t for t in model.graph.initializer if t.raw_data)
    w.raw_data = bytes(len(w.raw_data))  # parses, stamps intact, weights edited
    onnx.save(model, str(path))
    assert onnx_cache.cached_onnx(ckpt, "fp32") == path and len(exports) == 3
    assert "no longer matches the sha256 recorded" in caplog.text
    assert path.read_bytes() == good
    old = onnx.load(str(path))  # a graph cached before the exporter's version stamp
    kept = [e for e in old.metadata_props if e.key != "depthart_exporter"]
    assert len(kept) == len(old.metadata_props) - 1
    del old.metadata_props[:]
    old.metadata_props.extend(kept)
    onnx.save(old, str(path))
    onnx_cache._record(path)  # its record matches: only the exporter's version is off
    assert onnx_cache.cached_onnx(ckpt, "fp32") == path and len(exports) == 4
    assert f"written by exporter version 1, not {EXPORTER_VERSION}" in caplog.text
    assert path.read_bytes() == good
    OnnxRuntimeBackend.from_checkpoint(ckpt)  # and it runs


def test_fp16_islands_touch_only_the_exporting_thread_and_are_put_back():
    """The fp16 export patches torch.nn.functional for the process: another thread meanwhile
    gets the original functions with every argument (is_causal was dropped), and two exports at
    once leave the originals in place (the later one used to restore the earlier's wrappers)."""
    import threading

    import torch
    import torch.nn.functional as F

    from depthart_core.export.onnx_export import fp32_islands

    originals = (F.layer_norm, F.group_norm, F.scaled_dot_product_attention)
    entered, release = threading.Event(), threading.Event()

    def export_like() -> None:
        with fp32_islands():
            entered.set()
            release.wait(30)

    holder = threading.Thread(target=export_like)
    holder.start()
    assert entered.wait(30)
    q = torch.randn(1, 2, 5, 8)
    causal = F.scaled_dot_product_attention(q, q, q, is_causal=True)  # this thread: untouched
    release.set()
    holder.join(30)
    torch.testing.assert_close(causal, originals[2](q, q, q, is_causal=True), rtol=0, atol=0)

    def short_export() -> None:
        with fp32_islands():
            time.sleep(0.05)

    threads = [threading.Thread(target=short_export) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert (F.layer_norm, F.group_norm, F.scaled_dot_product_attention) == originals

    def nested() -> None:  # an export inside an export: the lock is re-entrant
        with fp32_islands(), fp32_islands():
            pass

    inner = threading.Thread(target=nested, daemon=True)
    inner.start()
    inner.join(30)
    assert not inner.is_alive(), "a nested fp16 export deadlocked"
    assert (F.layer_norm, F.group_norm, F.scaled_dot_product_attention) == originals


def test_an_unknown_device_is_refused_not_run_on_the_cpu(exported, tiny_checkpoint):
    """device="gpu" ran on the CPU, silently."""
    for make in (
        lambda: OnnxRuntimeBackend(exported, device="gpu"),
        lambda: OnnxRuntimeBackend.from_checkpoint(tiny_checkpoint, device="gpu"),
    ):
        with pytest.raises(ValueError, match=r"^unknown device 'gpu'; use cpu, cuda or cuda:N$"):
            make()


@pytest.mark.parametrize(
    ("device", "want"),
    [
        ("cuda:1", [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]),
        ("cuda", [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]),
        ("cpu", ["CPUExecutionProvider"]),
    ],
)
def test_cuda_n_runs_on_gpu_n(exported, monkeypatch, device, want):
    """ "cuda:1" asked for the CUDA provider without its device_id, which is GPU 0. No GPU here:
    the providers the session is opened with, from an onnxruntime that has CUDA's."""
    import onnxruntime as ort

    class Opened(Exception):
        pass

    seen = {}

    def session(path, so, providers):
        seen["providers"] = providers
        raise Opened

    available = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort, "get_available_providers", lambda: available)
    monkeypatch.setattr(ort, "InferenceSession", session)
    with pytest.raises(Opened):
        OnnxRuntimeBackend(exported, device=device)
    assert seen["providers"] == want


def test_the_cache_logs_the_graph_it_keeps_not_its_temporary_file(
    tiny_checkpoint, tmp_path, monkeypatch, caplog
):
    """The "exported" line named the atomic write's temporary file, gone once it finished."""
    import logging

    import depthart_core.runtime.onnx_cache as onnx_cache
    from depthart_core.checkpoint import CheckpointFile

    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path))
    with caplog.at_level(logging.INFO):
        path = onnx_cache.cached_onnx(CheckpointFile(tiny_checkpoint), "fp32")
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("exported ")]
    assert line.startswith(f"exported {path} (") and ".tmp" not in line, line
