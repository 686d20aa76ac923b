"""Start-up of depthart_node and depthart_lifecycle_node in real processes: a signal while the
model loads is a clean stop (exit status 0, as after any Ctrl-C or SIGTERM of a running node),
what rclpy.init refuses (a params file, a log level, a log directory) is one line and status 1,
no image at all is a warning in the log as well as in /diagnostics, and the calibration topic:
read beside the remapped image as image_transport does, and a camera_info that never arrives is
a WARN in /diagnostics and a log line, not silence.

A slow start is made deterministic by a small wrapper module (written per test) that replaces
`DepthArtCore._load_model` with one that waits until the context ends (as an ONNX export or a
TensorRT build goes on for minutes), then runs the real load (a SIGTERM does not stop it: rclpy's
handler only ends the context)."""

from __future__ import annotations

import array
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
pytest.importorskip("sensor_msgs.msg", reason="needs the ROS 2 sensor_msgs package")
pytest.importorskip("lifecycle_msgs.srv", reason="needs the ROS 2 lifecycle_msgs package")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402
from ros_helpers.harness import (  # noqa: E402
    REPO,
    NodeProcess,
    RosPeer,
    ros_env,
    unbound_domain_id,
    unique_domain_id,
)
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from depthart_ros.dds import discovery_port  # noqa: E402

pytestmark = pytest.mark.ros
NODE = "/depthart_node"
STARTED = "slow start: loading the model"
SLOW_START = f'''
import time

from depthart_ros import node as node_mod
from depthart_ros import {{module}} as target

_real_load = node_mod.DepthArtCore._load_model


def slow_load(self):
    print("{STARTED}", flush=True)
    deadline = time.monotonic() + 120
    while self.context.ok() and time.monotonic() < deadline:
        time.sleep(0.02)  # Ctrl-C raises KeyboardInterrupt here, as inside an ONNX export
    time.sleep(0.3)  # after SIGTERM a load goes on for a while, then finishes
    _real_load(self)


node_mod.DepthArtCore._load_model = slow_load
target.main()
'''


@pytest.fixture
def slow_modules(tmp_path: Path, monkeypatch) -> Path:
    """`slow_node` and `slow_lifecycle_node` importable by the node processes."""
    mods = tmp_path / "mods"
    mods.mkdir()
    for name, module in (("slow_node", "node"), ("slow_lifecycle_node", "lifecycle_node")):
        (mods / f"{name}.py").write_text(SLOW_START.format(module=module))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(mods), os.environ.get("PYTHONPATH", "")]))
    return mods


