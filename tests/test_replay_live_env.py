"""Live replay's ROS environment and its accounting of lost frames, with a stand-in node.

The replay and the node it starts run on a private domain with ROS 2's default discovery
(SUBNET), whatever the shell has: LOCALHOST lost 640x480 best-effort frames before they reached
the node (rmw_fastrtps's own loopback locators), OFF kept them from ever finding each other.
$DEPTHART_REPLAY_DOMAIN_ID is checked like --domain-id. A frame the node never received is
reported as lost before the node, not as the node's drop.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import pytest
from test_replay import HAND, EchoTransport, _hand_bag

from depthart_core.cli import main as cli_main
from depthart_core.replay.report import format_summary
from depthart_ros.replay.live import replay_live
from depthart_ros.replay.process import LiveConfig, pick_domain_id, ros_env

RANGE = "ROS_AUTOMATIC_DISCOVERY_RANGE"
KEYS = ("ROS_DOMAIN_ID", RANGE, "ROS_LOCALHOST_ONLY", "FASTDDS_BUILTIN_TRANSPORTS")


@pytest.mark.parametrize("inherited", [None, "LOCALHOST", "OFF", "SUBNET", "SYSTEM_DEFAULT"])
def test_the_replays_processes_discover_as_ros_2_does_by_default(inherited):
    base = {"PATH": "/usr/bin", "ROS_LOCALHOST_ONLY": "1", "ROS_STATIC_PEERS": "10.0.0.7"}
    if inherited is not None:
        base[RANGE] = inherited
    env = ros_env(160, base)
    assert env[RANGE] == "SUBNET" and env["ROS_DOMAIN_ID"] == "160"
    assert "ROS_LOCALHOST_ONLY" not in env  # it would override the range
    assert env["ROS_STATIC_PEERS"] == "10.0.0.7"  # added to SUBNET's discovery: kept
    assert env["FASTDDS_BUILTIN_TRANSPORTS"] == "LARGE_DATA"
    mine = ros_env(160, {**base, "FASTDDS_BUILTIN_TRANSPORTS": "SHM"})
    assert mine["FASTDDS_BUILTIN_TRANSPORTS"] == "SHM"  # the user's transports are theirs


def _env_dumper(path: Path) -> tuple[str, ...]:
    """A stand-in node that writes its environment to `path`, then sleeps."""
    code = (
        "import json, os, sys, time; p = sys.argv[1]; "
        "open(p + '.tmp', 'w').write(json.dumps(dict(os.environ))); os.replace(p + '.tmp', p); "
        "time.sleep(60)"
    )
    return (sys.executable, "-c", code, str(path))


class EnvTransport(EchoTransport):
    """EchoTransport that records this process's environment when it joins the domain, once
    the stand-in node has written its own (a node that takes a while to subscribe)."""

    def __init__(self, node_env: Path) -> None:
        super().__init__()
        self.node_env = node_env

    def open(self, domain_id, topics, on_output):
        self.own = {k: os.environ.get(k) for k in KEYS}
        deadline = time.monotonic() + 30
        while not self.node_env.is_file() and time.monotonic() < deadline:
            time.sleep(0.02)
        super().open(domain_id, topics, on_output)


@pytest.mark.parametrize("inherited", ["LOCALHOST", "OFF"])
def test_the_node_and_the_replay_join_with_the_same_discovery(
    tmp_path, tiny_checkpoint, monkeypatch, inherited
):
    """A shell's LOCALHOST (frames lost on the way to the node) or OFF (the node never found:
    the whole start-up timeout waited, then the node blamed) reaches neither process; the
    replay's own environment is put back afterwards."""
    monkeypatch.setenv(RANGE, inherited)
    monkeypatch.setenv("ROS_LOCALHOST_ONLY", "1")
    monkeypatch.delenv("FASTDDS_BUILTIN_TRANSPORTS", raising=False)
    dump = tmp_path / "node_env.json"
    live = LiveConfig(
        tiny_checkpoint, rate=4.0, node_cmd=_env_dumper(dump), drain_timeout_s=0.3, domain_id=166
    )
    transport = EnvTransport(dump)
    report = replay_live(_hand_bag(tmp_path / "bag"), tmp_path / "out", HAND, live, transport)
    assert report["status"] == "complete"
    node = json.loads(dump.read_text())
    for env in (node, transport.own):
        assert env[RANGE] == "SUBNET" and env.get("ROS_LOCALHOST_ONLY") is None
        assert env["FASTDDS_BUILTIN_TRANSPORTS"] == "LARGE_DATA"
    assert node["ROS_DOMAIN_ID"] == "166" and transport.domain_id == 166
    assert os.environ[RANGE] == inherited and os.environ["ROS_LOCALHOST_ONLY"] == "1"
    assert "FASTDDS_BUILTIN_TRANSPORTS" not in os.environ


