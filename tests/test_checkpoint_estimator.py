"""Checkpoints load strictly; predict keeps the input size, is deterministic, rejects bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from depthart_core.checkpoint import load_checkpoint, save_checkpoint
from depthart_core.config import get_preset, with_overrides
from depthart_core.runtime import get_backend
from depthart_core.runtime.torch_backend import DepthEstimator


def test_round_trip_is_exact(tiny_model, tiny_checkpoint):
    model, info = load_checkpoint(tiny_checkpoint)
    pairs = zip(tiny_model.state_dict().items(), model.state_dict().items(), strict=True)
    for (k, a), (_, b) in pairs:
        assert torch.equal(a, b), k
    assert info["metadata"]["purpose"] == "tests"
    assert info["config"]["image_size"] == 64
    sidecar = json.loads(open(tiny_checkpoint.replace(".safetensors", ".json")).read())
    assert sidecar["config"] == info["config"]


def _rewrite(src, dst, mutate):
    tensors = load_file(src)
    meta = {
        "format": "depthart/1",
        **{k: v for k, v in read_raw_meta(src).items() if k != "format"},
    }
    mutate(tensors)
    save_file(tensors, dst, metadata=meta)


def read_raw_meta(path):
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return f.metadata()


def test_missing_extra_and_misshapen_keys_raise(tiny_checkpoint, tmp_path):
    key = "transformer.head.bias"
    _rewrite(tiny_checkpoint, tmp_path / "missing.safetensors", lambda t: t.pop(key))
    with pytest.raises(ValueError, match="missing keys.*transformer.head.bias"):
        load_checkpoint(tmp_path / "missing.safetensors")
    _rewrite(
        tiny_checkpoint, tmp_path / "extra.safetensors", lambda t: t.update(bogus=torch.zeros(1))
    )
    with pytest.raises(ValueError, match="unexpected keys.*bogus"):
        load_checkpoint(tmp_path / "extra.safetensors")
    _rewrite(
        tiny_checkpoint, tmp_path / "shape.safetensors", lambda t: t.update({key: torch.zeros(3)})
    )
    with pytest.raises(ValueError, match="shape mismatches.*head.bias"):
        load_checkpoint(tmp_path / "shape.safetensors")
    with pytest.raises(FileNotFoundError, match="nope"):
        load_checkpoint(tmp_path / "nope.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_checkpoint(tmp_path / "junk.safetensors")


def test_bad_config_metadata_and_a_folder_name_the_file(tiny_checkpoint, tmp_path):
    for key, bad in (
        ("config", '{"image_size": 64'),
        ("metadata", "\xff not json"),
        ("config", "[]"),
    ):
        path = tmp_path / f"{key}.safetensors"
        meta = {**read_raw_meta(tiny_checkpoint), key: bad}
        save_file(load_file(tiny_checkpoint), path, metadata=meta)
        with pytest.raises(ValueError) as exc:
            load_checkpoint(path)
        assert str(exc.value).startswith(f"{path}: its {key!r} metadata is not ")
    with pytest.raises(ValueError, match=f"checkpoint {tmp_path} is a directory, not a file$"):
        load_checkpoint(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.safetensors").write_bytes(Path(tiny_checkpoint).read_bytes())
    with pytest.raises(ValueError, match=f"a file: the run's model is {run}/checkpoint.safet"):
        load_checkpoint(run)  # a train / finetune run folder given for its model
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"\x08\x07\x12\x07pytorch" + bytes(64))  # not safetensors
    with pytest.raises(ValueError, match="is an ONNX graph, not a checkpoint"):
        load_checkpoint(graph)


def test_a_stage_1_checkpoint_is_refused_as_a_depth_model(tiny_model, tmp_path, capsys):
    """A tokenizer-stage checkpoint holds a transformer that never trained: every path that
    would give depth from it refuses it in one line; training still reads it (stage 2's init)."""
    from depthart_core.checkpoint import CheckpointFile
    from depthart_core.cli import main
    from depthart_core.runtime import get_backend

    path = save_checkpoint(tmp_path / "stage1.safetensors", tiny_model, {"stage": "tokenizer"})
    said = "is a stage-1 (tokenizer) checkpoint: its transformer never trained"
    for make in (
        lambda: DepthEstimator.from_checkpoint(path),
        lambda: CheckpointFile(path),
        lambda: get_backend("onnxruntime", str(path)),
        lambda: get_backend("auto", str(path)),
    ):
        with pytest.raises(ValueError, match=said.replace("(", r"\(").replace(")", r"\)")):
            make()
    png = tmp_path / "in.png"
    import cv2

    cv2.imwrite(str(png), np.full((16, 16, 3), 90, np.uint8))
    out = tmp_path / "p"
    assert main(["predict", str(png), "--out", str(out), "--checkpoint", str(path)]) == 1
    assert said in capsys.readouterr().err and not out.exists()
    load_checkpoint(path)  # the loader itself (train's init_checkpoint) still reads it


def test_half_precision_checkpoint_loads_as_fp32(tiny_model, tmp_path):
    p = save_checkpoint(tmp_path / "h.safetensors", tiny_model, half=True)
    model, _ = load_checkpoint(p)
    w = model.transformer.head.weight
    assert w.dtype == torch.float32
    assert torch.allclose(w, tiny_model.transformer.head.weight, atol=1e-3)


def test_presets_and_config_errors():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        get_preset("huge")
    with pytest.raises(ValueError, match="unknown transformer config key"):
        with_overrides(get_preset("tiny"), {"transformer": {"dpeth": 3}})
    with pytest.raises(TypeError, match="transformer.depth must be an int"):
        with_overrides(get_preset("tiny"), {"transformer": {"depth": "3"}})
    with pytest.raises(ValueError, match="last patch_num"):
        with_overrides(get_preset("tiny"), {"image_size": 128})


@pytest.fixture(scope="module")
def estimator(tiny_checkpoint):
    return DepthEstimator.from_checkpoint(tiny_checkpoint)


def test_predict_odd_size_shape_and_determinism(estimator):
    rgb = np.random.default_rng(0).integers(0, 256, (481, 641, 3), dtype=np.uint8)
    a = estimator.predict(rgb)
    b = estimator.predict(rgb)
    assert a.shape == (481, 641) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1


def test_batched_predict_equals_single(estimator):
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, s, dtype=np.uint8) for s in [(64, 64, 3), (37, 90, 3)]]
    batch = estimator.predict_batch(imgs)
    for img, out in zip(imgs, batch, strict=False):
        assert out.shape == img.shape[:2]
        assert np.allclose(out, estimator.predict(img), atol=1e-5)


