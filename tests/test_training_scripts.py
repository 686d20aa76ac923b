"""The scripts under training/ import depthart_core lazily, inside their functions, so a moved
module breaks them only when someone runs that one subcommand. Every such import must resolve."""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

TRAINING = Path(__file__).resolve().parent.parent / "training"
SCRIPTS = sorted(TRAINING.glob("*.py"))


def _imports(path: Path) -> list[tuple[str, str, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("depthart_core"):
            out += [(node.module, a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.startswith("depthart")]
    return out


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_depthart_import_of_a_training_script_resolves(script):
    assert SCRIPTS, "no scripts found under training/"
    bad = []
    for module, name, line in _imports(script):
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            bad.append(f"{script.name}:{line}: {module} ({exc})")
            continue
        if name and not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                bad.append(f"{script.name}:{line}: {module} has no {name}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("decoder_finetune", ["--pool", "/no/such/s9_*.safetensors"], "no such file (a pattern"),
        ("decoder_finetune", ["--pool", ""], "--pool '': no such file"),
        ("decoder_finetune", ["--pool", "{bin}"], "not a readable safetensors file"),
        ("decoder_finetune", ["--train-root", "/no/such/set*"], "synthetic set root not found"),
        ("decoder_finetune", ["--train-root", ""], "--train-root '': give a folder"),
        ("uncertainty_head", ["--train-root", "/no/such/set*"], "synthetic set root not found"),
        ("uncertainty_head", ["--train-root", "{empty}"], "synthetic set metadata not found"),
    ],
)
def test_frames_that_cannot_be_read_are_one_line_through_the_parser(
    script, args, message, tmp_path, capsys, training_script
):
    """A --pool or --train-root glob that matched nothing (the shell passes it as it is), an
    empty one, or a file of another kind printed a traceback, after the model had loaded."""
    (tmp_path / "bin").write_bytes(b"not safetensors")
    (tmp_path / "empty").mkdir()
    args = [a.format(bin=tmp_path / "bin", empty=tmp_path / "empty") for a in args]
    out = tmp_path / "out.safetensors"
    with pytest.raises(SystemExit) as exc:
        training_script(script).main([*args, "--out", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert ": error: " in err.splitlines()[-1] and message in err.splitlines()[-1], err
    assert "Traceback" not in err and not out.exists()


class _Payload:
    """Unpickled, it creates the file `path` (a stand-in for os.system in a crafted cache)."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_sweep_refuses_a_pickled_cache_without_unpickling_it(tmp_path, capsys, training_script):
    """`train --cache` read its cache with torch.load(weights_only=False): a crafted cache.pt (or
    one in a shared /tmp folder) ran its payload. An old-format cache is refused in one line."""
    marker = tmp_path / "payload_ran"
    cache = tmp_path / "cache.pt"
    torch.save({"feat": _Payload(marker), "err": torch.zeros(1), "w": torch.zeros(1)}, cache)
    out = tmp_path / "out"
    sweep = training_script("uncertainty_head_sweep")
    with pytest.raises(BaseException) as exc:  # the old code failed later, in any way
        sweep.main(
            ["train", "--cache", str(cache), "--name", "x", "--steps", "1", "--out", str(out)]
        )
    assert not marker.exists(), "the cache was unpickled: its payload ran"
    assert isinstance(exc.value, SystemExit) and exc.value.code == 2, exc.value
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert f"--cache {cache}: not a safetensors cache" in last and "rebuild it with prepare" in last
    assert "Traceback" not in err and not out.exists()


def test_sweep_cache_keeps_every_field_train_reads(tmp_path, training_script):
    """The safetensors cache gives back what prepare gathered: float64 per-frame errors of
    different lengths, boolean masks of different sizes, geometries, and the provenance."""
    sweep = training_script("uncertainty_head_sweep")
    from depthart_core.runtime.preprocess import Geometry

    rng = np.random.default_rng(0)
    ev = {
        "feat": torch.randn(2, 6, 8, 8),
        "errors": [rng.random(5), rng.random(3).astype(np.float32)],
        "geos": [Geometry(4, 6, 8, 0, 0, 8, 8), Geometry(3, 5, 8, 1, 2, 6, 4)],
        "valids": [rng.random((4, 6)) > 0.5, np.ones((3, 5), bool)],
    }
    cache = {
        "feat": torch.randn(3, 6, 8, 8),
        "err": torch.rand(3, 8, 8),
        "w": torch.rand(3, 8, 8),
        "eval": ev,
        "train_roots": ["/a", "/b"],
        "eval_root": "/e",
        "checkpoint": "/c.safetensors",
        "checkpoint_sha256": "ab" * 32,
        "decoding": "soft",
    }
    sweep.save_cache(tmp_path / "c.safetensors", cache)
    back = sweep.load_cache(tmp_path / "c.safetensors")
    assert set(back) == set(cache) and set(back["eval"]) == set(ev)
    for k in ("feat", "err", "w"):
        assert torch.equal(back[k], cache[k])
    assert torch.equal(back["eval"]["feat"], ev["feat"]) and back["eval"]["geos"] == ev["geos"]
    for key in ("errors", "valids"):
        for a, b in zip(back["eval"][key], ev[key], strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    for k in sweep.CACHE_FIELDS:
        assert back[k] == cache[k]


def test_sweep_prepare_then_train_round_trips(tmp_path, tiny_checkpoint, capsys, training_script):
    from depthart_core.data.synthetic.set import write_synthetic_set

    for name, seed, count in (("t0", 1, 3), ("t1", 2, 2), ("ev", 3, 2)):
        write_synthetic_set(tmp_path / name, count=count, seed=seed, size=(24, 32), progress=False)
    sweep = training_script("uncertainty_head_sweep")
    cache = tmp_path / "c" / "cache.safetensors"
    roots = ["--train-root", str(tmp_path / "t0"), "--train-root", str(tmp_path / "t1")]
    prep = ["prepare", *roots, "--eval-root", str(tmp_path / "ev"), "--batch", "2"]
    assert sweep.main([*prep, "--checkpoint", tiny_checkpoint, "--cache", str(cache)]) == 0
    assert cache.read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle or zip
    out = tmp_path / "out"
    args = ["train", "--cache", str(cache), "--name", "w4", "--width", "8", "--steps", "2"]
    assert sweep.main([*args, "--batch", "2", "--out", str(out)]) == 0
    row = json.loads((out / "w4.json").read_text())
    assert row["train_frames"] + row["held_out_frames"] == 5 and row["eval_frames"] == 2
    assert row["train_roots"] == [str(tmp_path / "t0"), str(tmp_path / "t1")]
    assert row["checkpoint"] == tiny_checkpoint and len(row["checkpoint_sha256"]) == 64
    assert row["steps"] == 2 and (out / "w4.safetensors").is_file()


def test_gpu_sweep_works_in_a_fresh_folder_of_its_own(tmp_path):
    """The sweep rendered into and read its cache from a fixed /tmp/unc_sweep (mkdir -p takes a
    folder someone else made). Run with a stand-in python that logs its arguments."""
    log = tmp_path / "calls.log"
    stub = tmp_path / "py"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    stub.chmod(0o755)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHON": str(stub), "RESULTS": str(tmp_path / "res"), "TMPDIR": str(tmp)}
    env.pop("WORK", None)
    script = TRAINING / "gpu_uncertainty_sweep.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    subprocess.run(["bash", str(script)], env={**env, "SETS": "1"}, cwd=tmp_path, timeout=60)
    calls = log.read_text().splitlines()
    cache_args = [c.split("--cache ")[1].split()[0] for c in calls if "--cache" in c]
    assert cache_args and all(c.endswith(".safetensors") for c in cache_args), calls
    work = Path(cache_args[0]).parent
    assert work.parent == tmp and work.name.startswith("unc_sweep."), work
    assert not work.exists(), "the folder it made for itself is left behind"
    given = tmp_path / "mine"
    log.unlink()
    subprocess.run(["bash", str(script)], env={**env, "SETS": "1", "WORK": str(given)}, timeout=60)
    assert f"--cache {given}/cache.safetensors" in log.read_text() and given.is_dir()
