"""`depthart eval` end to end on an iBims-1 / TUM fixture, and the report tables."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from depthart_core.cli import main
from depthart_core.evaluation import aggregate, evaluate
from depthart_core.evaluation.report import mean_ranks
from depthart_core.evaluation.runner import evaluate_predictions, load_models
from depthart_core.runtime.torch_backend import DepthEstimator


def _write_ibims(root, n=3, h=24, w=32):
    """iBims-1 raw layout: imagelist.txt and rgb/, depth/, mask_invalid/, mask_transp/ PNGs."""
    rng = np.random.default_rng(0)
    names = [f"scene_{i:02d}" for i in range(n)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "imagelist.txt").write_text("\n".join(names) + "\n")
    for d in ("rgb", "depth", "mask_invalid", "mask_transp"):
        (root / d).mkdir(parents=True)
    for i, name in enumerate(names):
        cv2.imwrite(str(root / "rgb" / f"{name}.png"), rng.integers(0, 256, (h, w, 3), np.uint8))
        depth = rng.integers(1000, 30000, (h, w)).astype(np.uint16)
        depth[0, :4] = 0
        cv2.imwrite(str(root / "depth" / f"{name}.png"), depth)
        ones = np.full((h, w), 255, np.uint8)
        if i == n - 1:
            ones[:] = 0  # an image with no valid pixel: skipped and counted, never scored
        cv2.imwrite(str(root / "mask_invalid" / f"{name}.png"), ones)
        cv2.imwrite(str(root / "mask_transp" / f"{name}.png"), np.full((h, w), 255, np.uint8))
    return names


def _write_tum(root, n=2, h=24, w=32):
    seq = root / "rgbd_dataset_freiburg2_desk"
    (seq / "rgb").mkdir(parents=True)
    (seq / "depth").mkdir()
    rng = np.random.default_rng(1)
    lines_rgb, lines_depth = ["# color images"], ["# depth maps"]
    for i in range(n):
        t = 10.0 + i
        cv2.imwrite(str(seq / f"rgb/{t:.6f}.png"), rng.integers(0, 256, (h, w, 3), np.uint8))
        cv2.imwrite(
            str(seq / f"depth/{t:.6f}.png"), rng.integers(2000, 40000, (h, w)).astype(np.uint16)
        )
        lines_rgb.append(f"{t:.6f} rgb/{t:.6f}.png")
        lines_depth.append(f"{t + 0.01:.6f} depth/{t:.6f}.png")
    (seq / "rgb.txt").write_text("\n".join(lines_rgb) + "\n")
    (seq / "depth.txt").write_text("\n".join(lines_depth) + "\n")


def test_report_numbers_equal_evaluate_on_the_same_predictions(
    tmp_path, tiny_checkpoint, monkeypatch
):
    root = tmp_path / "ibims"
    names = _write_ibims(root)
    seen = {}
    original = DepthEstimator.predict

    def recording_predict(self, rgb):
        out = original(self, rgb)
        seen[rgb.tobytes()] = out.copy()
        return out

    monkeypatch.setattr(DepthEstimator, "predict", recording_predict)
    out = tmp_path / "out"
    rc = main(
        [
            "eval",
            "--checkpoint",
            tiny_checkpoint,
            "--dataset",
            "ibims1",
            "--root",
            str(root),
            "--out",
            str(out),
            "--no-progress",
            "--backend",  # the default is auto; this test records the torch backend's predict
            "torch",
        ]
    )
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"] == "ibims1" and report["protocol"] == "depthart"
    assert report["backend"] == "torch" and len(report["checkpoint_sha256"]) == 64
    assert report["n_images"] == 2 and report["skipped_empty"] == 1
    assert [r["name"] for r in report["per_image"]] == names[:2]

    from depthart_core.data.benchmarks import get_dataset

    ds = get_dataset("ibims1", root)
    direct = []
    for row in report["per_image"]:
        s = ds[row["index"]]
        m = evaluate(seen[s.rgb.tobytes()], s.depth, s.valid, "depthart")
        direct.append(m)
        for k, v in m.items():
            assert row[k] == pytest.approx(v, rel=1e-12), k
    assert report["aggregate"] == pytest.approx(aggregate(direct, "depthart"), rel=1e-12)
    assert report["aggregate"]["abs_rel"] == pytest.approx(
        (direct[0]["abs_rel"] + direct[1]["abs_rel"]) / 2
    )
    md = (out / "report.md").read_text()
    assert "| Model | iBims-1 δ1↓ | iBims-1 AbsRel↓ | iBims-1 MAE↓ |" in md
    assert f"{report['aggregate']['abs_rel']:.3f}" in md
    png = cv2.imread(str(out / "samples.png"))
    assert png is not None and png.shape[1] > 2 * png.shape[0]  # 2 rows of 4 panels


def test_several_models_and_datasets_give_one_ranked_table(tmp_path):
    _write_ibims(tmp_path / "ibims", n=2)
    _write_tum(tmp_path / "tum")
    out = tmp_path / "table"
    rc = main(
        [
            "eval",
            "--baselines-only",
            "--baseline",
            "constant",
            "--baseline",
            "ramp",
            "--datasets",
            "ibims1,tum",
            "--roots",
            f"{tmp_path / 'ibims'},{tmp_path / 'tum'}",
            "--protocol",
            "depthart",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0
    table = json.loads((out / "report.json").read_text())
    assert [c["dataset"] for c in table["columns"]] == ["ibims1", "ibims1", "tum", "tum"]
    assert [m["model"] for m in table["models"]] == ["baseline:constant", "baseline:ramp"]
    for m in table["models"]:
        run = json.loads((out / m["model"].replace(":", "_") / "tum" / "report.json").read_text())
        assert m["results"]["tum"] == run["aggregate"]
    values = [
        [m["results"][c["dataset"]][c["metric"]] for c in table["columns"]] for m in table["models"]
    ]
    assert [m["rank"] for m in table["models"]] == mean_ranks(values, [False] * 4)
    md = (out / "report.md").read_text()
    assert "| Model | iBims-1 δ1↓ | iBims-1 AbsRel↓ | TUM δ1↓ | TUM AbsRel↓ | Rank↓ |" in md


def test_mean_ranks_hand_computed():
    # column 1 (lower better): a=0.1 b=0.2 c=0.2 -> ranks 1, 2.5, 2.5
    # column 2 (higher better): a=0.5 b=0.9 c=0.7 -> ranks 3, 1, 2
    ranks = mean_ranks([[0.1, 0.5], [0.2, 0.9], [0.2, 0.7]], [False, True])
    assert ranks == [2.0, 1.75, 2.25]


def test_evaluate_predictions_with_any_callable(tmp_path):
    from depthart_core.data.benchmarks import get_dataset

    _write_ibims(tmp_path, n=2)
    ds = get_dataset("ibims1", tmp_path)
    perfect = evaluate_predictions(
        ds, lambda rgb: 7.0 * ds[0].depth, "affine", limit=1, progress=False
    )
    assert perfect.n_images == 1 and perfect.aggregate["abs_rel"] < 1e-6  # float32 round-off
    assert perfect.aggregate["delta1"] == 1.0
    with pytest.raises(ValueError, match="prediction"):
        evaluate_predictions(ds, lambda rgb: np.ones((3, 3)), progress=False)


@pytest.mark.parametrize("with_uncertainty", [False, True])
@pytest.mark.parametrize("bad", ["nan", "zeros"])
def test_a_frame_the_model_cannot_score_is_named(tmp_path, bad, with_uncertainty):
    """A model whose depth is NaN (a broken checkpoint, an fp16 overflow) or all zero on one
    frame of a long run stops the run with that frame's name, not only what was wrong."""
    from depthart_core.data.benchmarks import get_dataset

    names = _write_ibims(tmp_path, n=3)  # the third has no valid pixel
    ds = get_dataset("ibims1", tmp_path)
    calls = iter(range(10))

    def depth(rgb):
        d = 1.0 + rgb[..., 0].astype(np.float32) / 255.0
        if next(calls) == 1:  # the second frame
            d[:] = np.nan if bad == "nan" else 0.0
        return d

    def depth_and_claim(rgb):
        d = depth(rgb)
        return d, np.full(d.shape, 0.1, np.float32)

    kw = {"predict_uncertainty": depth_and_claim} if with_uncertainty else {}
    with pytest.raises(ValueError) as err:
        evaluate_predictions(ds, depth, progress=False, **kw)
    assert str(err.value).startswith(f"{names[1]}: "), err.value
    assert "finite" in str(err.value) or "> 0" in str(err.value), err.value


