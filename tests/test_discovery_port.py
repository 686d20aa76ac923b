"""A ROS domain whose discovery port another socket holds unshared is never a live replay's.

Fast DDS's participants hear SUBNET discovery on the multicast port 7400 + 250 x domain, which
they share among themselves (SO_REUSEADDR). A socket bound there without sharing kept every
participant of that domain from discovering any other: a CI run's live replay and its node never
met in 90 s on domain 41, reproduced by holding that port (two processes did not meet in 15 s,
also with ROS_STATIC_PEERS=127.0.0.1). A random domain now skips such a port, a given one is
refused at once naming the port, and the tests' own domains skip it too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from ros_helpers.harness import unbound_domain_id, unique_domain_id
from test_replay import HAND, EchoTransport, _hand_bag

from depthart_ros import dds
from depthart_ros.replay import process
from depthart_ros.replay.live import replay_live
from depthart_ros.replay.process import LiveConfig, pick_domain_id


@contextmanager
def held_port(port: int, share: bool = False) -> Iterator[socket.socket]:
    """A UDP socket on `port`, bound as a plain program binds (or sharing it, as Fast DDS does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        if share:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        yield s


def test_the_discovery_port_is_fast_dds_default():
    assert [dds.discovery_port(d) for d in (0, 1, 41, 232)] == [7400, 7650, 17650, 65400]


def test_a_port_held_unshared_is_told_from_a_shared_or_free_one():
    domain_id = unbound_domain_id()
    port = dds.discovery_port(domain_id)
    assert not dds.discovery_port_held(domain_id)
    with held_port(port, share=True):  # another participant of the domain: Fast DDS shares it
        assert not dds.discovery_port_held(domain_id)
    with held_port(port):
        assert dds.discovery_port_held(domain_id)
    assert not dds.discovery_port_held(domain_id)


def test_a_random_domain_skips_one_whose_port_is_held(monkeypatch):
    monkeypatch.delenv(process.DOMAIN_ENV, raising=False)
    held, free = unbound_domain_id(), unique_domain_id()
    monkeypatch.setattr(process, "RANDOM_DOMAIN_IDS", range(held, held + 1))
    with held_port(dds.discovery_port(held)):
        with pytest.raises(RuntimeError, match=rf"every ROS domain id in {held}-{held} .*held"):
            pick_domain_id()
        monkeypatch.setattr(process, "RANDOM_DOMAIN_IDS", [held, free])
        assert {pick_domain_id() for _ in range(40)} == {free}
    assert {pick_domain_id() for _ in range(40)} == {held, free}


def test_a_given_domain_whose_port_is_held_is_refused_before_anything_starts(
    tmp_path, tiny_checkpoint, monkeypatch
):
    domain_id = unbound_domain_id()
    port = dds.discovery_port(domain_id)
    pidfile = tmp_path / "pid"
    code = "import sys, time; open(sys.argv[1], 'w').write('1'); time.sleep(60)"
    node_cmd = (sys.executable, "-c", code, str(pidfile))
    bag = _hand_bag(tmp_path / "bag")
    with held_port(port):
        with pytest.raises(RuntimeError, match=rf"domain {domain_id}'s discovery port {port}/udp"):
            pick_domain_id(domain_id)
        monkeypatch.setenv(process.DOMAIN_ENV, str(domain_id))
        with pytest.raises(RuntimeError, match=r"choose another \$DEPTHART_REPLAY_DOMAIN_ID"):
            pick_domain_id()
        live = LiveConfig(tiny_checkpoint, domain_id=domain_id, node_cmd=node_cmd)
        with pytest.raises(RuntimeError, match=r"never discover each other there"):
            replay_live(bag, tmp_path / "out", HAND, live, EchoTransport())
    assert not (tmp_path / "out").exists() and not pidfile.exists()
    assert pick_domain_id(domain_id) == domain_id  # free again


MATCH = textwrap.dedent(
    """
    import subprocess, sys, time
    import rclpy
    from std_msgs.msg import String
    if sys.argv[1] == "sub":
        rclpy.init()
        node = rclpy.create_node("sub")
        node.create_subscription(String, "/t", lambda m: None, 10)
        rclpy.spin(node)
    sub = subprocess.Popen([sys.executable, __file__, "sub"])
    try:
        rclpy.init()
        pub = rclpy.create_node("pub").create_publisher(String, "/t", 10)
        end = time.monotonic() + float(sys.argv[2])
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            time.sleep(0.05)
        print("matched" if pub.get_subscription_count() else "apart", flush=True)
    finally:
        sub.kill()
        sub.wait()
    """
)


def _two_processes_meet(tmp_path, domain_id: int, wait_s: float) -> bool:
    script = tmp_path / "match.py"
    script.write_text(MATCH)
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET")
    env["FASTDDS_BUILTIN_TRANSPORTS"] = "LARGE_DATA"
    env.pop("ROS_LOCALHOST_ONLY", None)
    out = subprocess.run(
        [sys.executable, str(script), "pub", str(wait_s)],
        env=env,
        capture_output=True,
        text=True,
        timeout=wait_s + 60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()[-1] == "matched"


@pytest.mark.ros
def test_fast_dds_participants_never_meet_on_a_held_discovery_port(tmp_path):
    """The premise of the check: SUBNET discovery fails while the port is held, works after."""
    pytest.importorskip("rclpy", reason="needs rclpy")
    domain_id = unbound_domain_id()
    with held_port(dds.discovery_port(domain_id)):
        assert not _two_processes_meet(tmp_path, domain_id, wait_s=6.0)
    assert _two_processes_meet(tmp_path, domain_id, wait_s=30.0)


@pytest.mark.parametrize(
    ("environ", "told"),
    [
        ({}, True),  # ROS 2's default: SUBNET
        ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "subnet"}, True),
        ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT"}, True),
        ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}, False),  # met on a held port
        ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "OFF"}, False),
        ({"ROS_LOCALHOST_ONLY": "1"}, False),
        ({"ROS_DISCOVERY_SERVER": "127.0.0.1:11811"}, False),
    ],
)
def test_the_held_port_is_told_only_where_discovery_goes_through_it(environ, told):
    domain_id = unbound_domain_id()
    assert dds.held_discovery_port_said(domain_id, environ) is None
    with held_port(dds.discovery_port(domain_id)):
        said = dds.held_discovery_port_said(domain_id, environ)
    assert (said is not None) == told
    if told:
        assert f"port {dds.discovery_port(domain_id)}/udp is held" in said


