"""`kill -9` in the middle of writing a checkpoint leaves nothing that lasts: the training process
is stopped (SIGSTOP) when safetensors' own temp file is seen, killed only if the file is still
there while it is stopped (no timing race: the kill happens at exactly that moment), then the run
is resumed and its folder listed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors import safe_open

from depthart_core.cli import main
from depthart_core.fileutil import is_temp_name

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "training" / "configs" / "tiny_depthart.yaml"
FAST = ["batch_size=2", "data.val_count=2", "log_every=1", "val_every=1000", "ckpt_every=1"]
FAST += ["data.render_size=0", "data.pool_size=0"]
FAST += ["random_tokenizer_ok=true"]  # no stage-1 tokenizer run: quick
SAFETENSORS_TEMP = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")  # Rust `tempfile`'s name, beside the target
FINISHED_RUN = [
    ".depthart.lock",
    "checkpoint.json",
    "checkpoint.safetensors",
    "config.json",
    "metrics.jsonl",
    "progress.png",
    "train_state.safetensors",
]


def _argv(run: Path, steps: int, *extra: str) -> list[str]:
    sets = [a for s in [*FAST, f"steps={steps}"] for a in ("--set", s)]
    return ["train", "--config", str(CONFIG), "--out", str(run), "--no-progress", *sets, *extra]


def _safetensors_temp(run: Path) -> Path | None:
    """safetensors' own temp file, wherever it is in the run folder (atomic_write's temp folder
    holds it), or None."""
    try:
        entries = list(os.scandir(run))
        for e in entries:
            if e.is_dir() and is_temp_name(e.name):
                for inner in os.scandir(e.path):
                    if SAFETENSORS_TEMP.match(inner.name):
                        return Path(inner.path)
            elif SAFETENSORS_TEMP.match(e.name):
                return Path(e.path)
    except FileNotFoundError:  # a temp folder renamed or removed while listed
        return None
    return None


def _kill_while_safetensors_writes(run: Path, timeout_s: float = 300.0) -> Path:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "depthart_core", *_argv(run, 100_000)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if not (run / "train_state.safetensors").is_file():  # one save done: resumable
                time.sleep(0.05)
                continue
            found = _safetensors_temp(run)
            if found is None:
                continue
            os.kill(proc.pid, signal.SIGSTOP)
            if found.exists():  # still being written while the process cannot move on
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return found
            os.kill(proc.pid, signal.SIGCONT)
        raise AssertionError(f"never saw safetensors' temp file in {run} (rc {proc.poll()})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kill_9_during_a_checkpoint_write_then_resume_leaves_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    temp = _kill_while_safetensors_writes(run)
    # what kill -9 left: safetensors' temp file, inside atomic_write's temp folder in the run
    assert is_temp_name(temp.parent.name) and temp.parent.parent == run, temp
    left = sorted(p.name for p in run.iterdir() if is_temp_name(p.name))
    assert left, "the kill left no temp folder: the test did not hit a write"
    with safe_open(str(run / "train_state.safetensors"), framework="pt") as f:
        step = int(f.metadata()["step"])  # the last complete state, untouched by the kill
    assert main(_argv(run, step + 2, "--resume")) == 0
    assert f"done: {step + 2} steps" in capsys.readouterr().out
    assert sorted(p.name for p in run.iterdir()) == FINISHED_RUN
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r][-2:] == [step + 1, step + 2]
