"""The uncertainty head on every path (issue #25): ONNX export, ONNX Runtime, the export cache,
`depthart predict --uncertainty`, `depthart eval` and `depthart bench --uncertainty`, on the tiny
headed checkpoint (conftest `headed_checkpoint`), and the errors for a checkpoint without a head.
TensorRT's side is in test_tensorrt.py (it needs TensorRT and a GPU)."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch
from test_eval_runner import _write_ibims  # the iBims-1 fixture on disk

pytest.importorskip("onnxruntime")
import onnx  # noqa: E402

from depthart_core.checkpoint import file_sha256, save_checkpoint  # noqa: E402
from depthart_core.cli import main  # noqa: E402
from depthart_core.colormap import colormap_lut  # noqa: E402
from depthart_core.export.onnx_export import (  # noqa: E402
    META_UNCERTAINTY,
    checkpoint_has_head,
    export_onnx,
    keep_outputs,
    read_onnx_metadata,
)
from depthart_core.export.trt_onnx_ops import check_precision, check_tensorrt_compatible  # noqa: E402
from depthart_core.model import DepthART  # noqa: E402
from depthart_core.runtime.onnx_backend import OnnxRuntimeBackend  # noqa: E402
from depthart_core.runtime.onnx_cache import onnx_cache_path  # noqa: E402
from depthart_core.runtime.preprocess import preprocess  # noqa: E402
from depthart_core.runtime.torch_backend import DepthEstimator  # noqa: E402


@pytest.fixture(scope="module")
def headed_onnx(tmp_path_factory, headed_model, headed_checkpoint):
    path = tmp_path_factory.mktemp("onnx") / "headed.onnx"
    return export_onnx(headed_model, path, checkpoint_sha256=file_sha256(headed_checkpoint))


@pytest.fixture(scope="module")
def plain_onnx(tmp_path_factory, tiny_model):
    """A graph of a model without the head."""
    return export_onnx(tiny_model, tmp_path_factory.mktemp("onnx") / "plain.onnx")


@pytest.fixture(scope="module")
def headless_twin(tmp_path_factory, headed_model):
    """The headed model's own weights saved without the head (another checkpoint, another hash)."""
    twin = DepthART(dataclasses.replace(headed_model.cfg, uncertainty_width=0))
    state = {k: v for k, v in headed_model.state_dict().items() if "uncertainty_head" not in k}
    twin.load_state_dict(state, strict=True)
    path = tmp_path_factory.mktemp("ckpt") / "twin.safetensors"
    save_checkpoint(path, twin.eval())
    return str(path)


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _types(model: onnx.ModelProto) -> set[int]:
    graph = onnx.shape_inference.infer_shapes(model).graph
    values = [*graph.input, *graph.output, *graph.value_info]
    return {v.type.tensor_type.elem_type for v in values} | {t.data_type for t in graph.initializer}


# ---- export ----


def test_headed_graph_has_the_uncertainty_output_stamp_and_tensorrt_ops(headed_onnx):
    g = onnx.load(str(headed_onnx))
    assert [o.name for o in g.graph.output] == ["depth", "tokens", "uncertainty"]
    dims = [d.dim_value for d in g.graph.output[2].type.tensor_type.shape.dim]
    assert dims == [1, 64, 64]
    assert read_onnx_metadata(headed_onnx)[META_UNCERTAINTY] == "head"
    check_tensorrt_compatible(g)  # Conv, Gelu, nearest Resize, Concat, Exp, Clip, Log: all listed
    # no float64 anywhere: a traced resize-matrix build would put a DOUBLE cubic Resize here,
    # which ONNX Runtime's CPU provider cannot run and TensorRT cannot type
    assert onnx.TensorProto.DOUBLE not in _types(g)


def test_headless_graph_is_stamped_none_and_has_two_outputs(plain_onnx):
    assert [o.name for o in onnx.load(str(plain_onnx)).graph.output] == ["depth", "tokens"]
    assert read_onnx_metadata(plain_onnx)[META_UNCERTAINTY] == "none"
    assert not OnnxRuntimeBackend(plain_onnx).has_uncertainty


