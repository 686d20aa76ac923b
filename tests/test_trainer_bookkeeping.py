"""The training loop's bookkeeping (found by a probe of the loop): the checkpoint a non-finite
stop names, the precision that runs on the CPU, the dataset order per seed, the cosine on a
longer --resume, and `epochs` on the endless synthetic stream."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from depthart_core.checkpoint import read_checkpoint_info
from depthart_core.data.sample import DepthSample
from depthart_core.training.config import load_train_config
from depthart_core.training.data import DatasetBatches
from depthart_core.training.trainer import Trainer, lr_at

ROOT = Path(__file__).resolve().parent.parent
FAST = [
    "batch_size=2",
    "data.val_count=2",
    "log_every=1",
    "val_every=1000",
    "ckpt_every=1",
    "data.pool_size=0",
    "random_tokenizer_ok=true",  # no stage-1 run: quick
    "device=cpu",
]


def _cfg(*extra: str):
    return load_train_config(ROOT / "training" / "configs" / "tiny_depthart.yaml", FAST + [*extra])


def _files(run: Path) -> dict[str, bytes]:
    return {
        n: (run / n).read_bytes() for n in ("checkpoint.safetensors", "train_state.safetensors")
    }


def _all_finite(path: Path) -> bool:
    return all(
        torch.isfinite(t).all() for t in load_file(str(path)).values() if t.is_floating_point()
    )


@pytest.mark.parametrize("clip", ["0", "1.0"])
def test_a_non_finite_gradient_stops_before_its_update_and_is_never_saved(tmp_path, clip):
    """The update was never checked: a NaN gradient (or clip_grad_norm_'s NaN norm) made the
    weights NaN, the next save wrote them, and the next step's NaN loss called that checkpoint
    "the last good" one."""
    run = tmp_path / "r"
    tr = Trainer(_cfg("steps=4", f"optim.grad_clip={clip}"), run)
    tr.fit(steps=1, progress=False)
    before = _files(run)
    tr.train_step()  # step 2, not saved: the checkpoint's weights are not the ones that fail
    tr.model.transformer.head.weight.register_hook(lambda g: torch.full_like(g, float("nan")))
    with pytest.raises(FloatingPointError) as exc:
        tr.fit(progress=False)
    assert str(exc.value) == (
        "non-finite gradient norm (nan) at step 3; stopping. The last good checkpoint is kept: "
        f"{run / 'checkpoint.safetensors'} (step 1)"
    )
    assert _files(run) == before and _all_finite(run / "checkpoint.safetensors")
    assert tr.step == 2 and tr._finite_weights()  # the update never ran


def test_weights_that_are_not_finite_are_never_saved_over_the_last_checkpoint(tmp_path):
    run = tmp_path / "r"
    tr = Trainer(_cfg("steps=4"), run)
    tr.fit(steps=1, progress=False)
    before = _files(run)
    with torch.no_grad():
        tr.model.transformer.head.weight[0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match=r"non-finite weights after step 1; stopping\. "):
        tr.save()
    assert _files(run) == before


@pytest.mark.parametrize("ema", ["0", "0.5"])
def test_a_non_finite_loss_from_the_saved_weights_does_not_call_them_good(tmp_path, ema):
    """The probe's repro (lr 1000): step 1 is finite and saved, and its weights give NaN. The
    message called that checkpoint good (it cannot be resumed or fine-tuned from) and counted the
    step from 0 where metrics.jsonl counts from 1."""
    run = tmp_path / "r"
    sets = ["optim.warmup=0", "optim.grad_clip=0", "optim.schedule=none", "optim.lr=1000"]
    tr = Trainer(_cfg("steps=8", f"ema={ema}", *sets), run)
    with pytest.raises(FloatingPointError) as exc:
        tr.fit(progress=False)
    said = str(exc.value)
    found = re.fullmatch(
        r"non-finite (loss|gradient norm) \(nan\) at step (\d+); stopping\. The last "
        r"checkpoint(.*)",
        said,
    )
    assert found, said
    at, rest = int(found[2]), found[3]
    ckpt = run / "checkpoint.safetensors"
    saved = read_checkpoint_info(ckpt)["metadata"]["steps"]
    logged = [r["step"] for r in map(json.loads, (run / "metrics.jsonl").open()) if "loss" in r]
    assert saved == logged[-1] == at - 1, (said, saved, logged)  # counted as metrics.jsonl does
    if ema == "0":
        assert rest == f", {ckpt} (step {saved}), holds the weights that gave it, so it is no " + (
            "good start either: train again with a lower optim.lr (or check the data)"
        )
    else:  # the checkpoint holds the EMA, the state the weights themselves
        assert rest == f" is kept: {ckpt} (step {saved}, the EMA of these weights)"
    assert _all_finite(ckpt)


def test_bf16_runs_on_the_cpu_as_recorded_and_fp16_is_refused_there(tmp_path, capsys):
    """On the CPU the step ran in fp32 whatever `precision` said, while config.json and the
    checkpoint recorded bf16 (or fp16)."""
    runs = {}
    for precision in ("fp32", "bf16"):
        runs[precision] = tr = Trainer(
            _cfg("steps=2", f"precision={precision}"), tmp_path / precision
        )
        tr.fit(progress=False)
        meta = read_checkpoint_info(tmp_path / precision / "checkpoint.safetensors")["metadata"]
        assert meta["train_config"]["precision"] == precision
    assert all(torch.isfinite(p).all() for p in runs["bf16"].params)
    differs = [
        not torch.equal(a, b) for a, b in zip(runs["fp32"].params, runs["bf16"].params, strict=True)
    ]
    assert any(differs)  # bf16 autocast changed the arithmetic
    with pytest.raises(ValueError) as exc:
        Trainer(_cfg("steps=2", "precision=fp16"), tmp_path / "fp16")
    assert str(exc.value) == (
        "precision=fp16 needs a CUDA device (its loss scaling), and this run is on the cpu: use "
        "precision=bf16 (autocast) or fp32 (a run moved off its GPU too: --set precision=bf16 "
        "--resume)"
    )
    assert not (tmp_path / "fp16").exists()  # refused before anything was written
    from depthart_core.cli import main

    out = tmp_path / "cli"
    argv = ["train", "--config", str(ROOT / "training/configs/tiny_depthart.yaml"), "--out"]
    argv += [str(out), *[a for s in [*FAST, "precision=fp16"] for a in ("--set", s)]]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("depthart train: error: precision=fp16 needs a CUDA device"), err
    assert err.count("\n") == 1 and not out.exists()


def test_a_gpu_run_in_fp16_goes_on_off_the_gpu_in_another_precision(tmp_path) -> None:
    """fp16 is refused off CUDA, so a GPU's fp16 run moved to the CPU must be able to change its
    precision on --resume (as it changes its device), said in the resume's log."""
    from depthart_core.training.trainer import resumed_changes

    saved = _cfg("steps=2", "precision=fp16").to_dict() | {"device": "cuda"}
    now = _cfg("steps=2", "precision=bf16", "device=cpu")
    assert set(resumed_changes(saved, now)) == {
        "precision 'fp16' -> 'bf16'",
        "device 'cuda' -> 'cpu'",
    }
    run = tmp_path / "r"
    Trainer(_cfg("steps=2", "precision=fp32"), run).fit(progress=False)
    resumed = Trainer(_cfg("steps=3", "precision=bf16"), run, resume=True)
    assert resumed.step == 2
    resumed.fit(progress=False)
    assert json.loads((run / "config.json").read_text())["precision"] == "bf16"


class _Numbered:
    """Frames whose RGB is their index, to see the order a shuffle gave."""

    def __init__(self, n: int) -> None:
        self.n, self.name = n, "numbered"

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> DepthSample:
        valid = np.ones((4, 4), bool)
        depth = np.full((4, 4), 1.0 + i, np.float32)
        return DepthSample(np.full((4, 4, 3), i, np.uint8), depth, valid, f"frame{i}")


def _order(seed: int, epoch: int, n: int = 12) -> list[int]:
    batches = DatasetBatches(_Numbered(n), seed=seed, size=4, batch=2)
    steps = range(epoch * batches.steps_per_epoch, (epoch + 1) * batches.steps_per_epoch)
    return [int(v) for s in steps for v in batches.batch_at(s)["rgb"][:, 0, 0, 0]]


def test_the_dataset_order_of_one_seed_is_not_another_seeds_order_one_epoch_on():
    """`default_rng(seed + epoch)`: data.seed 1's epoch e was data.seed 0's epoch e + 1, so seed
    sweeps on a dataset shared all but one epoch's order."""
    assert sorted(_order(0, 0)) == list(range(12)) and _order(0, 1) == _order(0, 1)
    for epoch in range(3):
        assert _order(1, epoch) != _order(0, epoch + 1), epoch
    assert _order(0, 0) != _order(0, 1)


def test_a_longer_resume_under_the_cosine_says_how_the_learning_rate_changes(tmp_path, caplog):
    """The cosine ends at the run's length, which --resume may change: the lr of a finished run
    jumped from near 0 to half its peak again, with no word."""
    run = tmp_path / "r"
    sets = ["optim.warmup=0", "optim.schedule=cosine", "ckpt_every=1000"]
    Trainer(_cfg("steps=4", *sets), run).fit(progress=False)
    with caplog.at_level(logging.WARNING):
        longer = Trainer(_cfg("steps=8", *sets), run, resume=True)
    cfg = longer.cfg
    old, new = lr_at(4, cfg, 4), lr_at(4, cfg, 8)
    assert old == 0.0 and new > 0.0
    assert (
        f"--resume: the cosine schedule now ends at step 8, not 4: the lr of step 5 goes from "
        f"{old:.3g} to {new:.3g} (it rises again: a warm restart)"
    ) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the same length: nothing to say
        Trainer(_cfg("steps=4", *sets), run, resume=True)
    assert "cosine" not in caplog.text


def test_epochs_on_the_endless_synthetic_stream_is_refused_in_one_line(tmp_path, capsys):
    """`epochs` was silently ignored there (the run took `steps`)."""
    words = (
        "epochs=5 needs a finite dataset, and data.source synthetic with data.pool_size 0 is an "
        "endless stream of new frames: set steps instead (and epochs=0), or data.pool_size=N to "
        "train on a fixed pool of N frames"
    )
    with pytest.raises(ValueError) as exc:
        _cfg("epochs=5")
    assert str(exc.value) == words
    assert _cfg("epochs=5", "data.pool_size=8").epochs == 5  # a fixed pool has epochs
    from depthart_core.cli import main

    out = tmp_path / "cli"
    argv = ["train", "--config", str(ROOT / "training/configs/tiny_depthart.yaml"), "--out"]
    argv += [str(out), *[a for s in [*FAST, "epochs=5"] for a in ("--set", s)]]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == f"depthart train: error: {words}\n" and not out.exists()


def test_a_parameter_no_rank_gave_a_gradient_keeps_none_under_torchrun(monkeypatch) -> None:
    """With `detach_embedding` and the conv-encoder prefix the word embedding gets no gradient:
    one process leaves it to AdamW's skip (no weight decay), and torchrun's all-reduce filled it
    with zeros, so weight decay moved it. A stand-in reduce sums two identical ranks."""
    from depthart_core.training import distributed

    monkeypatch.setattr(distributed.dist, "all_reduce", lambda t: t.mul_(2))
    used, unused = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    used.grad = torch.tensor([1.0, 2.0, 3.0])
    distributed.allreduce_grads([used, unused], world=2)
    assert torch.equal(used.grad, torch.tensor([1.0, 2.0, 3.0])) and unused.grad is None
    opt = torch.optim.AdamW([used, unused], lr=0.1, weight_decay=0.5)
    opt.step()
    assert torch.equal(unused.data, torch.ones(2))  # untouched, as in one process
