"""Augmentation of training frames, drawn per image from a generator seeded by the training step
(so a resumed run sees the same augmented batches).

- `photometric`: saturation, contrast, exposure, gamma, blur and sensor noise, and optionally
  white balance (per-channel gains, as a camera's auto white balance or a warm lamp gives).
  Geometry is unchanged, so the cached depth latents of a fixed pool stay valid.
- `flip_mask`: which frames of a batch to mirror left-right (image and depth together); the
  trainer re-encodes the depth latents of the mirrored frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def photometric(rgb_B3HW: torch.Tensor, seed: int, white_balance: float = 0.0) -> torch.Tensor:
    """RGB in [-1, 1] -> augmented RGB in [-1, 1] (same shape); deterministic in `seed`.

    white_balance = w > 0 multiplies each channel by a gain from [1 - w, 1 + w] before gamma. Its
    gains are drawn after every other parameter, so w = 0 gives exactly the older augmentation.
    """
    if rgb_B3HW.ndim != 4 or rgb_B3HW.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(rgb_B3HW.shape)}")
    if not 0.0 <= white_balance < 1.0:
        raise ValueError(f"white_balance must be in [0, 1), got {white_balance}")
    g = torch.Generator().manual_seed(seed)
    B = rgb_B3HW.shape[0]
    dev = rgb_B3HW.device

    def per_image(t: torch.Tensor) -> torch.Tensor:
        return t.to(dev).view(B, 1, 1, 1)

    # every draw first, in a fixed order, then the image operations
    saturation = per_image(_uniform(g, B, 0.6, 1.4))
    contrast = per_image(_uniform(g, B, 0.7, 1.3))
    exposure = per_image(_uniform(g, B, 0.7, 1.3))
    gamma = per_image(_uniform(g, B, 0.75, 1.35))
    blur = per_image((torch.rand(B, generator=g) < 0.3).float())
    sigma = per_image(_uniform(g, B, 0.0, 0.03))
    noise = torch.randn(rgb_B3HW.shape, generator=g).to(dev)
    gains_B311 = None
    if white_balance > 0:
        gains = _uniform(g, B * 3, 1.0 - white_balance, 1.0 + white_balance)
        gains_B311 = gains.to(dev).view(B, 3, 1, 1)

    x = (rgb_B3HW + 1.0) * 0.5  # [0, 1]
    gray = x.mean(dim=1, keepdim=True)
    x = gray + (x - gray) * saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * contrast
    x = x * exposure
    if gains_B311 is not None:
        x = x * gains_B311
    x = x.clamp(0.0, 1.0) ** gamma
    k = torch.tensor([0.25, 0.5, 0.25], device=dev)
    k2 = (k[:, None] * k[None, :]).expand(3, 1, 3, 3)
    x_blur = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k2, groups=3)
    x = blur * x_blur + (1.0 - blur) * x
    x = (x + sigma * noise).clamp(0.0, 1.0)
    return x * 2.0 - 1.0


def flip_mask(batch: int, seed: int, p: float) -> torch.Tensor:
    """(batch,) bool: True for the frames to mirror, each with probability p; deterministic in
    `seed` (a stream of its own, so turning flips on leaves the photometric draws unchanged)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"hflip must be a probability in [0, 1], got {p}")
    g = torch.Generator().manual_seed(seed ^ 0x5F1F)
    return torch.rand(batch, generator=g) < p
