"""`--resume` on a GPU continues the CUDA generator too (the rollout's Gumbel noise, dropout and
every draw made with device=cuda), per rank; a CPU run's state file is as before.

No GPU is needed: `torch.cuda.get_rng_state` / `set_rng_state` are replaced by a fake that
records the device each call names and hands out (or takes) a known state."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from depthart_core.training.config import load_train_config
from depthart_core.training.distributed import gather_rng_states
from depthart_core.training.state import restore_train_state, save_train_state
from depthart_core.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {"stage": "transformer", "preset": "tiny", "seed": 0}
GPU1 = torch.device("cuda", 1)
CPU = torch.device("cpu")


def _state(i: int) -> torch.Tensor:
    """A known CUDA generator state of rank i (16 bytes, as a Philox state is)."""
    return torch.arange(16, dtype=torch.uint8) + 16 * i


class FakeCuda:
    """Records (what, device, state) for every get_rng_state / set_rng_state call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object, torch.Tensor | None]] = []

    def get_rng_state(self, device="cuda"):
        self.calls.append(("get", device, None))
        return _state(0)

    def set_rng_state(self, new_state, device="cuda"):
        assert new_state.dtype == torch.uint8 and new_state.device.type == "cpu"
        self.calls.append(("set", device, new_state.clone()))


@pytest.fixture
def fake_cuda(monkeypatch):
    fake = FakeCuda()
    monkeypatch.setattr(torch.cuda, "get_rng_state", fake.get_rng_state)
    monkeypatch.setattr(torch.cuda, "set_rng_state", fake.set_rng_state)
    return fake


def _model_opt():
    model = torch.nn.Linear(2, 2)
    return model, torch.optim.AdamW(model.parameters())  # no moments: nothing goes to the GPU


def _keys(run: Path) -> set[str]:
    with safe_open(str(run / "train_state.safetensors"), "pt") as f:
        return set(f.keys())


def _contents(run: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    with safe_open(str(run / "train_state.safetensors"), "pt") as f:
        return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}


def _add_tensors(run: Path, extra: dict[str, torch.Tensor]) -> None:
    """Rewrite the state file with more tensors, keeping its metadata."""
    path = run / "train_state.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    save_file({**load_file(str(path)), **extra}, str(path), metadata=meta)


def test_a_cuda_save_holds_the_gpu_generator_of_the_run_device(tmp_path, fake_cuda):
    model, opt = _model_opt()
    save_train_state(tmp_path, model, opt, None, 3, CONFIG, None, device=GPU1)
    assert fake_cuda.calls == [("get", GPU1, None)]  # cuda:1's generator, not the default GPU's
    saved = load_file(str(tmp_path / "train_state.safetensors"))
    assert torch.equal(saved["rng.cuda"], _state(0))
    assert not any(k.startswith("rng.cuda.") for k in saved)
    # data parallel: every rank's state as gathered, each under its rank
    states = [_state(0), _state(1), _state(2)]
    save_train_state(
        tmp_path, model, opt, None, 3, CONFIG, None, device=GPU1, cuda_rng_states=states
    )
    saved = load_file(str(tmp_path / "train_state.safetensors"))
    for rank, key in enumerate(("rng.cuda", "rng.cuda.1", "rng.cuda.2")):
        assert torch.equal(saved[key], _state(rank)), key


def test_a_resume_on_cuda_sets_each_ranks_gpu_generator(tmp_path, fake_cuda):
    model, opt = _model_opt()
    cpu_states = [torch.get_rng_state(), torch.get_rng_state()]  # two tensors
    save_train_state(tmp_path, model, opt, None, 5, CONFIG, cpu_states)
    _add_tensors(tmp_path, {"rng.cuda": _state(0), "rng.cuda.1": _state(1)})
    for rank in (0, 1):
        fake_cuda.calls.clear()
        step = restore_train_state(tmp_path, model, opt, None, "transformer", "tiny", GPU1, rank)
        assert step == 5
        assert [(c[0], c[1]) for c in fake_cuda.calls] == [("set", GPU1)]
        assert torch.equal(fake_cuda.calls[0][2], _state(rank))
    # a rank the run did not have is seeded (manual_seed reseeds the GPUs too), never set
    fake_cuda.calls.clear()
    restore_train_state(tmp_path, model, opt, None, "transformer", "tiny", GPU1, rank=2)
    assert fake_cuda.calls == []


