"""The uncertainty estimators on tiny random models, and the calibration map."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from depthart_core.config import get_preset
from depthart_core.model import DepthART, SamplingConfig
from depthart_core.sampling import sampling_setting
from depthart_core.uncertainty import (
    CALIBRATION_FORMAT,
    ESTIMATORS,
    UncertaintyCalibration,
    depth_and_uncertainty,
    embedding_variance,
    fit_calibration,
    flip_disagreement,
    isotonic,
    latent_spread,
    sample_spread,
    token_distribution,
)

GREEDY = SamplingConfig()


@pytest.fixture(scope="module")
def refine_model() -> DepthART:
    """The shipped architecture (its refinement starts from the image encoder's latent)."""
    torch.manual_seed(1)
    return DepthART(get_preset("tiny_cnn_refine")).eval()


def add_head(model: DepthART, width: int = 4, seed: int = 2, context: bool = False) -> DepthART:
    """`model` with a randomly initialised uncertainty head (its output layer too); `context`:
    a head that also reads the model's own features."""
    torch.manual_seed(seed)
    cfg = dataclasses.replace(model.cfg, uncertainty_width=width, uncertainty_context=context)
    headed = DepthART(cfg)
    missing, unexpected = headed.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("uncertainty_head.") for k in missing)
    torch.nn.init.normal_(headed.uncertainty_head.out.weight, std=0.3)
    return headed.eval()


def test_the_head_leaves_the_depth_alone_and_predicts_a_positive_error(refine_model):
    headed = add_head(refine_model)
    x = _image(batch=3)
    for sampling in (GREEDY, sampling_setting("soft")):
        plain = refine_model.infer(x, sampling)
        r = headed.infer(x, sampling, with_uncertainty=True)
        assert plain.uncertainty is None
        assert torch.equal(plain.depth, r.depth)
        assert all(torch.equal(a, b) for a, b in zip(plain.tokens, r.tokens, strict=True))
        assert r.uncertainty.shape == (3, 64, 64)
        assert (r.uncertainty > 0).all() and torch.isfinite(r.uncertainty).all()
        assert r.uncertainty.std() > 0  # it reads the image, not a constant
    # per image: batching does not mix images
    one = headed.infer(x[1:2], GREEDY, with_uncertainty=True).uncertainty
    torch.testing.assert_close(one[0], headed.infer(x, GREEDY, True).uncertainty[1])


def test_a_head_that_reads_the_models_own_features(refine_model):
    """`uncertainty_context`: the head also reads the image prefix's last scale (the conv
    encoder's features on the latent grid); the depth is untouched, the map follows those
    features, and a head without them is asked for none."""
    headed = add_head(refine_model, context=True)
    assert headed.uncertainty_context_channels == 128  # the prefix's feature channels
    x = _image(batch=2)
    soft = sampling_setting("soft")
    plain = refine_model.infer(x, soft)
    r = headed.infer(x, soft, with_uncertainty=True)
    assert torch.equal(plain.depth, r.depth)
    assert r.uncertainty.shape == (2, 64, 64) and bool((r.uncertainty > 0).all())
    # the context is the encoder's feature map itself
    _, _, head_in = headed.uncertainty_features(x, soft)
    features_BChw, _ = headed.transformer.image_encoder(x)
    torch.testing.assert_close(head_in.context, features_BChw, rtol=0, atol=0)
    # the context reaches the output: move its projection and the map moves
    moved = copy.deepcopy(headed)
    with torch.no_grad():
        moved.uncertainty_head.ctx_proj[-1].bias.add_(1.0)
    assert not torch.allclose(moved.infer(x, soft, True).uncertainty, r.uncertainty)
    # without it asked for, the pass gathers none; the heads check what they are given
    assert refine_model.uncertainty_features(x, soft)[2].context is None
    with pytest.raises(ValueError, match="reads 128 context channels, given None"):
        headed.uncertainty_head(head_in.pixels)
    plain_head = add_head(refine_model).uncertainty_head
    with pytest.raises(ValueError, match=r"reads 0 context channels, given \(2, 128, 8, 8\)"):
        plain_head(*head_in)
    with pytest.raises(ValueError, match="uncertainty_context needs an uncertainty head"):
        dataclasses.replace(refine_model.cfg, uncertainty_context=True)


