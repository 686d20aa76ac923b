"""The Python API refuses bad arguments at its door with one line naming them: a flag that is not
a bool, and a device this process cannot run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from depthart_core.runtime.base import Backend
from depthart_core.runtime.torch_backend import DepthEstimator

RGB = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)


class _WithUncertainty(Backend):
    """Depth and uncertainty from the input alone: a backend that has the head."""

    name, image_size = "stub", 16

    @property
    def has_uncertainty(self) -> bool:
        return True

    def run(self, x_B3SS: np.ndarray) -> np.ndarray:
        return x_B3SS[:, 0].astype(np.float32)

    def run_uncertainty(self, x_B3SS: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.run(x_B3SS), self.run(x_B3SS) * 0 + 0.1


@pytest.mark.parametrize("bad", ["false", 1, 0, None])
def test_with_uncertainty_must_be_a_bool(bad):
    """predict(rgb, with_uncertainty="false") returned a (depth, uncertainty) pair."""
    be = _WithUncertainty()
    want = f"with_uncertainty must be True or False, got {bad!r}"
    with pytest.raises(TypeError, match=want):
        be.predict(RGB, with_uncertainty=bad)
    with pytest.raises(TypeError, match=want):
        be.predict_batch([RGB], with_uncertainty=bad)
    assert be.predict(RGB).shape == (30, 40)
    depth, unc = be.predict(RGB, with_uncertainty=True)
    assert depth.shape == unc.shape == (30, 40)


def test_the_torch_backend_names_a_device_it_cannot_use(tiny_model, tiny_checkpoint):
    """device="gpu" gave torch's list of every device type, "cuda" on a CPU-only PyTorch its
    AssertionError from deep inside `.to()`; `get_backend` already said it in one line."""
    for make in (
        lambda d: DepthEstimator.from_checkpoint(tiny_checkpoint, device=d),
        lambda d: DepthEstimator(tiny_model, device=d),
    ):
        with pytest.raises(ValueError, match=r"^unknown device 'gpu'; use cpu, cuda or cuda:N$"):
            make("gpu")
        if not torch.cuda.is_available():
            with pytest.raises(ValueError, match="device 'cuda': no CUDA device is available"):
                make("cuda")
        assert make("cpu").device == torch.device("cpu")


@pytest.mark.parametrize("name", ["auto", "tensorrt", "onnxruntime", "torch"])
def test_get_backend_names_a_sampling_that_is_not_a_setting(name, tiny_checkpoint):
    """sampling="greedy" (a name, not a SamplingConfig) raised AttributeError "'str' object has
    no attribute 'deterministic'"; the backends' own from_checkpoint say it as a TypeError."""
    from depthart_core.runtime import get_backend

    want = r"^sampling must be a SamplingConfig or None, got 'greedy'; for a named one use "
    want += r"sampling_setting\('greedy'\)"
    with pytest.raises(TypeError, match=want):
        get_backend(name, tiny_checkpoint, sampling="greedy")
    with pytest.raises(TypeError, match="sampling must be a SamplingConfig or None, got 3"):
        get_backend(name, tiny_checkpoint, sampling=3)


def test_the_torch_backend_refuses_a_graph_it_would_ignore(tiny_checkpoint, tmp_path):
    """get_backend("torch", onnx_path=...) ran the checkpoint and ignored the graph, silently."""
    from depthart_core.runtime import get_backend

    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"")  # refused by name, before anything reads it
    want = r"onnx_path '.*model\.onnx' with backend 'torch': .*backend 'torch' runs the checkpoint"
    with pytest.raises(ValueError, match=want):
        get_backend("torch", tiny_checkpoint, onnx_path=graph)
    assert get_backend("torch", tiny_checkpoint, onnx_path=None).name == "torch"
