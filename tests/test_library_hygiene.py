"""The estimators as a library in someone else's program: they leave the caller's default dtype
and global RNG alone, and they pickle (DataLoader workers started with 'spawn' or 'forkserver',
`copy.deepcopy`)."""

from __future__ import annotations

import copy
import pickle
import re
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from depthart_core.runtime import get_backend

RGB = np.random.default_rng(7).integers(0, 256, (40, 56, 3), dtype=np.uint8)


@pytest.fixture
def float64_default():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


@pytest.fixture(scope="module")
def torch_ref(headed_checkpoint):
    return get_backend("torch", checkpoint=headed_checkpoint, threads=1).predict(
        RGB, with_uncertainty=True
    )


@pytest.fixture(scope="module")
def onnx_backend(headed_checkpoint, tmp_path_factory):
    """An ONNX Runtime backend on the headed fixture, its graph exported into a cache of its own."""
    cache = tmp_path_factory.mktemp("onnx_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEPTHART_CACHE", str(cache))
        return get_backend("onnxruntime", checkpoint=headed_checkpoint, threads=1)


def _draws_after(build) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    build()
    return expected, torch.rand(3)


def test_torch_backend_under_a_float64_default(headed_checkpoint, torch_ref, float64_default):
    est = get_backend("torch", checkpoint=headed_checkpoint, threads=1)
    assert torch.get_default_dtype() == torch.float64  # the caller's, restored
    assert all(p.dtype == torch.float32 for p in est.model.parameters())
    depth, unc = est.predict(RGB, with_uncertainty=True)
    assert depth.dtype == np.float32
    np.testing.assert_array_equal(depth, torch_ref[0])
    np.testing.assert_array_equal(unc, torch_ref[1])


def test_onnx_export_under_a_float64_default(
    headed_checkpoint, torch_ref, float64_default, tmp_path, monkeypatch
):
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path / "cache"))  # empty: it exports
    expected, after = _draws_after(
        lambda: get_backend("onnxruntime", checkpoint=headed_checkpoint, threads=1)
    )
    assert torch.get_default_dtype() == torch.float64
    torch.testing.assert_close(after, expected, rtol=0, atol=0)  # its RNG left alone
    backend = get_backend("onnxruntime", checkpoint=headed_checkpoint, threads=1)  # cached
    depth, unc = backend.predict(RGB, with_uncertainty=True)
    np.testing.assert_allclose(depth, torch_ref[0], atol=1e-4)
    np.testing.assert_allclose(unc, torch_ref[1], atol=1e-4)


def test_building_the_torch_backend_leaves_the_callers_rng(headed_checkpoint):
    expected, after = _draws_after(
        lambda: get_backend("torch", checkpoint=headed_checkpoint, threads=1)
    )
    torch.testing.assert_close(after, expected, rtol=0, atol=0)


def test_torch_backend_pickles_and_deep_copies(headed_checkpoint, torch_ref):
    est = get_backend("torch", checkpoint=headed_checkpoint, threads=1)
    for clone in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est)):
        assert clone.describe() == est.describe()
        assert clone._graphs == {} and clone._graph_lock is not est._graph_lock
        depth, unc = clone.predict(RGB, with_uncertainty=True)
        np.testing.assert_array_equal(depth, torch_ref[0])
        np.testing.assert_array_equal(unc, torch_ref[1])


def test_onnx_backend_pickles_with_its_sessions(onnx_backend):
    depth, unc = onnx_backend.predict(RGB, with_uncertainty=True)  # opens the whole-graph session
    clone = pickle.loads(pickle.dumps(onnx_backend))
    assert clone.describe() == onnx_backend.describe()  # threads and provider kept
    assert clone._uncertainty_session is not None  # reopened, as it was open
    np.testing.assert_array_equal(clone.predict(RGB), depth)
    d2, u2 = clone.predict(RGB, with_uncertainty=True)
    np.testing.assert_array_equal(d2, depth)
    np.testing.assert_array_equal(u2, unc)
    np.testing.assert_array_equal(copy.deepcopy(onnx_backend).predict(RGB), depth)


def test_onnx_backend_unpickled_without_its_graph_names_it(
    onnx_backend, headed_checkpoint, tmp_path
):
    graph = tmp_path / "moved.onnx"
    shutil.copy(onnx_backend.onnx_path, graph)
    backend = get_backend("onnxruntime", headed_checkpoint, onnx_path=graph, threads=1)
    blob = pickle.dumps(backend)
    graph.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(f"its graph {graph} no longer exists")):
        pickle.loads(blob)


class _Frames(Dataset):
    """A dataset whose items are depth maps from a backend it holds (pickled to the worker)."""

    def __init__(self, backend) -> None:
        self.backend = backend

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> np.ndarray:
        return self.backend.predict(np.ascontiguousarray(np.roll(RGB, i, axis=1)))


def test_spawn_dataloader_workers_run_both_backends(headed_checkpoint, onnx_backend):
    est = get_backend("torch", checkpoint=headed_checkpoint, threads=1)
    for backend in (est, onnx_backend):
        loader = DataLoader(
            _Frames(backend), batch_size=None, num_workers=1, multiprocessing_context="spawn"
        )
        got = [np.asarray(d) for d in loader]
        for i, depth in enumerate(got):
            np.testing.assert_array_equal(depth, _Frames(backend)[i])


def test_onnx_backend_unpickled_over_another_graph_refuses(
    onnx_backend, headed_checkpoint, tmp_path
):
    onnx = pytest.importorskip("onnx")
    graph = tmp_path / "replaced.onnx"
    shutil.copy(onnx_backend.onnx_path, graph)
    backend = get_backend("onnxruntime", headed_checkpoint, onnx_path=graph, threads=1)
    blob = pickle.dumps(backend)
    other = onnx.load(str(graph))
    for prop in other.metadata_props:
        if prop.key == "depthart_checkpoint_sha256":
            prop.value = "0" * 64  # another model's graph now at that path
    onnx.save(other, str(graph))
    with pytest.raises(ValueError, match=re.escape(f"its graph {graph} was replaced")):
        pickle.loads(blob)