def test_asking_a_model_without_a_head_for_uncertainty_names_the_fix(refine_model):
    with pytest.raises(ValueError, match="no uncertainty head.*uncertainty_head.py"):
        refine_model.infer(_image(), GREEDY, with_uncertainty=True)
    with pytest.raises(ValueError, match="multiple of 8"):
        dataclasses.replace(refine_model.cfg, image_size=60, uncertainty_width=4)
    with pytest.raises(ValueError, match="uncertainty_width must be >= 0"):
        dataclasses.replace(refine_model.cfg, uncertainty_width=-1)


def _image(batch: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g) * 2 - 1


@pytest.mark.parametrize("method", ESTIMATORS)
@pytest.mark.parametrize("which", ["tiny", "refine"])
def test_every_estimator_gives_the_plain_depth_and_a_finite_map(
    method, which, tiny_model, refine_model
):
    model = tiny_model if which == "tiny" else refine_model
    if method == "head":
        model = add_head(model)
    x = _image()
    depth, score = depth_and_uncertainty(model, x, method, GREEDY, k=3)
    assert depth.shape == score.shape == (2, 64, 64)
    assert torch.isfinite(score).all() and (score >= 0).all()
    assert score.amax() > 0
    # the depth is the decoding's own, not a mean of samples or of the mirrored pass
    torch.testing.assert_close(depth, model.predict_normalized(x, GREEDY), atol=2e-5, rtol=0)


def test_latent_spread_is_deterministic_and_per_image(refine_model):
    x = _image(batch=3)
    d1, s1 = latent_spread(refine_model, x, GREEDY)
    d2, s2 = latent_spread(refine_model, x, GREEDY)
    assert torch.equal(s1, s2) and torch.equal(d1, d2)
    # batching does not mix images: image 1 alone gives its own map
    _, s_one = latent_spread(refine_model, x[1:2], GREEDY)
    torch.testing.assert_close(s_one[0], s1[1], atol=1e-5, rtol=1e-4)


def test_latent_spread_follows_the_soft_decodings_distribution(refine_model):
    x = _image()
    soft = sampling_setting("soft")
    depth, score = latent_spread(refine_model, x, soft)
    torch.testing.assert_close(depth, refine_model.predict_normalized(x, soft), atol=2e-5, rtol=0)
    assert torch.isfinite(score).all()


