"""`DepthEstimator`: one call from an RGB frame to a relative depth map, in PyTorch.

    est = DepthEstimator.from_checkpoint()          # the shipped default checkpoint
    depth = est.predict(rgb)                        # HxWx3 uint8 RGB -> HxW float32 in [0, 1]

Relative depth is proportional to d / q98(d) of the scene (the DepthART codec); multiply by a
scale (e.g. median-aligned to a metric cue) to get metres. The other backends (ONNX Runtime,
TensorRT) share the same pre/post-processing in `depthart_core.preprocess`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from depthart_core.checkpoint import load_checkpoint
from depthart_core.model import DepthART, SamplingConfig
from depthart_core.runtime.base import Backend


class DepthEstimator(Backend):
    """The PyTorch backend (CPU or CUDA); `predict`/`predict_batch` come from `Backend`."""

    name = "torch"

    def __init__(
        self,
        model: DepthART,
        device: str | torch.device = "cpu",
        letterbox: bool = False,
        sampling: SamplingConfig | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.letterbox = letterbox
        self.sampling = sampling or SamplingConfig()
        self.info = info or {}

    @classmethod
    def from_checkpoint(
        cls, path: str | Path | None = None, device: str | torch.device = "cpu", **kwargs: Any
    ) -> DepthEstimator:
        model, info = load_checkpoint(path, device=device)
        return cls(model, device=device, info=info, **kwargs)

    @property
    def image_size(self) -> int:
        return self.model.cfg.image_size

    @torch.inference_mode()
    def run(self, x_B3SS: np.ndarray) -> np.ndarray:
        """Normalised (B, 3, S, S) float32 -> (B, S, S) relative depth."""
        x = torch.from_numpy(np.ascontiguousarray(x_B3SS, dtype=np.float32)).to(self.device)
        return self.model.predict_normalized(x, self.sampling).float().cpu().numpy()
