"""The package as installed on a robot: package.xml declares what the code imports, the licence
agrees everywhere, and the node runs without the training / evaluation dependencies."""

from __future__ import annotations

import ast
import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE_XML = ET.parse(REPO / "package.xml").getroot()
AMENT_PACKAGES = Path(sys.prefix) / "share" / "ament_index" / "resource_index" / "packages"
# pip requirement -> its rosdep key; None: no key (named in package.xml's comment instead)
ROSDEP_KEY = {
    "torch": "python3-torch",
    "numpy": "python3-numpy",
    "opencv-python-headless": "python3-opencv",
    "PyYAML": "python3-yaml",
    "tqdm": "python3-tqdm",
    "safetensors": None,
}


def _exec_depends() -> set[str]:
    return {e.text for e in PACKAGE_XML.iter("exec_depend")}


def _imported_top_level(folder: Path) -> set[str]:
    names = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def _setup_call() -> ast.Call:
    tree = ast.parse((REPO / "setup.py").read_text())
    return next(n for n in ast.walk(tree) if getattr(getattr(n, "func", None), "id", "") == "setup")


def _setup_kw(name: str):
    kw = next(k for k in _setup_call().keywords if k.arg == name)
    return ast.literal_eval(kw.value)


def test_package_xml_declares_every_ros_package_the_code_imports() -> None:
    if not AMENT_PACKAGES.is_dir():
        pytest.skip(f"no ament index at {AMENT_PACKAGES} to tell ROS packages apart")
    ros_packages = {p.name for p in AMENT_PACKAGES.iterdir()}
    imported = _imported_top_level(REPO / "depthart_ros") | _imported_top_level(
        REPO / "depthart_core"
    )
    needed = imported & ros_packages
    assert {"rclpy", "rcl_interfaces", "ament_index_python", "sensor_msgs"} <= needed
    assert needed <= _exec_depends(), needed - _exec_depends()


def test_package_xml_covers_the_pip_requirements() -> None:
    """Each runtime requirement has its rosdep key, or is named as installed by hand."""
    comments = (REPO / "package.xml").read_text()
    comment = comments[comments.index("No rosdep key") :]
    for req in _setup_kw("install_requires"):
        name = req.split(">")[0].split("=")[0].split("<")[0]
        assert name in ROSDEP_KEY, f"{name}: add its rosdep key (or None) to this test"
        key = ROSDEP_KEY[name]
        if key is None:
            assert name in comment.split("-->")[0], f"{name} has no key: say so in package.xml"
        else:
            assert key in _exec_depends(), f"{name}: package.xml lacks {key}"
    assert "python3-onnxruntime-pip" in _exec_depends()  # the default CPU backend's runtime


def test_licence_agrees_everywhere() -> None:
    licence = PACKAGE_XML.find("license")
    assert licence.text == "MIT" and licence.get("file") == "LICENSE"
    assert _setup_kw("license") == "MIT"
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Permission is hereby granted" in text
    # installed beside package.xml in share/depthart_ros
    assert '(f"share/{PACKAGE}", ["package.xml", "LICENSE"])' in (REPO / "setup.py").read_text()


def test_console_scripts_point_at_real_mains() -> None:
    scripts = dict(s.split(" = ") for s in _setup_kw("entry_points")["console_scripts"])
    assert scripts["depthart_node"] == "depthart_ros.entry:node_main"
    assert scripts["depthart_lifecycle_node"] == "depthart_ros.entry:lifecycle_main"
    entry = (REPO / "depthart_ros" / "entry.py").read_text()  # each loads its node's main
    assert '_load("depthart_ros.node", "depthart_node").main(args)' in entry
    assert '_load("depthart_ros.lifecycle_node", "depthart_lifecycle_node").main(args)' in entry
    for target in scripts.values():
        module, func = target.split(":")
        tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())
        defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        defined |= {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom)
                    for a in n.names}  # fmt: skip
        assert func in defined, target