def test_sample_spread_is_seeded(refine_model):
    x = _image()
    _, a = sample_spread(refine_model, x, GREEDY, k=3, seed=5)
    _, b = sample_spread(refine_model, x, GREEDY, k=3, seed=5)
    _, c = sample_spread(refine_model, x, GREEDY, k=3, seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_flip_disagreement_by_hand(refine_model):
    x = _image(batch=1)
    depth, score = flip_disagreement(refine_model, x, GREEDY)
    both = refine_model.predict_normalized(torch.cat([x, x.flip(-1)]), GREEDY)
    expected = (both[0] - both[1].flip(-1)).abs() / both[0].clamp_min(1e-3)
    torch.testing.assert_close(score[0], expected, atol=1e-5, rtol=1e-4)


def test_embedding_variance_by_hand():
    codebook = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    probs = torch.tensor([[[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]]])
    # one code: 0; two codes 2 apart with 1/2 each: 1; three: E|e|^2 = 8/3, |Ee|^2 = 8/9
    expected = torch.tensor([[0.0, 1.0, 8 / 3 - 8 / 9]])
    torch.testing.assert_close(embedding_variance(probs, codebook), expected)


def test_token_distribution_uses_the_decodings_filter():
    logits = torch.tensor([[[3.0, 2.0, 1.0, 0.0]]])
    assert torch.allclose(token_distribution(logits, GREEDY), logits.softmax(-1))
    top2 = SamplingConfig(greedy=False, soft=True, top_k=2)
    p = token_distribution(logits, top2)
    assert p[0, 0, 2:].sum() == 0 and torch.isclose(p.sum(), torch.tensor(1.0))


def _with_head(model: DepthART, bias: torch.Tensor) -> DepthART:
    """A copy whose token logits are `bias` everywhere, whatever the image."""
    m = copy.deepcopy(model)
    m.transformer.head.weight.data.zero_()
    m.transformer.head.bias.data.copy_(bias)
    return m


def test_a_confident_distribution_gives_a_lower_latent_spread(refine_model):
    V = refine_model.cfg.tokenizer.vocab_size
    peaked = torch.zeros(V)
    peaked[3] = 30.0
    x = _image()
    _, s_flat = latent_spread(_with_head(refine_model, torch.zeros(V)), x, GREEDY)
    _, s_peak = latent_spread(_with_head(refine_model, peaked), x, GREEDY)
    assert s_peak.max() < 1e-3 * s_flat.min()


def test_bad_settings_raise(refine_model):
    x = _image(batch=1)
    with pytest.raises(ValueError, match="k >= 2"):
        sample_spread(refine_model, x, GREEDY, k=1)
    with pytest.raises(ValueError, match="deterministic"):
        latent_spread(refine_model, x, sampling_setting("paper"))
    with pytest.raises(ValueError, match="unknown uncertainty estimator 'entropy'"):
        depth_and_uncertainty(refine_model, x, "entropy")


def test_isotonic_by_hand():
    # 3 > 1 pool into 2 (weights 1, 1); then 2, 2 stay; 5 stays
    assert np.allclose(isotonic(np.array([3.0, 1.0, 2.0, 5.0]), np.ones(4)), [2, 2, 2, 5])
    # weights: (4 * 1 + 1 * 3) / 2 ... pool 4 (w 1) and 1 (w 3): 1.75
    assert np.allclose(isotonic(np.array([4.0, 1.0]), np.array([1.0, 3.0])), [1.75, 1.75])


def test_fit_calibration_recovers_a_known_map():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 20000)
    errors = 0.1 * scores + rng.normal(0, 0.01, scores.size)  # E[error | score] = 0.1 score
    cal = fit_calibration("latent", scores, errors, bins=20)
    assert np.all(np.diff(cal.scores) > 0) and np.all(np.diff(cal.errors) >= 0)
    q = np.array([0.1, 0.5, 0.9])
    assert np.allclose(cal(q), 0.1 * q, atol=3e-3)
    assert cal(np.array([-5.0]))[0] == pytest.approx(cal.errors[0])  # constant beyond the ends
    assert np.isnan(cal(np.array([np.nan, np.inf, -np.inf]))).all()


def test_calibration_round_trip_and_bad_files(tmp_path):
    cal = UncertaintyCalibration("latent", (0.1, 0.2, 0.4), (0.05, 0.07, 0.2), {"seed": 932})
    path = tmp_path / "cal.json"
    cal.save(path)
    assert json.loads(path.read_text())["format"] == CALIBRATION_FORMAT
    assert UncertaintyCalibration.load(path) == cal
    with pytest.raises(FileNotFoundError, match="missing.json"):
        UncertaintyCalibration.load(tmp_path / "missing.json")
    path.write_text(json.dumps({**cal.to_dict(), "extra": 1}))
    with pytest.raises(ValueError, match="unknown key.*extra"):
        UncertaintyCalibration.load(path)
    with pytest.raises(ValueError, match="non-decreasing"):
        UncertaintyCalibration("latent", (0.1, 0.2), (0.2, 0.1))
    with pytest.raises(ValueError, match="unknown estimator"):
        UncertaintyCalibration("entropy", (0.1, 0.2), (0.1, 0.2))


