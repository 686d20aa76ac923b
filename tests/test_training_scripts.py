"""The scripts under training/ import depthart_core lazily, inside their functions, so a moved
module breaks them only when someone runs that one subcommand. Every such import must resolve."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parent.parent / "training").glob("*.py"))


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
