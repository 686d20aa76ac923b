"""depthart_core.colormap: tables match matplotlib's, and colorize maps depth the documented way."""

from __future__ import annotations

import numpy as np
import pytest

from depthart_core.colormap import COLORMAPS, colorize, colorize_bgr, colormap_lut, depth_range


@pytest.mark.parametrize("name", ["turbo", "viridis", "inferno", "magma"])
def test_lut_matches_matplotlib_within_one_level(name: str) -> None:
    matplotlib = pytest.importorskip("matplotlib", reason="reference tables come from matplotlib")
    ref = np.rint(matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255)
    lut = colormap_lut(name)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert np.abs(lut.astype(int) - ref.astype(int)).max() <= 1


@pytest.mark.parametrize("name", ["viridis", "inferno", "magma", "gray"])
def test_sequential_maps_increase_in_lightness(name: str) -> None:
    rgb = colormap_lut(name).astype(np.float64) / 255
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    luminance = lin @ np.array([0.2126, 0.7152, 0.0722])
    # strictly brighter every 4 entries (single 8-bit steps may tie or dip by rounding)
    assert np.all(luminance[4:] > luminance[:-4]), name


def test_colorize_near_is_the_bright_end_and_invalid_is_black() -> None:
    depth = np.array([[1.0, 2.0, 3.0], [np.nan, 2.0, np.inf]], np.float32)
    valid = np.array([[True, True, True], [True, False, True]])
    rgb = colorize(depth, valid, cmap="turbo", lo=1.0, hi=3.0)
    lut = colormap_lut("turbo")
    np.testing.assert_array_equal(rgb[0, 0], lut[255])  # nearest -> end of the map
    np.testing.assert_array_equal(rgb[0, 2], lut[0])  # farthest -> start of the map
    np.testing.assert_array_equal(rgb[0, 1], lut[128])
    np.testing.assert_array_equal(rgb[1], np.zeros((3, 3), np.uint8))  # NaN, masked, inf
    far_bright = colorize(depth, valid, cmap="turbo", lo=1.0, hi=3.0, near_bright=False)
    np.testing.assert_array_equal(far_bright[0, 0], lut[0])


def test_colorize_auto_range_and_degenerate_inputs() -> None:
    depth = np.linspace(1.0, 10.0, 100 * 100, dtype=np.float32).reshape(100, 100)
    lo, hi = depth_range(depth, np.isfinite(depth))
    assert lo == pytest.approx(np.percentile(depth, 2))
    assert hi == pytest.approx(np.percentile(depth, 98))
    rgb = colorize(depth, cmap="gray")
    assert rgb[0, 0, 0] == 255 and rgb[-1, -1, 0] == 0  # clipped at the percentiles
    assert (colorize(np.full((4, 4), np.nan, np.float32)) == 0).all()
    flat = colorize(np.full((4, 4), 2.0, np.float32))
    assert (flat == flat[0, 0]).all()


def test_colorize_bgr_is_rgb_reversed_and_contiguous() -> None:
    depth = np.random.default_rng(0).random((20, 30), dtype=np.float32)
    rgb, bgr = colorize(depth, cmap="inferno"), colorize_bgr(depth, cmap="inferno")
    assert bgr.flags.c_contiguous and bgr.shape == (20, 30, 3)
    np.testing.assert_array_equal(bgr, rgb[..., ::-1])


def test_bad_arguments_name_the_value() -> None:
    with pytest.raises(ValueError, match="rainbow"):
        colorize(np.ones((2, 2), np.float32), cmap="rainbow")
    with pytest.raises(ValueError, match=r"\(2, 2, 3\)"):
        colorize(np.ones((2, 2, 3), np.float32))
    assert "turbo" in COLORMAPS and "gray" in COLORMAPS
