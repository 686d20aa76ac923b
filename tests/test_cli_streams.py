"""`depthart` against the streams a shell gives it: a pipe whose reader has gone, a full disk, a
closed stderr; names too long for the file system; `python -m depthart_core.cli`; and
training/uncertainty_eval.py's refusal of a set smaller than --count."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from depthart_core.cli import main
from depthart_core.cli import predict as predict_cli
from depthart_core.data.synthetic.set import write_synthetic_set

ROOT = Path(__file__).resolve().parent.parent
# as a user's shell runs it: stdout block-buffered into a pipe or a file
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | {"OMP_NUM_THREADS": "1"}
DEPTHART = [sys.executable, "-m", "depthart_core"]


def _image(path: Path, h: int = 20, w: int = 30) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(h * w)
    assert cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return str(path)


def _predict_argv(tiny_checkpoint: str, names: list[str], out: Path) -> list[str]:
    return [
        "predict", *names, "--checkpoint", tiny_checkpoint, "--backend", "torch",
        "--threads", "1", "--out", str(out),
    ]  # fmt: skip


def _closed_stderr() -> None:
    os.close(2)  # in the child, before exec: Python starts with sys.stderr None (`2>&-`)


def test_info_into_a_closed_pipe_ends_quietly_with_141(tiny_checkpoint):
    """`depthart info | true`: the output is written at the interpreter's exit flush, after main
    returned, which printed "Exception ignored ... BrokenPipeError" and exited 120."""
    proc = subprocess.Popen(
        [*DEPTHART, "info", tiny_checkpoint],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=ROOT,
    )  # fmt: skip
    proc.stdout.close()  # long before the interpreter has started and printed
    _, err = proc.communicate(timeout=120)
    assert err == b"", err.decode()
    assert proc.returncode == 141


def test_predict_into_a_closed_pipe_writes_its_files_and_ends_quietly(tiny_checkpoint, tmp_path):
    image, out = _image(tmp_path / "a.png"), tmp_path / "out"
    argv = [*DEPTHART, *_predict_argv(tiny_checkpoint, [image], out), "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert err == b"", err.decode()
    assert proc.returncode == 141
    assert np.load(out / "a.npy").shape == (20, 30)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_info_onto_a_full_disk_is_one_line_and_status_1(tiny_checkpoint):
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [*DEPTHART, "info", tiny_checkpoint],
            stdout=full, stderr=subprocess.PIPE, env=ENV, timeout=120,
        )  # fmt: skip
    err = proc.stderr.decode()
    assert err.splitlines() == [
        "depthart info: error: standard output: no space left on the device"
    ], err
    assert proc.returncode == 1


def test_predict_with_stderr_closed_does_the_work(tiny_checkpoint, tmp_path):
    """`depthart predict a.png b.png 2>&-`: sys.stderr is None and tqdm's bar raised
    AttributeError; nothing was written and the status was 1, with no word said."""
    names = [_image(tmp_path / "a.png"), _image(tmp_path / "b.png", 24, 36)]
    out = tmp_path / "out"
    proc = subprocess.run(
        [*DEPTHART, *_predict_argv(tiny_checkpoint, names, out)],
        stdout=subprocess.PIPE, preexec_fn=_closed_stderr, env=ENV, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout.decode()
    assert "wrote 2 depth maps" in proc.stdout.decode()
    assert np.load(out / "a.npy").shape == (20, 30) and np.load(out / "b.npy").shape == (24, 36)


def test_synth_with_stderr_closed_does_the_work(tmp_path):
    out = tmp_path / "set"
    argv = ["synth", "--out", str(out), "--count", "2", "--seed", "1", "--size", "16x16"]
    proc = subprocess.run(
        [*DEPTHART, *argv],
        stdout=subprocess.PIPE, preexec_fn=_closed_stderr, env=ENV, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout.decode()
    assert (out / "meta.json").is_file() and len(list((out / "rgb").iterdir())) == 2


def test_python_m_depthart_core_cli_runs_the_command(tiny_checkpoint):
    """`python -m depthart_core.cli info` said "No module named depthart_core.cli.__main__"."""
    proc = subprocess.run(
        [sys.executable, "-m", "depthart_core.cli", "info", tiny_checkpoint],
        capture_output=True, env=ENV, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().startswith(f"checkpoint {tiny_checkpoint}")


def test_an_over_long_name_is_shortened_and_the_batch_goes_on(tiny_checkpoint, tmp_path, capsys):
    """A 246-character stem: `a_depth.png` would pass the 255-byte name limit, and the whole run
    stopped with "File name too long" before predicting ok.png."""
    long_a = _image(tmp_path / ("a" * 246 + ".png"))
    long_b = _image(tmp_path / ("a" * 245 + "b.png"), 24, 36)  # begins as long_a does
    ok = _image(tmp_path / "ok.png", 16, 16)
    out = tmp_path / "out"
    assert main([*_predict_argv(tiny_checkpoint, [long_a, long_b, ok], out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"{long_a}: its output names would be longer than 255 bytes" in err, err
    assert f"{long_b}: its output names" in err and f"{ok}:" not in err
    assert np.load(out / "ok.npy").shape == (16, 16)
    shapes = sorted(np.load(p).shape for p in out.glob("a*.npy"))
    assert shapes == [(20, 30), (24, 36)]  # both long names written, neither over the other
    assert all(len(os.fsencode(p.name)) <= 255 for p in out.iterdir())


def test_fit_stem_counts_bytes_cuts_between_characters_and_keeps_names_apart():
    fit_stem, output_names = predict_cli.fit_stem, predict_cli.output_names
    plain = argparse.Namespace(uncertainty=False, ply=False)
    every = argparse.Namespace(uncertainty=True, ply=True)
    assert fit_stem("a" * 200, every) == "a" * 200  # fits: unchanged
    assert fit_stem("a" * 240, plain) == "a" * 240  # a_depth.png: 250 bytes
    assert fit_stem("a" * 240, every) != "a" * 240  # a_uncertainty.png: 256
    for stem in ("a" * 300, "é" * 150, "€" * 100, "a" + "😀" * 70, "x" * 230 + "\udce9" * 40):
        for args in (plain, every):
            fitted = fit_stem(stem, args)
            assert fitted != stem and fitted == fit_stem(stem, args)  # the same every run
            for name in output_names(fitted, args):
                raw = os.fsencode(name)
                assert len(raw) <= 255, (stem[:5], len(raw))
                assert os.fsdecode(raw) == name  # no character cut in half
            assert stem.startswith(fitted.rsplit("~", 1)[0])
    assert fit_stem("é" * 150, plain) != fit_stem("é" * 149 + "e", plain)


def test_uncertainty_eval_refuses_a_set_smaller_than_count_before_loading(
    tmp_path, capsys, training_script, monkeypatch
):
    """A set of 2 frames with the default --count 200 was a ValueError traceback from load(),
    after the checkpoint had loaded."""
    root = write_synthetic_set(tmp_path / "set", count=2, seed=0, size=(16, 16), progress=False)
    script = training_script("uncertainty_eval")

    def no_model(*_args, **_kwargs):
        raise AssertionError("the checkpoint was loaded before the sets were checked")

    monkeypatch.setattr(script.DepthEstimator, "from_checkpoint", no_model)
    for argv in (
        ["--eval-root", str(root), "--calib-root", str(root)],
        ["--eval-root", str(tmp_path / "none"), "--calib-root", str(root), "--count", "2"],
    ):
        with pytest.raises(SystemExit) as exc:
            script.main(argv)
        assert exc.value.code == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert ": error: --" in last and "Traceback" not in last, last
    assert "--eval-root " in last and "not found" in last, last


# as Docker, CI and systemd run it: PYTHONUNBUFFERED=1, every write goes straight to the file
UNBUFFERED = ENV | {"PYTHONUNBUFFERED": "1"}
FULL_DISK = "no space left on the device"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("env", [ENV, UNBUFFERED], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("argv", [["--help"], ["info", "--help"]], ids=["help", "info-help"])
def test_help_onto_a_full_disk_is_one_line_and_status_1(env, argv):
    """Unbuffered, argparse swallowed the OSError of its --help write: nothing was left in a
    buffer for the flush at the end to fail on, so the status was 0 and nothing was said."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [*DEPTHART, *argv], stdout=full, stderr=subprocess.PIPE, env=env, timeout=120
        )
    err = proc.stderr.decode()
    assert err.splitlines() == [f"depthart: error: standard output: {FULL_DISK}"], err
    assert proc.returncode == 1


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_info_onto_a_full_disk_unbuffered_names_standard_output(tiny_checkpoint):
    """Unbuffered, the OSError came from print itself, with no file name and nothing left to
    flush: "depthart info: error: no space left on the device", which said not where."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [*DEPTHART, "info", tiny_checkpoint],
            stdout=full, stderr=subprocess.PIPE, env=UNBUFFERED, timeout=120,
        )  # fmt: skip
    err = proc.stderr.decode()
    assert err.splitlines() == [f"depthart info: error: standard output: {FULL_DISK}"], err
    assert proc.returncode == 1


def test_another_write_failing_is_not_called_standard_output(monkeypatch, capsys):
    """An OSError without a file name from another write (a file object, a socket) is not
    stdout's: said as it is."""
    from depthart_core.cli import info as info_cli

    def fails(_args):
        print("part of the output")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(info_cli, "run", fails)
    assert main(["info", "x.safetensors"]) == 1
    out, err = capsys.readouterr()
    assert out == "part of the output\n"
    assert err.splitlines() == [f"depthart info: error: {FULL_DISK}"], err