@pytest.mark.parametrize("letterbox", [False, True])
def test_flip_average_is_the_mean_of_the_frame_and_its_mirror(tiny_checkpoint, letterbox):
    from depthart_core.runtime import get_backend

    plain = get_backend("torch", tiny_checkpoint, letterbox=letterbox)
    flip = get_backend("torch", tiny_checkpoint, letterbox=letterbox, flip_average=True)
    assert "flip-averaged" in flip.describe() and "flip" not in plain.describe()
    # reports (eval's backend_detail, predict's summary) name the run by describe()
    assert ("letterboxed" in plain.describe()) == letterbox
    assert ("letterboxed" in flip.describe()) == letterbox
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (30, 90, 3), dtype=np.uint8)
    mirrored = np.ascontiguousarray(rgb[:, ::-1])
    want = 0.5 * (plain.predict(rgb) + plain.predict(mirrored)[:, ::-1])
    assert np.allclose(flip.predict(rgb), want, atol=2e-3)  # resize back is linear, ~equal
    assert not np.allclose(plain.predict(rgb), want, atol=2e-3)  # the option changes the output
    # mirror symmetry: the flip-averaged map of the mirrored frame is the mirrored map
    assert np.allclose(flip.predict(mirrored), flip.predict(rgb)[:, ::-1], atol=1e-5)
    batch = flip.predict_batch([rgb, mirrored])
    assert np.allclose(batch[0], flip.predict(rgb), atol=1e-5)


