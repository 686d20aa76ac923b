"""What rclpy.init refuses for want of a log directory, said the same way wherever it is met: by
the node (`init_or_exit`) and by live replay's own participant (`RclpyTransport.open`, whose
error becomes `depthart replay`'s error line and its report's status). rcl's raw text names an
errno by number and gives no advice; the words name the errno and say what to set, and with no
HOME (`env -i`, a uid with no passwd entry) that HOME is missing.

rcl sets its logging up once per process, so the real runs are subprocesses: HOME under a regular
file (ENOTDIR: as root, a read-only folder does not stop rcl) and no HOME at all.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 sensor_msgs package")

from ros_helpers.harness import unique_domain_id  # noqa: E402

from depthart_core.rosio import bags, messages  # noqa: E402
from depthart_ros import node as node_mod  # noqa: E402
from depthart_ros.replay import transport as transport_mod  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ADVICE = "set ROS_LOG_DIR (or ROS_HOME, whose log/ it uses; else ~/.ros/log) to a directory"
READ_ONLY = (
    "failed to initialize logging: Failed to create log directory '//.ros/log': 30, at "
    "/project/src/rcl_logging_spdlog.cpp:153"
)
NO_HOME = (
    "failed to initialize logging: Failed to get logging directory: rcutils_expand_user failed, "
    "at /project/src/logging_dir.c:82, at /project/src/rcl_logging_spdlog.cpp:137"
)
NO_HOME_SAID = (
    "failed to initialize logging: Failed to get logging directory: rcutils_expand_user failed "
    f"(HOME is not set, so '~' names no directory); set HOME, or {ADVICE}"
)
# Jazzy's rcl_logging_spdlog (rclpy 7.1.6) words it without rcutils' failure, and its rcutils
# prints its own "error state is being overwritten" block on stderr first (C code, before
# rclpy raises): that block is rcutils', not a line of this package's
JAZZY_NO_HOME = (
    "failed to initialize logging: Failed to get logging directory, at "
    "/project/src/rcl_logging_spdlog.cpp:138"
)
NO_HOME_SAID_EITHER = re.compile(
    re.escape("failed to initialize logging: Failed to get logging directory")
    + "(?:: rcutils_expand_user failed)? "
    + re.escape(f"(HOME is not set, so '~' names no directory); set HOME, or {ADVICE}")
)
RCUTILS_OVERWRITE_BLOCK = re.compile(r">>> \[rcutils\|error_handling\.c:\d+\].*?<<<", re.S)


def _ours(out: str) -> str:
    """The output without Jazzy's rcutils block (see JAZZY_NO_HOME); Kilted prints none."""
    return RCUTILS_OVERWRITE_BLOCK.sub("", out)


@pytest.mark.parametrize("home", [None, ""], ids=["unset", "empty"])
def test_no_home_to_expand_is_said_with_what_to_set(monkeypatch, home):
    if home is None:
        monkeypatch.delenv("HOME", raising=False)
    else:
        monkeypatch.setenv("HOME", home)
    assert node_mod.rcl_init_problem(RuntimeError(NO_HOME)).startswith(NO_HOME_SAID)


def test_jazzys_words_for_no_home_are_said_the_same_way(monkeypatch):
    monkeypatch.delenv("HOME", raising=False)
    line = node_mod.rcl_init_problem(RuntimeError(JAZZY_NO_HOME))
    assert NO_HOME_SAID_EITHER.fullmatch(line.removesuffix(" this user can create and write"))
    assert ".cpp" not in line, line


def test_a_home_that_is_set_is_not_called_missing(monkeypatch):
    monkeypatch.setenv("HOME", "/home/robot")
    line = node_mod.rcl_init_problem(RuntimeError(NO_HOME))
    assert "HOME is not set" not in line and "set HOME" not in line, line
    assert line.endswith(f"rcutils_expand_user failed; {ADVICE} this user can create and write")


