"""Mixed precision: the autocast context the trainer and the PyTorch backend share."""

from __future__ import annotations

import torch

from depthart_core.config import PRECISIONS as PRECISIONS


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """`torch.autocast` to bf16 or fp16 on `device`; "fp32" turns autocast off."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return torch.autocast(device_type=device.type, enabled=False)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