def test_letterbox_unpads_exactly(tiny_checkpoint):
    est = DepthEstimator.from_checkpoint(tiny_checkpoint, letterbox=True)
    from depthart_core.runtime.preprocess import preprocess

    rgb = np.random.default_rng(2).integers(0, 256, (30, 120, 3), dtype=np.uint8)
    x, geo = preprocess(rgb, 64, letterbox=True)
    assert (geo.content_h, geo.content_w, geo.top, geo.left) == (16, 64, 24, 0)
    assert np.all(x[0, :, :24] == 0) and np.all(x[0, :, 40:] == 0)  # mid-grey padding
    assert est.predict(rgb).shape == (30, 120)


@pytest.mark.parametrize(
    "bad,err,match",
    [
        (np.zeros((10, 10, 3), np.float32), TypeError, "dtype uint8"),
        (np.zeros((10, 10), np.uint8), ValueError, "HxWx3"),
        (np.zeros((10, 10, 4), np.uint8), ValueError, r"\(10, 10, 4\)"),
        (np.zeros((0, 0, 3), np.uint8), ValueError, "0x0"),
        (np.zeros((1, 1, 3), np.uint8), ValueError, "1x1"),
        ([[0, 0, 0]], TypeError, "numpy array"),
    ],
)
def test_predict_rejects_bad_input(estimator, bad, err, match):
    with pytest.raises(err, match=match):
        estimator.predict(bad)


def test_non_contiguous_input_is_accepted(estimator):
    rgb = np.random.default_rng(3).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    view = rgb[:, ::-1]
    assert not view.flags["C_CONTIGUOUS"]
    assert np.array_equal(estimator.predict(view), estimator.predict(np.ascontiguousarray(view)))


def test_model_rejects_wrong_resolution(tiny_model):
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        tiny_model.predict_normalized(torch.zeros(1, 3, 32, 32))
    with pytest.raises(TypeError, match="float"):
        tiny_model.predict_normalized(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_cuda_graph_matches_eager(tiny_checkpoint):
    rgb = np.random.default_rng(9).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    eager = DepthEstimator.from_checkpoint(tiny_checkpoint, device="cuda")
    graphed = DepthEstimator.from_checkpoint(tiny_checkpoint, device="cuda", cuda_graph=True)
    a = eager.predict(rgb)
    assert np.allclose(graphed.predict(rgb), a, atol=1e-4)
    assert np.allclose(graphed.predict(rgb), a, atol=1e-4)  # replay


@pytest.mark.parametrize(("device", "graph"), [("cpu", False), ("cuda", True), ("cuda:1", True)])
def test_the_factory_graphs_the_torch_backend_on_cuda_only(
    tiny_checkpoint, monkeypatch, device, graph
):
    """get_backend asks for the CUDA graph exactly when the device is a GPU (BENCHMARKS 4c: 5x on
    an H200; its depth matches eager's to 1e-4 in test_cuda_graph_matches_eager, on a GPU only);
    the constructor still drops it for a sampled decoding."""
    import depthart_core.runtime as runtime

    seen = {}

    def fake_from_checkpoint(ckpt, **kwargs):
        seen.update(kwargs)
        return "backend"

    monkeypatch.setattr(runtime.DepthEstimator, "from_checkpoint", fake_from_checkpoint)
    monkeypatch.setattr(runtime.torch.cuda, "is_available", lambda: True)  # a GPU, as faked
    assert (
        runtime._make("torch", runtime.CheckpointFile(tiny_checkpoint), device, "fp32", False, None)
        == "backend"
    )
    assert seen["cuda_graph"] is graph and seen["device"] == device


def test_cuda_graph_needs_cuda(tiny_model):
    with pytest.raises(ValueError, match="CUDA"):
        DepthEstimator(tiny_model, cuda_graph=True)


def test_resizing_one_axis_down_and_the_other_up_stays_smooth():
    """The model's 64x64 map back to a 33x517 frame (rows shrink, columns grow): each axis its
    own interpolation, so a smooth ramp stays smooth (INTER_AREA on both repeated each column
    value in blocks of 8); the same on the way in."""
    from depthart_core.runtime.preprocess import Geometry, postprocess, preprocess

    ramp = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (64, 1))
    out = postprocess(ramp, Geometry(33, 517, 64, 0, 0, 64, 64))
    assert out.shape == (33, 517)
    assert len(np.unique(out[16])) > 400 and np.all(np.diff(out[16]) >= 0)
    x, _ = preprocess(np.tile(np.arange(33, dtype=np.uint8)[:, None, None] * 7, (1, 517, 3)), 64)
    assert len(np.unique(x[0, 0, :, 10])) > 50  # 33 rows grown to 64 by interpolation


