"""Code that only a GPU runs, checked here without one: the resize matrices' device cache (with
the meta device, which takes the same path), and which device the CUDA graph, the process group,
a torchrun teacher and `depthart bench` use (narrow monkeypatches of `torch.cuda` that record the
device each call names; nothing fakes a CUDA runtime)."""

from __future__ import annotations

import contextlib
import json

import pytest
import torch
import torch.distributed as dist

from depthart_core.tokenizer import resize
from depthart_core.tokenizer.resize import resize_square


@pytest.mark.parametrize("mode", ["area", "bicubic"])
def test_a_device_resize_matrix_first_made_under_inference_mode_still_trains(monkeypatch, mode):
    """A finetune teacher labels under inference_mode, then the student trains in the same
    process: the device matrix cached by the teacher must not be an inference tensor ("Inference
    tensors cannot be saved for backward"). The CPU path hid it; meta takes the device one."""
    monkeypatch.setattr(resize, "_DEVICE_CACHE", {})
    n_out = 8 if mode == "area" else 32
    with torch.inference_mode():
        resize_square(torch.zeros(1, 4, 16, 16, device="meta"), n_out, mode)
    feat = torch.zeros(1, 4, 16, 16, device="meta", requires_grad=True)
    out = resize_square(feat, n_out, mode)  # old: RuntimeError, inference tensors ... backward
    out.sum().backward()
    assert feat.grad is not None and feat.grad.shape == feat.shape
    assert not any(m.is_inference() for m in resize._DEVICE_CACHE.values())
    assert len(resize._DEVICE_CACHE) == 1  # the cached matrix, reused


class _Cuda:
    """Records the device `torch.cuda.device` holds current at each call of interest."""

    def __init__(self) -> None:
        self.current: list[torch.device] = []
        self.events: list[tuple] = []

    def now(self) -> torch.device | None:
        return self.current[-1] if self.current else None  # None: the process's current GPU

    @contextlib.contextmanager
    def device(self, d):
        self.current.append(torch.device(d))
        try:
            yield
        finally:
            self.current.pop()


def test_the_cuda_graph_is_captured_and_replayed_on_the_backends_gpu(monkeypatch, tiny_model):
    """torch.cuda.graph captures on a stream of the current device: a backend on cuda:1 with
    GPU 0 current ran its kernels eagerly on GPU 1 and captured an empty graph, so every later
    frame of that shape returned the first frame's depth."""
    from depthart_core.runtime.torch_backend import DepthEstimator

    cuda = _Cuda()

    class Stream:
        def __init__(self, device=None, priority=0):
            cuda.events.append(("stream", device and torch.device(device), cuda.now()))

        def wait_stream(self, other) -> None:
            pass

    class Graph:
        def replay(self) -> None:
            cuda.events.append(("replay", cuda.now()))

    @contextlib.contextmanager
    def graph(g, pool=None, stream=None, **kw):
        cuda.events.append(("capture", cuda.now(), stream is side[0]))
        yield

    side: list = []

    def new_stream(*a, **k):
        side.append(Stream(*a, **k))
        return side[-1]

    monkeypatch.setattr(torch.cuda, "device", cuda.device)
    monkeypatch.setattr(torch.cuda, "Stream", new_stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream.__new__(Stream))
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", graph)
    est = DepthEstimator(tiny_model, device="cpu")
    est.device, est.cuda_graph = torch.device("cuda", 1), True  # built on the CPU, as on GPU 1

    def forward(x):
        cuda.events.append(("forward", cuda.now()))
        return x[:, 0] * 2, x.flatten(1)[:, :3]

    monkeypatch.setattr(est, "_forward", forward)
    x = torch.rand(1, 3, 8, 8)
    depth, _ = est._graphed(x)
    assert torch.equal(depth, x[:, 0] * 2)
    est._graphed(torch.rand(1, 3, 8, 8))  # the same shape: a replay, no capture
    gpu1 = torch.device("cuda", 1)
    assert cuda.events == [
        ("stream", gpu1, gpu1),
        ("forward", gpu1),  # the two warm-up passes
        ("forward", gpu1),
        ("capture", gpu1, True),  # on the side stream of GPU 1
        ("forward", gpu1),
        ("replay", gpu1),
        ("replay", gpu1),
    ]


def _fake_group(monkeypatch) -> list[str]:
    chosen: list[str] = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: chosen.append(backend))
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)  # no GPU here
    return chosen


@pytest.mark.parametrize(
    ("device", "nccl", "expected"),
    [
        ("cpu", True, "gloo"),  # a CPU run on a GPU machine: NCCL cannot broadcast CPU tensors
        ("auto", True, "nccl"),
        ("cuda", True, "nccl"),
        ("cuda:1", True, "nccl"),
        ("cuda", False, "gloo"),  # JetPack's PyTorch: no NCCL
    ],
)
def test_the_process_group_follows_the_training_device(monkeypatch, device, nccl, expected):
    from depthart_core.training.distributed import init_distributed

    chosen = _fake_group(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine
    monkeypatch.setattr(dist, "is_nccl_available", lambda: nccl)
    assert init_distributed(device) == (0, 2)
    assert chosen == [expected]


@pytest.mark.parametrize(("device", "gpu"), [("cuda", 3), ("auto", 3), ("cuda:1", 1)])
def test_nccl_ranks_set_their_gpu_before_the_group(monkeypatch, device, gpu):
    # NCCL's barrier and collectives run on the current GPU; without set_device every rank
    # of a torchrun on one machine would first use GPU 0 (finetune's barrier before training)
    from depthart_core.training.distributed import init_distributed

    chosen = _fake_group(monkeypatch)
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_nccl_available", lambda: True)
    set_to: list[tuple[int, list[str]]] = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: set_to.append((i, list(chosen))))
    assert init_distributed(device) == (0, 2)
    assert set_to == [(gpu, [])]  # before the group was made
    assert chosen == ["nccl"]


