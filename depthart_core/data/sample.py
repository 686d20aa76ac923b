"""The one sample type every dataset reader returns, and the dataset protocol they follow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class DepthSample:
    """One RGB-D frame. `depth` is in metres (float32, HxW); `valid` marks usable pixels.

    Readers apply the dataset's valid range and crop (as the papers use them) to `valid`; pixels
    outside it keep their raw value in `depth` but are never scored. `intrinsics` is the 3x3 K
    matrix where the dataset provides one.
    """

    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray  # HxW float32, metres
    valid: np.ndarray  # HxW bool
    name: str
    intrinsics: np.ndarray | None = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rgb.dtype != np.uint8 or self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(
                f"{self.name}: rgb must be HxWx3 uint8, got {self.rgb.dtype} {self.rgb.shape}"
            )
        if self.depth.shape != self.rgb.shape[:2] or self.valid.shape != self.depth.shape:
            raise ValueError(
                f"{self.name}: rgb {self.rgb.shape[:2]}, depth {self.depth.shape} and valid "
                f"{self.valid.shape} must share HxW"
            )


class DepthDataset(Protocol):
    """What evaluation and training need from a reader."""

    name: str
    skipped: int  # frames skipped (missing/corrupt), each logged with its file name

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> DepthSample: ...