def _wait_in_log(node: NodeProcess, text: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in node.log():
            return
        assert node.proc.poll() is None, f"exited {node.proc.returncode}:\n{node.log()}"
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the log after {timeout:g} s:\n{node.log()}")


def _assert_clean_stop(name: str, rc: int, log: str) -> None:
    assert rc == 0, (name, rc, log)
    for bad in ("Traceback", "FATAL", "cannot start", "ERROR", "KeyboardInterrupt", "rosout"):
        assert bad not in log, (name, bad, log)
    assert log.count("stopped during start-up") == 1, (name, log)


def test_a_signal_during_start_up_is_a_clean_stop(
    slow_modules: Path, tmp_path: Path, tiny_checkpoint: str
) -> None:
    domain = unique_domain_id()
    params = {"checkpoint": tiny_checkpoint, "backend": "torch"}
    cases = {
        "node_sigint": ("slow_node", {}, signal.SIGINT),
        "node_sigterm": ("slow_node", {}, signal.SIGTERM),
        "autostart_sigint": ("slow_lifecycle_node", {"autostart": True}, signal.SIGINT),
        "autostart_sigterm": ("slow_lifecycle_node", {"autostart": True}, signal.SIGTERM),
    }
    nodes = {
        name: NodeProcess(domain, params | extra, tmp_path / f"{name}.log", module=module)
        for name, (module, extra, _) in cases.items()
    }
    try:
        for name, node in nodes.items():
            _wait_in_log(node, STARTED)
            node.proc.send_signal(cases[name][2])
        results = {name: (node.proc.wait(timeout=90), node.log()) for name, node in nodes.items()}
        for name, (rc, log) in results.items():
            _assert_clean_stop(name, rc, log)
    finally:
        for node in nodes.values():
            node.close()


HOLD_GRAPH_LOCKS = """
import fcntl, sys, time
from depthart_core.checkpoint_file import CheckpointFile
from depthart_core.runtime.onnx_cache import onnx_cache_path
sha = CheckpointFile(sys.argv[1]).model_sha256
held = []
for decoding in ("greedy", "soft"):
    path = onnx_cache_path(sha, "fp32", decoding)
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    held.append(open(lock, "a"))
    fcntl.flock(held[-1], fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


def test_sigterm_while_waiting_for_another_process_export_is_a_clean_stop(
    tmp_path: Path, tiny_checkpoint: str
) -> None:
    """A second node on one cache waits for the first one's graph export (or TensorRT build,
    20 minutes on a Jetson): rclpy's SIGTERM handler ends the context and raises nothing in
    Python, and the wait ignored SIGTERM until SIGKILL (SIGINT raised KeyboardInterrupt). Now it
    stops cleanly at once: the node, the lifecycle node on autostart, and one that a manager's
    configure set waiting."""
    domain = unique_domain_id()
    cache = {"DEPTHART_CACHE": str(tmp_path / "cache")}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_GRAPH_LOCKS, tiny_checkpoint],
        env={**os.environ, **cache},
        stdout=subprocess.PIPE,
    )
    params = {"checkpoint": tiny_checkpoint, "backend": "onnxruntime"}
    cases = {
        "node": ("depthart_ros.node", {}),
        "autostart": ("depthart_ros.lifecycle_node", {"autostart": True}),
        "managed": ("depthart_ros.lifecycle_node", {}),
    }
    nodes: dict[str, NodeProcess] = {}
    peer = None
    try:
        assert holder.stdout.readline() == b"held\n"
        for name, (module, extra) in cases.items():
            log = tmp_path / f"{name}.log"
            nodes[name] = NodeProcess(domain, params | extra, log, module=module, env=cache)
        for name in ("node", "autostart"):
            _wait_in_log(nodes[name], "another process is building the graph")
        peer = RosPeer(domain)  # the manager: configure the managed one
        client = peer.node.create_client(ChangeState, f"{NODE}/change_state")
        managed = nodes["managed"]
        ok = peer.wait_for(lambda: client.service_is_ready() or managed.proc.poll() is not None, 90)
        assert ok and managed.proc.poll() is None, managed.log()
        request = ChangeState.Request(transition=Transition(label="configure"))
        deadline = time.monotonic() + 90
        while "another process is building the graph" not in managed.log():
            assert time.monotonic() < deadline, managed.log()
            client.call_async(request)  # a request can be lost before the service answers
            peer.wait_for(lambda: "another process is building" in managed.log(), 3)
        time.sleep(1.0)  # waiting, not about to take the lock
        sent = time.monotonic()
        for node in nodes.values():
            node.proc.send_signal(signal.SIGTERM)
        results = {name: (node.proc.wait(timeout=60), node.log()) for name, node in nodes.items()}
        assert time.monotonic() - sent < 30, results
        for name, (rc, log) in results.items():
            _assert_clean_stop(name, rc, log)
    finally:
        for node in nodes.values():
            node.close()
        if peer is not None:
            peer.close()
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_a_managers_configure_is_a_clean_stop(
    sig: int, slow_modules: Path, tmp_path: Path, tiny_checkpoint: str
) -> None:
    domain = unique_domain_id()
    params = {"checkpoint": tiny_checkpoint, "backend": "torch"}
    node = NodeProcess(domain, params, tmp_path / "managed.log", module="slow_lifecycle_node")
    peer = RosPeer(domain)
    try:
        client = peer.node.create_client(ChangeState, f"{NODE}/change_state")
        ok = peer.wait_for(lambda: client.service_is_ready() or node.proc.poll() is not None, 90)
        assert ok and node.proc.poll() is None, node.log()
        request = ChangeState.Request(transition=Transition(label="configure"))
        deadline = time.monotonic() + 90
        while STARTED not in node.log():  # a request can be lost before the service answers
            assert time.monotonic() < deadline, node.log()
            client.call_async(request)
            peer.wait_for(lambda: STARTED in node.log(), 3)
        rc = node.signal_and_wait(sig, timeout=90)
        _assert_clean_stop("managed", rc, node.log())
    finally:
        node.close()
        peer.close()


# ---------------------------------------------------------------------------------------------
# camera_info: which topic, and silence
def _image(stamp: int) -> Image:
    m = Image()
    m.header.stamp.sec, m.header.stamp.nanosec = divmod(stamp, 10**9)
    m.header.frame_id = "cam"
    m.height, m.width, m.encoding, m.step = 48, 64, "rgb8", 64 * 3
    m.data = array.array("B", bytes(range(256)) * (48 * 64 * 3 // 256))
    return m


def _info(stamp: int) -> CameraInfo:
    c = CameraInfo()
    c.header.stamp.sec, c.header.stamp.nanosec = divmod(stamp, 10**9)
    c.header.frame_id = "cam"
    c.height, c.width, c.distortion_model = 48, 64, "plumb_bob"
    c.d = [0.0] * 5
    c.k = [50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]
    c.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    c.p = [50.0, 0.0, 32.0, 0.0, 0.0, 50.0, 24.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    return c


def _stream(peer: RosPeer, pubs: list[Any], until, timeout: float) -> Any:
    """Publish an image (and its camera_info where `pubs` has two) every 0.1 s until `until()`
    returns something true; that value, or None after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stamp = time.time_ns()
        pubs[0].publish(_image(stamp))
        for pub in pubs[1:]:
            pub.publish(_info(stamp))
        found = until()
        if found:
            return found
        time.sleep(0.1)
    return None


