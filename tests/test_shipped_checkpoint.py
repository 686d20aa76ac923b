"""The shipped default checkpoint: loads strictly, and beats the trivial mean-depth prior on
synthetic scenes from a seed it never saw (the issue's acceptance check, run from a clean clone).

Same protocol as training/ablation.py: 200 frames of seed 777 written as a synthetic set at the
model resolution, median scale alignment, AbsRel and delta1_bad. The prior is the mean of
d / q98(d) over the first 512 frames of the training stream (seed 0).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthart_core.checkpoint import default_checkpoint_path, load_checkpoint
from depthart_core.data.synthetic.config import SynthConfig
from depthart_core.data.synthetic.render import render_batch
from depthart_core.data.synthetic.set import SyntheticSet, write_synthetic_set
from depthart_core.evaluation.runner import evaluate_predictions
from depthart_core.runtime.torch_backend import DepthEstimator
from depthart_core.tokenizer.codec import decode_depth, encode_depth

EVAL_SEED, EVAL_COUNT = 777, 200


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
    assert meta["data_seed"] != EVAL_SEED and meta["val_seed"] != EVAL_SEED
    assert "abs_rel" in meta["val_metrics"]


def test_shipped_checkpoint_beats_the_trivial_prior_on_unseen_scenes(shipped, tmp_path):
    est = DepthEstimator.from_checkpoint(shipped)
    S = est.image_size
    root = tmp_path / f"synth_seed{EVAL_SEED}"
    write_synthetic_set(root, EVAL_COUNT, EVAL_SEED, (S, S), progress=False)
    ds = SyntheticSet(root)

    acc = torch.zeros(S, S, dtype=torch.float64)
    for start in range(0, 512, 64):
        b = render_batch(0, list(range(start, start + 64)), SynthConfig(size=(S, S)))
        acc += decode_depth(encode_depth(b["depth"], b["valid"])[0]).double().sum(0)
    prior_SS = (acc / 512).float().numpy()

    def trivial(rgb: np.ndarray) -> np.ndarray:
        import cv2

        return cv2.resize(prior_SS, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)

    model = evaluate_predictions(ds, est.predict, protocol="depthart", progress=False).aggregate
    prior = evaluate_predictions(ds, trivial, protocol="depthart", progress=False).aggregate
    print(f"shipped: {model}\ntrivial: {prior}")
    assert model["abs_rel"] < prior["abs_rel"], (model, prior)
    assert model["delta1_bad"] < prior["delta1_bad"], (model, prior)
