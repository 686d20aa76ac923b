"""Live replay's ROS environment and its accounting of lost frames, with a stand-in node.

The replay and the node it starts run on a private domain with ROS 2's default discovery
(SUBNET), whatever the shell has: LOCALHOST lost 640x480 best-effort frames before they reached
the node (rmw_fastrtps's own loopback locators), OFF kept them from ever finding each other.
A shell's discovery server (ROS_DISCOVERY_SERVER, ROS_SUPER_CLIENT) reaches neither: with it
they never matched. $DEPTHART_REPLAY_DOMAIN_ID is checked like --domain-id. A frame the node never
received is reported as lost before the node, not as the node's drop, on the evidence of a
diagnostics message after the last frame, counted from the end of the warm-up; without one
(Ctrl-C, --time-limit) the split is not known.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path

import pytest
from test_lock_wait_stop import process_holding
from test_replay import HAND, EchoTransport, _hand_bag, no_port_probe  # noqa: F401 (autouse)

from depthart_core.cli import main as cli_main
from depthart_core.replay.report import format_summary
from depthart_ros.replay import process
from depthart_ros.replay.live import replay_live
from depthart_ros.replay.process import LiveConfig, pick_domain_id, ros_env

RANGE = "ROS_AUTOMATIC_DISCOVERY_RANGE"
SERVER = ("ROS_DISCOVERY_SERVER", "ROS_SUPER_CLIENT")
KEYS = ("ROS_DOMAIN_ID", RANGE, "ROS_LOCALHOST_ONLY", "FASTDDS_BUILTIN_TRANSPORTS", *SERVER)
SLEEP = (sys.executable, "-c", "import time; time.sleep(60)")


@pytest.mark.parametrize("inherited", [None, "LOCALHOST", "OFF", "SUBNET", "SYSTEM_DEFAULT"])
def test_the_replays_processes_discover_as_ros_2_does_by_default(inherited):
    base = {"PATH": "/usr/bin", "ROS_LOCALHOST_ONLY": "1", "ROS_STATIC_PEERS": "10.0.0.7"}
    base |= {"ROS_DISCOVERY_SERVER": "127.0.0.1:11811", "ROS_SUPER_CLIENT": "true"}
    if inherited is not None:
        base[RANGE] = inherited
    env = ros_env(160, base)
    assert env[RANGE] == "SUBNET" and env["ROS_DOMAIN_ID"] == "160"
    assert "ROS_LOCALHOST_ONLY" not in env  # it would override the range
    assert not set(SERVER) & set(env)  # the robot's server: the two never matched through it
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
    """A shell's LOCALHOST (frames lost on the way to the node), OFF (the node never found: the
    whole start-up timeout waited, then the node blamed) or discovery server (never matched on
    the private domain) reaches neither process; the replay's own environment is put back."""
    monkeypatch.setenv(RANGE, inherited)
    monkeypatch.setenv("ROS_LOCALHOST_ONLY", "1")
    monkeypatch.setenv("ROS_DISCOVERY_SERVER", "127.0.0.1:11811")
    monkeypatch.setenv("ROS_SUPER_CLIENT", "true")
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
        assert all(env.get(k) is None for k in SERVER)
    assert node["ROS_DOMAIN_ID"] == "166" and transport.domain_id == 166
    assert os.environ[RANGE] == inherited and os.environ["ROS_LOCALHOST_ONLY"] == "1"
    assert os.environ["ROS_DISCOVERY_SERVER"] == "127.0.0.1:11811"
    assert os.environ["ROS_SUPER_CLIENT"] == "true"
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
    assert ": the stand-in says it is not ready;" in said  # the step that is missing
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
    (frames_received, warm-ups included), in a message every `period_s` from when the replay
    joins (the latest trails the node by up to a period): image publishes in `lose` never reach
    it, those in `node_drop` reach it and get no output. Publishes are numbered from -1, the
    first warm-up (0 is the first measured frame where one warm-up was answered)."""

    PERIOD_S = 1.0

    def __init__(self, lose=(), node_drop=(), counts=True, period_s=PERIOD_S) -> None:
        super().__init__()
        self.lose, self.node_drop, self.counts = set(lose), set(node_drop), counts
        self.period_s = period_s
        self.received_at: list[float] = []  # when the node got each image
        self.replaced_at: list[float] = []  # when it got each image it then dropped
        self.n_measured = -1  # publish 0 is the warm-up

    def open(self, domain_id, topics, on_output):
        self.t_open = time.monotonic()
        super().open(domain_id, topics, on_output)

    def publish(self, key, raw):
        if key != "image":
            return super().publish(key, raw)
        n, self.n_measured = self.n_measured, self.n_measured + 1
        if n in self.lose:
            return  # lost on the way: the node never sees it
        self.received_at.append(time.monotonic())
        if n in self.node_drop:
            self.replaced_at.append(self.received_at[-1])
            return  # the node got it, and replaced it with a newer one
        super().publish(key, raw)

    def diagnostics(self):
        if not self.counts:
            return super().diagnostics()
        k = int((time.monotonic() - self.t_open) // self.period_s)
        if k == 0:
            return []
        sent_at = self.t_open + k * self.period_s  # the latest message, as the node sent it
        got = [t for t in self.received_at if t <= sent_at]
        values = {
            "frames_received": str(len(got)),
            "frames_replaced": str(sum(t <= sent_at for t in self.replaced_at)),
            "last_image_age_s": f"{sent_at - got[-1]:.1f}" if got else "none",
        }
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
    live = LiveConfig(tiny_checkpoint, rate=4.0, node_cmd=SLEEP, drain_timeout_s=0.3, domain_id=168)
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
        assert lv["node_frames_baseline"] == 1 and lv["split_not_known"] is None
        assert "**Transport loss:** 1 of 8 frames never reached the node" in md
        assert "count 7 of them received, past the 1 warm-up images" in md
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


def _live_report(out: Path) -> tuple[dict, dict, str]:
    report = json.loads((out / "report.json").read_text())
    return report, report["live"], (out / "report.md").read_text()


class InterruptedNode(NodeTransport):
    """Ctrl-C while frame 6 goes out: at its camera_info (frame 5 was the last image published)
    or inside its image's publish (whether the node got it is not known)."""

    def __init__(self, at: str, **kw) -> None:
        super().__init__(**kw)
        self.at = at

    def publish(self, key, raw):
        if key == self.at and self.n_measured == 6:  # after the warm-up and frames 0-5
            raise KeyboardInterrupt
        return super().publish(key, raw)


