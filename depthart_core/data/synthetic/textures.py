"""Texture bank of the synthetic generator: procedural tiles and scikit-image photographs.

15 tiles of 256x256 (procedural, then photographs), stored bottom row first so that v grows
upwards on walls, with four box-filtered mip levels, flattened into one texel table. The
photographs are scikit-image's bundled sample images, read from the installed wheel, never
downloaded; they are converted from display gamma (~2) to linear light.

Sources: 1/f noise by spectral synthesis (Saupe, "The Science of Fractal Images", 1988, ch. 2),
mip-mapping (Williams, "Pyramidal Parametrics", SIGGRAPH 1983).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import torch

_TEX = (
    "plain",
    "noise",
    "wood",
    "tiles",
    "checker",
    "fabric",
    "stripes",
    "brick",
    "grass",
    "gravel",
    "camera",
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
)
TEX_ID = {n: i for i, n in enumerate(_TEX)}
COLOUR_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
TEX_SIZE = 256
_MIP_LEVELS = 5


def _fractal_noise(rng: np.random.Generator, n: int, beta: float, aniso: float = 1.0) -> np.ndarray:
    """Periodic 1/f^beta noise in [0, 1] (tiles seamlessly); aniso < 1 stretches it along u."""
    f = np.fft.fftfreq(n)
    fv, fu = np.meshgrid(f, f, indexing="ij")
    k = np.sqrt((fu * aniso) ** 2 + fv**2)
    k[0, 0] = 1.0
    spec = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) / k**beta
    spec[0, 0] = 0.0
    x = np.fft.ifft2(spec).real
    return (x - x.min()) / (x.max() - x.min())


def _procedural(name: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(TEX_ID[name])
    v, u = np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij")
    noise = _fractal_noise(rng, n, 1.6)
    if name == "plain":
        return 0.9 + 0.1 * noise
    if name == "noise":
        return noise
    if name == "wood":  # 8 planks across v, per-plank tone, grain stretched along u, dark seams
        plank = np.floor(v * 8).astype(int)
        tone = rng.uniform(-0.15, 0.15, 8)[plank]
        grain = _fractal_noise(rng, n, 1.2, aniso=0.08)
        seam = (v * 8 % 1.0) < 0.04
        return np.where(seam, 0.25, 0.6 + tone + 0.35 * (grain - 0.5))
    if name == "tiles":
        grout = ((u * 4 % 1.0) < 0.04) | ((v * 4 % 1.0) < 0.04)
        tone = rng.uniform(-0.08, 0.08, (4, 4))[(v * 4).astype(int), (u * 4).astype(int)]
        return np.where(grout, 0.35, 0.85 + tone + 0.06 * (noise - 0.5))
    if name == "checker":
        return np.where((np.floor(u * 4) + np.floor(v * 4)) % 2 == 0, 0.25, 0.85) + 0.05 * noise
    if name == "fabric":
        weave = np.sin(2 * np.pi * 32 * u) * np.sin(2 * np.pi * 32 * v)
        return 0.6 + 0.12 * weave + 0.3 * (_fractal_noise(rng, n, 0.8) - 0.5)
    if name == "stripes":
        return np.where((u * 6 % 1.0) < 0.5, 0.65, 0.9) + 0.06 * noise
    raise KeyError(name)


def _photo(name: str, n: int) -> np.ndarray:
    import skimage.data  # optional dependency: scikit-image (the `train` extra) holds the photos

    img = getattr(skimage.data, name)()
    img = cv2.resize(img, (n, n), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return img**2.0  # display (gamma ~2) to linear, undone by the sqrt at output


@functools.lru_cache(maxsize=4)
def texture_bank(device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(texels (N, 3) float32, mip size per level (L,), first texel of each level (L,))."""
    n = TEX_SIZE
    tiles = []
    for name in _TEX:
        if name in ("brick", "grass", "gravel", "camera") or name in COLOUR_PHOTOS:
            img = _photo(name, n)
        else:
            img = _procedural(name, n).astype(np.float32)
        img = np.clip(img, 0.0, 1.0)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        tiles.append(img[::-1])  # bottom row first
    levels, sizes, offsets, start = [], [], [], 0
    for lvl in range(_MIP_LEVELS):
        s = n >> lvl
        lv = np.stack(
            [
                cv2.resize(np.ascontiguousarray(t), (s, s), interpolation=cv2.INTER_AREA)
                if s != n
                else t
                for t in tiles
            ]
        )
        levels.append(lv.reshape(-1, 3))
        sizes.append(s)
        offsets.append(start)
        start += lv.shape[0] * s * s
    texels = torch.as_tensor(np.concatenate(levels).astype(np.float32), device=device)
    return (texels, torch.tensor(sizes, device=device), torch.tensor(offsets, device=device))
