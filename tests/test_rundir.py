"""Run and report folders: a finished run is never overwritten without --resume/--overwrite,
a damaged train_state gives one line naming the last good checkpoint, interrupted writes leave
no temp files behind, and a folder in use cannot be claimed twice."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from depthart_core.cli import main
from depthart_core.rundir import (
    REPORT_MARKERS,
    RunDirError,
    claim_run_dir,
    describe_contents,
    read_train_state,
)
from depthart_core.training.config import load_train_config
from depthart_core.training.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "training" / "configs" / "tiny_depthart.yaml"
FAST = [
    "batch_size=2",
    "data.val_count=2",
    "log_every=1",
    "val_every=1000",
    "ckpt_every=1000",
    "data.render_size=0",
    "data.pool_size=0",
    "steps=2",
    "random_tokenizer_ok=true",  # no stage-1 run: quick
]


def _cfg():
    return load_train_config(CONFIG, FAST)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A real two-step run: train_state, checkpoint, metrics.jsonl, config.json."""
    run = tmp_path_factory.mktemp("runs") / "finished"
    tr = Trainer(_cfg(), run)
    tr.fit(progress=False)
    tr.run_lock.release()
    return run


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def _train_argv(out: Path, *extra: str) -> list[str]:
    sets = [a for s in FAST for a in ("--set", s)]
    return ["train", "--config", str(CONFIG), "--out", str(out), "--no-progress", *sets, *extra]


def test_new_run_into_a_finished_run_is_refused_and_nothing_changes(finished_run, tmp_path, capsys):
    run = _copy(finished_run, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.name != ".depthart.lock"}
    assert describe_contents(run) == "a run at step 2"
    assert main(_train_argv(run)) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        f"depthart train: error: {run} holds a run at step 2: pass --resume, or --overwrite, "
        "or another --out"
    )
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.name != ".depthart.lock"}
    assert after == before  # checkpoint, state and metrics.jsonl untouched
    with pytest.raises(RunDirError, match="holds a run at step 2"):
        Trainer(_cfg(), run)  # the library is protected too, not only the CLI


def test_overwrite_moves_the_old_run_aside(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path / "run")
    old_ckpt = (run / "checkpoint.safetensors").read_bytes()
    lock = claim_run_dir(run, overwrite=True)
    assert lock.moved_to is not None and lock.moved_to.name.startswith("run.old-")
    assert (lock.moved_to / "checkpoint.safetensors").read_bytes() == old_ckpt
    assert sorted(p.name for p in run.iterdir()) == [".depthart.lock"]
    lock.release()
    again = claim_run_dir(run, overwrite=True)  # nothing held now: nothing is moved
    assert again.moved_to is None
    again.release()
    with pytest.raises(RunDirError, match="exclude each other"):
        claim_run_dir(run, resume=True, overwrite=True)


def test_metrics_of_two_runs_never_mix(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path / "run")
    rows_before = (run / "metrics.jsonl").read_text().splitlines()
    tr = Trainer(_cfg(), run, overwrite=True)
    tr.fit(progress=False)
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]  # only the new run's rows
    assert (tr.run_lock.moved_to / "metrics.jsonl").read_text().splitlines() == rows_before