@pytest.mark.parametrize("at", ["camera_info", "image"])
def test_an_interrupted_run_does_not_guess_the_split(tmp_path, tiny_checkpoint, at):
    """Ctrl-C at frame 6, frame 5 replaced by the node, 4 rejected, nothing lost: the node's last
    diagnostics (1 s before, counting the warm-up alone) passed frames 0-5 for lost ("2 of 6
    frames never reached the node"). Only a message after the last frame tells the split."""
    live = LiveConfig(tiny_checkpoint, rate=1.0, node_cmd=SLEEP, drain_timeout_s=0.3,
                      domain_id=169)  # fmt: skip
    transport = InterruptedNode(at, node_drop={5})
    with pytest.raises(KeyboardInterrupt):
        replay_live(_hand_bag(tmp_path / "bag"), tmp_path / "out", HAND, live, transport)
    report, lv, md = _live_report(tmp_path / "out")
    assert report["status"] == "interrupted" and len(transport.received_at) == 7
    assert (lv["published"], lv["dropped"]) == (6, 2)
    assert "Transport loss" not in md
    split = (lv["lost_before_node"], lv["dropped_by_node"])
    if split == (None, None):  # as a quick machine plays it: no message after the last frame
        assert "Dropped 2: lost before the node or by it is not known (" in md
        if at == "camera_info":
            assert "no diagnostics message from the node arrived after the last frame" in md
        else:
            assert "frame 6's publish was cut short" in md
    else:  # a busy machine's slower play lets one arrive: then it must be the true split
        assert split == (0, 2), split


