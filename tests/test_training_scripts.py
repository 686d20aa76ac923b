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
