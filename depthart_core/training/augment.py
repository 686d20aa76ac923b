"""Photometric augmentation of training images: brightness, contrast, saturation, gamma, blur and
sensor noise, each drawn per image from a generator seeded by the training step (so a resumed
run sees the same augmented batches). Geometry is never changed, so cached depth latents of a
fixed pool stay valid for the augmented frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return torch.rand(n, generator=g) * (hi - lo) + lo


def photometric(rgb_B3HW: torch.Tensor, seed: int) -> torch.Tensor:
    """RGB in [-1, 1] -> augmented RGB in [-1, 1] (same shape); deterministic in `seed`."""
    if rgb_B3HW.ndim != 4 or rgb_B3HW.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(rgb_B3HW.shape)}")
    g = torch.Generator().manual_seed(seed)
    B = rgb_B3HW.shape[0]
    dev = rgb_B3HW.device

    def per_image(t: torch.Tensor) -> torch.Tensor:
        return t.to(dev).view(B, 1, 1, 1)

    x = (rgb_B3HW + 1.0) * 0.5  # [0, 1]
    gray = x.mean(dim=1, keepdim=True)
    x = gray + (x - gray) * per_image(_uniform(g, B, 0.6, 1.4))  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * per_image(_uniform(g, B, 0.7, 1.3))  # contrast
    x = x * per_image(_uniform(g, B, 0.7, 1.3))  # exposure
    x = x.clamp(0.0, 1.0) ** per_image(_uniform(g, B, 0.75, 1.35))  # gamma
    blur = per_image((torch.rand(B, generator=g) < 0.3).float())
    k = torch.tensor([0.25, 0.5, 0.25], device=dev)
    k2 = (k[:, None] * k[None, :]).expand(3, 1, 3, 3)
    x_blur = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k2, groups=3)
    x = blur * x_blur + (1.0 - blur) * x
    sigma = per_image(_uniform(g, B, 0.0, 0.03))
    noise = torch.randn(x.shape, generator=g).to(dev)
    x = (x + sigma * noise).clamp(0.0, 1.0)
    return x * 2.0 - 1.0