def test_a_time_limit_cut_does_not_guess_the_split(tmp_path, tiny_checkpoint, caplog):
    """--time-limit ends the drain before the node's next diagnostics message: the one before
    it (counting frames 0-1) passed the node's own drops for transport loss ("truncated ..., 2
    of 4 frames lost before the node", with a warning), though nothing was lost."""
    live = LiveConfig(tiny_checkpoint, rate=0.5, node_cmd=SLEEP, drain_timeout_s=0.5,
                      time_limit_s=2.2, domain_id=170)  # fmt: skip
    # messages 1.2 s and 2.4 s after the replay joins; frames from ~1 s (the warm-up), 0.2 s apart
    transport = NodeTransport(node_drop={0, 1, 2, 3, 5, 6, 7}, period_s=1.2)
    with caplog.at_level(logging.WARNING, logger="depthart_ros.replay.live"):
        report = replay_live(_hand_bag(tmp_path / "bag"), tmp_path / "out", HAND, live, transport)
    lv = report["live"]
    assert lv["truncated_by_time_limit"] and lv["returned"] == 0
    assert report["status"] == f"truncated by --time-limit: {lv['published']} of 8 frames played"
    # never transport loss (nothing was lost); known only where a busy machine's slower play
    # let a message arrive after the last frame, else not known, and why
    assert lv["lost_before_node"] in (None, 0), lv
    if lv["lost_before_node"] is None:
        assert lv["dropped_by_node"] is None
        assert "no diagnostics message from the node arrived after" in lv["split_not_known"]
    assert not [r for r in caplog.records if "lost before the node" in r.getMessage()]
    assert "Transport loss" not in (tmp_path / "out" / "report.md").read_text()


def test_a_warm_up_lost_is_not_charged_to_the_measured_frames(tmp_path, tiny_checkpoint):
    """The first warm-up lost, a second answered; measured frame 5 replaced by the node, 4
    rejected, none lost: "complete, 1 of 8 frames lost before the node" counted the lost
    warm-up against them. The count starts from the node's own after the warm-up."""
    live = LiveConfig(tiny_checkpoint, rate=4.0, node_cmd=SLEEP, drain_timeout_s=0.3,
                      domain_id=171)  # fmt: skip
    transport = NodeTransport(lose={-1}, node_drop={6})  # publish 6: measured frame 5
    report = replay_live(_hand_bag(tmp_path / "bag"), tmp_path / "out", HAND, live, transport)
    lv = report["live"]
    assert report["status"] == "complete"
    assert (lv["warmup_published"], lv["warmup_returned"]) == (2, 1)
    assert (lv["dropped"], lv["lost_before_node"], lv["dropped_by_node"]) == (2, 0, 2)
    assert lv["node_frames_baseline"] == 1 and lv["node_frames"]["received"] == 9


@pytest.fixture
def other_replay(tmp_path, monkeypatch):
    """Another live replay's claim on ROS domain 41 (this test's private cache root)."""
    monkeypatch.setattr(process, "cache_root", lambda: tmp_path / "cache")
    monkeypatch.delenv("DEPTHART_REPLAY_DOMAIN_ID", raising=False)
    path = process.DomainClaim.path(41)
    path.parent.mkdir(parents=True)
    with process_holding(path, "PID otherhost\n") as holder:
        yield holder


def test_a_domain_another_replay_runs_on_is_refused_when_given(
    tmp_path, tiny_checkpoint, other_replay, monkeypatch
):
    """Two replays at once on one domain each published into the other's node and scored the
    other's outputs. The one started second is refused, naming the first, before it writes."""
    pidfile = tmp_path / "pid"
    code = "import sys, time; open(sys.argv[1], 'w').write('1'); time.sleep(60)"
    live = LiveConfig(tiny_checkpoint, node_cmd=(sys.executable, "-c", code, str(pidfile)),
                      domain_id=41)  # fmt: skip
    said = rf"another live replay \(pid {other_replay.pid}, host otherhost; .*41.lock\) runs on"
    said += r" ROS domain 41: each node would answer the other's frames; "
    bag = _hand_bag(tmp_path / "bag")
    for out, setting, advice in (
        ("out", live, "choose another domain id, or none"),
        ("out2", dataclasses.replace(live, domain_id=None), r"set \$DEPTHART_REPLAY_DOMAIN_ID to "
         r"another domain id, or unset it for a free one"),
    ):  # fmt: skip
        if setting.domain_id is None:
            monkeypatch.setenv("DEPTHART_REPLAY_DOMAIN_ID", "41")
        with pytest.raises(RuntimeError, match=said + advice):
            replay_live(bag, tmp_path / out, HAND, setting, EchoTransport())
        assert not (tmp_path / out).exists() and not pidfile.exists()