def test_the_replays_transport_says_it_as_the_node_does(monkeypatch):
    """`RclpyTransport.open` words rclpy.init's error with the node's `rcl_init_problem`."""
    said = "failed to initialize logging: Failed to create log directory '//.ros/log': "
    said += f"Read-only file system; {ADVICE}"

    def refuse(**_kwargs):
        raise RuntimeError(READ_ONLY)

    monkeypatch.setattr(transport_mod.rclpy, "init", refuse)
    with pytest.raises(RuntimeError) as info:
        transport_mod.RclpyTransport().open(unique_domain_id(), {}, lambda raw, t: None)
    assert str(info.value).startswith(said), str(info.value)
    assert node_mod.rcl_init_problem(RuntimeError(READ_ONLY)) == str(info.value)


def _env(tmp_path: Path, home: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "ROS_LOG_DIR", "ROS_HOME")}
    if home is not None:
        env["HOME"] = home
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env["DEPTHART_CACHE"] = str(tmp_path / "cache")
    env["ROS_DOMAIN_ID"] = str(unique_domain_id())
    return env


def _file_home(tmp_path: Path) -> str:
    """A HOME whose parent is a regular file: rcl cannot make ~/.ros/log there (ENOTDIR)."""
    (tmp_path / "afile").write_text("")
    return str(tmp_path / "afile" / "home")


OPEN = """
import sys
from depthart_ros.replay.transport import RclpyTransport
try:
    RclpyTransport().open(int(sys.argv[1]), {}, lambda raw, t: None)
except RuntimeError as exc:
    print(f"refused: {exc}")
"""


@pytest.mark.parametrize("case", ["home_under_a_file", "no_home"])
def test_the_replays_transport_in_a_real_process(tmp_path, case):
    home = _file_home(tmp_path) if case == "home_under_a_file" else None
    env = _env(tmp_path, home)
    run = subprocess.run(
        [sys.executable, "-c", OPEN, env["ROS_DOMAIN_ID"]],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    if home is None:
        assert re.search("refused: " + NO_HOME_SAID_EITHER.pattern, out), out
    else:
        said = f"Failed to create log directory '{home}/.ros/log': Not a directory; {ADVICE}"
        assert f"refused: failed to initialize logging: {said}" in out, out
    assert ".cpp:" not in _ours(out), out


def test_the_node_without_home_says_what_to_set(tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", "from depthart_ros.node import init_or_exit; init_or_exit([])"],
        env=_env(tmp_path, None), capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert re.search("cannot start: " + NO_HOME_SAID_EITHER.pattern, out), out
    assert "Traceback" not in out and ".c:" not in _ours(out), out


def test_live_replay_says_it_and_reports_it(tmp_path):
    """`depthart replay --live`: the error line and the report's status, not rcl's raw text."""
    bag = tmp_path / "bag"
    with bags.BagWriter(bag) as w:
        for i in range(2):
            t = 1_700_000_000_000_000_000 + i * 100_000_000
            rgb = np.full((6, 8, 3), i, np.uint8)
            w.write("/cam/image", messages.image_msg(rgb, "rgb8", t, "c"), t)
            w.write("/cam/depth", messages.depth_msg(np.ones((6, 8), np.float32), t, "c"), t)
    home = _file_home(tmp_path)
    env = _env(tmp_path, home)
    out_dir = tmp_path / "out"
    cmd = [sys.executable, "-m", "depthart_core", "replay", str(bag), "--image-topic",
           "/cam/image", "--depth-topic", "/cam/depth", "--live", "--out", str(out_dir),
           "--threads", "1", "--no-plots", "--no-progress", "--domain-id",
           env["ROS_DOMAIN_ID"]]  # fmt: skip
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    said = f"Failed to create log directory '{home}/.ros/log': Not a directory; {ADVICE}"
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"depthart replay: error: failed to initialize logging: {said}" in run.stderr, run.stderr
    status = json.loads((out_dir / "report.json").read_text())["status"]
    assert status.startswith(f"error: failed to initialize logging: {said}"), status
    assert said in (out_dir / "report.md").read_text()
