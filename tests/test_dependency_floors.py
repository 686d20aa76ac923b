"""setup.py's lower bounds hold: what the code needs of its oldest allowed dependencies.

Found by a probe with the oldest versions setup.py allowed: torch 2.2-2.7 crashed every command
at import (torch.nn.init has no __all__ before 2.8), rosbags 0.10.x could not read one .mcap or
.db3 file, and ONNX Runtime 1.19.0 / 1.19.2 give the fp16 graph all-NaN depth. OpenCV 4.8's
short undistortion is handled in code (tests/test_pointcloud.py).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import torch.nn as nn
from packaging.requirements import Requirement

from depthart_core import checkpoint

REPO = Path(__file__).resolve().parents[1]


def _requirements() -> dict[str, Requirement]:
    """Every requirement of setup.py (install_requires and each extra) by name."""
    tree = ast.parse((REPO / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if getattr(getattr(n, "func", None), "id", "") == "setup")
    kw = {
        k.arg: ast.literal_eval(k.value)
        for k in call.keywords
        if k.arg in ("install_requires", "extras_require")
    }
    lines = list(kw["install_requires"]) + [
        r for extra in kw["extras_require"].values() for r in extra
    ]
    return {Requirement(line).name: Requirement(line) for line in lines}


def test_init_functions_are_nn_inits_public_functions() -> None:
    """The same set as torch.nn.init.__all__ where torch has one (2.8 and later)."""
    if not hasattr(nn.init, "__all__"):
        pytest.skip("this torch's nn.init has no __all__ to compare with")
    assert checkpoint._INIT_FUNCTIONS == frozenset(getattr(nn.init, n) for n in nn.init.__all__)
    assert {
        nn.init.kaiming_uniform_,
        nn.init.uniform_,
        nn.init.normal_,
    } <= checkpoint._INIT_FUNCTIONS


def test_checkpoint_imports_without_nn_init_all(monkeypatch) -> None:
    """torch 2.2-2.7 have no torch.nn.init.__all__: the module read it at import, so every
    command and the node stopped with AttributeError before doing anything."""
    expected = checkpoint._INIT_FUNCTIONS
    monkeypatch.delattr(nn.init, "__all__", raising=False)
    spec = importlib.util.spec_from_file_location("_checkpoint_without_all", checkpoint.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # a copy under another name: the real module is untouched
    assert module._INIT_FUNCTIONS == expected


@pytest.mark.parametrize(
    "name, refused, allowed",
    [
        # torch.onnx.export(dynamo=...) came in 2.4.0, torch.amp.GradScaler in 2.3.0
        ("torch", ["2.2.2", "2.3.1"], ["2.4.0", "2.13.0"]),
        # AnyReader before 0.11.0 read one .mcap / .db3 file as a ROS 1 bag
        ("rosbags", ["0.10.9", "0.10.11"], ["0.11.0"]),
        # all-NaN depth from the fp16 graph
        ("onnxruntime", ["1.17.3", "1.19.0", "1.19.2"], ["1.18.0", "1.18.1", "1.20.0"]),
    ],
)
def test_setup_py_floors(name: str, refused: list[str], allowed: list[str]) -> None:
    spec = _requirements()[name].specifier
    assert not [v for v in refused if spec.contains(v)], (name, str(spec))
    assert all(spec.contains(v) for v in allowed), (name, str(spec))