def test_a_node_never_discovered_names_the_discovery_settings(
    tmp_path, tiny_checkpoint, monkeypatch
):
    """The start-up timeout says how the two processes were to find each other (it blamed the
    node alone, whose log said ready)."""
    monkeypatch.setenv(RANGE, "OFF")
    monkeypatch.delenv("ROS_STATIC_PEERS", raising=False)
    live = LiveConfig(
        tiny_checkpoint,
        node_cmd=(sys.executable, "-c", "import time; time.sleep(60)"),
        startup_timeout_s=1.0,
        domain_id=167,
    )
    with pytest.raises(RuntimeError, match="within 1 s") as err:
        replay_live(
            _hand_bag(tmp_path / "bag"), tmp_path / "out", HAND, live, EchoTransport(ready=False)
        )
    said = str(err.value)
    assert "ROS_DOMAIN_ID=167, ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET, no ROS_STATIC_PEERS" in said
    assert "ROS_STATIC_PEERS=127.0.0.1" in said  # the remedy where multicast is blocked
    assert os.environ[RANGE] == "OFF"


@pytest.mark.parametrize("value", ["300", "233", "-1", "abc", "1.5"])
def test_the_domain_id_variable_is_checked_and_named(tmp_path, tiny_checkpoint, monkeypatch, value):
    """DEPTHART_REPLAY_DOMAIN_ID=300 failed inside Fast DDS (no error line, an empty node.log
    in --out); abc failed as "invalid literal for int()". Both are refused first, naming it."""
    monkeypatch.setenv("DEPTHART_REPLAY_DOMAIN_ID", value)
    with pytest.raises(ValueError, match=r"\$DEPTHART_REPLAY_DOMAIN_ID") as err:
        pick_domain_id()
    assert repr(value) in str(err.value) or f"got {value}" in str(err.value)
    assert "[0, 232]" in str(err.value)
    pidfile = tmp_path / "pid"
    code = "import sys, time; open(sys.argv[1], 'w').write('1'); time.sleep(60)"
    live = LiveConfig(tiny_checkpoint, node_cmd=(sys.executable, "-c", code, str(pidfile)))
    with pytest.raises(ValueError, match=r"\$DEPTHART_REPLAY_DOMAIN_ID"):
        replay_live(_hand_bag(tmp_path / "bag"), tmp_path / "out", HAND, live, EchoTransport())
    assert not (tmp_path / "out").exists() and not pidfile.exists()
    assert pick_domain_id(7) == 7  # --domain-id wins


def test_the_domain_id_variable_when_valid_or_empty(monkeypatch):
    monkeypatch.setenv("DEPTHART_REPLAY_DOMAIN_ID", " 42 ")
    assert pick_domain_id() == 42
    monkeypatch.setenv("DEPTHART_REPLAY_DOMAIN_ID", "")
    assert 30 <= pick_domain_id() <= 101