def test_camera_info_is_read_beside_the_image_and_its_silence_is_a_warning(
    tmp_path: Path, tiny_checkpoint: str
) -> None:
    # README's `-r image:=/camera/image_raw` alone, with a driver publishing /camera/camera_info
    domain = unique_domain_id()
    params = {"checkpoint": tiny_checkpoint, "backend": "torch", "publish_colored": False}
    params["input_timeout_s"] = 1.0
    log = tmp_path / "node.log"
    node = NodeProcess(domain, params, log, remaps={"image": "/camera/image_raw"})
    peer = RosPeer(domain)
    try:
        peer.subscribe(Image, "/depth", required=True)
        peer.subscribe(CameraInfo, "/depth/camera_info")
        peer.subscribe(DiagnosticArray, "/diagnostics")
        peer.wait_ready(node)
        image_pub = peer.publisher(Image, "/camera/image_raw", reliable=True, depth=5)
        info_pub = peer.publisher(CameraInfo, "/camera/camera_info", reliable=True, depth=10)
        assert peer.wait_for(lambda: image_pub.get_subscription_count() > 0, 30), node.log()
        assert peer.wait_for(lambda: info_pub.get_subscription_count() > 0, 30), (
            "the node does not subscribe /camera/camera_info beside /camera/image_raw",
            node.log(),
        )

        # images but no calibration: WARN naming the topic, and a warning in the log
        def silent() -> dict[str, str] | None:
            d = peer.diagnostics()
            return d if d and "no camera_info on /camera/camera_info" in d["_message"] else None

        d = _stream(peer, [image_pub], silent, 60)
        assert d is not None, (peer.diagnostics(), node.log())
        assert d["_level"] == "1", d
        assert peer.messages("/depth"), "no depth while camera_info is missing"
        warned = [ln for ln in node.log().splitlines() if "WARN" in ln and "camera_info" in ln]
        assert any("/camera/camera_info" in ln for ln in warned), node.log()

        # the calibration comes: depth/camera_info goes out and the warning clears
        def answered() -> dict[str, str] | None:
            d = peer.diagnostics(after=time.time() - 0.5)
            got = peer.messages("/depth/camera_info")
            return d if got and d and "no camera_info" not in d["_message"] else None

        d = _stream(peer, [image_pub, info_pub], answered, 60)
        assert d is not None, (peer.diagnostics(), node.log())
        assert d["_level"] == "0" and d["_message"] == "ok", d
        assert d["camera_info_topic"] == "/camera/camera_info", d
    finally:
        node.close()
        peer.close()


def test_camera_info_is_read_beside_the_image_unless_remapped() -> None:
    """image_transport's convention (`getCameraInfoTopic`): the image topic's namespace +
    camera_info; an explicit remap of camera_info wins, also one to the name's own expansion
    (`-r camera_info:=/camera_info` beside a remapped image was read as no remap at all)."""
    import rclpy
    from rclpy.node import Node

    from depthart_ros.node import camera_info_topic

    cases = [
        ("", {}, "/camera_info"),
        ("", {"image": "/camera/image_raw"}, "/camera/camera_info"),
        ("", {"image": "/camera/image_raw", "camera_info": "camera_info"}, "/camera_info"),
        ("", {"image": "/camera/image_raw", "camera_info": "/camera_info"}, "/camera_info"),
        (
            "",
            {"image": "/camera/image_raw", "depthart_node:camera_info": "/camera_info"},
            "/camera_info",
        ),
        (
            "",
            {"image": "/camera/image_raw", "other_node:camera_info": "/camera_info"},
            "/camera/camera_info",
        ),
        (
            "front",
            {"image": "/camera/image_raw", "/front/camera_info": "/front/camera_info"},
            "/front/camera_info",
        ),
        ("", {"image": "/camera/image_raw", "camera_info": "/cam/info"}, "/cam/info"),
        ("", {"image": "/image_raw"}, "/camera_info"),
        ("front", {}, "/front/camera_info"),
        ("front", {"image": "cam/image_raw"}, "/front/cam/camera_info"),
        ("front", {"camera_info": "calib"}, "/front/calib"),
        # rcl's forms: rostopic://, and a node's rule matched against its name after __node
        (
            "",
            {"image": "/camera/image_raw", "rostopic://camera_info": "/camera_info"},
            "/camera_info",
        ),
        (
            "",
            {"__node": "rear", "image": "/a/image", "depthart_node:camera_info": "/camera_info"},
            "/a/camera_info",
        ),
        (
            "",
            {"__node": "rear", "image": "/a/image", "rear:camera_info": "/camera_info"},
            "/camera_info",
        ),
    ]
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=unique_domain_id())
    try:
        for namespace, remaps, expected in cases:
            args = ["--ros-args", *[a for k, v in remaps.items() for a in ("-r", f"{k}:={v}")]]
            node = Node("depthart_node", namespace=namespace, context=context, cli_args=args)
            try:
                assert camera_info_topic(node, args) == expected, (namespace, remaps)
            finally:
                node.destroy_node()
    finally:
        context.try_shutdown()


