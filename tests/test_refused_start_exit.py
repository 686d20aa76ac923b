"""A refused start (a bad parameter, a checkpoint that does not exist under autostart) ends both
nodes' processes with the FATAL line and status 1 and no rclpy/DDS teardown before the exit:
no `destroy_node` of the process's only node, no `rclpy.try_shutdown`. Deleting the participant
there, while peers still discovered it, raced Fast DDS's TypeLookup thread: SIGSEGV without the
line (2 of 180 loaded starts). Each `main` runs in this process, with `leave_process` raising
SystemExit and the teardown calls recorded; code that builds a node itself (tests, composition)
still gets "destroy, then raise"."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
pytest.importorskip("lifecycle_msgs.srv", reason="needs the ROS 2 lifecycle_msgs package")

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from ros_helpers.harness import unique_domain_id  # noqa: E402

from depthart_ros import lifecycle_node as lifecycle_mod  # noqa: E402
from depthart_ros import node as node_mod  # noqa: E402

pytestmark = pytest.mark.ros
BAD_PARAM = ["--ros-args", "-p", "uncertainty.max:=-1.0"]


NODES = [(node_mod, "DepthArtNode"), (lifecycle_mod, "DepthArtLifecycleNode")]


class Recorder:
    """What a node's `main` did before it left the process, in order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.built: list[tuple[Any, Any]] = []  # (node, its real destroy_node), for teardown


@pytest.fixture
def run_main(monkeypatch, restore_thread_counts):
    """run(module, args) -> the exit status of `module.main(args)`, run in this process with
    `leave_process` raising SystemExit; `destroy_node` and `rclpy.try_shutdown` calls are
    recorded. The nodes main built are destroyed and rclpy shut down afterwards."""
    rec = Recorder()
    real_try_shutdown = rclpy.try_shutdown
    monkeypatch.setenv("ROS_DOMAIN_ID", str(unique_domain_id()))
    monkeypatch.setenv("DEPTHART_DDS_PROFILE", "0")  # use_node_profile leaves os.environ alone
    monkeypatch.setattr(node_mod, "_INIT_ARGS", [])  # init_or_exit's record of the arguments

    def leave(status: int):
        rec.events.append(f"exit {status}")
        raise SystemExit(status)

    def try_shutdown(*args: Any, **kwargs: Any) -> None:
        rec.events.append("try_shutdown")

    monkeypatch.setattr(node_mod, "leave_process", leave)
    monkeypatch.setattr(lifecycle_mod, "leave_process", leave)
    monkeypatch.setattr(rclpy, "try_shutdown", try_shutdown)
    for module, name in NODES:
        cls = getattr(module, name)
        real_destroy = cls.destroy_node

        def destroy(self, real=real_destroy) -> None:
            rec.events.append("destroy_node")
            real(self)

        def init(self, *args: Any, base=cls, real=real_destroy, **kwargs: Any) -> None:
            rec.built.append((self, real))
            base.__init__(self, *args, **kwargs)

        monkeypatch.setattr(cls, "destroy_node", destroy)
        monkeypatch.setattr(module, name, type(name, (cls,), {"__init__": init}))

    def run(module: Any, args: list[str]) -> int:
        with pytest.raises(SystemExit) as ended:
            module.main(args)
        return ended.value.code

    yield rec, run
    for built, real_destroy in rec.built:  # what os._exit would have ended
        with contextlib.suppress(Exception):
            real_destroy(built)
    real_try_shutdown()


def _fatal(out: str) -> list[str]:
    return [line for line in out.splitlines() if "[FATAL]" in line]


@pytest.mark.parametrize("module", [node_mod, lifecycle_mod], ids=["node", "lifecycle_node"])
def test_a_refused_parameter_exits_before_any_dds_teardown(run_main, module, capfd) -> None:
    rec, run = run_main
    assert run(module, BAD_PARAM) == 1
    out = "".join(capfd.readouterr())
    fatal = _fatal(out)
    assert len(fatal) == 1 and "[depthart_node]: cannot start: " in fatal[0], out
    assert "uncertainty.max" in fatal[0] and "Traceback" not in out, out
    assert rec.events == ["exit 1"], rec.events  # no destroy_node / try_shutdown before it


def test_a_failed_autostart_exits_before_any_dds_teardown(run_main, tmp_path: Path, capfd) -> None:
    rec, run = run_main
    missing = tmp_path / "nope.safetensors"
    args = ["--ros-args", "-p", f"checkpoint:={missing}", "-p", "autostart:=true"]
    assert run(lifecycle_mod, args) == 1
    out = "".join(capfd.readouterr())
    fatal = _fatal(out)
    assert len(fatal) == 1, out
    assert f"cannot start: autostart: configure failed: checkpoint not found: {missing}" in fatal[0]
    assert rec.events == ["exit 1"], rec.events  # no destroy_node / try_shutdown before it


@pytest.mark.parametrize("module, name", NODES, ids=["node", "lifecycle_node"])
def test_a_node_built_in_process_is_still_destroyed_then_raises(module, name, monkeypatch) -> None:
    """Without `exit_on_failure` (tests, composition) nothing exits: the half-built node is
    destroyed and the refusal raised to the caller."""
    cls = getattr(module, name)
    destroyed: list[Any] = []
    real = cls.destroy_node

    def destroy(self) -> None:
        destroyed.append(self)
        real(self)

    monkeypatch.setattr(cls, "destroy_node", destroy)
    ctx = Context()
    rclpy.init(context=ctx, domain_id=unique_domain_id())
    try:
        with pytest.raises(Exception, match="uncertainty.max"):
            cls(context=ctx, cli_args=BAD_PARAM, use_global_arguments=False)
        assert len(destroyed) == 1
    finally:
        rclpy.try_shutdown(context=ctx)
