"""The shipped default checkpoint: loads strictly, and sees depth on synthetic scenes from a seed
it never saw (issue #14's acceptance check, run from a clean clone).

Protocol: 200 frames of seed 777 rendered at 256 x 256 and written as a synthetic set, predicted
through `DepthEstimator.predict` (the user's call, depth at the input size), median scale
alignment, AbsRel and delta1_bad; this is `depthart eval --dataset synthetic --protocol
depthart --baseline mean_depth`. The bar: AbsRel at most 0.6 x the mean-depth-map prior's (the
mean of d / q98(d) over the first 512 frames of the training stream, seed 0) and delta1_bad
below the prior's.

Issue 24's refinement bar, on the same frames: with the default decoding (soft), the output's
AbsRel at most 0.9 x that of the latent the next-scale loop starts from (the conv encoder's
estimate, decoded as it is; `depthart_core.evaluation.scales`, as `training/diagnostics.py
scales` measures it).
"""

from __future__ import annotations

import numpy as np
import pytest

from depthart_core.checkpoint import default_checkpoint_path, load_checkpoint
from depthart_core.data.synthetic.set import SyntheticSet, write_synthetic_set
from depthart_core.evaluation.runner import PRIOR_SEED, evaluate_predictions, mean_depth_baseline
from depthart_core.evaluation.scales import scale_curve
from depthart_core.runtime.torch_backend import DepthEstimator
from depthart_core.sampling import sampling_setting

EVAL_SEED, EVAL_COUNT, EVAL_SIZE = 777, 200, 256
ABS_REL_BAR = 0.6  # x the prior's AbsRel
REFINE_BAR = 0.9  # output AbsRel / start AbsRel, default decoding (issue 24)


@pytest.fixture(scope="module")
def shipped():
    path = default_checkpoint_path()
    if not path.is_file():
        pytest.fail(f"the shipped checkpoint {path} is missing")
    return path


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("shipped") / f"synth_seed{EVAL_SEED}"
    write_synthetic_set(root, EVAL_COUNT, EVAL_SEED, (EVAL_SIZE, EVAL_SIZE), progress=False)
    return SyntheticSet(root)


def test_shipped_checkpoint_metadata_records_its_training(shipped):
    _, info = load_checkpoint(shipped)
    meta = info["metadata"]
    assert meta["mode"] == "depthart"
    assert meta["training_commands"], "the exact training commands must be recorded"
    assert EVAL_SEED not in (meta["data_seed"], meta["val_seed"], PRIOR_SEED)
    assert "abs_rel" in meta["val_metrics"]


def test_shipped_checkpoint_sees_depth_on_unseen_scenes(shipped, eval_set):
    est = DepthEstimator.from_checkpoint(shipped)
    ds = eval_set
    model = evaluate_predictions(ds, est.predict, protocol="depthart", progress=False).aggregate
    prior = evaluate_predictions(
        ds, mean_depth_baseline, protocol="depthart", progress=False
    ).aggregate
    print(f"shipped: {model}\nmean-depth prior: {prior}")
    assert model["abs_rel"] <= ABS_REL_BAR * prior["abs_rel"], (model, prior)
    assert model["delta1_bad"] < prior["delta1_bad"], (model, prior)


def test_shipped_refinement_lowers_the_error_of_its_own_start(shipped, eval_set):
    model, _ = load_checkpoint(shipped)
    assert model.cfg.transformer.refine_from_image_latent, "the default refines an estimate"
    res_Nk = scale_curve(model, list(eval_set), sampling_setting("soft"))
    start, output = res_Nk[:, 0].mean(), res_Nk[:, -1].mean()
    print(f"AbsRel after k scales: {np.round(res_Nk.mean(0), 4)}; output / start "
          f"{output / start:.3f}")  # fmt: skip
    assert output <= REFINE_BAR * start, (output, start)