# ---------------------------------------------------------------------------------------------
# what rclpy.init refuses, and no image at all
def test_what_rclpy_init_refuses_is_one_line_and_status_1(tmp_path: Path) -> None:
    """A params file that is missing, a log level that is none, a log directory under a regular
    file (a service user's HOME): rclpy.init raises before any node exists; each is the node's
    one FATAL line naming the cause, status 1, no traceback (rcl's own "[rcl]" ERROR line may
    come before it), for the managed node too."""
    afile = tmp_path / "afile"
    afile.write_text("")
    missing = tmp_path / "nope.yaml"
    node, managed = "depthart_ros.node", "depthart_ros.lifecycle_node"
    cases = {  # name: (module, arguments, environment, what the line names)
        "params_file": (node, ["--params-file", str(missing)], {}, f"{missing}"),
        "log_level": (node, ["--log-level", "loud"], {}, "'--log-level loud'"),
        "log_dir": (node, [], {"ROS_LOG_DIR": f"{afile}/log"}, f"'{afile}/log': Not a directory"),
        "managed_log_dir": (managed, [], {"ROS_LOG_DIR": f"{afile}/log"}, "Not a directory"),
        "managed_params_file": (managed, ["--params-file", str(missing)], {}, "YAML file"),
    }
    procs = {}
    for name, (module, args, env, _) in cases.items():
        cmd = [sys.executable, "-m", module, "--ros-args", *args]
        procs[name] = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=ros_env(unique_domain_id()) | env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        for name, proc in procs.items():
            out, _ = proc.communicate(timeout=90)
            lines = [ln for ln in out.splitlines() if ln.strip() and "[rcl]" not in ln]
            assert proc.returncode == 1, (name, proc.returncode, out)
            assert "Traceback" not in out, (name, out)
            assert len(lines) == 1 and "[FATAL]" in lines[0], (name, out)
            assert "[depthart_node]: cannot start: " in lines[0], (name, out)
            assert cases[name][3] in lines[0] and ".c:" not in lines[0], (name, out)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_no_image_at_all_is_a_warning_in_the_log(tmp_path: Path, tiny_checkpoint: str) -> None:
    """Where discovery or the transport is what broke, /diagnostics is not heard either: the
    silence is logged as well, naming the topic, and throttled (once, then every 10 s)."""
    domain = unique_domain_id()
    params = {"checkpoint": tiny_checkpoint, "backend": "torch", "input_timeout_s": 1.0}
    subnet = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}  # where a held port would be told
    log = tmp_path / "node.log"
    node = NodeProcess(domain, params, log, remaps={"image": "/cam/image_raw"}, env=subnet)
    try:
        _wait_in_log(node, "ready")
        _wait_in_log(node, "no image on /cam/image_raw", 60)
        time.sleep(3.0)  # diagnostics go on at 1 Hz: the line is not repeated every second
        said = [ln for ln in node.log().splitlines() if "no image on /cam/image_raw" in ln]
        assert len(said) == 1 and "WARN" in said[0], node.log()
        assert "since the node started listening" in said[0], said
        assert "discovery port" not in said[0], said  # free (unique_domain_id): no such hint
    finally:
        node.close()


def test_the_silence_names_a_held_discovery_port(tmp_path: Path, tiny_checkpoint: str) -> None:
    """A program holding the domain's discovery port unshared keeps every other process from
    discovering the node under SUBNET discovery (tests/test_discovery_port.py): the node's
    silence warning says so, naming the port, as nothing else would."""
    domain = unbound_domain_id()
    port = discovery_port(domain)
    params = {"checkpoint": tiny_checkpoint, "backend": "torch", "input_timeout_s": 1.0}
    subnet = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("0.0.0.0", port))
        node = NodeProcess(domain, params, tmp_path / "node.log", env=subnet)
        try:
            _wait_in_log(node, "ready")
            _wait_in_log(node, "no image on", 60)
            said = [ln for ln in node.log().splitlines() if "no image on" in ln]
            assert f"ROS domain {domain}'s discovery port {port}/udp is held" in said[0], said
        finally:
            node.close()