def test_fp16_export_keeps_the_head_in_fp32_and_agrees(headed_model, headed_onnx, tmp_path):
    path = export_onnx(headed_model, tmp_path / "headed16.onnx", fp16=True)
    g = onnx.load(str(path))
    assert [o.name for o in g.graph.output] == ["depth", "tokens", "uncertainty"]
    assert g.graph.output[2].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    check_precision(g, "fp16")
    check_tensorrt_compatible(g)
    assert next(headed_model.uncertainty_head.parameters()).dtype == torch.float32  # untouched
    x, _ = preprocess(_rgb(64, 64, 5), 64)
    d16, u16 = OnnxRuntimeBackend(path).run_uncertainty(x)
    d32, u32 = OnnxRuntimeBackend(headed_onnx).run_uncertainty(x)
    assert d16.dtype == u16.dtype == np.float32
    assert np.abs(d16 - d32).mean() < 0.05
    assert np.median(np.abs(u16 - u32) / u32) < 0.1


# ---- ONNX Runtime ----


@pytest.mark.parametrize("shape", [(64, 64, 3), (37, 91, 3)])
def test_onnxruntime_matches_torch_in_depth_and_uncertainty(
    headed_onnx, headed_model, headed_checkpoint, shape
):
    torch_be = DepthEstimator(headed_model)
    ort_be = OnnxRuntimeBackend(headed_onnx, expected_sha256=file_sha256(headed_checkpoint))
    assert ort_be.has_uncertainty and torch_be.has_uncertainty
    rgb = _rgb(*shape[:2], seed=sum(shape))
    x, _ = preprocess(rgb, 64)
    d_t, u_t = torch_be.run_uncertainty(x)
    d_o, u_o = ort_be.run_uncertainty(x)
    assert u_o.shape == (1, 64, 64) and u_o.dtype == np.float32 and (u_o > 0).all()
    assert np.abs(d_t - d_o).max() < 1e-3
    # the random head's map varies by about 1 %: parity well inside that spread
    assert np.abs(u_t - u_o).max() < 0.02 * np.ptp(u_t)
    assert np.array_equal(ort_be.run(x), d_o)  # the pruned depth-only session: the same depth
    assert np.array_equal(torch_be.run_with_tokens(x)[1], ort_be.run_with_tokens(x)[1])
    d_pt, u_pt = torch_be.predict(rgb, with_uncertainty=True)
    d_po, u_po = ort_be.predict(rgb, with_uncertainty=True)
    assert u_po.shape == shape[:2] == d_po.shape
    assert np.abs(d_pt - d_po).max() < 1e-3 and np.abs(u_pt - u_po).max() < 0.02 * np.ptp(u_pt)


def test_a_head_reading_the_models_features_exports_and_matches_torch(headed_model, tmp_path):
    """`uncertainty_context`: the encoder features the head reads are traced into the graph;
    ONNX Runtime gives torch's depth and uncertainty."""
    cfg = dataclasses.replace(headed_model.cfg, uncertainty_context=True)
    torch.manual_seed(5)
    model = DepthART(cfg)
    state = {k: v for k, v in headed_model.state_dict().items() if "uncertainty_head" not in k}
    missing, _ = model.load_state_dict(state, strict=False)
    assert all(k.startswith("uncertainty_head.") for k in missing)
    torch.nn.init.normal_(model.uncertainty_head.out.weight, std=0.3)
    model.eval()
    ckpt = save_checkpoint(tmp_path / "ctx.safetensors", model)
    path = export_onnx(model, tmp_path / "ctx.onnx", checkpoint_sha256=file_sha256(ckpt))
    g = onnx.load(str(path))
    check_tensorrt_compatible(g)  # the GroupNorm of the context too
    assert onnx.TensorProto.DOUBLE not in _types(g)
    ort_be = OnnxRuntimeBackend(path, expected_sha256=file_sha256(ckpt))
    x, _ = preprocess(_rgb(48, 80, seed=7), 64)
    d_t, u_t = DepthEstimator(model).run_uncertainty(x)
    d_o, u_o = ort_be.run_uncertainty(x)
    assert np.abs(d_t - d_o).max() < 1e-3
    assert np.abs(u_t - u_o).max() < 0.02 * np.ptp(u_t)
    # fp16: the context enters the fp32 head as fp32
    g16 = onnx.load(str(export_onnx(model, tmp_path / "ctx16.onnx", fp16=True)))
    check_precision(g16, "fp16")
    d16, u16 = OnnxRuntimeBackend(tmp_path / "ctx16.onnx").run_uncertainty(x)
    assert np.abs(d16 - d_o).mean() < 0.05 and np.median(np.abs(u16 - u_o) / u_o) < 0.1


