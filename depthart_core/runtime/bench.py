"""Latency benchmark: per-stage median/p90, end to end, frames/s, peak memory, and a peer.

Stages for the torch backend: pre-processing, tokenizer encode (RGB -> image prefix), the
autoregressive loop in the backend's own decoding (soft, greedy or paper, as `predict` runs it),
decode (decoder + codec), post-processing; with flip-averaging or a CUDA graph the model is one
stage, as it runs. ONNX Runtime and TensorRT run the
model as one graph, so their model time is one stage ("model"). With `uncertainty` the model stage
is the uncertainty pass on every backend (`Backend.infer_uncertainty`: depth and each pixel's
expected relative error from one pass) and post-processing resizes both maps. The peer is the
Depth Anything V2 Small architecture (24.8 M parameters) from `transformers`, randomly initialised
(speed does not depend on the weights), run with its published pre-processing (shorter side
resized to 518, both sides multiples of 14) on the same input image, device and thread count.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from depthart_core.model import SamplingConfig
from depthart_core.precision import autocast
from depthart_core.runtime.base import Backend
from depthart_core.runtime.preprocess import postprocess, preprocess
from depthart_core.runtime.torch_backend import DepthEstimator


@dataclass
class StageTimer:
    times: dict[str, list[float]] = field(default_factory=dict)

    def run(self, name: str, fn: Callable[[], Any], sync: Callable[[], None] | None = None) -> Any:
        t0 = time.perf_counter()
        out = fn()
        if sync:
            sync()
        self.times.setdefault(name, []).append((time.perf_counter() - t0) * 1e3)
        return out

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            k: {"median_ms": float(np.median(v)), "p90_ms": float(np.percentile(v, 90))}
            for k, v in self.times.items()
        }


def _sync_fn(device: torch.device) -> Callable[[], None] | None:
    """Waits for `device`'s kernels (cuda:1's, not the current device's), None on the CPU."""
    if device.type != "cuda":
        return None
    return lambda: torch.cuda.synchronize(device)


def time_backend(
    backend: Backend, rgb: np.ndarray, runs: int, warmup: int, uncertainty: bool = False
) -> dict[str, Any]:
    """Stage timings of `runs` frames after `warmup`; with `uncertainty`, of the uncertainty pass
    (a backend without it raises before anything is timed)."""
    if uncertainty and not backend.has_uncertainty:
        raise ValueError(
            f"backend {backend.describe()} has no uncertainty to time: "
            f"{backend.uncertainty_missing}; {backend.uncertainty_remedy} (an untrained head, "
            "for timing only: --preset NAME --set uncertainty_width=16)"
        )
    timer = StageTimer()
    for i in range(warmup + runs):
        t = StageTimer() if i < warmup else timer
        t0 = time.perf_counter()
        x, geo = preprocess(rgb, backend.image_size, backend.letterbox)  # timed below
        t.times.setdefault("preprocess", []).append((time.perf_counter() - t0) * 1e3)
        if uncertainty:  # depth and uncertainty from one pass (both passes with flip_average)
            maps = [m[0] for m in t.run("model", lambda x=x: backend.infer_uncertainty(x))]
        elif isinstance(backend, DepthEstimator) and not (
            backend.flip_average or backend.cuda_graph
        ):
            maps = [_torch_stages(backend, x, t)]
        else:  # flip_average: both passes and the mean; a CUDA graph: its one replay
            maps = [t.run("model", lambda x=x: backend.infer(x))[0]]
        t.run("postprocess", lambda ms=maps, g=geo: [postprocess(m, g) for m in ms])
        t.times.setdefault("end_to_end", []).append((time.perf_counter() - t0) * 1e3)
    out = timer.summary()
    e2e = out["end_to_end"]["median_ms"]
    return {
        "stages": out,
        "fps": 1000.0 / e2e if e2e > 0 else float("inf"),
        "uncertainty": uncertainty,
    }


@torch.inference_mode()
def _torch_stages(be, x: np.ndarray, t: StageTimer) -> np.ndarray:
    m, sync = be.model, _sync_fn(be.device)
    xt = torch.from_numpy(x).to(be.device)
    with autocast(be.device, be.precision):
        img, f0 = t.run("encode", lambda: m.prefix_and_start(xt), sync)
        _, f_hat, _ = t.run(  # the backend's own decoding (soft, greedy or paper), as predict
            "ar_loop",
            lambda: m.generate_from_prefix(img, be.sampling or SamplingConfig(), f0),
            sync,
        )
        d = t.run("decode", lambda: m.decode(f_hat), sync)
    return d[0].float().cpu().numpy()


def build_peer(device: torch.device) -> torch.nn.Module:
    try:  # optional dependency: transformers (the `bench` extra)
        from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config
    except ImportError as exc:
        raise ImportError(
            "the peer needs `transformers`: pip install 'depthart_ros[bench]'"
        ) from exc
    backbone = Dinov2Config(
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=6,
        patch_size=14,
        image_size=518,
        out_features=["stage3", "stage6", "stage9", "stage12"],
        reshape_hidden_states=False,
    )
    cfg = DepthAnythingConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[48, 96, 192, 384],
        fusion_hidden_size=64,
        head_hidden_size=32,
        reassemble_hidden_size=384,
        patch_size=14,
    )
    torch.manual_seed(0)
    return DepthAnythingForDepthEstimation(cfg).eval().to(device)


def peer_input_size(h: int, w: int, short: int = 518) -> tuple[int, int]:
    s = short / min(h, w)
    return (max(14, round(h * s / 14) * 14), max(14, round(w * s / 14) * 14))


@torch.inference_mode()
def time_peer(
    rgb: np.ndarray, device: torch.device, runs: int, warmup: int, short: int = 518
) -> dict[str, Any]:
    model = build_peer(device)
    h, w = rgb.shape[:2]
    ph, pw = peer_input_size(h, w, short)
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    sync = _sync_fn(device)
    timer = StageTimer()
    for i in range(warmup + runs):
        t = StageTimer() if i < warmup else timer
        t0 = time.perf_counter()
        x = cv2.resize(rgb, (pw, ph), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
        x = torch.from_numpy(((x - mean) / std).transpose(2, 0, 1)[None].copy()).to(device)
        d = t.run("model", lambda x=x: model(pixel_values=x).predicted_depth, sync)
        cv2.resize(d[0].float().cpu().numpy(), (w, h), interpolation=cv2.INTER_LINEAR)
        t.times.setdefault("end_to_end", []).append((time.perf_counter() - t0) * 1e3)
    out = timer.summary()
    params = sum(p.numel() for p in model.parameters())
    return {
        "stages": out,
        "fps": 1000.0 / out["end_to_end"]["median_ms"],
        "input": [ph, pw],
        "parameters": params,
        "name": "Depth Anything V2-Small (random init)",
    }


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float | None:
    """The process's resident memory now (Linux /proc; None where it cannot be read)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None
