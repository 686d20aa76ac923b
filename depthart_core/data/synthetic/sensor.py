"""What an RGB-D sensor makes of the true depth: range limit, holes and noise (numpy).

A stereo/structured-light camera (RealSense D4xx class) does not report perfect depth:
- nothing beyond its range (`max_range_m`) or closer than its minimum (`min_range_m`): 0;
- noise that grows with the square of depth: sigma(z) = `noise_z2` * z^2 (stereo depth error
  is proportional to z^2 / (focal length * baseline); 0.002 gives 2 cm at 3 m, 20 cm at 10 m);
- holes where one of the two views is occluded: a band of `edge_px` pixels beside every depth
  step larger than `edge_step` (relative), on the far side of the step;
- holes in patches where matching fails (low texture, reflections): `patches` ellipses of
  random size per frame, plus a scattered `dropout` fraction of single pixels.
The output is what a 16UC1 driver publishes: millimetres, 0 where invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class SensorModel:
    min_range_m: float = 0.2
    max_range_m: float = 10.0
    noise_z2: float = 0.002
    edge_step: float = 0.08
    edge_px: int = 2
    patches: tuple[int, int] = (0, 3)
    dropout: float = 0.01

    def __post_init__(self) -> None:
        if not 0 <= self.min_range_m < self.max_range_m:
            raise ValueError(
                f"sensor range must satisfy 0 <= min < max, got "
                f"[{self.min_range_m}, {self.max_range_m}] m"
            )
        if self.noise_z2 < 0 or not 0 <= self.dropout < 1 or self.edge_px < 0:
            raise ValueError(
                f"bad sensor noise settings noise_z2={self.noise_z2} dropout={self.dropout} "
                f"edge_px={self.edge_px}"
            )


def sensor_depth_mm(
    depth_m: np.ndarray, valid: np.ndarray, rng: np.random.Generator, model: SensorModel
) -> np.ndarray:
    """True planar depth (metres, HxW) and its mask -> the sensor's 16UC1 millimetres."""
    h, w = depth_m.shape
    z = np.where(valid, depth_m, 0.0).astype(np.float64)
    ok = valid & (z >= model.min_range_m) & (z <= model.max_range_m)
    # occlusion bands beside depth steps: the far side of a step larger than edge_step * z
    if model.edge_px > 0:
        dz = np.abs(np.diff(z, axis=1)) > model.edge_step * np.minimum(z[:, 1:], z[:, :-1])
        far_right = dz & (z[:, 1:] > z[:, :-1])  # [j]: pixel j + 1 is the far one
        far_left = dz & (z[:, :-1] > z[:, 1:])  # [j]: pixel j is the far one
        band = np.zeros((h, w), dtype=bool)
        for k in range(model.edge_px):  # the band lies on the far surface, beside the edge
            band[:, 1 + k :] |= far_right[:, : w - 1 - k]
            band[:, : w - 1 - k] |= far_left[:, k:]
        ok &= ~band
    for _ in range(int(rng.integers(model.patches[0], model.patches[1] + 1))):
        mask = np.zeros((h, w), dtype=np.uint8)
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        axes = (max(1, int(rng.uniform(0.02, 0.08) * w)), max(1, int(rng.uniform(0.02, 0.08) * h)))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        ok &= ~mask.astype(bool)
    ok &= rng.uniform(size=(h, w)) >= model.dropout
    noisy = z + rng.normal(size=(h, w)) * model.noise_z2 * z**2
    mm = np.rint(noisy * 1000.0)
    # the range applies to what the sensor reports (a reading beyond max_range_m is dropped, as
    # compressedDepth drops 16UC1 millimetres above its depth_max), not only to the true depth
    lo, hi = max(1, round(model.min_range_m * 1000)), min(65535, round(model.max_range_m * 1000))
    ok &= (mm >= lo) & (mm <= hi)
    return np.where(ok, mm, 0).astype(np.uint16)