@pytest.mark.parametrize("context", [False, True])
def test_training_the_head_keeps_the_depth_and_records_how(tmp_path, training_script, context):
    """training/uncertainty_head.py end to end on two tiny rendered sets: the written checkpoint
    has the head, its depth is bit-identical to the base's, the held-out loss is finite, and the
    metadata names the command, the base and both sets; with --context the head reads the
    model's own features and the checkpoint says so."""
    from depthart_core.checkpoint import load_checkpoint, save_checkpoint
    from depthart_core.data.synthetic.set import write_synthetic_set

    torch.manual_seed(0)
    base = DepthART(get_preset("tiny_cnn_refine")).eval()
    base_path = save_checkpoint(tmp_path / "base.safetensors", base, {"purpose": "tests"})
    roots = [tmp_path / "a", tmp_path / "b"]
    for seed, root in enumerate(roots):
        write_synthetic_set(root, count=4, seed=seed, size=(48, 64), progress=False)
    out = tmp_path / "with_head.safetensors"
    args = [a for r in roots for a in ("--train-root", str(r))]
    args += ["--checkpoint", str(base_path), "--out", str(out), "--width", "4"]
    args += ["--steps", "3", "--batch", "2", "--sampling", "soft", "--val-fraction", "0.25"]
    assert training_script("uncertainty_head").main(args + ["--context"] * context) == 0

    model, info = load_checkpoint(out)
    assert model.cfg.uncertainty_width == 4 and model.uncertainty_head is not None
    assert model.cfg.uncertainty_context is context
    assert model.uncertainty_head.context_channels == (128 if context else 0)
    meta = info["metadata"]["uncertainty_head"]
    assert meta["context"] is context
    assert meta["train_roots"] == [str(r) for r in roots] and meta["frames"] == 6
    assert meta["held_out_frames"] == 2 and meta["decoding"] == "soft"
    assert np.isfinite(meta["log"][-1]["val_nll"]) and "--width 4" in meta["command"]
    x = _image(batch=2)
    soft = sampling_setting("soft")
    with torch.no_grad():
        got = model.infer(x, soft, with_uncertainty=True)
        want = base.infer(x, soft)
    torch.testing.assert_close(got.depth, want.depth, rtol=0, atol=0)
    assert got.uncertainty is not None and bool((got.uncertainty > 0).all())


def info_sha(path) -> str:
    from depthart_core.checkpoint import file_sha256

    return file_sha256(path)