def test_depth_only_runs_use_a_graph_without_the_head(headed_onnx):
    """ONNX Runtime computes every node whatever outputs are asked for, so `run` must run a
    graph pruned to depth and tokens, not the whole one."""
    be = OnnxRuntimeBackend(headed_onnx)
    assert [o.name for o in be.session.get_outputs()] == ["depth", "tokens"]
    full = onnx.load(str(headed_onnx))
    pruned = keep_outputs(full, ["depth", "tokens"])
    head = [n for n in full.graph.node if n.name.startswith("/uncertainty_head/")]
    assert head and not [n for n in pruned.graph.node if n.name.startswith("/uncertainty_head/")]
    assert len(pruned.graph.node) < len(full.graph.node) - len(head) // 2
    assert len(full.graph.output) == 3  # the copy was pruned, not the caller's graph
    with pytest.raises(ValueError, match=r"no output\(s\) \['disparity'\]"):
        keep_outputs(full, ["disparity"])


def test_a_graph_without_the_head_refuses_uncertainty_naming_the_backend(plain_onnx):
    be = OnnxRuntimeBackend(plain_onnx)
    x, _ = preprocess(_rgb(64, 64), 64)
    with pytest.raises(ValueError, match="onnxruntime.*no uncertainty.*uncertainty_head.py"):
        be.run_uncertainty(x)
    with pytest.raises(ValueError, match="no uncertainty"):
        be.predict(_rgb(20, 30), with_uncertainty=True)


def test_export_cache_never_serves_a_headless_graph_for_a_headed_checkpoint(
    headed_checkpoint, headed_onnx, headless_twin, tmp_path, monkeypatch
):
    """The same weights with and without the head are two files, two hashes, two cache entries;
    a graph cached for the headed checkpoint by an exporter from before the head is re-exported."""
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path))
    sha, twin_sha = file_sha256(headed_checkpoint), file_sha256(headless_twin)
    assert checkpoint_has_head(headed_checkpoint) and not checkpoint_has_head(headless_twin)
    assert onnx_cache_path(sha, "fp32", "soft") != onnx_cache_path(twin_sha, "fp32", "soft")
    # what an exporter from before the head left under the headed checkpoint's name: its hash,
    # depth and tokens only, no `depthart_uncertainty` stamp
    stale = keep_outputs(onnx.load(str(headed_onnx)), ["depth", "tokens"])
    kept = [p for p in stale.metadata_props if p.key != META_UNCERTAINTY]
    del stale.metadata_props[:]
    stale.metadata_props.extend(kept)
    path = onnx_cache_path(sha, "fp32", "soft")  # the default decoding's entry
    path.parent.mkdir(parents=True)
    onnx.save(stale, str(path))
    assert not OnnxRuntimeBackend(path, expected_sha256=sha).has_uncertainty  # would be served
    be = OnnxRuntimeBackend.from_checkpoint(headed_checkpoint)
    assert be.onnx_path == path and be.has_uncertainty
    assert read_onnx_metadata(path)[META_UNCERTAINTY] == "head"
    mtime = path.stat().st_mtime_ns
    assert OnnxRuntimeBackend.from_checkpoint(headed_checkpoint).has_uncertainty
    assert path.stat().st_mtime_ns == mtime  # a graph with the head is reused, not re-exported


