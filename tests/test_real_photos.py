"""training/real_photos.py: the figure and the motorcycle metrics, per checkpoint and prior."""

from __future__ import annotations

import re

import cv2
import pytest

pytest.importorskip("skimage", reason="the bundled photographs come with scikit-image")
pytest.importorskip("matplotlib", reason="grace_hopper comes with matplotlib")
pytest.importorskip("sklearn", reason="china and flower come with scikit-learn")


def test_figure_and_metrics_for_a_checkpoint_and_its_flip_average(
    tiny_checkpoint, tmp_path, capsys, training_script
):
    mod = training_script("real_photos")
    out = tmp_path / "real.png"
    assert mod.main([tiny_checkpoint, f"{tiny_checkpoint}+flip", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    rows = dict(
        re.findall(r"motorcycle \(left\): (.+?): AbsRel .* ordinal within rows (\S+)", text)
    )
    assert set(rows) == {"tiny", "tiny+flip", "mean-depth prior", "ramp (floor only)", "constant"}
    assert float(rows["constant"]) == 0.5  # a constant map ties every pair
    assert abs(float(rows["ramp (floor only)"]) - 0.5) < 0.05  # no floor cue within rows
    flower = dict(re.findall(r"flower: (.+?): figure-ground (\S+)", text))
    assert set(flower) == set(rows)
    assert float(flower["constant"]) == 0.5
    fig = cv2.imread(str(out))
    assert fig is not None and fig.shape[0] == 5 * 184  # five photographs, 180 px rows + gaps


def test_flower_mask_is_the_one_object_in_focus(training_script):
    mod = training_script("real_photos")
    name, img, _ = mod.photos()[-1]
    mask = mod.flower_mask(img)
    assert name == "flower" and mask.shape == img.shape[:2]
    assert 0.15 < mask.mean() < 0.3  # the dahlia, not the garden
    assert mask[120:300, 220:400].mean() > 0.8  # the dahlia's petals around its centre
    assert not mask[:60].any() and not mask[:, :150].any()  # the blurred garden above and left
