"""Process control and an in-test ROS 2 peer for the node tests (real rclpy, Fast DDS loopback).

Every test gets its own ROS_DOMAIN_ID (from the pid and a counter, in 1..101) so concurrent test
runs never hear each other, and every process runs with FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA,
without which best-effort subscribers lose whole 640x480 frames between processes.
"""

from __future__ import annotations

import array
import dataclasses
import itertools
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from depthart_ros.dds import discovery_port, discovery_port_held

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
# What a ROS participant reads when it is created: the node processes' and the test's own
# (`RosPeer`). tests/conftest.py sets it in the test process for the whole session.
DDS_ENV = {
    "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA",
    "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
}
# The node processes also check their messages' field types in Python: unchecked, a wrong type
# (an int bound in a float range) reaches C as garbage instead of failing (`ros2 param describe`
# read 5e-324). Not set in the test process: rosidl reads it once, at a message module's first
# import, so there it checked only the types first imported after the first `RosPeer` set it,
# which depended on the tests that ran before.
NODE_ENV = {**DDS_ENV, "ROS_PYTHON_CHECK_FIELDS": "1"}
_counter = itertools.count()


def unique_domain_id() -> int:
    """A ROS domain id in 1..101, different for each call within a process and across pids,
    whose discovery port no socket holds unshared (one that did kept a live replay and its node,
    discovering under SUBNET, from ever meeting: a CI run's failure, reproduced so)."""
    for _ in range(101):
        domain_id = 1 + (os.getpid() * 17 + next(_counter) * 7) % 101
        if not discovery_port_held(domain_id):
            return domain_id
    raise RuntimeError("every ROS domain id in 1..101 has its discovery port held")


def unbound_domain_id() -> int:
    """`unique_domain_id`, one whose discovery port no socket at all holds (a participant of
    another run shares it): for a test that binds that port itself, without sharing it."""
    for _ in range(101):
        domain_id = unique_domain_id()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("0.0.0.0", discovery_port(domain_id)))
            except OSError:
                continue
        return domain_id
    raise RuntimeError("every ROS domain id in 1..101 has its discovery port bound")


def replay_live_as_the_cli(*args: Any) -> dict[str, Any]:
    """`replay_live(bag, out, cfg, live[, write_bag])` through an `RclpyTransport`, in a fresh
    interpreter, as `depthart replay --live` runs it: not in the test process, whose earlier
    participants (each test's peers and replays) it would join. Twice a replay joined from a
    test process late in a full run never discovered its node (90 s; domains 41 and 3, neither
    port held), while the same test alone passed every time; a process's later participants
    were discovered 2-4 s late here, not at once.

    A fresh interpreter did not end it: a fresh clone's full run (forty-seventh session) had the
    replay's child and the node, both new processes, never discover each other on domain 37
    (port free, the node ready for 90 s). The cause is not found, so where the replay says it
    discovered no other node, it is run once more on another domain, with a warning that the
    test report shows; a second failure raises. Raises what the replay raised."""
    bag, out, cfg, live, *rest = args
    try:
        return _replay_live_in_a_child(bag, out, cfg, live, *rest)
    except RuntimeError as exc:
        if NEVER_DISCOVERED not in str(exc):
            raise
        first_line = str(exc).splitlines()[0]
        warnings.warn(f"live replay retried on a new domain: {first_line}", stacklevel=2)
    shutil.rmtree(out, ignore_errors=True)
    again = dataclasses.replace(live, domain_id=unique_domain_id())
    return _replay_live_in_a_child(bag, out, cfg, again, *rest)


# the start-up timeout's words where the replay's participant saw no other node at all
NEVER_DISCOVERED = "the replay discovered no other node on its domain"


def _replay_live_in_a_child(*args: Any) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_replay_live_child, args)


def _replay_live_child(bag: Path, out: Path, cfg: Any, live: Any, *rest: Any) -> dict[str, Any]:
    from depthart_ros.replay.live import replay_live
    from depthart_ros.replay.transport import RclpyTransport

    return replay_live(bag, out, cfg, live, RclpyTransport(), *rest)