# ---- depthart predict --uncertainty ----


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_predict_writes_the_uncertainty_on_a_fixed_scale(
    headed_checkpoint, tmp_path, monkeypatch, backend
):
    from depthart_core.runtime import get_backend
    from depthart_core.sampling import sampling_setting

    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path / "cache"))
    rgb = _rgb(47, 71, 1)
    cv2.imwrite(str(tmp_path / "frame.png"), rgb[:, :, ::-1])
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "frame.png"), "--checkpoint", headed_checkpoint]
    assert main([*args, "--backend", backend, "--out", str(out), "--uncertainty"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "frame.npy",
        "frame_depth.png",
        "frame_uncertainty.npy",
        "frame_uncertainty.png",
    ]
    unc = np.load(out / "frame_uncertainty.npy")
    assert unc.shape == (47, 71) and unc.dtype == np.float32
    ref = get_backend(backend, headed_checkpoint, sampling=sampling_setting("soft"))
    d_ref, u_ref = ref.predict(rgb, with_uncertainty=True)
    np.testing.assert_allclose(unc, u_ref, rtol=1e-5)
    np.testing.assert_allclose(np.load(out / "frame.npy"), d_ref, rtol=1e-5)
    # the colours: inferno indexed by u / 0.3 (clipped), whatever the image's own range
    lut = colormap_lut("inferno")
    expected = lut[np.rint(np.clip(unc / 0.3, 0, 1) * 255).astype(int)]
    png = cv2.imread(str(out / "frame_uncertainty.png"))[:, :, ::-1]
    assert np.array_equal(png, expected)


def test_predict_draws_a_non_finite_uncertainty_cyan_and_counts_it(
    headed_model, tmp_path, monkeypatch, capsys
):
    """A broken head (NaN) must not read as 'certain' (black, inferno's 0) in the PNG."""
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path / "cache"))
    broken = DepthART(headed_model.cfg)
    broken.load_state_dict(headed_model.state_dict(), strict=True)
    with torch.no_grad():
        broken.uncertainty_head.out.bias.fill_(float("nan"))
    ckpt = tmp_path / "nan_head.safetensors"
    save_checkpoint(ckpt, broken.eval())
    cv2.imwrite(str(tmp_path / "frame.png"), _rgb(20, 30, 2))
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "frame.png"), "--checkpoint", str(ckpt), "--threads", "1"]
    assert main([*args, "--backend", "torch", "--out", str(out), "--uncertainty"]) == 0
    assert np.isnan(np.load(out / "frame_uncertainty.npy")).all()
    png = cv2.imread(str(out / "frame_uncertainty.png"))[:, :, ::-1]
    assert (png == np.array([0, 255, 255], np.uint8)).all()
    assert "600 of 600 pixels' uncertainty is not finite" in capsys.readouterr().err


