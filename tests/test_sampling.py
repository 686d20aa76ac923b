"""The `paper` sampling setting: the authors' numbers, seeded repeatability, and where it runs."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from test_eval_runner import _write_ibims

from depthart_core.cli import main
from depthart_core.model import SamplingConfig
from depthart_core.runtime import get_backend
from depthart_core.runtime.torch_backend import DepthEstimator
from depthart_core.sampling import (
    DEFAULT_DECODING,
    describe_sampling,
    runtime_sampling,
    sampling_setting,
)

RGB = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)


def test_paper_setting_is_the_authors_evaluation():
    s = sampling_setting("paper", seed=7)
    assert (s.greedy, s.temperature, s.top_k, s.top_p, s.n_samples, s.seed) == (
        False, 1.0, 900, 0.9, 5, 7,
    )  # fmt: skip
    assert sampling_setting("greedy").greedy
    assert describe_sampling(s) == "paper (seed 7)"
    with pytest.raises(ValueError, match="'nucleus'"):
        sampling_setting("nucleus")


def test_sampled_code_is_the_mean_of_draws_within_top_k(tiny_model):
    V = tiny_model.cfg.tokenizer.vocab_size
    logits = torch.full((1, 3, V), -5.0)
    logits[0, :, 10], logits[0, :, 20] = 3.0, 2.9  # top-2 = {10, 20}; the rest is cut by top_k
    gen = torch.Generator().manual_seed(0)
    s = SamplingConfig(greedy=False, top_k=2, n_samples=5, seed=0)
    idx, emb = tiny_model._pick(logits, s, [gen])  # one generator per frame
    table = tiny_model.tokenizer.quantize.embedding.weight
    assert set(idx.flatten().tolist()) <= {10, 20}
    # every token's embedding is a mean of 5 draws from {e10, e20}: e20 + k/5 (e10 - e20)
    k = ((emb - table[20]) @ (table[10] - table[20])) / (table[10] - table[20]).square().sum()
    assert torch.allclose(k * 5, (k * 5).round(), atol=1e-4)
    mixed = (emb - (table[20] + k[..., None] * (table[10] - table[20]))).abs().max()
    assert mixed < 1e-5


def test_paper_sampling_repeats_with_its_seed_and_differs_from_greedy(tiny_model):
    paper = DepthEstimator(tiny_model, sampling=sampling_setting("paper", 3))
    a, b = paper.predict(RGB), paper.predict(RGB)
    np.testing.assert_array_equal(a, b)
    other = DepthEstimator(tiny_model, sampling=sampling_setting("paper", 4)).predict(RGB)
    greedy = DepthEstimator(tiny_model).predict(RGB)
    assert np.abs(a - other).max() > 1e-4 and np.abs(a - greedy).max() > 1e-4
    assert "paper (seed 3)" in paper.describe()


def test_paper_sampling_of_a_frame_does_not_depend_on_its_batch(tiny_model):
    """One generator drew the whole batch's tokens: a frame's depth moved by up to 0.24 with the
    batch's other frames and its place among them. Each frame now draws from its own generator
    seeded with `seed`: the same draws, and the depth as close as the model's own batched
    arithmetic lets a deterministic decoding be (about 1e-6 here)."""
    rng = np.random.default_rng(5)
    a, c = (rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32) for _ in range(2))
    for name in ("paper", "soft"):
        est = DepthEstimator(tiny_model, sampling=sampling_setting(name, 7))
        depth_1, tokens_1 = est.run_with_tokens(a)
        for batch, i in ((np.concatenate([c, a]), 1), (np.concatenate([a, c]), 0)):
            depth_2, tokens_2 = est.run_with_tokens(batch)
            np.testing.assert_array_equal(tokens_2[i], tokens_1[0])  # the same draws
            np.testing.assert_allclose(depth_2[i], depth_1[0], atol=1e-4)
    rgb_c = np.random.default_rng(6).integers(0, 256, (30, 70, 3), dtype=np.uint8)
    paper = DepthEstimator(tiny_model, sampling=sampling_setting("paper", 7))
    np.testing.assert_allclose(paper.predict_batch([rgb_c, RGB])[1], paper.predict(RGB), atol=1e-4)


def test_exported_backends_refuse_to_sample(tiny_checkpoint):
    with pytest.raises(ValueError, match="cannot sample"):
        get_backend("onnxruntime", tiny_checkpoint, sampling=sampling_setting("paper"))
    be = get_backend("auto", tiny_checkpoint, sampling=sampling_setting("paper", 1))
    assert isinstance(be, DepthEstimator) and not be.sampling.greedy


def test_cli_predict_and_eval_take_the_setting(tiny_checkpoint, tmp_path, capsys):
    img = tmp_path / "f.png"
    cv2.imwrite(str(img), RGB[:, :, ::-1])
    args = ["predict", str(img), "--checkpoint", tiny_checkpoint, "--sampling", "paper"]
    assert main([*args, "--seed", "5", "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--seed", "5", "--out", str(tmp_path / "b")]) == 0
    a, b = np.load(tmp_path / "a" / "f.npy"), np.load(tmp_path / "b" / "f.npy")
    np.testing.assert_array_equal(a, b)
    ref = DepthEstimator.from_checkpoint(tiny_checkpoint, sampling=sampling_setting("paper", 5))
    np.testing.assert_allclose(a, ref.predict(RGB))
    assert "paper (seed 5)" in capsys.readouterr().out
    root = tmp_path / "ibims"
    _write_ibims(root)
    out = tmp_path / "eval"
    rc = main(
        ["eval", "--checkpoint", tiny_checkpoint, "--dataset", "ibims1", "--root", str(root),
         "--sampling", "paper", "--seed", "2", "--no-progress", "--out", str(out)]
    )  # fmt: skip
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert "paper (seed 2)" in report["backend_detail"]
    assert "paper (seed 2)" in (out / "report.md").read_text()


def test_soft_code_is_the_probability_weighted_mean_within_top_k(tiny_model):
    V = tiny_model.cfg.tokenizer.vocab_size
    logits = torch.full((1, 2, V), -5.0)
    logits[0, :, 10], logits[0, :, 20] = 3.0, 2.0
    table = tiny_model.tokenizer.quantize.embedding.weight
    idx, emb = tiny_model._pick(logits, SamplingConfig(greedy=False, soft=True, top_k=2), None)
    w10 = 1 / (1 + np.exp(-1.0))  # softmax over {3.0, 2.0}, the rest cut by top_k
    assert torch.equal(idx, torch.tensor([[10, 10]]))
    assert torch.allclose(emb[0, 0], w10 * table[10] + (1 - w10) * table[20], atol=1e-6)
    _, emb_all = tiny_model._pick(logits, sampling_setting("soft"), None)
    assert torch.allclose(emb_all[0], logits[0].softmax(-1) @ table, atol=1e-6)


def test_soft_is_the_expectation_of_the_sampled_mean(tiny_model):
    """Many sampled codes per token average to the soft embedding (same filters)."""
    torch.manual_seed(1)
    logits = torch.randn(1, 4, tiny_model.cfg.tokenizer.vocab_size) * 3
    soft = SamplingConfig(greedy=False, soft=True, top_k=8)
    sampled = SamplingConfig(greedy=False, top_k=8, n_samples=20_000)
    _, e_soft = tiny_model._pick(logits, soft, None)
    _, e_draw = tiny_model._pick(logits, sampled, [torch.Generator().manual_seed(0)])
    spread = tiny_model.tokenizer.quantize.embedding.weight.std()
    assert (e_soft - e_draw).abs().max() < 0.05 * spread


def test_soft_setting_is_deterministic_named_and_runs_everywhere(tiny_checkpoint):
    s = sampling_setting("soft", seed=9)
    assert s.soft and not s.greedy and s.deterministic and describe_sampling(s) == "soft"
    with pytest.raises(ValueError, match="exclude each other"):
        SamplingConfig(greedy=True, soft=True)
    torch_be = get_backend("torch", tiny_checkpoint, sampling=s)
    np.testing.assert_array_equal(torch_be.predict(RGB), torch_be.predict(RGB))
    assert "soft" in torch_be.describe()


def test_cli_and_node_offer_every_named_setting_and_default_to_soft():
    import argparse

    from depthart_core.cli.args import add_model_args
    from depthart_core.sampling import SAMPLING_NAMES

    p = argparse.ArgumentParser()
    add_model_args(p)
    (action,) = [a for a in p._actions if a.dest == "sampling"]
    assert tuple(action.choices) == SAMPLING_NAMES and action.default == DEFAULT_DECODING
    params = pytest.importorskip("depthart_ros.params")
    assert tuple(params.SAMPLINGS) == SAMPLING_NAMES
    assert {q.name: q.default for q in params.PARAMS}["sampling"] == DEFAULT_DECODING


def test_the_python_api_decodes_like_the_cli_unless_told(tiny_model, tiny_checkpoint, tmp_path):
    """No `sampling`: every backend decodes with DEFAULT_DECODING (soft); a given graph with no
    sampling asked for runs with the decoding its metadata names."""
    from depthart_core.checkpoint import file_sha256
    from depthart_core.export.onnx_export import export_onnx
    from depthart_core.runtime.onnx_backend import OnnxRuntimeBackend

    soft, greedy = sampling_setting(DEFAULT_DECODING), sampling_setting("greedy")
    assert DEFAULT_DECODING == "soft" and runtime_sampling(None) == soft
    assert runtime_sampling(greedy) is greedy
    assert DepthEstimator(tiny_model).sampling == soft
    assert DepthEstimator(tiny_model, sampling=greedy).sampling == greedy
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (1, 3, 64, 64))).float()
    with torch.no_grad():
        want = tiny_model.infer(x, soft).depth.numpy()
        plain = tiny_model.infer(x).depth.numpy()  # the model's own default stays greedy
    np.testing.assert_array_equal(DepthEstimator(tiny_model).run(x.numpy()), want)
    assert not np.array_equal(want, plain)
    pytest.importorskip("onnxruntime")
    sha = file_sha256(tiny_checkpoint)
    path = export_onnx(tiny_model, tmp_path / "g.onnx", checkpoint_sha256=sha, sampling=greedy)
    be = OnnxRuntimeBackend.from_checkpoint(tiny_checkpoint, onnx_path=path)
    assert "greedy" in be.describe()  # the graph's own decoding
    with pytest.raises(ValueError, match="decodes 'greedy', not 'soft'"):
        OnnxRuntimeBackend.from_checkpoint(tiny_checkpoint, onnx_path=path, sampling=soft)