def test_the_cuda_graph_path_serves_each_thread_its_own_depth(tiny_checkpoint, monkeypatch):
    """A captured graph replays into shared output buffers: two threads at once were handed each
    other's depth. Emulated on the CPU: a stand-in graph that, as a real replay does, rewrites the
    same output tensors, and takes a moment (a GPU replay is asynchronous)."""
    import contextlib
    import threading
    import time

    capturing = threading.local()

    class Stream:
        def __init__(self, device=None):
            pass

        def wait_stream(self, other):
            pass

    class Graph:
        def replay(self):
            time.sleep(0.002)
            for out, new in zip(self.outs, self.fn(self.inp), strict=True):
                out.copy_(new)

    @contextlib.contextmanager
    def capture(graph, stream=None):
        capturing.graph = graph
        yield
        capturing.graph = None

    monkeypatch.setattr(torch.cuda, "device", lambda d: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda *a: Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", capture)
    est = DepthEstimator.from_checkpoint(tiny_checkpoint, threads=1)
    eager = est._forward

    def forward(x):
        out = eager(x)
        graph = getattr(capturing, "graph", None)
        if graph is not None:
            graph.fn, graph.inp, graph.outs = eager, x, out
        return out

    est._forward = forward
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(4)]
    want = [est.predict(f) for f in frames]  # eager
    est.cuda_graph = True
    wrong, done, failed = [], [], []

    def client(t: int) -> None:
        try:
            for k in range(20):
                i = (t + k) % 4
                if not np.array_equal(est.predict(frames[i]), want[i]):
                    wrong.append((t, k, i))
                done.append((t, k))
        except Exception as exc:  # a thread's error is not the test's: count it as one
            failed.append(repr(exc))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failed, failed
    assert len(done) == 40 and not wrong, f"{len(wrong)} of {len(done)} calls got another's depth"


def test_a_small_file_claiming_a_big_model_is_refused_before_it_is_built(tmp_path, monkeypatch):
    """A checkpoint whose config claims a wide, deep transformer but holds one tensor: refused
    from the header's shapes, before the model (gigabytes) is built."""
    from depthart_core import checkpoint as ck

    cfg = get_preset("tiny").to_dict()
    cfg["transformer"] = dict(cfg["transformer"], width=2048, depth=12)
    meta = {"format": ck.FORMAT, "config": json.dumps(cfg), "metadata": "{}"}
    path = tmp_path / "big.safetensors"
    save_file({"transformer.pos_start": torch.zeros(1)}, str(path), metadata=meta)
    built = []
    real = ck.DepthART

    def counting(*args, **kwargs):
        if torch.empty(0).device.type != "meta":  # a real build, not the shape skeleton
            built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ck, "DepthART", counting)
    with pytest.raises(ValueError, match="state dict does not match the model: missing keys"):
        load_checkpoint(path)
    assert built == []


