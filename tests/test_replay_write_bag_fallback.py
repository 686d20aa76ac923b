"""`depthart replay --write-bag` under the metric and ground_plane protocols: every image with a
prediction gets one depth message, as the node publishes it: metres where a metric scale exists,
else the relative prediction (the node's fallback), counted in the report and the summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from depthart_core.cli import main
from depthart_core.evaluation.ground_plane import RIGS, RigEval, rig_samples
from depthart_core.ground_plane import GroundPlaneConfig
from depthart_core.replay.frames import ReplayConfig
from depthart_core.replay.offline import replay_offline
from depthart_core.rosio import bags

SIZE = (60, 80)
FRAMES = 6
WALL = (2, 4)  # frames predicted as a wall: no floor, so no metric scale (the fallback)
IMAGES, DEPTH, INFO = "/camera/image_raw", "/camera/depth", "/camera/camera_info"
PRED = "/depthart/depth"


@pytest.fixture(scope="module")
def cart(tmp_path_factory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("wbfb") / "cart"
    bags.write_synthetic_bag(out, FRAMES, seed=2, size=SIZE, rig="cart")
    samples = rig_samples(RigEval.named("cart", sequences=1, frames=FRAMES, size=SIZE, seed=2), 0)
    return out, samples


class MixedBackend:
    """The true depth / 7 (a floor the ground plane scales), except frames `WALL`: every pixel
    at one depth, a wall facing the camera, where no floor is found."""

    name, info = "mixed", {}

    def __init__(self, samples) -> None:
        self.frames = {s.rgb.tobytes(): i for i, s in enumerate(samples)}
        self.depth = [np.where(s.valid, s.depth, np.nan) / 7.0 for s in samples]

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        i = self.frames[rgb.tobytes()]
        if i in WALL:
            return np.full(rgb.shape[:2], 0.5 + 0.1 * i, np.float32)
        return self.depth[i].astype(np.float32)


def _gp_cfg() -> ReplayConfig:
    ground = GroundPlaneConfig(
        camera_height_m=RIGS["cart"][0], pitch_deg=RIGS["cart"][1], track_units=False
    )
    return ReplayConfig(
        IMAGES, DEPTH, INFO, protocol="ground_plane", plots=False, ground_plane=ground
    )


def _preds(bag: Path) -> dict[int, np.ndarray]:
    return {
        m.stamp_ns: np.frombuffer(bytes(m.msg.data), np.float32).reshape(SIZE)
        for m in bags.iter_messages(bag, [PRED])
    }


def test_ground_plane_writes_relative_depth_where_the_floor_falls_back(cart, tmp_path):
    bag, samples = cart
    out_bag, backend = tmp_path / "with_pred", MixedBackend(samples)
    report = replay_offline(bag, tmp_path / "r", _gp_cfg(), backend, write_bag=out_bag)
    rows = report["rows"]
    fell = [r["index"] for r in rows if r["ground_plane"]["scale"] is None]
    assert set(WALL) <= set(fell) and len(fell) < FRAMES, fell
    # scoring unchanged: a fallback frame is rejected, not scored in relative units
    for i in fell:
        assert rows[i]["status"] == "rejected"
        assert rows[i]["reason"].startswith("ground-plane fallback (")
    counts = {t: s.count for t, s in bags.list_topics(out_bag).items()}
    assert counts[PRED] == counts[IMAGES] == FRAMES  # one depth message per image
    assert counts[f"{PRED}/camera_info"] == FRAMES
    assert report["write_bag"]["predictions"] == FRAMES
    assert report["write_bag"]["relative"] == len(fell)
    preds = _preds(out_bag)
    for r in rows:
        got = preds[r["stamp_ns"]]
        if r["index"] in fell:  # the relative prediction itself, as the node falls back
            want = backend.predict(samples[r["index"]].rgb)
            np.testing.assert_array_equal(got, want)
        else:  # metres, the ones scored: the constant 7 undone by the floor
            valid = samples[r["index"]].valid
            truth = samples[r["index"]].depth[valid]
            abs_rel = float(np.mean(np.abs(got[valid] - truth) / truth))
            assert abs_rel == pytest.approx(r["metrics"]["abs_rel"], rel=1e-4) and abs_rel < 0.2
    saved = json.loads((tmp_path / "r" / "report.json").read_text())
    assert saved["write_bag"]["relative"] == len(fell)


def test_metric_writes_relative_depth_for_frames_without_gt(cart, tmp_path):
    """The metric protocol's scale is a fit to GT: a frame without GT has none and is written
    as the relative prediction; under a relative protocol the summary has no `relative`."""
    src, samples = cart
    bag, depth_n = tmp_path / "holes", 0
    with bags.BagWriter(bag) as out:
        for topic, msgtype, log_ns, raw in bags.iter_raw(src):
            if topic == DEPTH:
                depth_n += 1
                if depth_n in (2, 5):  # frames 1 and 4: no GT, so no metric scale
                    continue
            out.write_raw(topic, msgtype, raw, log_ns)
    backend = MixedBackend(samples)
    metric = ReplayConfig(IMAGES, DEPTH, INFO, protocol="metric", plots=False)
    report = replay_offline(bag, tmp_path / "m", metric, backend, write_bag=tmp_path / "mb")
    rows = report["rows"]
    assert [r["index"] for r in rows if r["status"] == "unmatched"] == [1, 4]
    assert report["write_bag"]["predictions"] == FRAMES
    assert report["write_bag"]["relative"] == 2
    assert bags.list_topics(tmp_path / "mb")[PRED].count == FRAMES
    preds = _preds(tmp_path / "mb")
    for i in (1, 4):
        want = backend.predict(samples[i].rgb)
        np.testing.assert_array_equal(preds[rows[i]["stamp_ns"]], want)
    plain = ReplayConfig(IMAGES, DEPTH, INFO, plots=False)
    report = replay_offline(bag, tmp_path / "p", plain, backend, write_bag=tmp_path / "pb")
    assert report["write_bag"]["predictions"] == FRAMES
    assert "relative" not in report["write_bag"]


def test_cli_says_how_many_written_frames_are_relative(
    cart, tmp_path, tiny_checkpoint, monkeypatch, capsys
):
    bag, samples = cart
    monkeypatch.setattr("depthart_core.runtime.get_backend", lambda *a, **k: MixedBackend(samples))
    out, out_bag = tmp_path / "rp", tmp_path / "rp_bag"
    height, pitch = RIGS["cart"][:2]
    argv = ["replay", str(bag), "--image-topic", IMAGES, "--depth-topic", DEPTH,
            "--camera-info-topic", INFO, "--out", str(out), "--protocol", "ground_plane",
            "--camera-height", str(height), "--ground-pitch", str(pitch), "--no-plots",
            "--no-progress", "--checkpoint", tiny_checkpoint]  # fmt: skip
    assert main([*argv, "--write-bag", str(out_bag)]) == 0
    said = capsys.readouterr().out
    wb = json.loads((out / "report.json").read_text())["write_bag"]
    assert wb["predictions"] == FRAMES and wb["relative"] >= len(WALL), wb
    line = f"  --write-bag: {wb['relative']} of {FRAMES} depth frames relative (no metric scale)"
    assert line in said.splitlines(), said
    assert bags.list_topics(out_bag)[PRED].count == FRAMES