def test_a_random_draw_skips_a_domain_another_replay_runs_on(other_replay, monkeypatch):
    monkeypatch.setattr(process, "RANDOM_DOMAIN_IDS", [41, 42])
    for _ in range(20):
        with process.claim_domain() as claim:
            assert claim.domain_id == 42
    monkeypatch.setattr(process, "RANDOM_DOMAIN_IDS", [41])
    with pytest.raises(RuntimeError, match=r"every ROS domain id in 41-41 .* taken by other live"):
        process.claim_domain()


def test_a_replay_holds_its_domain_for_the_run_and_lets_go_at_its_end(
    tmp_path, tiny_checkpoint, monkeypatch
):
    path = process.DomainClaim.path(43)

    class Watching(EchoTransport):
        def publish(self, key, raw):
            self.claimed = process.DomainClaim.take(43) is None  # another could not take it
            super().publish(key, raw)

    transport = Watching()
    live = LiveConfig(tiny_checkpoint, rate=4.0, node_cmd=SLEEP, drain_timeout_s=0.3, domain_id=43)
    report = replay_live(_hand_bag(tmp_path / "bag"), tmp_path / "out", HAND, live, transport)
    assert report["status"] == "complete" and transport.claimed
    assert path.read_text() == ""  # no stale holder named
    with process.DomainClaim.take(43) as claim:  # free again
        assert claim is not None


def test_a_killed_replays_record_is_replaced_not_appended_to(tmp_path, monkeypatch):
    """A replay killed by SIGKILL leaves its record (pid, host) in the lock file. The next run
    wrote its own record after the old one's length of NUL bytes, so a third run refused on that
    domain named "pid unknown" instead of the run that held it."""
    monkeypatch.setattr(process, "cache_root", lambda: tmp_path / "cache")
    path = process.DomainClaim.path(45)
    path.parent.mkdir(parents=True)
    path.write_text("999999 killedhost\n")
    with process.DomainClaim.take(45) as claim:
        assert claim is not None
        host = "".join(os.uname().nodename.split())
        assert path.read_bytes() == f"{os.getpid()} {host}\n".encode()
        assert process.lock_holder(path) == (str(os.getpid()), host)


def test_an_unwritable_cache_runs_unclaimed(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setattr(process, "cache_root", lambda: blocker / "cache")  # under a file
    with process.claim_domain(44) as claim:
        assert claim.domain_id == 44


@pytest.mark.parametrize("odd", ["folder", "link", "fifo", "unreadable"])
def test_a_lock_file_that_cannot_be_ours_is_taken_not_followed(tmp_path, monkeypatch, odd):
    """A lock file that is not a plain file of this user's (another user's in a shared cache, a
    link, a folder) was taken for an unwritable cache: a draw settled on it unclaimed, and a
    link was followed and its target truncated. Such a domain is taken: drawn around, refused
    when given, its target untouched."""
    monkeypatch.delenv("DEPTHART_REPLAY_DOMAIN_ID", raising=False)
    folder = tmp_path / "cache" / "replay-domains"
    folder.mkdir(parents=True)
    monkeypatch.setattr(process, "cache_root", lambda: tmp_path / "cache")
    path, victim = folder / "41.lock", tmp_path / "victim"
    victim.write_text("keep me")
    if odd == "folder":
        path.mkdir()
    elif odd == "link":
        path.symlink_to(victim)
    elif odd == "fifo":
        os.mkfifo(path)
    else:
        path.write_text("")
        monkeypatch.setattr(process.os, "open", _refusing(str(path)))
    monkeypatch.setattr(process, "RANDOM_DOMAIN_IDS", [41, 42])
    for _ in range(10):
        with process.claim_domain() as claim:
            assert claim.domain_id == 42
    with pytest.raises(RuntimeError, match=r"another live replay \(pid unknown"):
        process.claim_domain(41)
    assert victim.read_text() == "keep me"


def _refusing(refused: str):
    """os.open that refuses `refused` as a file of another user's would be (EACCES)."""
    real = os.open

    def fake(path, *args, **kwargs):
        if str(path) == refused:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    return fake
