"""The estimators as a library in someone else's program: they leave the caller's default dtype
and global RNG alone, and they pickle (DataLoader workers started with 'spawn' or 'forkserver',
`copy.deepcopy`)."""

from __future__ import annotations

import copy
import pickle
import re
import shutil
import threading
from multiprocessing import context
from multiprocessing.reduction import ForkingPickler

import numpy as np
import pytest
import torch
import torch.multiprocessing  # registers torch's sharing reducers with ForkingPickler
from torch.utils.data import DataLoader, Dataset

from depthart_core import checkpoint as ck
from depthart_core.checkpoint import load_checkpoint
from depthart_core.export.onnx_export import export_onnx
from depthart_core.model import DepthART
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


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_dataloader_workers_run_both_backends(headed_checkpoint, onnx_backend, start_method):
    """Python 3.14's default on Linux, "forkserver", too: it passes a worker at most 256 file
    descriptors, and the torch backend's model went as one per tensor (335 here)."""
    est = get_backend("torch", checkpoint=headed_checkpoint, threads=1)
    for backend in (est, onnx_backend):
        loader = DataLoader(
            _Frames(backend), batch_size=None, num_workers=2, multiprocessing_context=start_method
        )
        got = [np.asarray(d) for d in loader]
        assert len(got) == len(_Frames(backend))
        for i, depth in enumerate(got):
            np.testing.assert_array_equal(depth, _Frames(backend)[i])


class _CountingPopen:
    """Stands in for a starting worker's Popen: counts the file descriptors pickling hands it
    (forkserver's refuses more than 256)."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def duplicate_for_child(self, fd: int) -> int:
        self.fds.append(fd)
        return len(self.fds) - 1

    def DupFd(self, index: int) -> int:  # multiprocessing's name
        return index


@pytest.mark.parametrize("start", ["forkserver", "spawn"])
def test_torch_backend_pickles_for_a_worker_without_a_descriptor_per_tensor(
    headed_checkpoint, start
):
    """What a DataLoader worker's start-up pickles (multiprocessing's ForkingPickler with torch's
    sharing reducers): for the fork server the model goes as one blob, so no file descriptors
    at all; for spawn its tensors go as shared memory (a descriptor each: no copy per worker)."""
    est = get_backend("torch", checkpoint=headed_checkpoint, threads=1)
    # the Popen that pickling sees: the fork server's, or spawn's
    module = "multiprocessing.popen_forkserver" if start == "forkserver" else __name__
    counting = type("Popen", (_CountingPopen,), {"__module__": module})
    popen, strategy = counting(), torch.multiprocessing.get_sharing_strategy()
    torch.multiprocessing.set_sharing_strategy("file_descriptor")
    context.set_spawning_popen(popen)
    try:
        blob = ForkingPickler.dumps(est)
    finally:
        context.set_spawning_popen(None)
        torch.multiprocessing.set_sharing_strategy(strategy)
    if start == "forkserver":
        assert popen.fds == []
    else:  # shared, not copied
        assert len(popen.fds) >= len(est.model.state_dict())
        return
    clone = pickle.loads(blob)
    assert not clone.model.training and clone.model is not est.model
    own, copied = est.model.state_dict(), clone.model.state_dict()
    assert own.keys() == copied.keys()
    assert all(torch.equal(own[k], copied[k]) and own[k].dtype == copied[k].dtype for k in own)
    np.testing.assert_array_equal(clone.predict(RGB), est.predict(RGB))


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


# Thread safety: a load or an export changes nothing process-wide. They set the default dtype to
# float32 and forked the global RNG (saved, then restored its state) around the build: threads
# loading at once restored each other's float32, and a thread drawing meanwhile had its stream
# rewound (a training loop's augmentations repeated while a background thread loaded a model).
# The gates below order the threads the way that broke, so each test fails every time.


def _gated_builds(monkeypatch, gate):
    """`load_checkpoint`'s real (not meta) build calls `gate()` first."""

    def build(cfg):
        if not torch.empty(()).is_meta:
            gate()
        return DepthART(cfg)

    monkeypatch.setattr(ck, "DepthART", build)


def _wait(event: threading.Event) -> None:
    assert event.wait(30), "a thread did not get there"


