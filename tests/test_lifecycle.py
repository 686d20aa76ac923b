"""depthart_lifecycle_node across processes with real rclpy: a client drives the standard
lifecycle services (`<node>/change_state`, `<node>/get_state`) and watches the topics.

Checked: frames are answered only while active; a configure with a bad checkpoint fails and
leaves the node unconfigured, a second one with a corrected checkpoint succeeds; start-up
parameters are refused once configured; deactivate drops the waiting frame, lets the one in
progress finish and keeps the model (no reload on activate, counted by `model_loads` in
diagnostics and by the log); each transition logs one line; cleanup frees it; shutdown from
active, from unconfigured and Ctrl-C are clean; in-process `autostart` configures and activates
at start-up, and with a bad checkpoint exits 1 with one FATAL line.

No check rests on a fixed sleep: a frame that must not be answered is acknowledged by the node's
reader first (reliable `wait_for_all_acked`), and "never answered" is judged after a later frame
from the same publisher was answered (one reliable publisher each way, so in order).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="needs rclpy (pip install '.[ros]')")
pytest.importorskip("lifecycle_msgs.srv", reason="needs the ROS 2 lifecycle_msgs package")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rcl_interfaces.srv import GetParameters, SetParameters  # noqa: E402
from rclpy.duration import Duration  # noqa: E402
from rclpy.parameter import Parameter, parameter_value_to_python  # noqa: E402
from ros_helpers.harness import (  # noqa: E402
    NodeProcess,
    RosPeer,
    image_msg,
    stamp_ns,
    unique_domain_id,
)
from ros_helpers.scenes import scene_rgb, wire_fields  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from depthart_core.runtime.torch_backend import DepthEstimator  # noqa: E402
from depthart_core.sampling import DEFAULT_DECODING  # noqa: E402

pytestmark = pytest.mark.ros
NODE = "/depthart_node"
RELIABLE_INPUT = {"input_qos.reliability": "reliable", "input_qos.depth": 5}
# the reference below is DepthEstimator.predict's default decoding (sampling.DEFAULT_DECODING),
# pinned here so a change of the node's own default cannot make the two differ
PINNED = {"backend": "torch", "sampling": DEFAULT_DECODING}


class LifecycleTest:
    """One domain, one peer (subscribed to depth and diagnostics, publishing images), and the
    managed-node processes started in it."""

    def __init__(self, tmp: Path) -> None:
        self.domain = unique_domain_id()
        self.tmp = tmp
        self.peer = RosPeer(self.domain)
        self.peer.subscribe(Image, "depth", required=True)
        self.peer.subscribe(DiagnosticArray, "/diagnostics")
        self.pub = self.peer.publisher(Image, "image", reliable=True, depth=10)
        self.nodes: list[NodeProcess] = []

    def start(self, params: dict[str, Any], name: str, remaps=None) -> NodeProcess:
        params = PINNED | RELIABLE_INPUT | params
        log = self.tmp / f"{name}.log"
        module = "depthart_ros.lifecycle_node"
        node = NodeProcess(self.domain, params, log, module=module, remaps=remaps)
        self.nodes.append(node)
        return node

    def connect(self, node: NodeProcess) -> None:
        """Clients for `node`'s lifecycle services, kept for the whole test. A service can be
        discovered before it can answer this client (Fast DDS drops the response: "failed to
        send response (timeout)"), so each client is warmed up with a request that changes
        nothing (change_state with an unknown label is refused; an empty set_parameters) until
        one is answered.
        """
        peer = self.peer
        self.get_state = peer.node.create_client(GetState, f"{NODE}/get_state")
        self.change_state = peer.node.create_client(ChangeState, f"{NODE}/change_state")
        self.get_params = peer.node.create_client(GetParameters, f"{NODE}/get_parameters")
        self.set_params = peer.node.create_client(SetParameters, f"{NODE}/set_parameters")
        warm_ups = {
            self.get_state: GetState.Request(),
            self.change_state: ChangeState.Request(transition=Transition(label="no_such")),
            self.get_params: GetParameters.Request(names=["autostart"]),
            self.set_params: SetParameters.Request(parameters=[]),
        }
        for client, req in warm_ups.items():
            ok = peer.wait_for(lambda c=client: c.service_is_ready() or node.proc.poll(), 60)
            assert ok and node.proc.poll() is None, f"node did not start:\n{node.log()}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if self._ask(client, req, 2.0) is not None:
                    break
            else:
                raise AssertionError(f"{client.srv_name} never answered:\n{node.log()}")

    def _ask(self, client: Any, request: Any, timeout: float) -> Any:
        future = client.call_async(request)
        if not self.peer.wait_for(future.done, timeout):
            client.remove_pending_request(future)
            return None
        return future.result()

    def state(self) -> str:
        resp = self._ask(self.get_state, GetState.Request(), 10)
        assert resp is not None, "get_state did not answer"
        return resp.current_state.label

    def set_param(self, name: str, value: Any) -> Any:
        req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        resp = self._ask(self.set_params, req, 10)
        assert resp is not None, f"set_parameters {name} did not answer"
        return resp.results[0]

    def get_param(self, name: str) -> Any:
        resp = self._ask(self.get_params, GetParameters.Request(names=[name]), 10)
        assert resp is not None, f"get_parameters {name} did not answer"
        return parameter_value_to_python(resp.values[0])

    def change(self, label: str) -> bool:
        req = ChangeState.Request(transition=Transition(label=label))
        resp = self._ask(self.change_state, req, 60)  # configure loads the model
        assert resp is not None, f"change_state {label} did not answer"
        return resp.success

    def frame(self, seed: int) -> int:
        """Publish a 640x480 rgb8 frame and wait until the node's reader acknowledged it (the
        input is reliable); returns its stamp."""
        stamp = time.time_ns()
        self.pub.publish(image_msg(wire_fields(scene_rgb(seed=seed), "rgb8"), stamp, "cam"))
        assert self.pub.wait_for_all_acked(Duration(seconds=30)), f"frame {stamp} not delivered"
        return stamp

    def depth(self, stamp: int) -> Image | None:
        return next((m for m in self.peer.messages("depth") if stamp_ns(m.header) == stamp), None)

    def wait_depth(self, stamp: int, timeout: float = 15.0) -> np.ndarray:
        assert self.peer.wait_for(lambda: self.depth(stamp) is not None, timeout), stamp
        msg = self.depth(stamp)
        assert msg.encoding == "32FC1" and (msg.height, msg.width) == (480, 640)
        return np.frombuffer(msg.data, np.float32).reshape(480, 640)

    def wait_diagnostics(self, done: Callable[[dict[str, str]], bool], timeout: float = 30) -> dict:
        """The first /diagnostics status (1 Hz) from now on for which `done` holds."""
        after = time.time()

        def match() -> bool:
            diag = self.peer.diagnostics(after)
            return diag is not None and done(diag)

        assert self.peer.wait_for(match, timeout), (
            f"diagnostics never matched: {self.peer.diagnostics()}"
        )
        return self.peer.diagnostics(after)

    def wait_subscribed(self) -> None:
        """Until the node's image reader and its depth writer (made at configure) are both
        matched with this peer: on a busy machine one side's discovery can lag by seconds, and a
        reliable, volatile writer drops what it sends before the match."""
        peer = self.peer
        assert peer.wait_for(lambda: self.pub.get_subscription_count() > 0, 20)
        assert peer.wait_for(lambda: not peer.unmatched(), 30), peer.unmatched()

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self.peer.close()


@pytest.fixture
def lc(tmp_path: Path):
    env = LifecycleTest(tmp_path)
    yield env
    env.close()


def test_transitions_drive_the_node(lc: LifecycleTest, tiny_checkpoint: str) -> None:
    peer = lc.peer
    missing = lc.tmp / "nope.safetensors"
    given = {"qos_overrides./depth.publisher.depth": 4}  # the user's own override stays
    node = lc.start({"checkpoint": str(missing)} | given, "managed")
    lc.connect(node)
    assert lc.state() == "unconfigured"
    assert lc.get_param("autostart") is False

    # 1. a bad checkpoint: FAILURE with the reason logged, still unconfigured, nothing loaded
    assert lc.change("configure") is False
    assert lc.state() == "unconfigured"
    assert "configure failed" in node.log() and "checkpoint not found" in node.log()
    assert node.log().count("model loaded") == 0

    # 2. corrected while unconfigured, then configure succeeds: inactive, no frames answered
    assert lc.set_param("checkpoint", tiny_checkpoint).successful
    assert lc.change("configure") is True
    assert lc.state() == "inactive"
    refused = lc.set_param("checkpoint", str(missing))
    assert not refused.successful and "unconfigured" in refused.reason
    assert lc.set_param("colormap", "magma").successful  # runtime ones still settable
    lc.wait_subscribed()
    inactive_stamp = lc.frame(seed=1)  # in the node's reader once frame() returns
    diag = peer.wait_diagnostics(after=time.time())
    assert diag["state"] == "inactive" and diag["model_loads"] == "1", diag
    assert diag["frames_received"] == "0", diag  # not even taken in
    assert "activated" not in node.log()

    # 3. active: answered, with the model's values; the inactive frame, sent before, never is
    assert lc.change("activate") is True
    assert lc.state() == "active"
    assert node.log().count("activated: publishing /depth") == 1  # one line, as on the others
    stamp = lc.frame(seed=2)
    depth = lc.wait_depth(stamp)
    ref = DepthEstimator.from_checkpoint(tiny_checkpoint).predict(scene_rgb(seed=2))
    assert float(np.abs(depth - ref).mean()) < 2e-3
    assert lc.depth(inactive_stamp) is None

    # 4. deactivate with one frame in progress (slowed to 5 s) and one waiting: the first
    #    finishes and is published, the second is dropped and counted; the model stays loaded.
    #    Diagnostics (1 Hz, from the executor while the worker infers) show the first taken in
    #    before the second is sent, which reaches the node's queue before the deactivate request
    #    (acknowledged first; rclpy's executor serves subscriptions before services).
    assert lc.set_param("debug_min_inference_ms", 5000.0).successful  # the cap: most margin
    in_progress = lc.frame(seed=3)
    lc.wait_diagnostics(lambda d: d["frames_in_progress"] == "1")
    waiting = lc.frame(seed=4)
    assert lc.change("deactivate") is True
    assert lc.state() == "inactive"
    lc.wait_depth(in_progress, timeout=10)
    assert lc.set_param("debug_min_inference_ms", 0.0).successful
    idle = lc.frame(seed=9)  # sent while inactive: not even taken in
    diag = lc.wait_diagnostics(lambda d: d["frames_in_progress"] == "0")
    assert diag["frames_dropped_inactive"] == "1" and diag["frames_processed"] == "2", diag
    assert diag["frames_received"] == "3" and diag["state"] == "inactive", diag

    # 5. activate again: answered without reloading the model; the dropped and the idle frame,
    #    sent before it, never are
    assert lc.change("activate") is True
    lc.wait_depth(lc.frame(seed=5))
    assert lc.depth(waiting) is None and lc.depth(idle) is None
    diag = peer.wait_diagnostics(after=time.time())
    assert diag["model_loads"] == "1" and diag["state"] == "active", diag
    assert node.log().count("model loaded") == 1

    # 6. cleanup frees the model; configure loads it again (load 2) with the QoS parameters as
    #    they are then (rclpy's qos_overrides.* of the first configure must not pin the old
    #    profile; the user's own override still wins); shutdown from active
    assert lc.get_param("qos_overrides./image.subscription.depth") == 5  # input_qos.depth
    assert lc.get_param("qos_overrides./depth/colored.publisher.depth") == 5  # output_qos.depth
    assert lc.change("deactivate") is True and lc.change("cleanup") is True
    assert lc.state() == "unconfigured" and "model released" in node.log()
    assert lc.set_param("checkpoint", tiny_checkpoint).successful  # settable again
    for name, value in (("input_qos.depth", 7), ("output_qos.depth", 9)):
        assert lc.set_param(name, value).successful
    assert lc.change("configure") is True and lc.change("activate") is True
    assert lc.get_param("qos_overrides./image.subscription.depth") == 7
    assert lc.get_param("qos_overrides./depth/colored.publisher.depth") == 9
    assert lc.get_param("qos_overrides./depth.publisher.depth") == 4
    lc.wait_subscribed()  # the reader and writer of this configure are new endpoints
    lc.wait_depth(lc.frame(seed=6))
    assert "model loaded (load 2)" in node.log()
    assert lc.change("shutdown") is True
    assert lc.state() == "finalized"
    late = lc.set_param("checkpoint", tiny_checkpoint)  # no configure can follow
    assert not late.successful and "finalized node configures no more" in late.reason, late

    # finalized: nothing is subscribed to `image` or publishes `depth` any more, so no frame can
    # be answered (shown on the graph instead of waiting for a reply that must not come)
    def gone() -> bool:
        return lc.pub.get_subscription_count() == 0 and peer.node.count_publishers("/depth") == 0

    assert peer.wait_for(gone, 20), "the finalized node still has its image/depth endpoints"
    assert node.log().count("activated: publishing") == 3
    assert node.signal_and_wait(signal.SIGINT) == 0, node.log()
    assert "Traceback" not in node.log(), node.log()


def test_autostart_and_clean_exits(lc: LifecycleTest, tiny_checkpoint: str) -> None:
    # autostart with a good checkpoint: active without any service call; Ctrl-C while active
    good = lc.start({"checkpoint": tiny_checkpoint, "autostart": True}, "autostart")
    lc.connect(good)
    assert lc.state() == "active"
    lc.wait_subscribed()
    lc.wait_depth(lc.frame(seed=8), timeout=30)
    assert good.signal_and_wait(signal.SIGINT) == 0, good.log()
    assert "Traceback" not in good.log(), good.log()

    # autostart with a bad checkpoint: no depth would ever come, so the process exits 1 with one
    # FATAL line naming the file (as depthart_node does), for a supervisor or respawn to act
    missing = lc.tmp / "nope.safetensors"
    bad = lc.start({"checkpoint": str(missing), "autostart": True}, "bad")
    assert bad.proc.wait(timeout=60) == 1, bad.log()
    log = bad.log()
    fatal = [line for line in log.splitlines() if "[FATAL]" in line]
    assert len(fatal) == 1, log
    assert f"cannot start: autostart: configure failed: checkpoint not found: {missing}" in fatal[0]
    assert "[ERROR]" not in log and "Traceback" not in log, log

    # a parameter of the wrong type fails the node's construction itself: the one fatal line
    # still names the node as remapped (with two cameras, which one failed)
    remaps = {"__ns": "/cam3", "__node": "left_depth"}
    typo = lc.start({"autostart": "maybe"}, "typo", remaps=remaps)
    assert typo.proc.wait(timeout=60) == 1, typo.log()
    fatal = [line for line in typo.log().splitlines() if "[FATAL]" in line]
    assert len(fatal) == 1 and "[cam3.left_depth]: cannot start:" in fatal[0], typo.log()
    assert "'autostart'" in fatal[0] and "Traceback" not in typo.log(), typo.log()
