"""The shipped default checkpoint: loads strictly, and sees depth on synthetic scenes from a seed
it never saw (issue #14's acceptance check, run from a clean clone).

Protocol: 200 frames of seed 777 rendered at 256 x 256 and written as a synthetic set, predicted
through `DepthEstimator.predict` (the user's call, depth at the input size), median scale
alignment, AbsRel and delta1_bad; this is `depthart eval --dataset synthetic --protocol
depthart --baseline mean_depth`. The bar: AbsRel at most 0.6 x the mean-depth-map prior's (the
mean of d / q98(d) over the first 512 frames of the training stream, seed 0) and delta1_bad
below the prior's.
"""

from __future__ import annotations

import pytest

from depthart_core.checkpoint import default_checkpoint_path, load_checkpoint
from depthart_core.data.synthetic.set import SyntheticSet, write_synthetic_set
from depthart_core.evaluation.runner import PRIOR_SEED, evaluate_predictions, mean_depth_baseline
from depthart_core.runtime.torch_backend import DepthEstimator

EVAL_SEED, EVAL_COUNT, EVAL_SIZE = 777, 200, 256
ABS_REL_BAR = 0.6  # x the prior's AbsRel


@pytest.fixture(scope="module")
def shipped():
    path = default_checkpoint_path()
    if not path.is_file():
        pytest.fail(f"the shipped checkpoint {path} is missing")
    return path


def test_shipped_checkpoint_metadata_records_its_training(shipped):
    _, info = load_checkpoint(shipped)
    meta = info["metadata"]
    assert meta["mode"] == "depthart"
    assert meta["training_commands"], "the exact training commands must be recorded"
    assert EVAL_SEED not in (meta["data_seed"], meta["val_seed"], PRIOR_SEED)
    assert "abs_rel" in meta["val_metrics"]


def test_shipped_checkpoint_sees_depth_on_unseen_scenes(shipped, tmp_path):
    est = DepthEstimator.from_checkpoint(shipped)
    root = tmp_path / f"synth_seed{EVAL_SEED}"
    write_synthetic_set(root, EVAL_COUNT, EVAL_SEED, (EVAL_SIZE, EVAL_SIZE), progress=False)
    ds = SyntheticSet(root)
    model = evaluate_predictions(ds, est.predict, protocol="depthart", progress=False).aggregate
    prior = evaluate_predictions(
        ds, mean_depth_baseline, protocol="depthart", progress=False
    ).aggregate
    print(f"shipped: {model}\nmean-depth prior: {prior}")
    assert model["abs_rel"] <= ABS_REL_BAR * prior["abs_rel"], (model, prior)
    assert model["delta1_bad"] < prior["delta1_bad"], (model, prior)
