"""training/real_photos.py: the figure and the motorcycle metrics, per checkpoint and prior."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import cv2
import pytest

pytest.importorskip("skimage", reason="the bundled photographs come with scikit-image")
pytest.importorskip("matplotlib", reason="grace_hopper comes with matplotlib")

SCRIPT = Path(__file__).resolve().parent.parent / "training" / "real_photos.py"


def _load():
    spec = importlib.util.spec_from_file_location("real_photos", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["real_photos"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_figure_and_metrics_for_a_checkpoint_and_its_flip_average(
    tiny_checkpoint, tmp_path, capsys
):
    mod = _load()
    out = tmp_path / "real.png"
    assert mod.main([tiny_checkpoint, f"{tiny_checkpoint}+flip", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    rows = dict(
        re.findall(r"motorcycle \(left\): (.+?): AbsRel .* ordinal within rows (\S+)", text)
    )
    assert set(rows) == {"tiny", "tiny+flip", "mean-depth prior", "ramp (floor only)", "constant"}
    assert float(rows["constant"]) == 0.5  # a constant map ties every pair
    assert abs(float(rows["ramp (floor only)"]) - 0.5) < 0.05  # no floor cue within rows
    fig = cv2.imread(str(out))
    assert fig is not None and fig.shape[0] == 3 * 184  # three photographs, 180 px rows + gaps
