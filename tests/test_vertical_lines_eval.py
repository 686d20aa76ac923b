"""training/vertical_lines_eval.py: one short run over the rig paths, and a bad size refused."""

from __future__ import annotations

import pytest


def test_a_short_run_reports_every_rig_and_beats_the_prior_on_the_cart(training_script, capsys):
    """One room per rig at 480x640: each rig gets a line with its frames and errors; on the
    cart's room the lines' median error is under the mount prior's (2.3 deg: the bumps)."""
    script = training_script("vertical_lines_eval")
    assert script.main(["--seeds", "0", "--sequences", "1", "--size", "480x640"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for rig in ("wheeled", "cart", "mast"):
        (line,) = [x for x in lines if x.startswith(f"{rig} (")]
        assert "up from the lines in" in line and "/15 frames" in line
    (cart,) = [x for x in lines if x.startswith("cart (")]
    lines_med = float(cart.split("true up median ")[1].split(" deg")[0])
    prior_med = float(cart.split("mount prior's median ")[1].split(";")[0])
    assert lines_med < 0.5 < prior_med, cart


def test_a_bad_size_is_refused_naming_it(training_script, capsys):
    with pytest.raises(SystemExit):
        training_script("vertical_lines_eval").main(["--size", "64x"])
    err = capsys.readouterr().err
    assert "--size" in err and "HxW" in err and "'64x'" in err


@pytest.mark.parametrize("flag", ["--frames", "--sequences"])
def test_a_count_below_one_is_refused_naming_it(training_script, capsys, flag):
    with pytest.raises(SystemExit):
        training_script("vertical_lines_eval").main([flag, "0"])
    assert f"{flag} must be >= 1, got 0" in capsys.readouterr().err