def test_a_head_copied_from_the_init_checkpoint_is_left_out(
    headed_model, tmp_path, tiny_model, capsys
):
    """A fine-tune before 2026-12-06 kept the base's uncertainty head unchanged (training never
    changes it): every command served the base's errors as this model's. Such a head (no
    "uncertainty_head" record, trained from an init_checkpoint) is dropped at load, strictly,
    with the reason where a missing head is explained; a head trained for the model is kept."""
    from depthart_core.checkpoint import default_checkpoint_path
    from depthart_core.cli import main

    train = {"train_config": {"init_checkpoint": "/runs/base.safetensors"}}
    copied = save_checkpoint(tmp_path / "copied.safetensors", headed_model, train)
    est = DepthEstimator.from_checkpoint(copied)
    assert not est.has_uncertainty and est.model.uncertainty_head is None
    why = est.info["uncertainty_dropped"]
    assert "copied unchanged from /runs/base.safetensors" in why and "uncertainty_head.py" in why
    own = {k: v for k, v in headed_model.state_dict().items() if not k.startswith("uncertainty")}
    for k, v in est.model.state_dict().items():
        assert torch.equal(v, own[k]), k
    assert main(["info", str(copied)]) == 0
    assert f"uncertainty head left out: {why}" in capsys.readouterr().out
    # the reason is what predict --uncertainty and the node say, on both runtimes
    rgb = np.zeros((16, 16, 3), np.uint8)
    ort = get_backend("onnxruntime", copied, threads=1)
    # a graph exported before the upgrade, given with it, still has the head: not served
    from depthart_core.checkpoint import file_sha256
    from depthart_core.export.onnx_export import export_onnx

    old_graph = export_onnx(headed_model, tmp_path / "old.onnx", file_sha256(copied))
    given = get_backend("onnxruntime", copied, onnx_path=old_graph, threads=1)
    for backend in (est, ort, given):
        assert backend.uncertainty_missing == why, backend.describe()
        with pytest.raises(ValueError, match="copied unchanged from /runs/base.safetensors"):
            backend.predict(rgb, with_uncertainty=True)
    # loading stays strict for every other tensor
    broken = tmp_path / "broken.safetensors"
    _rewrite(str(copied), str(broken), lambda t: t.update({"extra.weight": torch.zeros(2)}))
    with pytest.raises(ValueError, match=r"unexpected keys \['extra.weight'\]"):
        load_checkpoint(broken)
    # kept: a head trained for it, one of a model trained from none, the shipped checkpoint's
    trained = train | {"uncertainty_head": {"frames": 10}}
    for meta in (trained, {"train_config": {"init_checkpoint": ""}}):
        path = save_checkpoint(tmp_path / "kept.safetensors", headed_model, meta)
        est = DepthEstimator.from_checkpoint(path)
        assert est.has_uncertainty and "uncertainty_dropped" not in est.info
    shipped = DepthEstimator.from_checkpoint(default_checkpoint_path())
    assert shipped.has_uncertainty and "uncertainty_dropped" not in shipped.info
    # a fine-tune's own checkpoint (no head at all) has nothing to drop
    plain = DepthEstimator.from_checkpoint(
        save_checkpoint(tmp_path / "ft.safetensors", tiny_model, train)
    )
    assert not plain.has_uncertainty and "uncertainty_dropped" not in plain.info


def test_a_vae_for_a_complete_checkpoint_is_refused_with_a_warm_onnx_cache_too(
    tiny_checkpoint, tmp_path, monkeypatch
):
    """vae= with a complete checkpoint: refused by torch and by onnxruntime on a cold cache (the
    export loads the model), but accepted silently once the graph was cached."""
    pytest.importorskip("onnxruntime")
    from depthart_core.checkpoint import CheckpointFile
    from depthart_core.runtime.onnx_backend import OnnxRuntimeBackend

    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path / "cache"))
    get_backend("onnxruntime", tiny_checkpoint, threads=1)  # the graph is cached now
    vae = tmp_path / "vae_ch160v4096z32.pth"
    want = f"^vae {vae} is only for the authors' checkpoint; .*tiny.safetensors is complete"
    for make in (
        lambda: get_backend("onnxruntime", tiny_checkpoint, threads=1, vae=vae),
        lambda: get_backend("auto", tiny_checkpoint, threads=1, vae=vae),
        lambda: get_backend("torch", tiny_checkpoint, vae=vae),
        lambda: OnnxRuntimeBackend.from_checkpoint(CheckpointFile(tiny_checkpoint, vae=vae)),
        lambda: DepthEstimator.from_checkpoint(tiny_checkpoint, vae=vae),
    ):
        with pytest.raises(ValueError, match=want):
            make()


