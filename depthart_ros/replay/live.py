"""Live replay: the bag played into the real node at the recorded rate, its outputs scored.

`LiveSession` owns one run: it starts the node (`depthart_ros.replay.process`), waits until it is
connected and has answered a warm-up frame, publishes camera info and images on the recorded
clock (restamped with the wall clock unless `restamp=False`), and maps each `depth` output back to
its frame by header stamp for end-to-end latency and drops, and splits the drops by the node's
diagnostics into frames lost before the node (DDS) and frames the node itself did not answer:
its frames_received, counted from a baseline taken at the end of the warm-up, in a message that
arrived after the last frame was published (or that counts every frame); without one (Ctrl-C, a
crash, --time-limit) the split is not known, never guessed from an older message.
`replay_live` then scores the frames that came back with the same pass as offline mode and
writes the report on every exit path.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import subprocess
import time
from pathlib import Path
from typing import Any

from depthart_core.checkpoint import file_sha256, resolve_checkpoint
from depthart_core.replay.frames import (
    BagIndex,
    PredictionStore,
    ReplayConfig,
    ReplayRun,
    check_write_bag,
    index_bag,
    iter_frames,
    new_row,
    reject,
    score_frame,
    write_prediction_bag,
)
from depthart_core.replay.report import write_report
from depthart_core.rosio import bags, messages
from depthart_core.rosio import image as ros_image
from depthart_core.rosio.messages import IMAGE_TYPE
from depthart_core.signals import interrupt_on_termination
from depthart_ros.replay.process import (
    DROPPED_ENV,
    LiveConfig,
    LiveTransport,
    apply_env,
    claim_domain,
    discovery_said,
    log_tail,
    node_command,
    pick_domain_id,
    restore_env,
    ros_env,
    start_process,
    stop_process,
)

log = logging.getLogger(__name__)

# The node's /diagnostics come at 1 Hz: after the last frame, wait this long at most for a message
# that tells the split (an older one would pass frames still in flight for lost).
DIAGNOSTICS_SETTLE_S = 2.5
# A diagnostics message that arrived this long after an image was published counts it, if it
# reached the node (delivered on one host in milliseconds): only such a message, or one counting
# every image, tells how many frames were lost before the node. Its arrival is known to within
# DIAGNOSTICS_POLL_S, the interval at which the replay looks at the latest message.
DIAGNOSTICS_FRESH_S = 0.5
DIAGNOSTICS_POLL_S = 0.1
# after the warm-up's output, wait this long at most for the outputs of the other warm-ups
WARMUP_SETTLE_S = 2.0
# the node's frame counters, as its diagnostics name them (`depthart_ros.pipeline.frame_stats`)
NODE_COUNTERS = (
    "received",
    "processed",
    "replaced",
    "rejected",
    "dropped_stale",
    "pending",
    "in_progress",
)


class LiveSession:
    """One live run: the node process, the transport, the playback clock, and the bookkeeping
    that maps each output (by its header stamp) back to the frame that was published."""

    def __init__(
        self,
        bag: Path,
        out: Path,
        cfg: ReplayConfig,
        live: LiveConfig,
        index: BagIndex,
        transport: LiveTransport,
        store: PredictionStore,
        checkpoint: Path,
    ) -> None:
        self.bag, self.cfg, self.live, self.index = bag, cfg, live, index
        self.transport, self.store = transport, store
        self.domain_id = pick_domain_id(live.domain_id)
        self.image_type = index.topics[cfg.image_topic].msgtype  # raw, or image_transport's
        self.cmd = node_command(cfg, live, checkpoint, self.image_type)
        self.log_path = out / "node.log"
        self.proc: subprocess.Popen | None = None
        self.outputs: queue.Queue[tuple[bytes, float]] = queue.Queue()
        self.sent: dict[int, float] = {}
        self.received: dict[int, float] = {}
        self.pending: dict[int, list[int]] = {}  # stamp -> frames published, not yet returned
        self.bad_outputs: dict[int, str] = {}
        self.warm_stamps: set[int] = set()
        self.warm_back = self.unexpected = 0
        self._last_stamp = 0
        self.truncated = False
        self.t_start = time.monotonic()
        self.deadline = self.t_start + live.time_limit_s
        self.last_activity = self.t_start
        self.exit_code: int | None = None
        # the node's diagnostics as last seen, the monotonic time after which that message arrived
        # (the look before the one that first saw it; None: not known), and the last look
        self.diag: list[dict[str, Any]] = []
        self.diag_after: float | None = None
        self.diag_error: str | None = None  # the last look's failure
        self._diag_looked: float | None = None
        # when the last warm-up / measured image publish returned; the frame whose publish was cut
        # short (Ctrl-C inside it: whether the node got it is not known)
        self.warm_published_at: float | None = None
        self.published_at: float | None = None
        self.publishing: int | None = None
        # the node's frames_received at the end of the warm-up, from a message that tells it
        self.baseline_msg: int | None = None
        self.env = ros_env(self.domain_id)
        self._saved_env: dict[str, str | None] | None = None

    # -- process and transport
    def start(self) -> None:
        env = self.env
        self._saved_env = apply_env(env)  # this process's participant, as the node's (until close)
        dropped = [k for k in DROPPED_ENV if self._saved_env.get(k) is not None]
        if dropped:
            log.info("ignoring the shell's %s: the replay runs its own pair of processes, on "
                     "their private domain", ", ".join(dropped))  # fmt: skip
        log.info("starting node (%s): %s", discovery_said(env), " ".join(self.cmd))
        self.proc = start_process(self.cmd, env, self.log_path)
        topics = {"image": self.cfg.image_topic, "output": self.cfg.pred_topic}
        topics["image_type"] = self.image_type
        if self.cfg.camera_info_topic:
            topics["camera_info"] = self.cfg.camera_info_topic
        self.transport.open(self.domain_id, topics, self._on_output)
        limit = min(self.deadline, self.t_start + self.live.startup_timeout_s)
        while not self.transport.ready():
            if time.monotonic() >= limit:
                raise RuntimeError(
                    f"node did not subscribe to {self.cfg.image_topic} and publish "
                    f"{self.cfg.pred_topic} within {self._limit_said()}: "
                    f"{self.transport.not_ready_said()}; where its log says it is ready "
                    f"and the replay discovered no node, the two never discovered each other "
                    f"({discovery_said(env)}; where this host blocks multicast, "
                    f"ROS_STATIC_PEERS=127.0.0.1 adds loopback); "
                    f"last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            self.pump(time.monotonic() + 0.1)

    def _limit_said(self) -> str:
        """The limit that ended a start-up wait: the start-up timeout, or --time-limit."""
        startup = self.live.startup_timeout_s
        if self.t_start + startup <= self.deadline:
            return f"{startup:.0f} s (the start-up timeout)"
        return f"{self.live.time_limit_s:g} s (--time-limit)"

    def close(self) -> None:
        """Close the transport and stop the node; a second Ctrl-C meanwhile does not cut this
        short (it would leave the node running and skip the report's live section): the node is
        then killed at once."""
        try:
            self.transport.close()
        except KeyboardInterrupt:
            log.warning("interrupted again while closing: stopping the node at once")
        finally:
            try:
                if self.proc is not None:
                    try:
                        self.exit_code = stop_process(self.proc)
                    except KeyboardInterrupt:
                        log.warning("interrupted again: killing the node")
                        self.exit_code = stop_process(self.proc, grace_s=0.0)
            finally:
                if self._saved_env is not None:
                    restore_env(self._saved_env)
                    self._saved_env = None

    def _on_output(self, raw: bytes, t: float) -> None:
        self.outputs.put((raw, t))

    def _check_node(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"node exited with code {self.proc.returncode} during the replay; last lines of "
                f"{self.log_path}:\n{log_tail(self.log_path)}"
            )

    def pump(self, until: float) -> None:
        """Handle outputs as they arrive until monotonic time `until`, then any still queued;
        look at the node's diagnostics on the way (`look_diagnostics`)."""
        while True:
            self.look_diagnostics()
            remaining = until - time.monotonic()
            try:
                if remaining > 0:
                    raw, t = self.outputs.get(timeout=min(remaining, DIAGNOSTICS_POLL_S))
                else:
                    raw, t = self.outputs.get_nowait()
            except queue.Empty:
                if remaining <= 0:
                    return
                self._check_node()
                continue
            self._handle(raw, t)

    def _handle(self, raw: bytes, t: float) -> None:
        msg = messages.deserialize(raw, IMAGE_TYPE)
        stamp = messages.stamp_to_ns(msg.header.stamp)
        if stamp in self.warm_stamps:
            self.warm_back += 1
            return
        frames = self.pending.get(stamp)
        if not frames:
            self.unexpected += 1
            return
        i = frames.pop(0)
        self.received[i] = t
        self.last_activity = t
        try:
            self.store.put(i, ros_image.depth_image_to_metres(msg))
        except ValueError as exc:
            self.bad_outputs[i] = f"node output not decodable: {exc}"

    # -- playback
    def _next_stamp(self) -> int:
        """Wall-clock stamp for a restamped message, strictly increasing."""
        self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
        return self._last_stamp

    def _cdr(self, m: bags.BagMessage, stamp_ns: int) -> bytes:
        """ROS 2 CDR of `m` carrying `stamp_ns` (the recorded bytes when nothing changes)."""
        if m.ros2 and messages.stamp_to_ns(m.msg.header.stamp) == stamp_ns:
            return m.raw
        return messages.with_stamp(m.msg, m.msgtype, stamp_ns)

    def _first_frame(self) -> tuple[bags.BagMessage, bags.BagMessage | None]:
        first_img = first_info = None
        topics = [t for t in (self.cfg.image_topic, self.cfg.camera_info_topic) if t]
        for m in bags.iter_messages(self.bag, topics):
            if m.topic == self.cfg.camera_info_topic and first_info is None:
                first_info = m
            elif m.topic == self.cfg.image_topic and first_img is None:
                first_img = m
            if first_img is not None and (first_info is not None or len(topics) == 1):
                break
        return first_img, first_info

    def warmup(self) -> None:
        """Feed the first frame, once a second, until an output comes back, so that model loading
        and first-call costs stay out of the measured frames. Warm-up stamps are wall-clock
        (restamping) or 1, 2, ... ns, which no recording uses."""
        first_img, first_info = self._first_frame()
        limit = min(self.deadline, self.t_start + self.live.startup_timeout_s)
        next_send = time.monotonic()
        while self.warm_back == 0:
            now = time.monotonic()
            if now >= limit:
                raise RuntimeError(
                    f"no output on {self.cfg.pred_topic} within {self._limit_said()} of starting "
                    f"the node; last lines of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if now >= next_send:
                stamp = self._next_stamp() if self.live.restamp else len(self.warm_stamps) + 1
                self.warm_stamps.add(stamp)
                if first_info is not None:
                    self.transport.publish("camera_info", self._cdr(first_info, stamp))
                self.transport.publish("image", self._cdr(first_img, stamp))
                self.warm_published_at = time.monotonic()
                next_send = now + 1.0
            self.pump(min(next_send, limit))
        settle = min(self.deadline, time.monotonic() + WARMUP_SETTLE_S)
        while self.warm_back < len(self.warm_stamps) and time.monotonic() < settle:
            self.pump(min(settle, time.monotonic() + 0.1))
        # the node's count of warm-ups received, before any measured frame: they are not the
        # measured frames' (an unanswered warm-up may have been lost, or dropped by the node)
        settle = min(self.deadline, time.monotonic() + DIAGNOSTICS_SETTLE_S)
        while not self._baseline_told() and time.monotonic() < settle:
            self.pump(min(settle, time.monotonic() + 0.1))

    def _baseline_told(self) -> bool:
        """Whether the node's frames_received at the end of the warm-up is known (then in
        `baseline_msg` unless every warm-up was answered), or no message will tell it."""
        if self.warm_back >= len(self.warm_stamps):
            return True  # every warm-up reached the node: the baseline is their number
        node = self.node_counts(self.diag)
        if node is None:
            return bool(self.diag)  # a node whose diagnostics count no frames: nothing to wait for
        if node["received"] >= len(self.warm_stamps) or self._fresh(self.warm_published_at):
            self.baseline_msg = min(node["received"], len(self.warm_stamps))
            return True
        return False

    def baseline(self) -> int | None:
        """Images the node received before the measured frames (the warm-ups that reached it),
        or None where no message told it: each warm-up answered reached it, whenever the
        answer came."""
        if self.warm_back >= len(self.warm_stamps):
            return len(self.warm_stamps)
        return self.baseline_msg

    def play(self) -> None:
        """Publish camera info and images at the recorded rate times `live.rate`."""
        topics = [t for t in (self.cfg.image_topic, self.cfg.camera_info_topic) if t]
        t0 = log0 = None
        i = 0
        restamped: dict[int, int] = {}  # recorded stamp -> the stamp it is played with
        for m in bags.iter_messages(self.bag, topics):
            is_image = m.topic == self.cfg.image_topic
            if is_image and i >= self.index.n_frames:
                break
            if t0 is None:
                t0, log0 = time.monotonic(), m.log_ns
            target = t0 + (m.log_ns - log0) / 1e9 / self.live.rate
            if target > self.deadline - self.live.drain_timeout_s:
                self.truncated = True
                log.warning("time limit reached: %d of %d frames played", i, self.index.n_frames)
                break
            self.pump(target)
            # an image and its camera_info share one new stamp, as a driver stamps them alike
            # (the node pairs them by exact stamp and would otherwise wait for a calibration)
            stamp = m.stamp_ns
            if self.live.restamp:
                stamp = restamped.setdefault(m.stamp_ns, self._next_stamp())
            raw = self._cdr(m, stamp)
            if not is_image:
                self.transport.publish("camera_info", raw)
                continue
            t_pub = time.monotonic()
            self.publishing = i
            self.transport.publish("image", raw)
            self.pending.setdefault(stamp, []).append(i)
            self.sent[i] = self.last_activity = t_pub
            self.published_at = time.monotonic()
            self.publishing = None
            i += 1

    def drain(self) -> None:
        """Wait for outstanding outputs until none has arrived for `drain_timeout_s`."""
        while len(self.received) < len(self.sent):
            limit = min(self.deadline, self.last_activity + self.live.drain_timeout_s)
            if time.monotonic() >= limit:
                return
            self.pump(min(limit, time.monotonic() + 0.1))

    def look_diagnostics(self, force: bool = False) -> None:
        """Take the node's latest diagnostics (every `DIAGNOSTICS_POLL_S` unless `force`); a
        message not seen at the last look arrived after it (`diag_after`), which tells whether
        it can count a frame published before then (`_fresh`)."""
        now = time.monotonic()
        if not force and self._diag_looked is not None:
            if now - self._diag_looked < DIAGNOSTICS_POLL_S:
                return
        try:
            diagnostics = self.transport.diagnostics()
        except Exception as exc:  # diagnostics are informative only: the last seen are kept
            self.diag_error = str(exc)
            return
        if diagnostics != self.diag:
            self.diag, self.diag_after = diagnostics, self._diag_looked
        self._diag_looked = now

    def _fresh(self, published_at: float | None) -> bool:
        """Whether the diagnostics last seen arrived `DIAGNOSTICS_FRESH_S` or more after an
        image publish that returned at `published_at` (so they count it if it reached the
        node)."""
        if self.diag_after is None or published_at is None:
            return False
        return self.diag_after >= published_at + DIAGNOSTICS_FRESH_S

    @staticmethod
    def node_counts(diagnostics: list[dict[str, Any]]) -> dict[str, int] | None:
        """The node's frame counters (`NODE_COUNTERS`, warm-up frames included) from its
        diagnostics, or None where no status carries frames_received (another node)."""
        for status in diagnostics:
            values = status.get("values") or {}
            try:
                received = int(values["frames_received"])
            except (KeyError, TypeError, ValueError):
                continue
            counts = {"received": received}
            for k in NODE_COUNTERS[1:]:
                try:
                    counts[k] = int(values[f"frames_{k}"])
                except (KeyError, TypeError, ValueError):
                    pass
            return counts
        return None

    def settle_diagnostics(self) -> None:
        """Wait, at most `DIAGNOSTICS_SETTLE_S`, for a diagnostics message that tells the frames
        lost before the node from those it dropped (`split`): one that counts every image
        published, or one that arrived after the last (the 1 Hz messages trail). A node whose
        diagnostics count no frames, or a split that no message can tell, is not waited for."""
        limit = min(self.deadline, time.monotonic() + DIAGNOSTICS_SETTLE_S)
        while True:
            self.look_diagnostics(force=True)
            if self.split()[3] or time.monotonic() >= limit:
                return
            time.sleep(DIAGNOSTICS_POLL_S)

    def split(self) -> tuple[int | None, int | None, str | None, bool]:
        """The dropped frames split by the diagnostics last seen: (lost before the node, dropped
        by the node, why the split is not known (None where it is), whether a later message can
        change that). A frame is charged to transport only on the evidence of a message that
        counts from the warm-up's baseline and arrived after the last frame was published."""
        dropped = len(self.sent) - len(self.received)
        node = self.node_counts(self.diag)
        if node is None:
            said = "gave no frames_received" if self.diag else "never came"
            return None, None, f"the node's diagnostics {said}", bool(self.diag)
        if dropped == 0:
            return 0, 0, None, True  # every frame answered: every one reached the node
        if self.publishing is not None:
            why = f"frame {self.publishing}'s publish was cut short: it may have reached the node"
            return None, None, why, True
        base = self.baseline()
        if base is None:
            why = "no diagnostics message told how many of the warm-up frames reached the node"
            return None, None, why, True
        measured = node["received"] - base  # measured frames the node received
        if measured > len(self.sent):  # not this replay's images alone: nothing to split by
            why = (f"the node counts {measured} frames received after the warm-up, of "
                   f"{len(self.sent)} published")  # fmt: skip
            return None, None, why, True
        if measured == len(self.sent):
            return 0, dropped, None, True
        if not self._fresh(self.published_at):
            why = (
                "no diagnostics message from the node arrived after the last frame was published "
                "(the run ended first), and the last one counts "
                f"{measured} of {len(self.sent)} frames received"
            )
            return None, None, why, False
        lost = len(self.sent) - measured
        if lost > dropped:  # a frame answered, so received, yet not counted: counts are off
            why = (f"the node counts {measured} frames received of {len(self.sent)} published, "
                   f"yet answered {len(self.received)}")  # fmt: skip
            return None, None, why, True
        return lost, dropped - lost, None, True

    def stats(self) -> dict[str, Any]:
        returned = len(self.received)
        dropped = len(self.sent) - returned
        # outputs per second: N outputs span N - 1 intervals between the first and the last
        got = sorted(self.received.values())
        span = got[-1] - got[0] if returned > 1 else 0.0
        self.look_diagnostics(force=True)
        lost, by_node, not_known, _ = self.split()
        diag_error = [{"error": self.diag_error}] if self.diag_error else []
        return {
            "published": len(self.sent),
            "returned": returned,
            "dropped": dropped,
            # `dropped` split: never reached the node (DDS transport), or reached it and got no
            # output (the node replaced, rejected or dropped it, or answered too late); None where
            # no diagnostics message told it, and `split_not_known` says why
            "lost_before_node": lost,
            "dropped_by_node": by_node,
            "split_not_known": not_known,
            # the node's counters (warm-up frames included) in its last diagnostics, and its
            # frames_received at the end of the warm-up, where known
            "node_frames": self.node_counts(self.diag),
            "node_frames_baseline": self.baseline(),
            "warmup_published": len(self.warm_stamps),
            "warmup_returned": self.warm_back,
            "unexpected_outputs": self.unexpected,
            "truncated_by_time_limit": self.truncated,
            "rate": self.live.rate,
            "domain_id": self.domain_id,
            "node_cmd": self.cmd,
            "node_log": str(self.log_path),
            "node_exit_code": self.exit_code,
            # the node's last 1 Hz diagnostics received (awaited until they told the split, for
            # at most DIAGNOSTICS_SETTLE_S): a snapshot that can trail the last outputs by up to
            # a second
            "node_diagnostics": self.diag or diag_error,
            "fps": (returned - 1) / span if span > 0 else None,
        }


def replay_live(
    bag: str | Path,
    out_dir: str | Path,
    cfg: ReplayConfig,
    live: LiveConfig,
    transport: LiveTransport,
    write_bag: str | Path | None = None,
) -> dict[str, Any]:
    """Play the bag into the real node, then score the outputs that came back; return the report.

    The node process and the transport are closed on every exit path; the report is written also
    when the run fails or is interrupted, and the exception is then re-raised. `write_bag` gets
    the input topics plus the node's outputs (frames that came back).
    """
    bag, out = Path(bag), Path(out_dir)
    # $DEPTHART_REPLAY_DOMAIN_ID, or a domain another replay runs on, refused before anything
    # lands in --out; the domain is this run's (among the user's replays) until it ends
    with claim_domain(live.domain_id) as claim:
        live = dataclasses.replace(live, domain_id=claim.domain_id)
        out.mkdir(parents=True, exist_ok=True)
        checkpoint = resolve_checkpoint(live.checkpoint)
        index = index_bag(bag, cfg)
        if write_bag is not None:
            check_write_bag(write_bag, index, cfg.pred_topic, bag)
        run = ReplayRun("live", str(bag), cfg, index)
        run.meta["backend"] = {
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": file_sha256(checkpoint),
            "node_args": list(live.node_args),  # the decoding, threads, device, the user's items
        }
        store = PredictionStore(out)
        session = LiveSession(bag, out, cfg, live, index, transport, store, checkpoint)
        with interrupt_on_termination():  # SIGTERM, SIGHUP: as Ctrl-C, the node stopped, a report
            return _run_live(bag, out, cfg, index, write_bag, run, store, session)


def _run_live(
    bag: Path,
    out: Path,
    cfg: ReplayConfig,
    index: BagIndex,
    write_bag: str | Path | None,
    run: ReplayRun,
    store: PredictionStore,
    session: LiveSession,
) -> dict[str, Any]:
    error: BaseException | None = None
    try:
        try:
            session.start()
            session.warmup()
            session.play()
            session.drain()
            session.settle_diagnostics()
        except BaseException as exc:  # KeyboardInterrupt too: score what came back, then re-raise
            error = exc
        finally:
            session.close()
        run.meta["live"] = session.stats()
        _warn_transport_loss(run.meta["live"])
        run.meta["fps"] = run.meta["live"]["fps"]
        run.meta["wall_s"] = time.monotonic() - session.t_start
        if session.sent:  # nothing played (e.g. the node never started): all rows are filled below
            _live_evaluate(run, session)
        if write_bag is not None:
            run.meta["write_bag"] = write_prediction_bag(bag, write_bag, cfg, index, store)
    except BaseException as exc:
        error = error or exc
    finally:
        _fill_live_rows(run, session)
        run.status = _status(error, session, run.meta.get("live") or {})
        store.close()
        report = write_report(run, out)
    if error is not None:
        raise error
    return report


def _status(error: BaseException | None, session: LiveSession, live: dict[str, Any]) -> str:
    """complete (or truncated), with the frames lost before the node where there were: the run
    did all it was asked and every frame that reached the node was measured, so it is no error
    (as a short bag is not), but its drops, latency and throughput are not the node's alone."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    if error is not None:
        return f"error: {error}"
    status = "complete"
    if session.truncated:  # not every frame was played: say so
        played, total = len(session.sent), session.index.n_frames
        status = f"truncated by --time-limit: {played} of {total} frames played"
    if live.get("lost_before_node"):
        status += f", {_lost_said(live)}"
    return status


def _lost_said(live: dict[str, Any]) -> str:
    return f"{live['lost_before_node']} of {live['published']} frames lost before the node"


def _warn_transport_loss(live: dict[str, Any]) -> None:
    if live.get("lost_before_node"):
        log.warning(
            "%s (in DDS transport; the node never received them): the drops, latency and "
            "throughput measured are not the node's alone; see the report's Live section",
            _lost_said(live),
        )


def _live_row(run: ReplayRun, session: LiveSession, i: int) -> dict[str, Any]:
    row = new_row(run.index, i)
    if i not in session.sent:
        row["status"] = "not_played"
    elif i not in session.received:
        row["status"] = "dropped"
    else:
        row["latency_ms"] = (session.received[i] - session.sent[i]) * 1e3
        if i in session.bad_outputs:
            reject(row, session.bad_outputs[i])
    run.rows[i] = row
    return row


def _live_evaluate(run: ReplayRun, session: LiveSession) -> None:
    for frame in iter_frames(session.bag, run.cfg, run.index):
        row = _live_row(run, session, frame.index)
        if row["status"] is not None:
            continue
        pred = session.store.get(frame.index)
        scored = score_frame(row, pred, frame, run.cfg, run.ground)
        if frame.index in run.sample_ids:
            try:
                rgb = messages.image_to_rgb(frame.image.msg)
            except ValueError:
                continue
            run.keep_sample(frame, rgb, pred if scored is None else scored)


def _fill_live_rows(run: ReplayRun, session: LiveSession) -> None:
    """Rows for frames the scoring pass never reached (it failed or was interrupted)."""
    for i in range(run.index.n_frames):
        if i not in run.rows:
            row = _live_row(run, session, i)
            if row["status"] is None:
                row["status"], row["reason"] = "rejected", "not scored: the run stopped early"