def test_a_head_swept_elsewhere_goes_into_the_checkpoint_unchanged(
    tmp_path, training_script, capsys
):
    """training/uncertainty_head_sweep.py (the GPU sweep) on tiny sets: `prepare` caches the
    inputs once, `train` writes a head and its scores, stopping at --max-seconds; then
    uncertainty_head.py --head-weights puts exactly those weights into a checkpoint whose depth
    is the base's, with the sweep's record in its metadata."""
    from safetensors.torch import load_file

    from depthart_core.checkpoint import load_checkpoint, save_checkpoint
    from depthart_core.data.synthetic.set import write_synthetic_set

    torch.manual_seed(0)
    base = DepthART(get_preset("tiny_cnn_refine")).eval()
    base_path = save_checkpoint(tmp_path / "base.safetensors", base, {"purpose": "tests"})
    for seed, name in enumerate(("train", "eval")):
        write_synthetic_set(tmp_path / name, count=5, seed=seed, size=(48, 64), progress=False)
    sweep = training_script("uncertainty_head_sweep")
    cache = str(tmp_path / "new" / "cache.safetensors")  # a folder not made yet
    common = ["--checkpoint", str(base_path), "--sampling", "soft", "--cache", cache]
    assert (
        sweep.main(
            [
                "prepare",
                "--train-root",
                str(tmp_path / "train"),
                "--eval-root",
                str(tmp_path / "eval"),
                *common,
            ]
        )
        == 0
    )
    out = tmp_path / "sweep"
    train = ["train", "--cache", cache, "--width", "4", "--batch", "2", "--out", str(out)]
    assert sweep.main([*train, "--name", "full", "--steps", "3"]) == 0
    assert sweep.main([*train, "--name", "cut", "--steps", "50", "--max-seconds", "0"]) == 0
    full = json.loads((out / "full.json").read_text())
    cut = json.loads((out / "cut.json").read_text())
    assert (full["steps"], cut["steps"], cut["planned_steps"]) == (3, 1, 50)
    assert full["train_frames"] == 4 and full["held_out_frames"] == 1
    assert full["eval_frames"] == 5 and 0 <= full["ause_ratio"] and np.isfinite(full["val_nll"])

    ckpt = tmp_path / "with_head.safetensors"
    assert (
        training_script("uncertainty_head").main(
            [
                "--train-root",
                "elsewhere",
                "--checkpoint",
                str(base_path),
                "--out",
                str(ckpt),
                "--head-weights",
                str(out / "full.safetensors"),
            ]
        )
        == 0
    )
    lone = tmp_path / "lone.safetensors"  # weights without the sweep's record beside them
    lone.write_bytes((out / "full.safetensors").read_bytes())
    with pytest.raises(SystemExit):
        training_script("uncertainty_head").main(
            [
                "--train-root",
                "x",
                "--checkpoint",
                str(base_path),
                "--out",
                str(tmp_path / "no"),
                "--head-weights",
                str(lone),
            ]
        )
    assert "beside the weights" in capsys.readouterr().err and not (tmp_path / "no").exists()
    assert full["checkpoint_sha256"] == info_sha(base_path) and full["decoding"] == "soft"
    torch.manual_seed(1)  # loading leaves the global RNG alone: draw other weights on purpose
    other = DepthART(get_preset("tiny_cnn_refine")).eval()  # another model: its errors differ
    other_path = save_checkpoint(tmp_path / "other.safetensors", other, {"purpose": "tests"})
    head = ["--train-root", "x", "--head-weights", str(out / "full.safetensors")]
    for base_args in (
        ["--checkpoint", str(other_path)],
        ["--checkpoint", str(base_path), "--sampling", "greedy"],
    ):
        with pytest.raises(SystemExit):
            training_script("uncertainty_head").main([*head, *base_args, "--out", str(lone)])
        err = capsys.readouterr().err
        assert f"was trained for checkpoint {full['checkpoint_sha256'][:12]} (soft)" in err, err
    with pytest.raises(SystemExit):  # --out onto the checkpoint it reads
        training_script("uncertainty_head").main(
            [*head, "--checkpoint", str(ckpt), "--out", str(ckpt)]
        )
    assert "is the checkpoint it reads" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # 5 frames, 5 held out: none left to train on
        training_script("uncertainty_head").main(
            ["--train-root", str(tmp_path / "train"), "--checkpoint", str(base_path),
             "--out", str(tmp_path / "none.safetensors"), "--val-fraction", "0.95"]
        )  # fmt: skip
    assert "leave none to train on" in capsys.readouterr().err
    model, info = load_checkpoint(ckpt)
    assert model.cfg.uncertainty_width == 4  # taken from the sweep's record
    weights = load_file(out / "full.safetensors")
    for k, v in model.uncertainty_head.state_dict().items():
        torch.testing.assert_close(v, weights[k], rtol=0, atol=0)
    meta = info["metadata"]["uncertainty_head"]
    assert meta["sweep"]["name"] == "full" and meta["steps"] == 3 and meta["frames"] == 4
    x = _image(batch=1)
    with torch.no_grad():
        got = model.infer(x, sampling_setting("soft"), with_uncertainty=True)
        want = base.infer(x, sampling_setting("soft"))
    torch.testing.assert_close(got.depth, want.depth, rtol=0, atol=0)


def test_fit_calibration_merges_tied_scores_whatever_their_order():
    """600 pixels share the score 0 (mean error 0.1): the claim at 0 is their mean, not the
    mean of the first bins' worth of them in pixel order."""
    s = np.r_[np.zeros(600), np.linspace(0.1, 1, 400)]
    e = np.r_[np.linspace(0, 0.2, 600), np.linspace(0.2, 0.5, 400)]
    for order in (slice(None), slice(None, None, -1)):
        cal = fit_calibration("samples", s[order], e[order], bins=10)
        assert float(cal(np.array([0.0]))[0]) == pytest.approx(0.1)