def test_eval_size_scores_at_the_papers_resolution(tmp_path):
    from depthart_core.data.benchmarks import get_dataset

    _write_ibims(tmp_path, n=2)
    ds = get_dataset("ibims1", tmp_path)
    res = evaluate_predictions(
        ds, lambda rgb: np.ones(rgb.shape[:2]), limit=1, eval_size=8, progress=False
    )
    assert res.per_image[0]["n_valid"] <= 64


def test_cli_errors_name_the_problem(tmp_path, capsys):
    assert main(["eval", "--dataset", "ibims1", "--out", str(tmp_path), "--baseline", "ramp"]) == 1
    assert "needs --root" in capsys.readouterr().err
    assert (
        main(
            [
                "eval",
                "--datasets",
                "ibims1,tum",
                "--roots",
                str(tmp_path),
                "--baseline",
                "ramp",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 1
    )
    assert "2 dataset(s)" in capsys.readouterr().err
    # one dataset twice (two roots): its runs would overwrite each other in one table
    argv = ["eval", "--datasets", "synthetic,synthetic", "--roots", f"{tmp_path},{tmp_path}"]
    assert main([*argv, "--baseline", "ramp", "--out", str(tmp_path / "twice")]) == 1
    assert "dataset synthetic given more than once" in capsys.readouterr().err
    assert not (tmp_path / "twice").exists()


def test_models_are_built_by_the_one_backend_factory(monkeypatch, tiny_checkpoint):
    import depthart_core.evaluation.runner as runner

    with pytest.raises(ValueError, match="unknown backend 'openvino'"):
        load_models([str(tiny_checkpoint)], backend="openvino")
    calls = []

    def fake_get_backend(
        name,
        checkpoint,
        device="cpu",
        letterbox=False,
        threads=0,
        sampling=None,
        vae=None,
        flip_average=False,
        vae_setting=None,
    ):
        calls.append((name, checkpoint, device, letterbox, threads, flip_average))
        assert sampling is None and vae is None  # greedy, no separate VQ-VAE
        assert vae_setting is None  # load_models' own default: no --vae to name
        return DepthEstimator.from_checkpoint(checkpoint)

    monkeypatch.setattr(runner, "get_backend", fake_get_backend)
    (m,) = load_models(
        [str(tiny_checkpoint)], backend="onnxruntime", letterbox=True, threads=2, flip_average=True
    )
    assert calls == [("onnxruntime", str(tiny_checkpoint), "cpu", True, 2, True)]
    assert m.sha256 is not None and m.backend == "torch"


def test_the_shipped_default_is_recorded_by_path_and_hash():
    """`depthart eval` without --checkpoint scores the shipped default: its report names that
    file and its sha256, as for any other checkpoint (it used to say null)."""
    from depthart_core.checkpoint import default_checkpoint_path, file_sha256

    (model,) = load_models([None], uncertainty=False)
    assert model.label == "default"
    assert model.checkpoint == str(default_checkpoint_path().resolve())
    assert model.sha256 == file_sha256(default_checkpoint_path())


def test_a_non_finite_uncertainty_is_counted_and_the_depth_still_scored(tmp_path, caplog):
    """A head that gives NaN / Inf for some pixels must not abort the run (the depth metrics
    were lost): those pixels are counted, left out of the uncertainty measures, and said."""
    from depthart_core.data.benchmarks import get_dataset
    from depthart_core.evaluation.report import uncertainty_section

    _write_ibims(tmp_path, n=3)  # the third has no valid pixel
    ds = get_dataset("ibims1", tmp_path)
    calls = iter(range(10))

    def depth_and_claim(rgb):
        d = 1.0 + rgb[..., 0].astype(np.float32) / 255.0
        u = np.linspace(0.01, 0.2, d.size, dtype=np.float32).reshape(d.shape)
        if next(calls) == 0:
            u[0, :5], u[1, 0] = np.nan, np.inf
        return d, u

    res = evaluate_predictions(
        ds, None, limit=2, progress=False, predict_uncertainty=depth_and_claim
    )
    assert res.n_images == 2 and np.isfinite(res.aggregate["abs_rel"])
    u = res.uncertainty
    v0 = ds[0].valid
    bad = int(v0[0, :5].sum() + v0[1, 0])
    assert bad > 0 and u["frames"] == 2 and u["nonfinite_pixels"] == bad
    assert u["pooled_pixels"] == int(sum(ds[i].valid.sum() for i in range(2))) - bad
    assert f"{bad} valid pixels had a non-finite" in "\n".join(uncertainty_section(u))
    assert "not finite" in caplog.text

    def all_nan(rgb):
        d, u = depth_and_claim(rgb)
        return d, np.full_like(u, np.nan)

    res = evaluate_predictions(ds, None, limit=2, progress=False, predict_uncertainty=all_nan)
    assert res.n_images == 2 and res.uncertainty is None
    assert "uncertainty not scored" in caplog.text


def test_report_shows_what_each_uncertainty_max_drops_and_flat_frames():
    from depthart_core.evaluation.report import uncertainty_section
    from depthart_core.evaluation.runner import UNCERTAINTY_THRESHOLDS
    from depthart_core.evaluation.uncertainty_metrics import UncertaintyTally

    rng = np.random.default_rng(0)
    t = UncertaintyTally()
    for _ in range(3):
        e = rng.uniform(0.0, 0.3, 400)
        t.add(e, e + rng.normal(0, 0.02, 400))
    t.add(rng.uniform(0.0, 0.3, 400), np.full(400, 0.1))  # a flat map: no ranking
    u = t.summary(thresholds=UNCERTAINTY_THRESHOLDS)
    md = "\n".join(uncertainty_section(u))
    frac = float(np.mean(np.concatenate(t._scores) > 0.15))
    assert f"| 0.15 | {100 * frac:.1f} % |" in md
    assert "leaves out 1 of 4 frames" in md and u["spearman_undefined_frames"] == 1


def test_models_whose_names_clash_get_folders_of_their_own(tmp_path, tiny_checkpoint):
    """Labels that differ can share a safe name (深度 and 模型 are both "_" -> "model"), and a
    stem ".." named the folder above --out: each model gets its own folder inside --out."""
    import shutil

    _write_tum(tmp_path / "tum")
    ck = tmp_path / "ck"
    ck.mkdir()
    a, b = ck / "深度.safetensors", ck / "模型.safetensors"
    for p in (a, b):
        shutil.copy(tiny_checkpoint, p)
    dots = ck / "...safetensors"  # its stem is ".."
    shutil.copy(tiny_checkpoint, dots)
    out = tmp_path / "ev" / "run"
    argv = ["eval", "--dataset", "tum", "--root", str(tmp_path / "tum"), "--backend", "torch"]
    for c in (a, b, dots):
        argv += ["--checkpoint", str(c)]
    assert main([*argv, "--out", str(out), "--no-progress", "--limit", "1"]) == 0
    runs = json.loads((out / "report.json").read_text())["runs"]
    assert len(set(runs)) == 3, runs
    assert all((out / r).is_file() for r in runs)
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["run"]  # nothing beside it


def test_run_checkpoints_are_named_by_their_run_folder_and_listed_with_paths(
    tmp_path, tiny_checkpoint
):
    """Two runs' `checkpoint.safetensors` were "checkpoint" and "checkpoint-2" in report.md, with
    no path there: each is named by its run folder, and report.md lists name -> file."""
    import shutil

    _write_tum(tmp_path / "tum")
    ckpts = []
    for run in ("a", "b"):
        (tmp_path / "runs" / run).mkdir(parents=True)
        ckpts.append(tmp_path / "runs" / run / "checkpoint.safetensors")
        shutil.copy(tiny_checkpoint, ckpts[-1])
    out = tmp_path / "ev"
    argv = ["eval", "--dataset", "tum", "--root", str(tmp_path / "tum"), "--backend", "torch"]
    for c in ckpts:
        argv += ["--checkpoint", str(c)]
    assert main([*argv, "--out", str(out), "--no-progress", "--limit", "1"]) == 0
    table = json.loads((out / "report.json").read_text())
    assert [m["model"] for m in table["models"]] == ["a", "b"]
    md = (out / "report.md").read_text()
    for name, c in zip(("a", "b"), ckpts, strict=True):
        assert f"- {name}: `{c}`" in md, md


def _synth_set(root, count=4):
    from depthart_core.data.synthetic.set import write_synthetic_set

    write_synthetic_set(root, count=count, seed=0, size=(32, 48), progress=False)
    return root


def _break(root, i, how):
    """Damage frame i of a synthetic set: a PNG cut short keeping its header, or a depth PNG of
    another size than its RGB."""
    rgb, depth = root / "rgb" / f"{i:06d}.png", root / "depth" / f"{i:06d}.png"
    if how == "truncated":
        rgb.write_bytes(rgb.read_bytes()[:100])
        return rgb
    cv2.imwrite(str(depth), np.full((16, 16), 2000, np.uint16))
    return depth


def _eval_cli(out, *data):
    argv = ["eval", "--baselines-only", "--baseline", "ramp", *data, "--out", str(out)]
    return main([*argv, "--no-progress"])


@pytest.mark.parametrize("how", ["truncated", "size_mismatch"])
def test_a_frame_that_cannot_be_read_is_skipped_listed_and_the_run_exits_1(
    tmp_path, capsys, caplog, how
):
    """One bad frame of a user's set no longer throws away every frame already scored."""
    root = _synth_set(tmp_path / "own")
    bad = _break(root, 1, how)
    out = tmp_path / "o_eval"
    assert _eval_cli(out, "--dataset", "synthetic", "--root", str(root)) == 1
    report = json.loads((out / "report.json").read_text())
    assert [r["index"] for r in report["per_image"]] == [0, 2, 3]  # the others, scored
    assert report["n_images"] == 3 and report["skipped_unreadable"] == 1
    [frame] = report["unreadable"]
    assert frame["index"] == 1 and str(bad) in frame["error"]
    why = "cannot decode" if how == "truncated" else "differ in size"
    assert why in frame["error"]
    abs_rel = np.mean([r["abs_rel"] for r in report["per_image"]])
    assert report["aggregate"]["abs_rel"] == pytest.approx(abs_rel)  # over the frames scored
    md = (out / "report.md").read_text()
    assert "could not be read: 1" in md and f"- frame 1: {frame['error']}" in md
    assert (out / "samples.png").is_file()
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("frame 1 not scored" in w and str(bad) in w for w in warned), warned
    assert "1 frame(s) could not be read" in capsys.readouterr().err


def test_a_dataset_none_of_whose_frames_can_be_read_is_an_error_naming_it(tmp_path, capsys):
    root = _synth_set(tmp_path / "own", count=2)
    for i in range(2):
        _break(root, i, "truncated")
    assert _eval_cli(tmp_path / "out", "--dataset", "synthetic", "--root", str(root)) == 1
    err = capsys.readouterr().err
    assert "dataset synthetic: none of the 2 frames to score could be read" in err, err


def test_other_readers_skip_bad_frames_and_the_combined_table_lists_them(tmp_path, capsys):
    """iBims-1 with a missing mask, TUM with a depth PNG cut short: both through `_io`."""
    names = _write_ibims(tmp_path / "ibims", n=3)
    (tmp_path / "ibims" / "mask_transp" / f"{names[0]}.png").unlink()
    _write_tum(tmp_path / "tum", n=3)
    depth = sorted((tmp_path / "tum").glob("*/depth/*.png"))[2]
    depth.write_bytes(depth.read_bytes()[:100])
    out = tmp_path / "table"
    roots = f"{tmp_path / 'ibims'},{tmp_path / 'tum'}"
    data = ["--datasets", "ibims1,tum", "--roots", roots, "--baseline", "constant"]
    assert _eval_cli(out, *data) == 1
    table = json.loads((out / "report.json").read_text())
    assert table["skipped_unreadable"] == 2
    assert [b["index"] for b in table["unreadable"]["ibims1"]] == [0]
    assert "mask_transp" in table["unreadable"]["ibims1"][0]["error"]
    assert [b["index"] for b in table["unreadable"]["tum"]] == [2]
    run = json.loads((out / "baseline_ramp" / "tum" / "report.json").read_text())
    assert [r["index"] for r in run["per_image"]] == [0, 1] and run["skipped_unreadable"] == 1
    md = (out / "report.md").read_text()
    assert "TUM: 1 frame(s) could not be read" in md and str(depth) in md
    assert "2 frame(s) could not be read" in capsys.readouterr().err


def test_a_benchmark_frame_whose_rgb_and_depth_differ_in_size_is_skipped(tmp_path):
    """Every reader's own size checks raise the frame error, not one that stops the run."""
    names = _write_ibims(tmp_path / "ibims", n=3)
    small = np.full((12, 16), 255, np.uint8)
    cv2.imwrite(str(tmp_path / "ibims" / "mask_invalid" / f"{names[1]}.png"), small)
    _write_tum(tmp_path / "tum", n=3)
    depth = sorted((tmp_path / "tum").glob("*/depth/*.png"))[0]
    cv2.imwrite(str(depth), np.full((12, 16), 5000, np.uint16))
    out = tmp_path / "table"
    roots = f"{tmp_path / 'ibims'},{tmp_path / 'tum'}"
    data = ["--datasets", "ibims1,tum", "--roots", roots, "--baseline", "constant"]
    assert _eval_cli(out, *data) == 1
    table = json.loads((out / "report.json").read_text())
    assert [b["index"] for b in table["unreadable"]["ibims1"]] == [1]
    assert "vs depth" in table["unreadable"]["ibims1"][0]["error"]
    assert [b["index"] for b in table["unreadable"]["tum"]] == [0]
    assert str(depth) in table["unreadable"]["tum"][0]["error"]


@pytest.mark.parametrize(
    "extra, said",
    [
        (["--sampling", "paper", "--seed", "5"], "--sampling, --seed set"),
        (["--flip-average", "--backend", "torch"], "--backend, --flip-average set"),
        (["--checkpoint", "x.safetensors"], "--baselines-only scores no checkpoint"),
    ],
)
def test_baselines_only_refuses_the_options_of_a_model(tmp_path, capsys, extra, said):
    """No model runs under --baselines-only: its options were accepted and did nothing."""
    root = _synth_set(tmp_path / "own")
    out = tmp_path / "o"
    assert _eval_cli(out, "--dataset", "synthetic", "--root", str(root), *extra) != 0
    assert said in capsys.readouterr().err and not out.exists()