def test_the_onnx_backend_takes_flip_average_as_get_backend_does(
    tiny_checkpoint, tmp_path, monkeypatch
):
    """OnnxRuntimeBackend.from_checkpoint had no flip_average (DepthEstimator's has)."""
    pytest.importorskip("onnxruntime")
    from depthart_core.runtime.onnx_backend import OnnxRuntimeBackend

    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path / "cache"))
    with pytest.raises(TypeError, match="flip_average must be True or False, got 'false'"):
        OnnxRuntimeBackend.from_checkpoint(tiny_checkpoint, flip_average="false")
    assert not list(tmp_path.glob("cache/**/*.onnx"))  # refused before the export
    own = OnnxRuntimeBackend.from_checkpoint(tiny_checkpoint, threads=1, flip_average=True)
    via = get_backend("onnxruntime", tiny_checkpoint, threads=1, flip_average=True)
    plain = OnnxRuntimeBackend.from_checkpoint(tiny_checkpoint, threads=1)
    assert own.flip_average and "flip-averaged" in own.describe() and not plain.flip_average
    rgb = np.random.default_rng(6).integers(0, 256, (30, 90, 3), dtype=np.uint8)
    assert np.array_equal(own.predict(rgb), via.predict(rgb))
    assert not np.allclose(own.predict(rgb), plain.predict(rgb), atol=2e-3)


@pytest.mark.parametrize("which", ["onnxruntime", "tensorrt"])
@pytest.mark.parametrize("flag", ["letterbox", "flip_average"])
def test_the_graph_backends_refuse_bad_flags_before_the_export(
    tiny_checkpoint, tmp_path, monkeypatch, which, flag
):
    """ONNX Runtime's and TensorRT's own from_checkpoint take letterbox and flip_average as
    get_backend does, and refuse a bad one before a graph is exported (TensorRT: before the
    engine build, which is minutes; checked here without TensorRT)."""
    if which == "onnxruntime":
        pytest.importorskip("onnxruntime")
        from depthart_core.runtime.onnx_backend import OnnxRuntimeBackend as cls
    else:
        from depthart_core.runtime.tensorrt_backend import TensorRTBackend as cls
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path / "cache"))
    with pytest.raises(TypeError, match=f"{flag} must be True or False, got 'no'"):
        cls.from_checkpoint(tiny_checkpoint, **{flag: "no"})
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.onnx"))


@pytest.mark.parametrize("name", ["notes.pth", "model.ckpt", "weights.bin"])
def test_a_text_file_named_like_a_pickle_is_not_called_pickled(tmp_path, name):
    """Only a file that starts like torch.save's (a zip, or a pickle) is called pickled; a text
    file with a .pth/.ckpt/.bin name is told apart from a safetensors file with the reader's
    reason."""
    path = tmp_path / name
    path.write_text("init_checkpoint is not this file\n")
    with pytest.raises(ValueError) as exc:
        load_checkpoint(path)
    msg = str(exc.value)
    assert "pickled" not in msg and f"{path} is not a safetensors checkpoint" in msg
    assert "header" in msg  # the reason
    torch.save({"w": torch.zeros(1)}, path)  # a real one still is
    with pytest.raises(ValueError, match="is a pickled PyTorch checkpoint"):
        load_checkpoint(path)


