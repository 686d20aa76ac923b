"""Shared fixtures: tiny random models and checkpoints made by the tests themselves."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import cv2
import pytest
import torch
from ros_helpers.harness import DDS_ENV, NODE_ENV

from depthart_core.checkpoint import save_checkpoint
from depthart_core.config import get_preset
from depthart_core.data.synthetic.set import write_synthetic_set
from depthart_core.model import DepthART
from depthart_core.runtime import threads
from depthart_ros.replay import process as replay_process

_SHELL_DDS_ENV: dict[str, str | None] = {}


def pytest_configure(config) -> None:
    """The ROS participant settings of the node tests (`DDS_ENV`) hold for the whole session:
    every test sees the same environment, whatever ran before it (the first `RosPeer` set them
    and left them set, so a test saw them only when a peer had run before it)."""
    _SHELL_DDS_ENV.update({k: os.environ.get(k) for k in DDS_ENV})
    os.environ.update(DDS_ENV)


def pytest_unconfigure(config) -> None:
    """The shell's values back (a pytest run inside this process leaves its caller's)."""
    for k, v in _SHELL_DDS_ENV.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    _SHELL_DDS_ENV.clear()


@pytest.fixture(autouse=True)
def _no_path_or_ros_environment_left_behind():
    """Fails the test (an error at its teardown) that leaves sys.path or the ROS environment
    changed for the tests after it (tests/test_no_state_leaks.py has the whole list). Thread
    counts are not checked here: a command run in this process sets them, by design, and not
    every test that runs one puts them back yet (`restore_thread_counts`)."""
    path = list(sys.path)
    env = {k: os.environ.get(k) for k in NODE_ENV}
    yield
    assert sys.path == path, f"the test left sys.path {sys.path}, not {path}"
    now = {k: os.environ.get(k) for k in NODE_ENV}
    assert now == env, f"the test left the ROS environment {now}, not {env}"


@pytest.fixture(scope="session")
def _replay_domain_claims(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("claims")


@pytest.fixture(autouse=True)
def _private_replay_domain_claims(_replay_domain_claims, monkeypatch):
    """Live replays claim their ROS domain in a lock folder under the cache root
    (`depthart_ros.replay.process.DomainClaim`): this run's in a folder of its own, so that test
    runs side by side, or a user's own replays, never refuse one another's fixed domains."""
    monkeypatch.setattr(replay_process, "cache_root", lambda: _replay_domain_claims)


@pytest.fixture(scope="session")
def tiny_model() -> DepthART:
    torch.manual_seed(0)
    return DepthART(get_preset("tiny")).eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_model) -> str:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(path, tiny_model, {"purpose": "tests"})
    return str(path)


@pytest.fixture(scope="session")
def headed_model() -> DepthART:
    """The shipped architecture (tiny_cnn_refine) with a random uncertainty head of width 4 whose
    output varies over the image (its last layer is not left at its zero init)."""
    torch.manual_seed(3)
    model = DepthART(dataclasses.replace(get_preset("tiny_cnn_refine"), uncertainty_width=4))
    torch.nn.init.normal_(model.uncertainty_head.out.weight, std=0.3)
    return model.eval()


@pytest.fixture(scope="session")
def headed_checkpoint(tmp_path_factory, headed_model) -> str:
    path = tmp_path_factory.mktemp("ckpt") / "headed.safetensors"
    save_checkpoint(path, headed_model, {"purpose": "tests: a model with an uncertainty head"})
    return str(path)


@pytest.fixture
def restore_thread_counts(monkeypatch):
    """Puts back, after the test, the process-wide thread counts that a command run in this
    process sets (`set_torch_threads`: torch's, OpenCV's, and the count `follow_torch_threads`
    gives later inference threads), so that later tests run at the session's count."""
    monkeypatch.setattr(threads, "_torch_threads", threads._torch_threads)
    saved = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(saved[0])
    cv2.setNumThreads(saved[1])


@pytest.fixture
def training_script(monkeypatch, restore_thread_counts):
    """load(name) -> the module of training/<name>.py (the scripts are not a package), loaded
    afresh. What loading and running them does to this process is undone after the test:
    training/ on sys.path (where `python training/<name>.py` has it: some scripts also put it
    there themselves, to import a sibling), the modules of training/ in sys.modules, the thread
    counts they set. A later test's bare `import average` or `from uncertainty_head import ...`
    meets no script a test before it loaded."""
    root = (Path(__file__).resolve().parent.parent / "training").resolve()
    monkeypatch.syspath_prepend(str(root))  # sys.path is put back as it was, whatever was added
    before = set(sys.modules)

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, root / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        # dataclasses look their module up while the file executes
        monkeypatch.setitem(sys.modules, name, mod)
        spec.loader.exec_module(mod)
        return mod

    yield load
    for name in set(sys.modules) - before:  # the siblings the scripts imported by name
        if Path(getattr(sys.modules[name], "__file__", None) or "/").resolve().parent == root:
            del sys.modules[name]


@pytest.fixture(scope="session")
def clean_synthetic_set(tmp_path_factory) -> Path:
    """A 5-frame synthetic set, 16x16 (seed 3)."""
    root = tmp_path_factory.mktemp("synthetic_set") / "clean"
    write_synthetic_set(root, count=5, seed=3, size=(16, 16), progress=False)
    return root


@pytest.fixture
def damaged_synthetic_set(clean_synthetic_set, tmp_path) -> Path:
    """`clean_synthetic_set` with frame 1's RGB removed and frame 3's depth PNG cut short (its
    signature kept: found only when decoded)."""
    root = tmp_path / "set"
    shutil.copytree(clean_synthetic_set, root)
    (root / "rgb" / "000001.png").unlink()
    depth = root / "depth" / "000003.png"
    depth.write_bytes(depth.read_bytes()[: depth.stat().st_size // 2])
    return root
