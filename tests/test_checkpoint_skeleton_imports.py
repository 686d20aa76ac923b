"""What a robot process imports and keeps resident for modules it never uses (probe 44j).

Loading a checkpoint builds a shape skeleton on the meta device (`checkpoint.shape_skeleton`).
VAR's attention mask calls `torch.arange` there, whose meta kernel is torch's Python reference:
it imported sympy, mpmath and torch.fx's symbolic shapes (487 modules, about 35 MB kept for the
life of the node). The skeleton now gives a range factory its meta result itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import depthart_core
from depthart_core import checkpoint as ck
from depthart_core.runtime import get_backend

ROOT = str(Path(depthart_core.__file__).resolve().parent.parent)

LOAD = """
import sys
import numpy as np
from depthart_core.checkpoint import load_checkpoint
from depthart_core.runtime import get_backend

load_checkpoint(sys.argv[1])
print("sympy imported:", "sympy" in sys.modules)
print("symbolic shapes imported:", "torch.fx.experimental.symbolic_shapes" in sys.modules)
rgb = np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8)
np.save(sys.argv[2], get_backend("torch", sys.argv[1], threads=1).predict(rgb))
"""


def test_loading_a_checkpoint_imports_no_sympy(tiny_checkpoint, tmp_path):
    """The shape skeleton's `arange` no longer runs torch's Python reference; the depth the
    loaded model gives is the one this process's model gives."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
    }
    out = tmp_path / "depth.npy"
    proc = subprocess.run(
        [sys.executable, "-c", LOAD, tiny_checkpoint, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sympy imported: False" in proc.stdout
    assert "symbolic shapes imported: False" in proc.stdout
    rgb = np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8)
    expected = get_backend("torch", tiny_checkpoint, threads=1).predict(rgb)
    np.testing.assert_array_equal(np.load(out), expected)


RANGES = [  # the skeleton's own answer (int bounds) and torch's (every other form), alike
    lambda: torch.arange(10),
    lambda: torch.arange(0, 10, 3),
    lambda: torch.arange(10, 0, -3),
    lambda: torch.arange(3, 3),
    lambda: torch.arange(start=2, end=7),
    lambda: torch.arange(1, end=9),
    lambda: torch.arange(0, 10, step=4),
    lambda: torch.arange(7, dtype=torch.int64),
    lambda: torch.arange(1.0, 2.0, 0.3),
    lambda: torch.arange(0, 10, 3.0),
    lambda: torch.arange(end=7, dtype=torch.float64),
    lambda: torch.arange(0, 5, 1.5, dtype=torch.long),
    lambda: torch.arange(-0.5, 2, dtype=torch.long),
    lambda: torch.arange(4, requires_grad=False, dtype=torch.float32),
    lambda: torch.arange(torch.tensor(6, device="cpu")),
    lambda: torch.arange(True),
    lambda: torch.linspace(0, 1, 5),
    lambda: torch.linspace(start=0, end=1, steps=5),
    lambda: torch.eye(3, 5, dtype=torch.int32),
]


@pytest.mark.parametrize("make", RANGES)
def test_the_skeletons_ranges_have_torchs_shape_and_dtype(make):
    want = make()
    with ck.shape_skeleton():
        got = make()
    assert got.is_meta and (tuple(got.shape), got.dtype) == (tuple(want.shape), want.dtype)
    assert got.requires_grad == want.requires_grad


def test_the_skeletons_ranges_allocate_nothing_and_keep_torchs_errors():
    """A config claiming a huge image gets a huge meta mask, never a CPU range of its length;
    bounds torch refuses are refused with torch's own message."""
    with ck.shape_skeleton():
        assert torch.arange(2**40).shape == (2**40,)  # 8 TB were it computed on the CPU
        assert torch.arange(5, device="cpu").tolist() == [0, 1, 2, 3, 4]  # not the skeleton's
        with pytest.raises(RuntimeError, match="step must be nonzero"):
            torch.arange(1, 3, 0)
        with pytest.raises(RuntimeError, match="inconsistent with step sign"):
            torch.arange(3, 1)