def test_concurrent_loads_keep_the_callers_float64_default(
    tiny_checkpoint, float64_default, monkeypatch
):
    """The first of two loads inside the build at once finishes first (as when 4 threads load):
    the caller's float64 default is still the default after, and each model is float32."""
    first_in, second_in, first_done = threading.Event(), threading.Event(), threading.Event()

    def gate():
        if not first_in.is_set():
            first_in.set()
            _wait(second_in)
        else:
            second_in.set()
            _wait(first_done)

    _gated_builds(monkeypatch, gate)
    models = []

    def load():
        models.append(load_checkpoint(tiny_checkpoint)[0])

    first = threading.Thread(target=load)
    first.start()
    _wait(first_in)
    second = threading.Thread(target=load)
    second.start()
    first.join(30)
    first_done.set()
    second.join(30)
    assert len(models) == 2
    assert torch.get_default_dtype() == torch.float64
    for model in models:
        tensors = [*model.parameters(), *model.buffers()]
        assert {t.dtype for t in tensors if t.is_floating_point()} == {torch.float32}


def test_a_load_leaves_another_threads_random_stream(tiny_checkpoint, monkeypatch):
    """This thread draws from torch's global RNG, half before and half after a load in another
    thread builds its model: the same numbers as with no load going on."""
    building, drawn = threading.Event(), threading.Event()

    def gate():
        building.set()
        _wait(drawn)

    _gated_builds(monkeypatch, gate)
    state = torch.get_rng_state()
    try:
        torch.manual_seed(0)
        expected = [torch.randint(0, 2**62, (1,)).item() for _ in range(16)]
        torch.manual_seed(0)
        loader = threading.Thread(target=load_checkpoint, args=(tiny_checkpoint,))
        loader.start()
        _wait(building)
        got = [torch.randint(0, 2**62, (1,)).item() for _ in range(8)]
        drawn.set()
        loader.join(30)
        assert not loader.is_alive()
        got += [torch.randint(0, 2**62, (1,)).item() for _ in range(8)]
    finally:
        torch.set_rng_state(state)
    assert got == expected


def test_an_export_leaves_another_threads_default_dtype(
    tiny_model, float64_default, tmp_path, monkeypatch
):
    """While a thread exports a graph, another thread's tensors still get the float64 default,
    and the graph is float32 (no float64 constant: ONNX Runtime refused those in a Resize)."""
    onnx = pytest.importorskip("onnx")
    exporting, checked = threading.Event(), threading.Event()
    infer = type(tiny_model).infer  # the class's: the export traces a folded copy of the model

    def gated_infer(self, *args, **kwargs):
        if not exporting.is_set():
            exporting.set()
            _wait(checked)
        return infer(self, *args, **kwargs)

    monkeypatch.setattr(type(tiny_model), "infer", gated_infer)
    out = tmp_path / "tiny.onnx"
    worker = threading.Thread(target=export_onnx, args=(tiny_model, out))
    worker.start()
    _wait(exporting)
    made = torch.zeros(1).dtype, torch.tensor(0.5).dtype, torch.get_default_dtype()
    checked.set()
    worker.join(120)
    assert made == (torch.float64,) * 3
    graph = onnx.load(str(out)).graph
    doubles = [i.name for i in graph.initializer if i.data_type == onnx.TensorProto.DOUBLE]
    doubles += [
        n.name
        for n in graph.node
        for a in n.attribute
        if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == onnx.TensorProto.DOUBLE
    ]
    assert doubles == []


def test_a_build_to_load_never_draws_from_the_global_rng():
    """`_NoInit` (the build a load overwrites): initializers are skipped, and the random draws of
    those that no mode sees (`trunc_normal_`, whose rejection loop needs real values: left as
    they were, 5.0 would never pass) come from a generator of its own."""
    state = torch.get_rng_state()
    done = []

    def build():
        with ck._NoInit():
            w = torch.full((1000,), 5.0)
            torch.nn.init.trunc_normal_(w, std=1.0)
            linear = torch.nn.Linear(4, 4)
            torch.nn.init.constant_(linear.bias, 7.0)
        done.append((w, linear))

    worker = threading.Thread(target=build)
    worker.start()
    worker.join(30)
    assert done, "trunc_normal_'s rejection loop did not end"
    w, linear = done[0]
    assert w.abs().max() <= 2.0 and w.std() > 0.5  # drawn: truncated to [-2, 2]
    assert not torch.equal(linear.bias, torch.full((4,), 7.0))  # constant_ skipped
    assert torch.equal(torch.get_rng_state(), state)