def test_gloo_ranks_leave_the_current_gpu_alone(monkeypatch):
    from depthart_core.training.distributed import init_distributed

    _fake_group(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_nccl_available", lambda: False)  # JetPack
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: pytest.fail(f"set_device({i})"))
    assert init_distributed("cuda") == (0, 2)


class _Stop(Exception):
    pass


def test_train_and_finetune_give_their_device_to_the_process_group(monkeypatch, tmp_path):
    from depthart_core.finetune import run as finetune_run
    from depthart_core.finetune.frames import FrameConfig
    from depthart_core.training import trainer as trainer_mod
    from depthart_core.training.config import TrainConfig

    seen: list[tuple] = []

    def init(*args):
        seen.append(args)
        raise _Stop

    monkeypatch.setattr(trainer_mod, "init_distributed", init)
    monkeypatch.setattr(trainer_mod, "refuse_random_tokenizer", lambda cfg: None)
    monkeypatch.setattr(finetune_run, "init_distributed", init)
    monkeypatch.setattr(finetune_run, "resolve_checkpoint", lambda p: tmp_path / "base.st")
    with pytest.raises(_Stop):
        trainer_mod.Trainer(TrainConfig(device="cpu"), tmp_path / "run")
    frames = FrameConfig(image_topic="/image", depth_topic="/depth")
    cfg = finetune_run.FinetuneConfig(frames=frames, device="cpu")
    with pytest.raises(_Stop):
        finetune_run.run_finetune([tmp_path / "bag"], cfg, tmp_path / "ft")
    assert seen == [("cpu",), ("cpu",)]


@pytest.mark.parametrize(
    ("setting", "env", "expected"),
    [
        ("auto", {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, "cuda:1"),
        ("cuda", {"WORLD_SIZE": "4", "LOCAL_RANK": "3"}, "cuda:3"),
        ("cpu", {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, "cpu"),
        ("auto", {}, "cuda"),  # one process: the current GPU, as before
    ],
)
def test_a_torchrun_teacher_runs_on_its_own_processes_gpu(
    monkeypatch, tiny_checkpoint, setting, env, expected
):
    """Labels are made before the student's device is picked: plain cuda was GPU 0 in every
    torchrun process, all the teachers on one GPU."""
    from depthart_core.finetune import teacher

    for name in ("WORLD_SIZE", "LOCAL_RANK", "RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg = teacher.TeacherConfig(checkpoint=tiny_checkpoint, device=setting)
    devices = []

    def get_backend(name, device, **kw):
        devices.append(device)
        return object()

    monkeypatch.setattr(teacher, "get_backend", get_backend)
    teacher.Labeler(cfg, "run")._teacher()
    assert devices == [expected]


def test_bench_times_and_measures_the_backends_gpu_alone(monkeypatch, tmp_path, tiny_checkpoint):
    """`--device cuda:1`: peak memory was the current GPU's, since the process started (the
    peer's run included), and the timed stages waited for the current GPU, not cuda:1."""
    import depthart_core.runtime as runtime
    from depthart_core.cli import main
    from depthart_core.runtime import bench

    calls: list[tuple] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append(("reset", device))
    )

    def peak(device=None):
        calls.append(("peak", device))
        return 3 * 2**20

    monkeypatch.setattr(torch.cuda, "max_memory_allocated", peak)
    monkeypatch.setattr(
        torch.cuda, "synchronize", lambda device=None: calls.append(("sync", device))
    )

    class Backend:
        image_size = 64

        def describe(self) -> str:
            return "fake"

    stage = {"median_ms": 1.0, "p90_ms": 1.0}
    timed = {"stages": {"end_to_end": stage}, "fps": 1000.0, "uncertainty": False}

    def time_backend(*a):
        calls.append(("time",))
        return timed

    def time_peer(rgb, device, *a):
        calls.append(("peer", device))
        return {"name": "peer", "input": [14, 14], "stages": {"end_to_end": stage}, "fps": 1.0}

    monkeypatch.setattr(runtime, "get_backend", lambda *a, **k: Backend())
    monkeypatch.setattr(bench, "time_backend", time_backend)
    monkeypatch.setattr(bench, "time_peer", time_peer)
    out = tmp_path / "b.json"
    argv = ["bench", "--checkpoint", tiny_checkpoint, "--device", "cuda:1", "--json", str(out)]
    assert main(argv) == 0
    gpu1 = torch.device("cuda", 1)
    assert calls == [("reset", gpu1), ("time",), ("peak", gpu1), ("peer", gpu1)]
    assert json.loads(out.read_text())["peak_cuda_mb"] == 3.0
    calls.clear()
    bench._sync_fn(gpu1)()  # what each timed stage waits for
    assert calls == [("sync", gpu1)]
    assert bench._sync_fn(torch.device("cpu")) is None