def test_the_same_model_saved_in_other_processes_is_the_same_file(tmp_path):
    """safetensors writes its metadata in hash-map order, which each process seeds anew: the
    same model saved twice was two files with two hashes, and the ONNX and engine caches (keyed
    by the file's hash) exported and built it again. The header is written sorted."""
    import hashlib
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from depthart_core.checkpoint import save_checkpoint\n"
        "from depthart_core.config import get_preset\n"
        "from depthart_core.model import DepthART\n"
        "torch.manual_seed(0)\n"
        "save_checkpoint(sys.argv[1], DepthART(get_preset('tiny')), "
        "{'b': [1, 2], 'a': 1, 'z': 'x', 'é': 'ü'})\n"
    )
    digests = set()
    for i in range(4):
        path = tmp_path / f"m{i}.safetensors"
        subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=120)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1, digests
    model, info = load_checkpoint(tmp_path / "m0.safetensors")  # still a valid file
    assert info["metadata"] == {"b": [1, 2], "a": 1, "z": "x", "é": "ü"}


def _relabel(src, dst, key, dtype):
    """`src` with the header's dtype of `key` changed to `dtype` (the same bytes: F32 -> I32)."""
    raw = Path(src).read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header[key]["dtype"] = dtype
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    Path(dst).write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + n :])


def test_a_tensor_of_another_dtype_kind_is_refused_naming_it(tiny_checkpoint, tmp_path):
    """int8 codes, or an F32 tensor's bytes relabelled I32, loaded into float weights were cast
    silently and gave garbage depth; a bool tensor too. Any float width still loads."""
    from depthart_core.checkpoint import load_state_dict_strict

    key = "transformer.head.weight"
    as_int8 = lambda t: t.update({key: t[key].to(torch.int8)})  # noqa: E731
    as_bool = lambda t: t.update({key: t[key] > 0})  # noqa: E731
    _rewrite(tiny_checkpoint, tmp_path / "int8.safetensors", as_int8)
    _rewrite(tiny_checkpoint, tmp_path / "bool.safetensors", as_bool)
    _relabel(tiny_checkpoint, tmp_path / "i32.safetensors", key, "I32")
    for name, dtype in (("int8", "int8"), ("bool", "bool"), ("i32", "int32")):
        path = tmp_path / f"{name}.safetensors"
        said = f"{path}: tensor dtypes do not match the model .*{key}: checkpoint {dtype} vs model"
        with pytest.raises(ValueError, match=said + " float32$"):
            load_checkpoint(path)
        with pytest.raises(ValueError, match=said):
            get_backend("torch", str(path))  # predict, the node
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        path = tmp_path / f"{dtype}.safetensors".replace("torch.", "")
        _rewrite(tiny_checkpoint, path, lambda t, d=dtype: t.update({key: t[key].to(d)}))
        model, _ = load_checkpoint(path)
        assert model.transformer.head.weight.dtype == torch.float32
    # an integer buffer must get an integer tensor (the VQ-VAE .pth path loads through here too)
    module = torch.nn.Module()
    module.register_buffer("count", torch.zeros(2, dtype=torch.long))
    load_state_dict_strict(module, {"count": torch.ones(2, dtype=torch.int32)}, "x")
    assert module.count.tolist() == [1, 1]
    with pytest.raises(ValueError, match="count: checkpoint float32 vs model int64"):
        load_state_dict_strict(module, {"count": torch.ones(2)}, "x")