def ros_env(domain_id: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(NODE_ENV)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(TESTS), env.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # stacks on SIGABRT (see NodeProcess.signal_and_wait)
    env["RCUTILS_LOGGING_BUFFERED_STREAM"] = "0"
    return env


def _yaml_value(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


class NodeProcess:
    """`python -m depthart_ros.node` (or `module`) in its own process; always killed by `close`."""

    def __init__(
        self,
        domain_id: int,
        params: dict[str, Any],
        log_path: Path,
        params_files: tuple[Path, ...] = (),
        module: str = "depthart_ros.node",
        remaps: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        cmd = [sys.executable, "-m", module, "--ros-args"]
        for f in params_files:  # files first: a later -p wins over them
            cmd += ["--params-file", str(f)]
        for k, v in params.items():
            cmd += ["-p", f"{k}:={_yaml_value(v)}"]
        for k, v in (remaps or {}).items():
            cmd += ["-r", f"{k}:={v}"]
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env={**ros_env(domain_id), **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def signal_and_wait(self, sig: int, timeout: float = 60.0) -> int:
        """Send `sig` and wait for the exit status; generous: under load a participant's
        teardown took over 15 s once. A process still alive then is a hang: SIGABRT makes
        its faulthandler (PYTHONFAULTHANDLER) print every thread's stack into the log."""
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(timeout=30)
            stacks = self.log()
            raise AssertionError(f"no exit {timeout:g} s after {sig!r}:\n{stacks}") from None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def run_helper(domain_id: int, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run `python -m ros_helpers.<args>` to completion (killed on timeout)."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        env=ros_env(domain_id),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class RosPeer:
    """The test's own ROS 2 participant: subscribes, publishes and calls parameter services from
    the test thread while an executor spins in the background."""

    def __init__(self, domain_id: int) -> None:
        # read by Fast DDS when the participant is created; under pytest already set for the
        # whole session (conftest's pytest_configure), so this changes nothing there
        os.environ.update(DDS_ENV)
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node("depthart_test_peer", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.received: dict[str, list[tuple[float, Any]]] = defaultdict(list)
        self.subscriptions: list[Any] = []
        self.required: list[Any] = []  # subscriptions whose writer must be discovered and matched
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from depthart_ros.spin import spin_until_context_ends

        spin_until_context_ends(self.executor, self.context)

    def subscribe(
        self,
        msg_type: Any,
        topic: str,
        reliable: bool = True,
        depth: int = 50,
        required: bool = False,
    ) -> None:
        """`required`: `wait_ready` also waits until a publisher of this topic is discovered at
        all (without it a topic whose writer discovery has not yet shown counts as matched)."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        rel = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(depth=depth, reliability=rel)

        def on_msg(msg: Any) -> None:
            with self.lock:
                self.received[topic].append((time.time(), msg))

        sub = self.node.create_subscription(msg_type, topic, on_msg, qos)
        self.subscriptions.append(sub)
        if required:
            self.required.append(sub)

    def unmatched(self) -> list[str]:
        """Topics where this peer's subscription has not yet matched every publisher that
        discovery shows, or (`required` ones) no publisher yet (a reliable, volatile writer
        drops what it sends before the match)."""
        out = []
        for sub in self.subscriptions:
            known = self.node.count_publishers(sub.topic_name)
            need = max(known, 1) if any(sub is r for r in self.required) else known
            if sub.get_publisher_count() < need:
                out.append(sub.topic_name)
        return out

    def publisher(self, msg_type: Any, topic: str, reliable: bool = True, depth: int = 10) -> Any:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        rel = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        return self.node.create_publisher(msg_type, topic, QoSProfile(depth=depth, reliability=rel))

    def messages(self, topic: str) -> list[Any]:
        with self.lock:
            return [m for _, m in self.received[topic]]

    def timed(self, topic: str) -> list[tuple[float, Any]]:
        with self.lock:
            return list(self.received[topic])

    def wait_for(self, predicate: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(poll)
        return predicate()

    def diagnostics(self, after: float = 0.0) -> dict[str, str] | None:
        """Key/values of the newest depthart status received after wall time `after`."""
        with self.lock:
            items = list(self.received["/diagnostics"])
        for t, arr in reversed(items):
            for st in arr.status:
                if "depthart_node" in st.name and t > after:
                    level = st.level[0] if isinstance(st.level, bytes) else int(st.level)
                    values = {kv.key: kv.value for kv in st.values}
                    return values | {"_level": str(level), "_message": st.message}
        return None

    def wait_diagnostics(self, after: float, timeout: float = 10.0) -> dict[str, str]:
        assert self.wait_for(lambda: self.diagnostics(after) is not None, timeout), (
            "no /diagnostics from depthart_node"
        )
        return self.diagnostics(after)

    def wait_ready(self, node: NodeProcess, timeout: float = 90.0) -> dict[str, str]:
        """Wait for the node's first diagnostics (it publishes them once fully started)."""
        ok = self.wait_for(
            lambda: self.diagnostics() is not None or node.proc.poll() is not None, timeout
        )
        assert ok and node.proc.poll() is None, f"node did not start:\n{node.log()}"
        # the node's first outputs must not go out before this peer matched its publishers: on a
        # busy machine endpoint discovery of one topic can lag another's by seconds
        matched = self.wait_for(lambda: not self.unmatched(), timeout)
        assert matched, f"subscriptions not matched after {timeout:g} s: {self.unmatched()}"
        return self.diagnostics()

    def call(
        self, srv_type: Any, name: str, request: Any, warm_up: Any, timeout: float = 10.0
    ) -> Any:
        """`request` on a new client, once the no-op `warm_up` request was answered: a service
        can be discovered before it can answer a new client (Fast DDS drops the response,
        "failed to send response (timeout)"), so `warm_up` is resent until one answer comes."""
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"no service {name}"
            deadline = time.monotonic() + max(timeout, 30.0)
            while self._ask(client, warm_up, 2.0) is None:
                assert time.monotonic() < deadline, f"{name} never answered a warm-up request"
            answer = self._ask(client, request, timeout)
            assert answer is not None, f"{name} did not answer"
            return answer
        finally:
            self.node.destroy_client(client)

    def _ask(self, client: Any, request: Any, timeout: float) -> Any:
        future = client.call_async(request)
        if not self.wait_for(future.done, timeout):
            client.remove_pending_request(future)
            return None
        return future.result()

    def set_parameter(self, node_name: str, name: str, value: Any) -> Any:
        """One SetParameters call; returns its SetParametersResult."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        warm_up = SetParameters.Request(parameters=[])  # sets nothing
        return self.call(SetParameters, f"{node_name}/set_parameters", req, warm_up).results[0]

    def get_parameters(self, node_name: str, names: list[str]) -> dict[str, Any]:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        req = GetParameters.Request(names=names)
        warm_up = GetParameters.Request(names=[])
        values = self.call(GetParameters, f"{node_name}/get_parameters", req, warm_up).values
        return {n: parameter_value_to_python(v) for n, v in zip(names, values, strict=True)}

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=5)


def image_msg(fields: dict, stamp_ns: int, frame_id: str) -> Any:
    """A sensor_msgs/Image with the given wire fields and header."""
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = frame_id
    for k in ("height", "width", "encoding", "is_bigendian", "step"):
        setattr(msg, k, fields[k])
    msg.data = array.array("B", fields["data"])
    return msg


def stamp_ns(header: Any) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
