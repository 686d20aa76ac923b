"""Ctrl-C (or SIGTERM, as a scheduler or `timeout` sends) during training saves the state at the
step it finishes and `--resume` goes on from there; a run stopped before its first save resumes
from step 0 with a warning rather than refusing its own folder."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors import safe_open

from depthart_core.cli import main
from depthart_core.training.trainer import _stop_on_signal

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "training" / "configs" / "tiny_depthart.yaml"
FAST = ["batch_size=2", "data.val_count=2", "log_every=1", "val_every=1000"]
FAST += ["data.render_size=0", "data.pool_size=0"]
FAST += ["random_tokenizer_ok=true"]  # no stage-1 tokenizer run: quick


def _argv(run: Path, steps: int, ckpt_every: int, *extra: str) -> list[str]:
    sets = [a for s in [*FAST, f"steps={steps}", f"ckpt_every={ckpt_every}"] for a in ("--set", s)]
    return ["train", "--config", str(CONFIG), "--out", str(run), "--no-progress", *sets, *extra]


def _default_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


@pytest.fixture
def default_sigint():
    """Python's own SIGINT handler for the test, whatever this pytest inherited (nohup and
    background jobs start with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _logged_steps(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    rows = [json.loads(r) for r in lines if r.strip().endswith("}")]
    return [r["step"] for r in rows if "loss" in r]  # training rows, not validation rows


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_saves_the_step_it_finishes_and_resume_goes_on(tmp_path, capsys, sig):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "depthart_core", *_argv(run, 100_000, 100_000)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # a fresh session: the signal reaches the trainer alone; with SIGINT's default disposition,
    # since a run under nohup or as a background job inherits it ignored (and the trainer leaves
    # an ignored signal alone, as tested below)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_default_signals)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None and len(_logged_steps(run)) < 2:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()
        assert not (run / "train_state.safetensors").exists()  # no periodic save yet
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    with safe_open(str(run / "train_state.safetensors"), framework="pt") as f:
        step = int(f.metadata()["step"])
    assert step >= 2 and _logged_steps(run)[-1] == step  # the step it finished, fully logged
    assert f"{signal.Signals(sig).name}: stopped at step {step} of 100000" in err
    assert "--resume" in err and "interrupted" in err
    assert main(_argv(run, step + 2, 100_000, "--resume")) == 0
    assert f"done: {step + 2} steps" in capsys.readouterr().out
    assert _logged_steps(run)[-3:] == [step, step + 1, step + 2]


def test_resume_of_a_run_that_never_saved_starts_from_step_0(tmp_path, capsys, caplog):
    run = tmp_path / "run"
    assert main(_argv(run, 2, 100_000)) == 0
    # as a kill before the first save leaves it (a save writes the state, then the checkpoint)
    for name in ("train_state.safetensors", "checkpoint.safetensors"):
        (run / name).unlink()
    assert main(_argv(run, 2, 100_000)) == 1  # without --resume the folder is still refused
    assert "--resume" in capsys.readouterr().err
    with caplog.at_level(logging.WARNING):
        assert main(_argv(run, 3, 100_000, "--resume")) == 0
    assert "has no train_state.safetensors" in caplog.text and "from step 0" in caplog.text
    assert "its log reached step 2" in caplog.text
    assert "done: 3 steps" in capsys.readouterr().out
    assert _logged_steps(run) == [1, 2, 3]  # the stale rows are gone, the log starts over


def test_stop_on_signal_notes_the_first_signal_and_raises_on_the_second(default_sigint):
    with _stop_on_signal() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop == [signal.SIGINT]  # noted: the loop finishes its step
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)  # again: at once
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:  # an ignored signal stays ignored (nohup); not enabled: nothing is caught
        with _stop_on_signal() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop == []
        with _stop_on_signal(enabled=False):
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_resume_of_a_finished_run_still_prints_its_validation(tmp_path, capsys):
    """--resume of a finished run runs no step, and still reports the validation it ended with."""
    run = tmp_path / "run"
    assert main(_argv(run, 2, 100_000)) == 0
    first = [x for x in capsys.readouterr().out.splitlines() if x.startswith("validation: ")]
    assert len(first) == 1 and "abs_rel=" in first[0]
    assert main(_argv(run, 2, 100_000, "--resume")) == 0
    out = capsys.readouterr().out
    assert "done: 2 steps" in out and first[0] in out.splitlines()
    # and what to do with it, the command's last line
    ckpt = run / "checkpoint.safetensors"
    assert out.splitlines()[-1] == f"use it: depthart predict IMAGE --checkpoint {ckpt}", out