@pytest.mark.parametrize(
    ("environ", "default"),
    [
        ({}, True),
        ({"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp"}, True),
        ({"FASTDDS_DEFAULT_PROFILES_FILE": str(dds.PROFILE)}, True),  # the node's own
        ({"FASTDDS_DEFAULT_PROFILES_FILE": str(dds.ASYNC_PROFILE)}, True),
        ({"RMW_IMPLEMENTATION": "rmw_zenoh_cpp"}, False),  # no such port
        ({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}, False),
        ({"FASTDDS_DEFAULT_PROFILES_FILE": "/robot/dds.xml"}, False),  # may move the ports
        ({"FASTRTPS_DEFAULT_PROFILES_FILE": "/robot/dds.xml"}, False),
    ],
)
def test_the_port_is_judged_only_on_fast_dds_default_ports(environ, default, monkeypatch):
    """Under another middleware or a user's XML profile the port is not known: a held 7400 +
    250 x id is then neither told by the node nor a reason to refuse a domain."""
    assert dds.default_ports(environ) is default
    domain_id = unbound_domain_id()
    for key in ("RMW_IMPLEMENTATION", *(f"FAST{v}_DEFAULT_PROFILES_FILE" for v in ("DDS", "RTPS"))):
        monkeypatch.delenv(key, raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    with held_port(dds.discovery_port(domain_id)):
        assert (dds.held_discovery_port_said(domain_id, environ) is not None) is default
        if default:
            with pytest.raises(RuntimeError, match="discovery port"):
                pick_domain_id(domain_id)
        else:
            assert pick_domain_id(domain_id) == domain_id