def test_damaged_train_state_is_one_line_naming_the_last_good_checkpoint(
    finished_run, tmp_path, capsys
):
    run = _copy(finished_run, tmp_path / "run")
    state = run / "train_state.safetensors"
    state.write_bytes(state.read_bytes()[:1000])  # truncated mid-file, as a full disk would
    with pytest.raises(RunDirError) as exc:
        read_train_state(run)
    msg = str(exc.value)
    assert "\n" not in msg and f"cannot resume: {state} is damaged" in msg
    assert f"last good checkpoint is {run / 'checkpoint.safetensors'} (step 2)" in msg
    assert main(_train_argv(run, "--resume")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and str(state) in err
    # no readable checkpoint either: say so, and how to start again
    (run / "checkpoint.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(RunDirError, match="no readable checkpoint.safetensors .* --overwrite"):
        read_train_state(run)
    # readable but missing the RNG state: damaged too, not a KeyError traceback
    from safetensors.torch import load_file, save_file

    good = load_file(str(finished_run / "train_state.safetensors"))
    good.pop("rng.torch")
    save_file(good, str(state), metadata={"step": "2", "config": "{}", "param_groups": "[]"})
    with pytest.raises(RunDirError, match=r"damaged \(missing rng.torch\)"):
        read_train_state(run)


def test_stale_temp_files_are_removed_on_start_and_others_kept(finished_run, tmp_path):
    run = _copy(finished_run, tmp_path / "run")  # with its lock file: a depthart run's folder
    # files named as earlier versions' temp files were, which a user's or another tool's files
    # can be named too (`.calib.json.20241231`, `.tmpABC123`): kept
    legacy = [run / ".train_state.safetensors.k2j_x9qa", run / ".checkpoint.safetensors.abcd1234"]
    legacy += [run / ".checkpoint.json.zz99yy88", run / ".tmpAb12Cd"]
    # this version's: atomic_write's temp folder holding safetensors' temp file, one level down
    folders = [
        run / ".train_state.safetensors.x1y2z3w4.tmp",
        run / "sub" / ".report.md.a_b_c_d_.tmp",
    ]
    for p in legacy:
        p.write_bytes(b"")
    for d in folders:
        d.mkdir(parents=True)
        (d / ".tmpQw3Rt6").write_bytes(b"\0" * 100)
    keep = [run / ".notes.txt", run / ".tmp", run / "sub" / "notes.tmp"]
    for p in keep:
        p.write_text("mine")
    tr = Trainer(_cfg(), run, resume=True)
    assert tr.step == 2
    assert not any(p.exists() for p in folders)
    assert all(p.read_text() == "mine" for p in keep)
    assert all(p.exists() for p in legacy)


def test_damaged_metrics_lines_are_skipped_by_file_and_line(finished_run, tmp_path, caplog):
    run = _copy(finished_run, tmp_path / "run")
    metrics = run / "metrics.jsonl"
    good = metrics.read_bytes()
    n = len(good.splitlines())
    half = b'{"step": 11, "rec": 0.5'  # a line a full disk cut short
    metrics.write_bytes(good[:-1] + b"\n" + half + b"\n\xff\xfe not utf-8\n[1, 2]\n")
    inode = metrics.stat().st_ino
    with caplog.at_level(logging.WARNING, logger="depthart_core.rundir"):
        tr = Trainer(_cfg(), run, resume=True)
    tr.run_lock.release()
    warned = [r.getMessage() for r in caplog.records if "skipped damaged line" in r.getMessage()]
    assert [w.split(" (")[0] for w in warned] == [
        f"skipped damaged line {k} of {metrics}" for k in (n + 1, n + 2, n + 3)
    ]
    assert tr.step == 2 and [r["step"] for r in tr.history] == [1, 2, 2]
    assert metrics.read_bytes() == good  # the good rows, rewritten
    assert metrics.stat().st_ino != inode  # by replacing the file (atomic), not in place
    assert main(_train_argv(run, "--resume", "--set", "steps=3")) == 0
    rows = [json.loads(r) for r in metrics.read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]


def test_refused_starts_leave_no_folder_and_no_lock(tmp_path, capsys):
    missing = tmp_path / "missing"
    assert main(_train_argv(missing, "--resume")) == 1
    err = capsys.readouterr().err
    assert f"--resume: no train_state.safetensors in {missing}: the folder does not exist" in err
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(_train_argv(empty, "--resume")) == 1
    assert f"no train_state.safetensors in {empty}" in capsys.readouterr().err
    assert list(empty.iterdir()) == []  # not even the lock file
    # a start that fails after the claim (its init checkpoint is a folder) removes what it made
    new = tmp_path / "new"
    assert main(_train_argv(new, "--set", f"init_checkpoint={tmp_path}")) == 1
    assert f"checkpoint {tmp_path} is a directory" in capsys.readouterr().err
    assert not new.exists()


def test_a_folder_in_use_by_another_process_cannot_be_claimed(tmp_path):
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from depthart_core.rundir import claim_run_dir\n"
         "lock = claim_run_dir(sys.argv[1]); print('held', flush=True); time.sleep(60)",
         str(tmp_path / "r")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(
            RunDirError, match=f"in use by another depthart process .pid {holder.pid}"
        ):
            claim_run_dir(tmp_path / "r", resume=True)
    finally:
        holder.kill()
        holder.wait()
    claim_run_dir(tmp_path / "r", resume=True).release()  # the kernel dropped the dead's lock
    own = claim_run_dir(tmp_path / "r", resume=True)
    claim_run_dir(tmp_path / "r", resume=True).release()  # this process may claim it again
    own.release()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirError, match="is a file, not a folder"):
        claim_run_dir(tmp_path / "file")


def test_a_holder_with_this_processs_pid_elsewhere_is_still_another_process(tmp_path):
    """In another container (PID namespace) a holder can have this process's pid: the lock
    file then names it, and the folder is still refused (it was taken as this process's own)."""
    import os
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", "import os, sys, time\n"
         "from depthart_core.rundir import LOCK_NAME, claim_run_dir\n"
         "lock = claim_run_dir(sys.argv[1])\n"
         "os.pwrite(lock.fd, sys.argv[2].encode(), 0)\n"  # as if its pid were the same
         "print('held', flush=True); time.sleep(60)",
         str(tmp_path / "r"), str(os.getpid())],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match="in use by another depthart process"):
            claim_run_dir(tmp_path / "r", resume=True)
    finally:
        holder.kill()
        holder.wait()