def test_predict_uncertainty_without_a_head_stops_before_any_work(
    tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    import depthart_core.runtime as runtime

    def no_backend(*args, **kwargs):
        raise AssertionError("a backend was built")

    monkeypatch.setattr(runtime, "get_backend", no_backend)
    img = tmp_path / "frame.png"
    cv2.imwrite(str(img), _rgb(20, 30))
    out = tmp_path / "out"
    args = ["predict", str(img), "--checkpoint", tiny_checkpoint, "--out", str(out)]
    assert main([*args, "--uncertainty"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no uncertainty head" in err and "training/uncertainty_head.py" in err
    assert "tiny.safetensors" in err
    assert not out.exists()


# ---- depthart eval ----


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's r of the ranks, tied values sharing their mean rank."""

    def ranks(x: np.ndarray) -> np.ndarray:
        r = np.empty(x.size)
        r[np.argsort(x, kind="stable")] = np.arange(1, x.size + 1)
        _, tie = np.unique(x, return_inverse=True)
        return (np.bincount(tie, weights=r) / np.bincount(tie))[tie]

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def test_eval_reports_the_uncertainty_measures_by_hand(headed_checkpoint, tmp_path):
    from depthart_core.data.benchmarks import get_dataset
    from depthart_core.runtime import get_backend
    from depthart_core.sampling import sampling_setting

    root = tmp_path / "ibims"
    _write_ibims(root, n=3)  # the third image has no valid pixel: not scored
    out = tmp_path / "eval"
    args = ["eval", "--checkpoint", headed_checkpoint, "--dataset", "ibims1", "--root", str(root)]
    assert main([*args, "--backend", "torch", "--no-progress", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    u = report["uncertainty"]
    assert u["frames"] == 2

    be = get_backend("torch", headed_checkpoint, sampling=sampling_setting("soft"))
    ds = get_dataset("ibims1", root)
    errs, claims, after = [], [], []
    for i in range(2):
        s = ds[i]
        d, c = be.predict(s.rgb, with_uncertainty=True)
        g, v = s.depth[s.valid], s.valid
        scale = np.median(g / d[v])
        e = np.abs(scale * d[v] - g) / g
        keep = np.argsort(-c[v], kind="stable")[int(0.2 * e.size) :]  # drop the 20 % most unsure
        errs.append(e), claims.append(c[v]), after.append(e[keep].mean())
    assert u["abs_rel"] == pytest.approx(np.mean([e.mean() for e in errs]), rel=1e-5)
    assert u["abs_rel_after"] == pytest.approx(np.mean(after), rel=1e-5)
    assert u["drop"] == pytest.approx(1 - np.mean(after) / u["abs_rel"], rel=1e-5)
    rhos = [_spearman(c, e) for c, e in zip(claims, errs, strict=True)]
    assert u["spearman_per_frame"] == pytest.approx(np.mean(rhos), abs=1e-6)
    pooled_e, pooled_c = np.concatenate(errs), np.concatenate(claims)  # 2 x 764 < 10,000
    assert u["pooled_pixels"] == pooled_e.size
    assert u["spearman_pooled"] == pytest.approx(_spearman(pooled_c, pooled_e), abs=1e-6)
    order = np.argsort(pooled_c, kind="stable")
    for (claimed, observed, n), part in zip(u["deciles"], np.array_split(order, 10), strict=True):
        assert n == part.size
        assert claimed == pytest.approx(pooled_c[part].mean(), rel=1e-5)
        assert observed == pytest.approx(pooled_e[part].mean(), rel=1e-5)
    gap = max(abs(c / o - 1) for c, o, _ in u["deciles"])
    assert u["worst_decile_gap"] == pytest.approx(gap)
    assert 0 < u["ause_ratio"] and np.isfinite(u["ause"])
    # the depthart protocol scores the same errors: same median scale, same resolution
    assert report["aggregate"]["abs_rel"] == pytest.approx(u["abs_rel"], rel=1e-6)
    md = (out / "report.md").read_text()
    assert "## Uncertainty" in md and f"{u['abs_rel_after']:.4f}" in md
    assert "| claimed |" in md and "| observed |" in md


def test_eval_scores_only_models_with_the_head_unless_told_not_to(
    headed_checkpoint, tiny_checkpoint, tmp_path
):
    root = tmp_path / "ibims"
    _write_ibims(root, n=2)
    data = ["--dataset", "ibims1", "--root", str(root), "--backend", "torch", "--no-progress"]
    both = ["--checkpoint", headed_checkpoint, "--checkpoint", tiny_checkpoint]
    assert main(["eval", *both, *data, "--out", str(tmp_path / "both")]) == 0
    for label, has in (("headed", True), ("tiny", False)):
        run = json.loads((tmp_path / "both" / label / "ibims1" / "report.json").read_text())
        assert (run["uncertainty"] is not None) == has, label
        assert (
            "## Uncertainty" in (tmp_path / "both" / label / "ibims1" / "report.md").read_text()
        ) == has
    combined = (tmp_path / "both" / "report.md").read_text()
    assert "| headed | iBims-1 |" in combined and "| tiny | iBims-1 |" not in combined
    models = json.loads((tmp_path / "both" / "report.json").read_text())["models"]
    assert [bool(m["uncertainty"]) for m in models] == [True, False]
    off = tmp_path / "off"
    args = ["eval", "--checkpoint", headed_checkpoint, *data, "--out", str(off), "--no-uncertainty"]
    assert main(args) == 0
    assert json.loads((off / "report.json").read_text())["uncertainty"] is None
    assert "## Uncertainty" not in (off / "report.md").read_text()


# ---- depthart bench --uncertainty ----


def test_bench_uncertainty_times_the_uncertainty_pass(
    headed_checkpoint, tmp_path, monkeypatch, capsys
):
    calls = []
    real = DepthEstimator.run_uncertainty

    def counting(self, x):
        calls.append(x.shape)
        return real(self, x)

    monkeypatch.setattr(DepthEstimator, "run_uncertainty", counting)
    out = tmp_path / "b.json"
    args = ["bench", "--checkpoint", headed_checkpoint, "--backend", "torch", "--size", "48x64"]
    rc = main([*args, "--runs", "3", "--warmup", "1", "--no-peer", "--uncertainty"])
    assert rc == 0
    assert "uncertainty pass" in capsys.readouterr().out
    assert len(calls) == 4  # every warm-up and timed frame, one pass each
    assert main([*args, "--runs", "2", "--warmup", "1", "--no-peer", "--json", str(out)]) == 0
    assert len(calls) == 4  # the plain bench does not run it
    res = json.loads(out.read_text())
    assert res["uncertainty"] is False and "ar_loop" in res["stages"]


def test_bench_uncertainty_without_a_head_names_the_fix(tiny_checkpoint, capsys):
    args = ["bench", "--checkpoint", tiny_checkpoint, "--backend", "torch", "--size", "32x32"]
    assert main([*args, "--runs", "1", "--warmup", "0", "--no-peer", "--uncertainty"]) == 1
    err = capsys.readouterr().err
    assert "no uncertainty to time" in err and "uncertainty_width=16" in err
