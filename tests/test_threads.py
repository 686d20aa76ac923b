"""Thread counts: one rule (explicit, else $OMP_NUM_THREADS, else half the cores, at most 4)
applied by every backend; and the benchmark's busy-core load."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import sys
import time

import numpy as np
import pytest
import torch

from depthart_core.cli import main
from depthart_core.runtime import get_backend, threads
from depthart_core.runtime.cpu_load import busy_cores
from depthart_ros.params import validate_params


@pytest.mark.parametrize(("cpus", "want"), [(1, 1), (2, 1), (3, 1), (8, 4), (6, 3), (64, 4)])
def test_default_leaves_cores_for_other_processes(monkeypatch, cpus, want):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cpus", lambda: cpus)
    assert threads.resolve_threads(0) == want
    assert threads.resolve_threads(3) == 3  # explicit wins


def test_omp_num_threads_is_respected_and_bad_values_refused(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.resolve_threads(0) == 3 and threads.resolve_threads(2) == 2
    monkeypatch.setenv("OMP_NUM_THREADS", str(threads.MAX_THREADS + 1))  # --threads' limit
    with pytest.raises(ValueError, match=f"OMP_NUM_THREADS={threads.MAX_THREADS + 1} is above"):
        threads.resolve_threads(0)
    assert threads.resolve_threads(2) == 2  # an explicit count does not read it
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    monkeypatch.setattr(threads, "available_cpus", lambda: 8)
    assert threads.resolve_threads(0) == 4
    for bad in (-1, threads.MAX_THREADS + 1, 100_000):  # 100,000 OpenMP threads stalled a host
        with pytest.raises(ValueError, match=rf"threads must be 0 \(automatic\) to 256, got {bad}"):
            threads.resolve_threads(bad)
    assert threads.resolve_threads(threads.MAX_THREADS) == 256


def test_backends_use_the_requested_threads(tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPTHART_CACHE", str(tmp_path))
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        get_backend("torch", tiny_checkpoint, threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(saved)
    pytest.importorskip("onnxruntime")
    ort = get_backend("onnxruntime", tiny_checkpoint, threads=1)
    assert ort.session.get_session_options().intra_op_num_threads == 1
    assert ort.describe().endswith("1 threads)")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    ort = get_backend("onnxruntime", tiny_checkpoint)
    assert ort.session.get_session_options().intra_op_num_threads == 2


def test_the_python_api_applies_the_rule_too(tiny_checkpoint, monkeypatch):
    """README's first example, `DepthEstimator.from_checkpoint()`, left PyTorch at one thread
    per core: 15x slower with one busy core here. It applies the rule; threads=None leaves them."""
    from depthart_core.runtime.torch_backend import DepthEstimator

    saved = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(2)
        DepthEstimator.from_checkpoint(tiny_checkpoint)
        assert torch.get_num_threads() == 1
        DepthEstimator.from_checkpoint(tiny_checkpoint, threads=2)
        assert torch.get_num_threads() == 2
        torch.set_num_threads(3)
        DepthEstimator.from_checkpoint(tiny_checkpoint, threads=None)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(saved)


def test_a_forked_child_runs_with_one_thread_and_does_not_hang(tiny_checkpoint):
    """GNU OpenMP's pool does not survive a fork: a "fork" worker of a parent that had run torch
    at 2 threads hung forever in its first conv. The child now runs with one thread."""
    import subprocess

    code = (
        "import multiprocessing as mp, sys, numpy as np, torch\n"
        "from depthart_core.runtime import get_backend\n"
        "backend = get_backend('torch', sys.argv[1], threads=2)\n"
        "rgb = np.zeros((48, 64, 3), np.uint8)\n"
        "def work(_):\n"
        "    return torch.get_num_threads(), backend.predict(rgb).shape\n"
        "if __name__ == '__main__':\n"
        "    backend.predict(rgb)  # the parent's OpenMP pool now exists\n"
        "    with mp.get_context('fork').Pool(1) as pool:\n"
        "        print(pool.map_async(work, [0]).get(timeout=45), flush=True)\n"
        "    print('parent', torch.get_num_threads())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    res = subprocess.run(
        [sys.executable, "-c", code, tiny_checkpoint],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]  # a hang: multiprocessing's TimeoutError
    assert res.stdout.splitlines() == ["[(1, (48, 64))]", "parent 2"]


@pytest.mark.parametrize("bad", ["2", 2.5, True, None])
def test_every_path_refuses_a_thread_count_that_is_not_an_int(tiny_checkpoint, bad):
    """`get_backend` refused threads="2"; `DepthEstimator.from_checkpoint` and
    `OnnxRuntimeBackend.from_checkpoint` failed deep inside PyTorch or compared str with int."""
    from depthart_core.runtime.torch_backend import DepthEstimator

    want = rf"threads must be an int \(0 = automatic\), got {re.escape(repr(bad))}"
    with pytest.raises(TypeError, match=want):
        threads.resolve_threads(bad)
    with pytest.raises(TypeError, match=want):
        get_backend("torch", tiny_checkpoint, threads=bad)
    if bad is not None:  # None: leave PyTorch's threads as set
        with pytest.raises(TypeError, match=want):
            DepthEstimator.from_checkpoint(tiny_checkpoint, threads=bad)
    pytest.importorskip("onnxruntime")
    from depthart_core.runtime.onnx_backend import OnnxRuntimeBackend

    with pytest.raises(TypeError, match=want):
        OnnxRuntimeBackend.from_checkpoint(tiny_checkpoint, threads=bad)
    assert threads.resolve_threads(np.int64(2)) == 2  # from a config or an array: an int


def test_node_threads_parameter_is_checked():
    assert validate_params({"threads": 0}) is None and validate_params({"threads": 2}) is None
    assert "threads=-1 is outside [0, 256]" in validate_params({"threads": -1})


def _utime_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().split()[13])


def test_busy_cores_pins_spinning_processes_and_stops_them():
    with busy_cores(1) as cores:
        (child,) = mp.active_children()
        assert cores == [sorted(os.sched_getaffinity(0))[-1]]
        assert os.sched_getaffinity(child.pid) == set(cores)
        deadline = time.monotonic() + 30.0  # a busy machine may schedule it late, not never
        while _utime_ticks(child.pid) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _utime_ticks(child.pid) > 0  # it really spins
    assert not child.is_alive() and mp.active_children() == []
    with pytest.raises(ValueError, match="cannot keep 999 cores busy"):
        with busy_cores(999):
            pass


def test_bench_records_the_load(tmp_path):
    out = tmp_path / "b.json"
    argv = ["bench", "--preset", "tiny", "--backend", "torch", "--size", "24x32", "--runs", "2"]
    argv += ["--warmup", "0", "--no-peer", "--busy-cores", "1", "--threads", "1"]
    assert main([*argv, "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["busy_cores"] == 1 and "1 threads" in res["device"]
    assert mp.active_children() == []


def test_train_threads_option(tmp_path):
    """`depthart train --threads 1` runs with one torch thread (0 keeps PyTorch's choice)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    script = (
        "import sys, torch\n"
        "from depthart_core.cli import main\n"
        "import depthart_core.training.trainer as t\n"
        "orig = t.Trainer.fit\n"
        "def fit(self, *a, **k):\n"
        "    print('threads', torch.get_num_threads(), flush=True)\n"
        "    return orig(self, *a, **k)\n"
        "t.Trainer.fit = fit\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    sets = ["batch_size=2", "data.val_count=2", "steps=1", "data.render_size=0", "data.pool_size=0"]
    sets += ["random_tokenizer_ok=true"]
    argv = ["train", "--config", str(root / "training/configs/tiny_depthart.yaml")]
    argv += ["--out", str(tmp_path / "r"), "--no-progress", "--threads", "1"]
    argv += [a for s in sets for a in ("--set", s)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    res = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "threads 1" in res.stdout.splitlines()


def test_run_loaded_repeats_until_the_first_failure(tmp_path, capsys):
    from depthart_core.runtime.cpu_load import main as cpu_load_main

    counter = tmp_path / "runs"
    # appends one line per run; fails (exit 3) on the second run
    script = (
        "import sys, pathlib; p = pathlib.Path(sys.argv[1]); "
        "n = len(p.read_text().splitlines()) if p.exists() else 0; "
        "p.write_text('x\\n' * (n + 1)); sys.exit(3 if n == 1 else 0)"
    )
    rc = cpu_load_main(["--busy", "1", "--repeat", "3", "--", sys.executable, "-c", script,
                        str(counter)])  # fmt: skip
    assert rc == 3 and counter.read_text() == "x\nx\n"  # the third run never started
    out = capsys.readouterr().out
    assert "run 1/3 exit 0" in out and "run 2/3 exit 3" in out and "run 3/3" not in out
    assert mp.active_children() == []


def test_run_loaded_names_a_command_that_cannot_run(capsys):
    from depthart_core.runtime.cpu_load import main as cpu_load_main

    with pytest.raises(SystemExit) as exit_info:
        cpu_load_main(["--busy", "0", "--", "no_such_command_depthart"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "cannot run 'no_such_command_depthart'" in err and "Traceback" not in err


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def test_busy_loops_end_with_their_parent_and_on_sigterm(tmp_path):
    """A parent killed by SIGKILL runs no clean-up: its busy loops stop themselves. SIGTERM to
    `cpu_load` (a cancelled CI job) stops the loops and the command, as Ctrl-C does."""
    import signal
    import subprocess
    import sys

    code = (
        "import multiprocessing as mp, time\n"
        "from depthart_core.runtime.cpu_load import busy_cores\n"
        "with busy_cores(1):\n"
        "    print(mp.active_children()[0].pid, flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    loop = int(parent.stdout.readline())
    parent.kill()
    parent.wait(30)
    assert _wait_gone([loop]) == [], "a busy loop outlived its killed parent"

    marker = tmp_path / "child"
    child = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    cmd = [sys.executable, "-m", "depthart_core.runtime.cpu_load", "--busy", "1", "--"]
    load = subprocess.Popen([*cmd, sys.executable, "-c", child], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (marker.is_file() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    loops = [int(p) for p in os.listdir("/proc") if p.isdigit() and _parent_of(int(p)) == load.pid]
    load.send_signal(signal.SIGTERM)
    err = load.stderr.read()
    assert load.wait(30) == 130 and "stopped by SIGTERM" in err
    assert "Traceback" not in err, err  # the loops, stopped by SIGTERM, end quietly
    assert _wait_gone([int(marker.read_text()), *loops]) == []


def _parent_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ValueError, IndexError):
        return -1


def test_a_thread_that_ran_frames_follows_a_later_count(tiny_checkpoint):
    """PyTorch's OpenMP count is per thread, fixed at its first parallel op: a node's worker that
    had run frames kept its count when a second node of the process loaded with another (the
    warning and README said every node then used the new one). It follows it now."""
    import threading

    from depthart_core.runtime import get_backend

    first = get_backend("torch", tiny_checkpoint, threads=2)
    rgb = np.zeros((24, 32, 3), np.uint8)
    seen: list[int] = []
    go, ran = threading.Event(), threading.Event()

    def worker() -> None:  # the first node's worker thread
        first.predict(rgb)
        seen.append(torch.get_num_threads())  # its own count, fixed at its first op
        ran.set()
        go.wait(30)
        first.predict(rgb)
        seen.append(torch.get_num_threads())  # the count the frame just ran at

    t = threading.Thread(target=worker)
    t.start()
    assert ran.wait(60)
    get_backend("torch", tiny_checkpoint, threads=1)  # a second node loads, on another thread
    go.set()
    t.join(60)
    assert seen == [2, 1], seen
