"""Imports only go down (STYLE.md, "The house"), read from the source with `ast`.

- depthart_core never imports depthart_ros or a ROS client library (rclpy, message packages);
- every import of a DepthART module goes to its own layer or a lower one (`LAYERS`), so there is
  no cycle, and in particular `runtime` never imports `cli`;
- an import of a DepthART module inside a function is only in a command-line module
  (`depthart_core.cli` and its `depthart_ros.replay.cli` plug-in, which import lazily so that
  `depthart --help` stays fast) or listed in `LAZY` with the optional dependency that makes it
  lazy; it never hides a cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("depthart_core", "depthart_ros")
ROS_CLIENT = (
    "rclpy",
    "rcl_interfaces",
    "sensor_msgs",
    "std_msgs",
    "diagnostic_msgs",
    "builtin_interfaces",
    "launch",
    "launch_ros",
)

# Lowest first. A module belongs to the longest prefix listed; it may import its own layer and
# the layers before it. "" is the package's own __init__.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "depthart_core",
        "depthart_core.fileutil",
        "depthart_core.config",
        "depthart_core.precision",
        "depthart_core.procutil",
    ),
    (
        "depthart_core.colormap",
        "depthart_core.image_header",
        "depthart_core.metric_scale",
        "depthart_core.pointcloud",
    ),
    ("depthart_core.ground_plane",),
    ("depthart_core.data",),
    ("depthart_core.tokenizer",),
    ("depthart_core.transformer", "depthart_core.uncertainty_head"),
    ("depthart_core.model", "depthart_core.sampling"),
    ("depthart_core.uncertainty",),
    ("depthart_core.checkpoint", "depthart_core.authors_layout", "depthart_core.info"),
    (
        "depthart_core.evaluation",
        "depthart_core.evaluation.metrics",
        "depthart_core.evaluation.alignment",
        "depthart_core.evaluation.protocols",
    ),
    ("depthart_core.training",),
    ("depthart_core.export",),
    ("depthart_core.runtime",),
    ("depthart_core.evaluation.runner", "depthart_core.evaluation.report"),
    ("depthart_core.rosio",),
    ("depthart_core.replay",),
    ("depthart_core.finetune",),
    ("depthart_core.cli", "depthart_core.__main__"),
    ("depthart_ros", "depthart_ros.params", "depthart_ros.pipeline"),
    ("depthart_ros.replay",),
    ("depthart_ros.node",),
    ("depthart_ros.lifecycle_node",),
)

CLI = ("depthart_core.cli", "depthart_ros.replay.cli")
# (module, imported module) -> the optional dependency that makes the import lazy
LAZY = {
    ("depthart_core.runtime", "depthart_core.runtime.tensorrt_backend"): "onnx, tensorrt",
    # torch, which ONNX Runtime on a cached graph (the node's usual start) never loads
    ("depthart_core.runtime", "depthart_core.runtime.torch_backend"): "torch: its backend only",
    ("depthart_core.runtime.onnx_cache", "depthart_core.export.onnx_export"): "torch: a cache miss",
    ("depthart_core.runtime.onnx_cache", "depthart_core.checkpoint"): "torch: a cache miss",
}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _imports(path: Path) -> list[tuple[str, bool, int]]:
    """(imported module, inside a function, line) for every import statement of `path`."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((a.name, in_function, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for a in child.names:  # `from pkg import submodule` imports the submodule
                    sub = f"{child.module}.{a.name}"
                    found.append(
                        (sub if sub in MODULES else child.module, in_function, child.lineno)
                    )
            visit(child, nested)

    visit(tree, False)
    return found


def _layer(module: str) -> int:
    best, rank = "", None
    for i, names in enumerate(LAYERS):
        for prefix in names:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, i
    assert rank is not None, f"{module} is in no layer of LAYERS"
    return rank


def test_every_module_has_a_layer():
    for name in MODULES:
        assert _layer(name) >= 0, name  # _layer raises for a module in no layer


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("depthart_core")))
def test_core_never_imports_ros(name):
    for target, _, line in _imports(MODULES[name]):
        top = target.split(".")[0]
        assert top != "depthart_ros", f"{name}:{line} imports {target}"
        assert top not in ROS_CLIENT, f"{name}:{line} imports {target} (ROS client code)"


def test_imports_only_go_down():
    bad = []
    for name, path in MODULES.items():
        for target, _, line in _imports(path):
            if target.split(".")[0] in PACKAGES and _layer(target) > _layer(name):
                bad.append(f"{name}:{line} imports {target} from a higher layer")
    assert not bad, "\n".join(bad)


def test_runtime_never_imports_cli():
    for name, path in MODULES.items():
        if name.startswith("depthart_core.runtime"):
            targets = [t for t, _, _ in _imports(path)]
            assert not [t for t in targets if t.startswith("depthart_core.cli")], name


def test_function_level_imports_are_cli_or_optional():
    bad = []
    for name, path in MODULES.items():
        if name.startswith(CLI):
            continue
        for target, in_function, line in _imports(path):
            internal = target.split(".")[0] in PACKAGES
            if internal and in_function and (name, target) not in LAZY:
                bad.append(f"{name}:{line} imports {target} inside a function")
    assert not bad, "\n".join(bad)


def test_the_layer_checks_can_fail(tmp_path):
    """The same reading finds an upward import and a function-level one in a made-up module."""
    path = tmp_path / "m.py"
    path.write_text("import os\nfrom depthart_core.cli import main\n\ndef f():\n    import rclpy\n")
    assert _imports(path) == [("os", False, 1), ("depthart_core.cli", False, 2), ("rclpy", True, 5)]
    assert _layer("depthart_core.runtime.base") > _layer("depthart_core.model")
    assert _layer("depthart_core.cli.replay") > _layer("depthart_core.runtime.onnx_backend")


def test_importing_all_of_core_loads_no_ros_code():
    """Every depthart_core module imported in a fresh interpreter: no depthart_ros, no rclpy.
    The live-replay plug-in that `depthart replay` loads does not import rclpy either."""
    core = sorted(n for n in MODULES if n.startswith("depthart_core") and "__main__" not in n)
    code = (
        "import importlib, sys\n"
        f"for name in {core!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('depthart_ros', 'rclpy'))\n"
        "assert not bad, bad\n"
        "importlib.import_module('depthart_ros.replay.cli')\n"
        "assert 'rclpy' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
