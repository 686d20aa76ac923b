"""`depthart eval` over several datasets: one with no readable frame is reported as not scored
and every other dataset and model is still scored, the combined report written, exit status 1."""

from __future__ import annotations

import json

import pytest
from test_eval_runner import _break, _eval_cli, _synth_set, _write_ibims, _write_tum

from depthart_core.evaluation.report import mean_ranks, write_combined


def _all_bad_synth(root, count=2):
    root = _synth_set(root, count=count)
    for i in range(count):
        _break(root, i, "truncated")  # every RGB PNG cut short: nothing of the set is readable
    return root


def test_a_dataset_with_no_readable_frame_between_two_good_ones_is_marked_the_rest_scored(
    tmp_path, capsys
):
    _write_ibims(tmp_path / "ibims", n=3)
    bad = _all_bad_synth(tmp_path / "syn")
    _write_tum(tmp_path / "tum", n=2)
    out = tmp_path / "table"
    roots = ",".join(str(tmp_path / d) for d in ("ibims", "syn", "tum"))
    data = ["--datasets", "ibims1,synthetic,tum", "--roots", roots, "--baseline", "constant"]
    assert _eval_cli(out, *data) == 1
    for model in ("baseline_ramp", "baseline_constant"):  # both good datasets, both models
        for key in ("ibims1", "tum"):
            run = json.loads((out / model / key / "report.json").read_text())
            assert run["n_images"] > 0 and run["skipped_unreadable"] == 0
        assert not (out / model / "synthetic").exists()
    table = json.loads((out / "report.json").read_text())
    assert [m["model"] for m in table["models"]] == ["baseline:ramp", "baseline:constant"]
    for m in table["models"]:
        assert list(m["results"]) == ["ibims1", "synthetic", "tum"]
        assert m["results"]["synthetic"] is None  # null, never a number
        assert m["results"]["tum"]["abs_rel"] > 0
    cells = table["not_scored"]
    assert {(c["model"], c["dataset"]) for c in cells} == {
        ("baseline:ramp", "synthetic"),
        ("baseline:constant", "synthetic"),
    }
    why = cells[0]["reason"]
    assert "dataset synthetic: none of the 2 frames to score could be read" in why, why
    assert f"cannot decode image {bad / 'rgb' / '000000.png'}" in why, why
    assert cells[0]["frames"] == 2
    assert table["skipped_unreadable"] == 2
    assert [b["index"] for b in table["unreadable"]["synthetic"]] == [0, 1]
    assert len(table["runs"]) == 4 and not any("synthetic" in r for r in table["runs"])

    # the rank: over the four columns both models have (iBims-1 and TUM), never the missing ones
    assert [(c["dataset"], c["metric"]) for c in table["rank_columns"]] == [
        (d, m) for d in ("ibims1", "tum") for m in ("delta1_bad", "abs_rel")
    ]
    cols = [(c["dataset"], c["metric"]) for c in table["rank_columns"]]
    values = [[m["results"][d][k] for d, k in cols] for m in table["models"]]
    expect = mean_ranks(values, [False] * len(cols))
    assert [m["rank"] for m in table["models"]] == pytest.approx(expect)

    md = (out / "report.md").read_text()
    [ramp] = [line for line in md.splitlines() if line.startswith("| baseline:ramp |")]
    assert ramp.split(" | ")[3:5] == ["—", "—"], ramp  # Synthetic δ1, AbsRel
    assert "**Not scored**" in md and f"- Synthetic: {why}" in md
    assert "over the 4 of 6 columns every model has a value in; left out: Synthetic" in md
    err = capsys.readouterr().err
    assert "not scored, none of its frames could be read: synthetic" in err, err
    assert "frame(s) could not be read" not in err  # the other datasets lost no frame


def _run(model, dataset, **aggregate):
    return {
        "model": model,
        "dataset": dataset,
        "checkpoint": None,
        "checkpoint_sha256": None,
        "backend": "baseline",
        "aggregate": {"delta1_bad": 0.5, "mae": 1.0, **aggregate},
    }


def _not_scored(model, dataset):
    frames = [{"index": 0, "error": "cannot decode image x.png"}]
    return {
        "model": model,
        "dataset": dataset,
        "reason": "none could be read",
        "unreadable": frames,
    }


def test_the_rank_leaves_out_a_column_a_model_has_no_value_in(tmp_path):
    """One model lacks tum (others have it): tum counts for nobody; a model's missing value is
    never ranked as if it were one."""
    runs = [
        _run("a", "ibims1", abs_rel=0.1),
        _run("b", "ibims1", abs_rel=0.2),
        _run("c", "ibims1", abs_rel=0.3),
        _run("a", "tum", abs_rel=0.9),
        _run("b", "tum", abs_rel=0.1),
    ]
    data = write_combined(tmp_path, runs, ["ibims1", "tum"], "depthart", [_not_scored("c", "tum")])
    ranked = [(c["dataset"], c["metric"]) for c in data["rank_columns"]]
    assert ranked == [("ibims1", "delta1_bad"), ("ibims1", "abs_rel")]
    # delta1_bad ties (2, 2, 2), abs_rel 1, 2, 3
    assert [m["rank"] for m in data["models"]] == pytest.approx([1.5, 2.0, 2.5])
    assert data["models"][2]["results"]["tum"] is None
    md = (tmp_path / "report.md").read_text()
    assert "| c | 0.500 | 0.300 | — | — | 2.5 |" in md, md
    assert "- TUM for c: none could be read" in md

    # no column every model has: no rank at all, said
    runs = [_run("a", "ibims1", abs_rel=0.1), _run("b", "tum", abs_rel=0.1)]
    missing = [_not_scored("a", "tum"), _not_scored("b", "ibims1")]
    data = write_combined(tmp_path / "none", runs, ["ibims1", "tum"], "depthart", missing)
    assert [m["rank"] for m in data["models"]] == [None, None] and data["rank_columns"] == []
    md = (tmp_path / "none" / "report.md").read_text()
    assert "Rank↓" not in md and "No rank: no column has a value for every model" in md


def test_nothing_readable_in_any_dataset_is_one_error_and_writes_nothing(tmp_path, capsys):
    """Several datasets, none readable: no table to write, the error names each."""
    _all_bad_synth(tmp_path / "syn")
    _write_tum(tmp_path / "tum", n=2)
    for depth in (tmp_path / "tum").glob("*/depth/*.png"):
        depth.write_bytes(depth.read_bytes()[:100])
    out = tmp_path / "table"
    roots = f"{tmp_path / 'syn'},{tmp_path / 'tum'}"
    assert _eval_cli(out, "--datasets", "synthetic,tum", "--roots", roots) == 1
    err = capsys.readouterr().err
    assert "error: nothing could be scored: dataset synthetic: none of the 2 frames" in err, err
    assert "; dataset tum: none of the 2 frames" in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()  # one line, nothing written

    # one model, one dataset: the dataset's error as before, nothing written
    assert _eval_cli(out, "--dataset", "synthetic", "--root", str(tmp_path / "syn")) == 1
    err = capsys.readouterr().err
    assert "error: dataset synthetic: none of the 2 frames to score could be read" in err, err
    assert not out.exists()