def test_a_bad_domain_id_variable_is_one_cli_error_line(tmp_path, tiny_checkpoint, capsys,
                                                        monkeypatch):  # fmt: skip
    monkeypatch.setenv("DEPTHART_REPLAY_DOMAIN_ID", "abc")
    bag = _hand_bag(tmp_path / "bag")
    out = tmp_path / "out"
    argv = ["replay", str(bag), "--image-topic", "/cam/image", "--out", str(out), "--live"]
    assert cli_main([*argv, "--checkpoint", tiny_checkpoint, "--no-plots"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("depthart replay: error: $DEPTHART_REPLAY_DOMAIN_ID must be a ROS ")
    assert "'abc'" in err and "invalid literal" not in err
    assert not out.exists()


class NodeTransport(EchoTransport):
    """EchoTransport with a node that counts what it receives, as depthart_node's diagnostics do
    (frames_received, warm-ups included), a second late (the 1 Hz messages trail): measured
    frames in `lose` never reach it, those in `node_drop` reach it and get no output."""

    LAG_S = 1.0

    def __init__(self, lose=(), node_drop=(), counts=True) -> None:
        super().__init__()
        self.lose, self.node_drop, self.counts = set(lose), set(node_drop), counts
        self.received_at: list[float] = []  # when the node got each image
        self.n_measured = -1  # publish 0 is the warm-up

    def publish(self, key, raw):
        if key != "image":
            return super().publish(key, raw)
        n, self.n_measured = self.n_measured, self.n_measured + 1
        if n in self.lose:
            return  # lost on the way: the node never sees it
        self.received_at.append(time.monotonic())
        if n in self.node_drop:
            return  # the node got it, and replaced it with a newer one
        super().publish(key, raw)

    def diagnostics(self):
        if not self.counts:
            return super().diagnostics()
        now = time.monotonic()
        received = sum(t <= now - self.LAG_S for t in self.received_at)
        values = {"frames_received": str(received), "frames_replaced": str(len(self.node_drop))}
        return [{"name": "/depthart_node: depth", "values": values}]


@pytest.mark.parametrize(
    ("lose", "counts", "split"),
    [({1}, True, (1, 2)), ((), True, (0, 2)), ({1}, False, (None, None))],
)
def test_frames_lost_before_the_node_are_not_the_nodes_drops(
    tmp_path, tiny_checkpoint, caplog, lose, counts, split
):
    """Frame 1 lost in transport, 5 replaced by the node, 4 (not a colour image) rejected by it:
    "dropped 3" said nothing of where; the node's frames_received (awaited past its 1 Hz lag)
    splits them, a loss before the node is in the status and a warning, and a node without
    frame counts leaves the split unknown."""
    live = LiveConfig(
        tiny_checkpoint, rate=4.0, node_cmd=(sys.executable, "-c", "import time; time.sleep(60)"),
        drain_timeout_s=0.3, domain_id=168,
    )  # fmt: skip
    transport = NodeTransport(lose=lose, node_drop={5}, counts=counts)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="depthart_ros.replay.live"):
        report = replay_live(_hand_bag(tmp_path / "bag"), out, HAND, live, transport)
    lv = report["live"]
    assert (lv["published"], lv["returned"]) == (8, 8 - 2 - len(lose))
    assert lv["dropped"] == 2 + len(lose)
    assert (lv["lost_before_node"], lv["dropped_by_node"]) == split
    md = (out / "report.md").read_text()
    summary = format_summary(report)
    warned = [r.getMessage() for r in caplog.records if "lost before the node" in r.getMessage()]
    if split[0]:
        assert report["status"] == "complete, 1 of 8 frames lost before the node"
        assert lv["node_frames"] == {"received": 8, "replaced": 1}  # 9 images, warm-up included
        assert "**Transport loss:** 1 of 8 frames never reached the node" in md
        assert "Dropped 3: 1 lost before the node (never received: DDS transport), 2 by the" in md
        assert "dropped 3: 1 lost before the node" in summary and "(complete, 1 of 8" in summary
        assert len(warned) == 1 and "the node never received them" in warned[0]
    else:
        assert report["status"] == "complete" and not warned
        assert "Transport loss" not in md
        if counts:
            assert f"dropped {lv['dropped']}: 0 lost before the node" in summary
        else:
            assert "lost before the node or by it is not known" in md
