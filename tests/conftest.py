"""Shared fixtures: tiny random models and checkpoints made by the tests themselves."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import torch

from depthart_core.checkpoint import save_checkpoint
from depthart_core.config import get_preset
from depthart_core.data.synthetic.set import write_synthetic_set
from depthart_core.model import DepthART


@pytest.fixture(scope="session")
def tiny_model() -> DepthART:
    torch.manual_seed(0)
    return DepthART(get_preset("tiny")).eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_model) -> str:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(path, tiny_model, {"purpose": "tests"})
    return str(path)


@pytest.fixture(scope="session")
def headed_model() -> DepthART:
    """The shipped architecture (tiny_cnn_refine) with a random uncertainty head of width 4 whose
    output varies over the image (its last layer is not left at its zero init)."""
    torch.manual_seed(3)
    model = DepthART(dataclasses.replace(get_preset("tiny_cnn_refine"), uncertainty_width=4))
    torch.nn.init.normal_(model.uncertainty_head.out.weight, std=0.3)
    return model.eval()


@pytest.fixture(scope="session")
def headed_checkpoint(tmp_path_factory, headed_model) -> str:
    path = tmp_path_factory.mktemp("ckpt") / "headed.safetensors"
    save_checkpoint(path, headed_model, {"purpose": "tests: a model with an uncertainty head"})
    return str(path)


@pytest.fixture(scope="session")
def training_script():
    """load(name) -> the module of training/<name>.py (the scripts are not a package)."""
    root = Path(__file__).resolve().parent.parent / "training"

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, root / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses look their module up while the file executes
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="session")
def clean_synthetic_set(tmp_path_factory) -> Path:
    """A 5-frame synthetic set, 16x16 (seed 3)."""
    root = tmp_path_factory.mktemp("synthetic_set") / "clean"
    write_synthetic_set(root, count=5, seed=3, size=(16, 16), progress=False)
    return root


@pytest.fixture
def damaged_synthetic_set(clean_synthetic_set, tmp_path) -> Path:
    """`clean_synthetic_set` with frame 1's RGB removed and frame 3's depth PNG cut short (its
    signature kept: found only when decoded)."""
    root = tmp_path / "set"
    shutil.copytree(clean_synthetic_set, root)
    (root / "rgb" / "000001.png").unlink()
    depth = root / "depth" / "000003.png"
    depth.write_bytes(depth.read_bytes()[: depth.stat().st_size // 2])
    return root