def test_save_and_resume_round_trip_the_gpu_state(tmp_path, fake_cuda):
    model, opt = _model_opt()
    save_train_state(tmp_path, model, opt, None, 2, CONFIG, None, device=GPU1)
    restore_train_state(tmp_path, model, opt, None, "transformer", "tiny", GPU1)
    assert [(c[0], c[1]) for c in fake_cuda.calls] == [("get", GPU1), ("set", GPU1)]
    assert torch.equal(fake_cuda.calls[1][2], _state(0))


def test_a_cpu_save_has_no_cuda_keys_and_is_unchanged(tmp_path, fake_cuda):
    model, opt = _model_opt()
    rng = [torch.get_rng_state()]
    save_train_state(tmp_path / "a", model, opt, None, 1, CONFIG, rng)
    save_train_state(tmp_path / "b", model, opt, None, 1, CONFIG, rng, device=CPU)
    assert (
        _keys(tmp_path / "a")
        == _keys(tmp_path / "b")
        == {"model.weight", "model.bias", "rng.torch"}
    )
    a, b = (_contents(tmp_path / d) for d in "ab")  # the file's bytes hold a hashed map
    assert a[0] == b[0] and a[1].keys() == b[1].keys()
    assert all(torch.equal(a[1][k], b[1][k]) for k in a[1])
    assert fake_cuda.calls == []


def test_a_state_without_a_gpu_generator_resumes_on_cuda_as_before(tmp_path, fake_cuda, caplog):
    """Written on CPU (device may change on resume) or by an older version: no crash, the CPU
    generator is restored, the GPU's is left as start-up made it, and one line says so."""
    model, opt = _model_opt()
    torch.manual_seed(7)
    expect = torch.get_rng_state()
    save_train_state(tmp_path, model, opt, None, 4, CONFIG, [expect])
    torch.manual_seed(8)
    with caplog.at_level(logging.WARNING, logger="depthart_core.training.state"):
        step = restore_train_state(tmp_path, model, opt, None, "transformer", "tiny", GPU1)
    assert step == 4
    assert torch.equal(torch.get_rng_state(), expect)
    assert fake_cuda.calls == []
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "no CUDA RNG state" in notes[0] and "\n" not in notes[0]


def test_a_state_written_on_cuda_resumes_on_cpu(tmp_path, fake_cuda):
    model, opt = _model_opt()
    torch.manual_seed(3)
    expect = torch.get_rng_state()
    save_train_state(tmp_path, model, opt, None, 6, CONFIG, [expect], device=GPU1)
    fake_cuda.calls.clear()
    torch.manual_seed(4)
    assert restore_train_state(tmp_path, model, opt, None, "transformer", "tiny", CPU) == 6
    assert torch.equal(torch.get_rng_state(), expect)
    assert fake_cuda.calls == []


def test_gather_rng_states_reads_the_run_devices_generator(fake_cuda):
    cpu = gather_rng_states(1)
    assert torch.equal(cpu[0], torch.get_rng_state()) and fake_cuda.calls == []
    assert torch.equal(gather_rng_states(1, CPU)[0], torch.get_rng_state())
    assert fake_cuda.calls == []
    gpu = gather_rng_states(1, GPU1)
    assert len(gpu) == 1 and torch.equal(gpu[0], _state(0))
    assert fake_cuda.calls == [("get", GPU1, None)]


def test_the_trainer_saves_its_devices_gpu_generator(tmp_path, monkeypatch, fake_cuda):
    """Trainer.save passes the run's device: a CUDA run's file gets `rng.cuda` from that
    device; a CPU run's gets none (its device is swapped after a CPU set-up: no GPU here)."""
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path / "cache"))
    cfg = load_train_config(
        ROOT / "training" / "configs" / "tiny_depthart.yaml",
        [
            "steps=1",
            "batch_size=2",
            "data.val_count=2",
            "data.render_size=0",
            "data.pool_size=0",
            "random_tokenizer_ok=true",
        ],
    )
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.save()
    assert not any(k.startswith("rng.cuda") for k in _keys(tmp_path / "run"))
    assert fake_cuda.calls == []
    trainer.device = GPU1
    trainer.save()
    saved = load_file(str(tmp_path / "run" / "train_state.safetensors"))
    assert torch.equal(saved["rng.cuda"], _state(0))
    assert fake_cuda.calls == [("get", GPU1, None)]