def test_main_gives_stdout_back_its_own_write(monkeypatch, tiny_checkpoint):
    """A caller's tee set as stdout's `write`, and an outer main's watch around an inner main,
    are what stdout has again when main returns (main used to delete the attribute)."""
    import io

    from depthart_core.cli import info as info_cli

    class Out(io.StringIO):
        pass

    out = Out()
    seen: list[str] = []

    def tee(text: str) -> int:
        seen.append(text)
        return io.StringIO.write(out, text)

    out.write = tee
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["info", str(tiny_checkpoint)]) == 0
    assert out.write is tee
    print("after")
    assert seen[-2:] == ["after", "\n"]
    real_run = info_cli.run
    inner_left: list[object] = []

    def nested(args):  # an inner main while the outer one runs
        monkeypatch.setattr(info_cli, "run", real_run)  # the inner one runs info itself
        outer = vars(sys.stdout)["write"]
        main(["info", str(tiny_checkpoint)])
        inner_left.append(vars(sys.stdout).get("write") is outer)
        return real_run(args)

    monkeypatch.setattr(info_cli, "run", nested)
    assert main(["info", str(tiny_checkpoint)]) == 0
    assert inner_left == [True] and out.write is tee


def test_a_broken_pipe_that_is_not_stdouts_is_an_error(monkeypatch, capsys):
    """A BrokenPipeError from another pipe (a child process's, a worker's) while stdout is fine
    is one error line and status 1, not the quiet 141 of a reader that left."""
    from depthart_core.cli import info as info_cli

    def fails(_args):
        print("part of the output")
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(info_cli, "run", fails)
    assert main(["info", "x.safetensors"]) == 1
    out, err = capsys.readouterr()
    assert out == "part of the output\n"
    assert err.splitlines() == ["depthart info: error: [Errno 32] Broken pipe"], err