def test_a_config_bigger_than_any_real_model_is_refused_before_the_skeleton(tmp_path, monkeypatch):
    """A 1-tensor file whose config claims transformer.depth 100000 built 100000 blocks on the
    meta device (115 s, 5 GB) before "missing keys": the config's counts are bounded."""
    import time

    from depthart_core import checkpoint as ck

    built = []
    real = ck.DepthART
    monkeypatch.setattr(ck, "DepthART", lambda *a, **k: built.append(1) or real(*a, **k))
    cfg = get_preset("tiny_cnn").to_dict()
    cfg["transformer"] = dict(cfg["transformer"], depth=100000)
    meta = {"format": ck.FORMAT, "config": json.dumps(cfg), "metadata": "{}"}
    path = tmp_path / "deep.safetensors"
    save_file({"transformer.pos_start": torch.zeros(1)}, str(path), metadata=meta)
    start = time.monotonic()
    with pytest.raises(
        ValueError,
        match=rf"^{path}: its config is refused: transformer.depth must be <= 128, got 100000 \(",
    ):
        load_checkpoint(path)
    assert time.monotonic() - start < 1.0 and built == []
    for override, said in (
        ({"tokenizer": {"num_res_blocks": 17}}, "tokenizer.num_res_blocks must be <= 16, got 17"),
        ({"tokenizer": {"share_quant_resi": 65}}, "share_quant_resi must be <= 64, got 65"),
        ({"tokenizer": {"ch_mult": [1] * 13}}, r"len\(tokenizer.ch_mult\) must be <= 12, got 13"),
        (
            {"tokenizer": {"patch_nums": list(range(1, 66))}},
            r"len\(tokenizer.patch_nums\) must be <= 64, got 65",
        ),
    ):
        with pytest.raises(ValueError, match=said):
            with_overrides(get_preset("tiny"), override)
    d16 = with_overrides(get_preset("d16"), {"transformer": {"depth": 128}})  # the bound itself
    assert d16.transformer.depth == 128


def test_a_file_that_is_not_a_checkpoint_is_refused_before_it_is_hashed(
    tiny_model, tmp_path, monkeypatch
):
    """The estimator hashed all of a file (13.6 s for 4 GB) before reading its header."""
    from depthart_core import checkpoint as ck
    from depthart_core import checkpoint_file

    hashed = []
    real = ck.file_sha256
    monkeypatch.setattr(checkpoint_file, "file_sha256", lambda p: hashed.append(p) or real(p))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 64)
    stage1 = save_checkpoint(tmp_path / "s1.safetensors", tiny_model, {"stage": "tokenizer"})
    for path, said in ((junk, "not a readable safetensors"), (stage1, "is a stage-1")):
        for make in (lambda p=path: ck.CheckpointFile(p), lambda p=path: get_backend("auto", p)):
            with pytest.raises(ValueError, match=said):
                make()
    assert hashed == []


def test_a_home_in_a_checkpoint_path_is_expanded(tiny_checkpoint, tmp_path, monkeypatch):
    """`DEPTHART_CHECKPOINT='~/ck.safetensors'` and the node's `checkpoint` parameter (passed to
    `get_backend` as is) get no shell to expand the `~`: "checkpoint not found: ~/ck..."."""
    from depthart_core.checkpoint import CheckpointFile, resolve_checkpoint

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "ck.safetensors").write_bytes(Path(tiny_checkpoint).read_bytes())
    monkeypatch.setenv("DEPTHART_CHECKPOINT", "~/ck.safetensors")
    assert resolve_checkpoint(None) == tmp_path / "ck.safetensors"
    monkeypatch.delenv("DEPTHART_CHECKPOINT")
    assert resolve_checkpoint("~/ck.safetensors") == tmp_path / "ck.safetensors"
    assert CheckpointFile("~/ck.safetensors").path == tmp_path / "ck.safetensors"
    get_backend("torch", "~/ck.safetensors")  # the node's call, its parameter as given
    with pytest.raises(FileNotFoundError, match=f"checkpoint not found: {tmp_path}/nope"):
        resolve_checkpoint("~/nope.safetensors")


def test_a_fifo_or_a_device_is_not_a_regular_file_not_missing(tmp_path):
    import os

    fifo = tmp_path / "fifo.safetensors"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.safetensors"
    zero.symlink_to("/dev/zero")
    for path in (fifo, zero):
        with pytest.raises(ValueError, match=f"^checkpoint {path} is not a regular file "):
            load_checkpoint(path)