def test_node_runs_without_training_dependencies(tiny_checkpoint: str) -> None:
    """With h5py, matplotlib, transformers, scikit-image, scipy and rosbags made unimportable
    (the robot install of README "On a robot" has none of them), both nodes import,
    the model loads and predicts, and no training / evaluation / dataset module is loaded."""
    pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
    assert "h5py" not in " ".join(_setup_kw("install_requires"))
    code = textwrap.dedent(
        f"""
        import importlib.abc, sys
        import numpy as np
        BLOCKED = {{"h5py", "matplotlib", "transformers", "skimage", "scipy", "rosbags"}}

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"blocked: {{name}}")
                return None

        sys.meta_path.insert(0, Block())
        import depthart_ros.lifecycle_node, depthart_ros.node
        from depthart_core.runtime import get_backend
        backend = get_backend("torch", {tiny_checkpoint!r})
        depth = backend.predict(np.zeros((48, 64, 3), np.uint8))
        assert depth.shape == (48, 64), depth.shape
        import depthart_core.runtime.onnx_backend, depthart_core.runtime.tensorrt_backend
        from depthart_core.rosio.messages import depth_to_metres, imu_orientation
        from types import SimpleNamespace as NS
        imu = NS(orientation_covariance=[0.0] * 9, orientation=NS(x=0.0, y=0.0, z=0.0, w=1.0))
        assert imu_orientation(imu) == (0.0, 0.0, 0.0, 1.0)
        cue = NS(encoding="32FC1", height=1, width=2, step=8, is_bigendian=0,
                 data=np.array([1.5, 2.0], np.float32).tobytes())
        assert depth_to_metres(cue).tolist() == [[1.5, 2.0]], depth_to_metres(cue)
        heavy = ("depthart_core.training", "depthart_core.evaluation", "depthart_core.data.")
        print(sorted(m for m in sys.modules if m.startswith(heavy) or m in BLOCKED))
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]", res.stdout


@pytest.mark.parametrize("script", ["node_main", "lifecycle_main"])
@pytest.mark.parametrize(
    "missing",
    [
        'raise ModuleNotFoundError(f"No module named {name!r}", name=name)',  # not installed
        # installed but ROS 2 not sourced: rclpy's C extension cannot find librcl
        'raise ImportError("librcl.so: cannot open shared object file", name=name + "._impl")',
    ],
)
def test_node_scripts_without_ros_say_what_to_do(script: str, missing: str) -> None:
    """`depthart-node` / `depthart-lifecycle-node` (and `ros2 run`'s names) on a machine where
    rclpy cannot be imported: one line that names the import and both ways to get ROS 2's
    Python packages, status 1, no traceback."""
    code = textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "rclpy":
                    {missing}
                return None

        sys.meta_path.insert(0, Block())
        from depthart_ros.entry import {script}
        {script}()
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 1, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    program = "depthart_lifecycle_node" if script == "lifecycle_main" else "depthart_node"
    assert lines[0].startswith(f"{program}: error: cannot import ROS 2's Python packages ("), lines
    assert "rclpy" in lines[0] and "setup.bash" in lines[0], lines
    assert "pip install 'depthart_ros[ros]'" in lines[0], lines


def test_node_scripts_let_other_import_errors_through() -> None:
    """An ImportError of anything but ROS 2 (a bug, or a broken install of another package) is
    not dressed up as missing ROS: its traceback stays."""
    code = textwrap.dedent(
        """
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "depthart_ros.pipeline":
                    raise ModuleNotFoundError("No module named 'depthart_ros.pipeline'", name=name)
                return None

        sys.meta_path.insert(0, Block())
        from depthart_ros.entry import node_main
        node_main()
        """
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 1 and "Traceback" in res.stderr, res.stderr
    assert "ROS 2's Python packages" not in res.stderr, res.stderr


def test_installed_copy_finds_the_shipped_checkpoint(tmp_path: Path) -> None:
    """A pip install puts the package in <prefix>/lib/pythonX.Y/site-packages and setup.py's
    data_files checkpoint in <prefix>/share/depthart_ros/checkpoints: the installed copy, run
    outside the repository, finds it there; with none installed the error names where it
    looked and DEPTHART_CHECKPOINT."""
    from depthart_core.checkpoint import DEFAULT_CHECKPOINT_NAME

    prefix = tmp_path / "prefix"
    site = prefix / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    shutil.copytree(REPO / "depthart_core", site / "depthart_core",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    code = (
        "from depthart_core.checkpoint import resolve_checkpoint, default_checkpoint_path\n"
        "print(default_checkpoint_path())\n"
        "try:\n    print(resolve_checkpoint(None))\nexcept FileNotFoundError as e:\n    print(e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DEPTHART_CHECKPOINT"}
    env.update(PYTHONPATH=str(site), AMENT_PREFIX_PATH="")

    def run() -> list[str]:
        res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert res.returncode == 0, res.stderr
        return res.stdout.strip().splitlines()

    missing = run()[-1]
    assert "checkpoint not found" in missing and "DEPTHART_CHECKPOINT" in missing, missing
    assert str(prefix / "share" / "depthart_ros" / "checkpoints") in missing, missing
    shared = prefix / "share" / "depthart_ros" / "checkpoints" / DEFAULT_CHECKPOINT_NAME
    shared.parent.mkdir(parents=True)
    shared.write_bytes(b"stand-in")  # only its place is looked up here
    assert run() == [str(shared), str(shared)]


def test_a_target_install_finds_the_shipped_checkpoint(tmp_path: Path) -> None:
    """`pip install --target DIR` puts depthart_core and share/depthart_ros side by side in DIR:
    the checkpoint there was not looked for ("checkpoint not found")."""
    from depthart_core.checkpoint import DEFAULT_CHECKPOINT_NAME

    target = tmp_path / "target"
    shutil.copytree(REPO / "depthart_core", target / "depthart_core",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shared = target / "share" / "depthart_ros" / "checkpoints" / DEFAULT_CHECKPOINT_NAME
    shared.parent.mkdir(parents=True)
    shared.write_bytes(b"stand-in")  # only its place is looked up here
    code = "from depthart_core.checkpoint import resolve_checkpoint as r\nprint(r(None))"
    env = {k: v for k, v in os.environ.items() if k != "DEPTHART_CHECKPOINT"}
    env.update(PYTHONPATH=str(target), AMENT_PREFIX_PATH="")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert res.returncode == 0 and res.stdout.strip() == str(shared), res.stdout + res.stderr
