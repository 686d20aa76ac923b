"""A test leaves this process as it found it, so that no test passes or fails for what ran
before it: the thread counts a command sets (`restore_thread_counts`), training/ on sys.path and
the scripts in sys.modules (`training_script`), and the ROS environment (the first `RosPeer` set
it for every later test; conftest now sets the participant settings for the whole session, and
ROS_PYTHON_CHECK_FIELDS only reaches the node processes).

`test_no_test_leaves_state_behind` runs, in a pytest of its own and in this order, a test that
does each of those things and then `test_the_state_is_as_at_collection`, which compares the
state with the one this module saw when it was collected, before any test ran."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch
from ros_helpers.harness import RosPeer, unique_domain_id

from depthart_core.runtime import threads

ROOT = Path(__file__).resolve().parent.parent
TRAINING = (ROOT / "training").resolve()
ROS_KEYS = (
    "FASTDDS_BUILTIN_TRANSPORTS",
    "ROS_AUTOMATIC_DISCOVERY_RANGE",
    "ROS_PYTHON_CHECK_FIELDS",
)
CHILD = "DEPTHART_TEST_STATE_CHILD"
IN_CHILD = os.environ.get(CHILD) == "1"
child_only = pytest.mark.skipif(not IN_CHILD, reason="run by test_no_test_leaves_state_behind")


def _from_training(module: object) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve().parent == TRAINING


def _state() -> dict:
    return {
        "torch threads": torch.get_num_threads(),
        "OpenCV threads": cv2.getNumThreads(),
        "threads followed": threads._torch_threads,
        "sys.path": list(sys.path),
        "training/ modules": sorted(n for n, m in list(sys.modules.items()) if _from_training(m)),
        "ROS environment": {k: os.environ.get(k) for k in ROS_KEYS},
    }


AT_COLLECTION = _state()


@child_only
def test_a_command_sets_the_thread_counts(restore_thread_counts):
    threads.set_torch_threads(3)  # as `depthart bench --threads 3` does
    assert torch.get_num_threads() == 3  # changed here; the fixture must put it back


@child_only
def test_training_scripts_load_their_siblings_and_set_threads(training_script):
    assert training_script("uncertainty_eval").photos  # from real_photos, on training/'s path
    assert training_script("uncertainty_head_sweep").gather  # from uncertainty_head
    training_script("decoder_finetune").set_torch_threads(3)  # as its --threads does


@child_only
def test_a_ros_peer():
    pytest.importorskip("rclpy")
    peer = RosPeer(unique_domain_id())
    assert os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST"  # the peer's settings
    peer.close()


@child_only
def test_the_state_is_as_at_collection():
    changed = {k: v for k, v in _state().items() if v != AT_COLLECTION[k]}
    was = {k: AT_COLLECTION[k] for k in changed}
    assert not changed, f"left behind: {changed}; at collection: {was}"


@pytest.mark.skipif(IN_CHILD, reason="the child runs the others")
def test_no_test_leaves_state_behind():
    here = Path(__file__).resolve()
    names = [
        "test_a_command_sets_the_thread_counts",
        "test_training_scripts_load_their_siblings_and_set_threads",
        "test_a_ros_peer",
        "test_the_state_is_as_at_collection",
    ]
    env = dict(os.environ, **{CHILD: "1"}, PYTEST_ADDOPTS="")  # no reordering plug-in
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + [f"{here}::{name}" for name in names],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "4 passed" in proc.stdout or "3 passed, 1 skipped" in proc.stdout, proc.stdout[-2000:]