def test_eval_and_replay_refuse_a_report_folder(tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.json").write_text("{}")
    assert describe_contents(out, REPORT_MARKERS) == "a report (report.json)"
    argv = ["eval", "--baselines-only", "--baseline", "ramp", "--dataset", "nyuv2"]
    assert main([*argv, "--root", str(tmp_path / "nyu"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{out} holds a report (report.json): pass --overwrite or another --out" in err
    argv = ["replay", str(tmp_path / "none.mcap"), "--image-topic", "/c", "--out", str(out)]
    assert main(argv) == 1
    assert "holds a report (report.json)" in capsys.readouterr().err
    assert (out / "report.json").read_text() == "{}"
    # --overwrite moves it aside; the command then fails on the missing bag, report kept aside
    assert main([*argv, "--overwrite"]) == 1
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("report.old-")]
    assert len(aside) == 1 and (aside[0] / "report.json").read_text() == "{}"


def test_overwrite_refuses_to_move_the_current_directory(tmp_path, monkeypatch):
    """`--out . --overwrite` failed with "PosixPath('.') has an empty name"; moving the folder
    the process runs in would also send every later relative write into the moved folder."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "report.json").write_text("{}")
    monkeypatch.chdir(run)
    for out in (".", str(run), "sub/.."):
        with pytest.raises(RunDirError, match="holds the current directory"):
            claim_run_dir(out, overwrite=True, markers=("report.json",))
    assert (run / "report.json").is_file()  # nothing moved
    monkeypatch.chdir(tmp_path)
    lock = claim_run_dir("run/../run", overwrite=True, markers=("report.json",))
    lock.release()
    assert not (run / "report.json").exists() and list(tmp_path.glob("run.*"))


def test_a_lock_file_removed_while_locking_is_locked_again(tmp_path, monkeypatch):
    """A holder removes the lock file as it leaves (release_and_remove): a process that opened
    the old file before and then locks it holds a file nobody else sees, so a third would lock
    the new one too. The lock taken must be the folder's current file."""
    import fcntl as real_fcntl
    import os

    from depthart_core import rundir
    from depthart_core.rundir import LOCK_NAME

    folder = tmp_path / "set"
    folder.mkdir()
    calls = []
    flock = real_fcntl.flock

    def flock_after_the_holder_left(fd, op):
        if not calls:  # the first try: the holder removes the file in between
            (folder / LOCK_NAME).unlink()
        calls.append(op)
        return flock(fd, op)

    monkeypatch.setattr(rundir.fcntl, "flock", flock_after_the_holder_left)
    lock = rundir.hold_folder(folder)
    try:
        st = os.stat(folder / LOCK_NAME)
        assert (st.st_dev, st.st_ino) == rundir._file_key(lock.fd) and len(calls) == 2
    finally:
        lock.release_and_remove()


def test_only_depthart_temp_folders_of_the_last_holder_are_removed(tmp_path):
    """A claim removes the temp folders a killed depthart process left while it held the folder,
    nothing else: not a user's or another tool's files and folders with temp-like names, not
    entries older than that process's claim, and nothing in subfolders it did not change."""
    import os
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    old = time.time() - 3600
    user = {  # made before any depthart process held the folder
        run / ".calib.json.20241231": None,
        run / ".tmpABC123": None,
        run / ".params.yaml.backup01.tmp": None,  # a file named as a temp folder would be
        run / ".old.report.md.abcd1234.tmp": "dir",  # a folder so named, from long ago
        run / "data" / ".frames.npy.x1y2z3w4.tmp": "dir",  # in a folder depthart never changed
        run / ".tmpQW12er": "dir",  # another tool's temp folder
    }
    for p, kind in user.items():
        if kind == "dir":
            p.mkdir()
            (p / "mine.txt").write_text("mine")
        else:
            p.write_text("mine")
        os.utime(p, (old, old))
    os.utime(run / "data", (old, old))
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from depthart_core.fileutil import atomic_write\n"
         "from depthart_core.rundir import claim_run_dir\n"
         "lock = claim_run_dir(sys.argv[1])\n"
         "def slow(tmp):\n"
         "    open(tmp, 'wb').write(b'half'); print('writing', flush=True); time.sleep(60)\n"
         "atomic_write(sys.argv[1] + '/checkpoint.safetensors', slow)",
         str(run)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert writer.stdout.readline().strip() == "writing"
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    left = [p for p in run.iterdir() if p.name.startswith(".checkpoint.safetensors.")]
    assert len(left) == 1 and left[0].is_dir()
    (run / ".tmpLive01").write_text("another tool's, being written")  # after the claim
    claim_run_dir(run).release()
    assert not left[0].exists()  # the killed run's: removed
    assert (run / ".tmpLive01").read_text() == "another tool's, being written"
    for p, kind in user.items():
        assert (p / "mine.txt" if kind == "dir" else p).read_text() == "mine", p


def test_a_lock_that_cannot_be_written_is_one_error_and_leaves_no_folder(tmp_path, monkeypatch):
    """A full disk when the pid is written into the lock file: one WriteError naming the lock
    file, the descriptor closed, and the folders the claim made removed again."""
    import errno
    import os

    from depthart_core import rundir
    from depthart_core.fileutil import WriteError
    from depthart_core.rundir import LOCK_NAME

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir.os, "pwrite", full)
    fds = len(os.listdir("/proc/self/fd"))
    run = tmp_path / "new" / "run"
    with pytest.raises(WriteError, match=f"cannot write {run / LOCK_NAME}: no space left"):
        claim_run_dir(run)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "set").mkdir()
    with pytest.raises(WriteError, match="no space left on the device"):
        rundir.hold_folder(tmp_path / "set")
    assert list((tmp_path / "set").iterdir()) == []
    assert len(os.listdir("/proc/self/fd")) == fds


def test_a_failed_claim_keeps_the_last_holders_time_so_its_temps_still_go(tmp_path, monkeypatch):
    """A killed run leaves a temp folder; the next claim fails writing its pid (a disk full of
    that very temp). The claim after it, once space is free, must still remove the temp: the
    failed one neither deleted the lock file nor moved its time past the temp's."""
    import errno
    import time

    from depthart_core import rundir
    from depthart_core.fileutil import WriteError

    run = tmp_path / "run"
    lock = claim_run_dir(run)
    time.sleep(0.05)
    temp = run / ".report.json.abcd1234.tmp"
    temp.mkdir()
    (temp / "report.json").write_text("{")
    lock.release()  # killed: the lock file stays, unlocked
    with monkeypatch.context() as m:

        def full(fd, data, offset):
            raise OSError(errno.ENOSPC, "No space left on device")

        m.setattr(rundir.os, "pwrite", full)
        for _ in range(2):  # retried on the still-full disk: the time survives both
            with pytest.raises(WriteError, match="no space left"):
                claim_run_dir(run)
    assert (run / rundir.LOCK_NAME).is_file() and temp.is_dir()
    claim_run_dir(run).release()
    assert not temp.exists()


def test_a_failed_start_removes_the_empty_folders_its_claim_made(tmp_path, capsys):
    """`--out runs/x1/x2/x3` with a bad init checkpoint left runs/x1/x2 behind: only the leaf
    went. A folder above that held something before, or got something since, stays."""
    deep = tmp_path / "runs" / "x1" / "x2" / "x3"
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "keep.txt").write_text("mine")
    assert main(_train_argv(deep, "--set", f"init_checkpoint={tmp_path}")) == 1
    assert "is a directory" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["keep.txt"]
    lock = claim_run_dir(deep)
    (tmp_path / "runs" / "x1" / "other").mkdir()  # another command's folder, made meanwhile
    lock.abandon()
    assert sorted(p.name for p in (tmp_path / "runs" / "x1").iterdir()) == ["other"]
