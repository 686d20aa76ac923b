"""The "corridor" scene style and the RGB-D sensor model of `depthart synth-bag --style corridor
--sensor`: geometry that differs from the training rooms, determinism, and sensor-like depth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthart_core.cli import main
from depthart_core.data.synthetic.config import SynthConfig
from depthart_core.data.synthetic.render import render_batch, sequence_scenes
from depthart_core.data.synthetic.sensor import SensorModel, sensor_depth_mm
from depthart_core.rosio import bags, messages

CORRIDOR = SynthConfig.for_style("corridor", (48, 64))


def test_corridor_frames_are_deterministic_and_long():
    batch = render_batch(4, [0, 1, 2], CORRIDOR)
    alone = render_batch(4, [1], CORRIDOR)
    assert np.array_equal(batch["rgb"][1], alone["rgb"][0])
    assert np.array_equal(batch["depth"][1], alone["depth"][0])
    # looking along an 18-30 m aisle: far depth no room of the training style (3-7 m) has
    far = [float(d[v].max()) for d, v in zip(batch["depth"], batch["valid"], strict=True)]
    assert min(far) > 10.0, far
    room = render_batch(4, [0, 1, 2], SynthConfig(size=(48, 64)))
    assert float(room["depth"].max()) < 10.0


def test_corridor_camera_differs_from_the_training_rooms():
    scenes = sequence_scenes(2, 30, CORRIDOR)
    heights = [s.cam_pos[1] for s in scenes]
    assert all(2.0 <= h <= 2.4 for h in heights) and SynthConfig().camera_height[1] < 2.0
    z = [s.cam_pos[2] for s in scenes]
    assert all(b > a for a, b in zip(z, z[1:], strict=False))  # drives down the aisle
    fov = math.degrees(2 * math.atan(64 / 2 / scenes[0].K[0, 0]))
    assert 95.0 <= fov <= 110.0 and fov > SynthConfig().fov_deg[1]
    assert scenes[0].room[2] > 15 and 3.0 <= scenes[0].room[0] <= 3.8
    assert len(scenes[0].boxes) > 30  # shelving along both walls


def test_sensor_depth_has_range_limit_edge_holes_and_z_squared_noise():
    model = SensorModel(patches=(0, 0), dropout=0.0)
    rng = np.random.default_rng(0)
    depth = np.full((200, 200), 2.0)
    depth[:, 100:] = 4.0  # a depth step at column 100
    depth[:10] = 12.0  # beyond the 10 m range
    mm = sensor_depth_mm(depth, np.ones_like(depth, bool), rng, model)
    assert mm.dtype == np.uint16 and not mm[:10].any()
    assert not mm[10:, 100:102].any() and mm[10:, 97:100].all()  # the far side of the step
    near, far = mm[10:, :95].astype(float) / 1000, mm[10:, 105:].astype(float) / 1000
    assert near.std() == pytest.approx(0.002 * 2.0**2, rel=0.1)
    assert far.std() == pytest.approx(0.002 * 4.0**2, rel=0.1)
    assert abs(near.mean() - 2.0) < 0.002 and abs(far.mean() - 4.0) < 0.005
    # true depth just inside the range, noise pushing readings past it: none above 10,000 mm
    edge = sensor_depth_mm(np.full((50, 50), 9.95), np.ones((50, 50), bool), rng, model)
    assert edge.max() <= 10_000 and (edge > 0).mean() > 0.4
    holes = sensor_depth_mm(
        np.full((100, 100), 2.0), np.ones((100, 100), bool), rng, SensorModel(dropout=0.05)
    )
    assert 0.04 < (holes == 0).mean() < 0.2


def test_synth_bag_corridor_sensor_writes_16uc1_with_holes_and_late_depth(tmp_path):
    out = tmp_path / "bag"
    argv = ["synth-bag", "--out", str(out), "--frames", "3", "--size", "24x32"]
    assert main(argv + ["--style", "corridor", "--sensor"]) == 0
    stamps: dict[str, list[int]] = {}
    for m in bags.iter_messages(out, ["/camera/image_raw", "/camera/depth"]):
        stamps.setdefault(m.topic, []).append(m.stamp_ns)
        if m.topic == "/camera/depth":
            assert m.msg.encoding == "16UC1"
            depth, valid = messages.image_to_depth(m.msg)
            assert 0.05 < 1 - valid.mean() < 0.9 and depth[valid].max() <= 10.5
    dt = np.array(stamps["/camera/depth"]) - np.array(stamps["/camera/image_raw"])
    assert (dt == 3_000_000).all()


def test_warehouse_drive_turns_pitches_starts_low_and_its_scene_moves():
    cfg = SynthConfig.for_style("warehouse", (24, 32))
    scenes = sequence_scenes(3, 300, cfg)
    h = np.array([s.cam_pos[1] for s in scenes])
    assert abs(h[0] - 0.3) < 0.01 and h.max() > 0.75  # a mast: from 0.3 m up
    fwd = np.array([s.cam_R[:, 2] for s in scenes])  # world y up
    yaw = np.degrees(np.arctan2(fwd[:, 0], fwd[:, 2]))
    pitch = np.degrees(np.arcsin(fwd[:, 1]))
    assert np.ptp(yaw) > 35 and np.ptp(pitch) > 8
    # people and carts (3-6) move between frames; the shelving stays
    a, b = scenes[0], scenes[40]
    same_boxes = np.all(a.boxes == b.boxes, axis=1)
    same_cyls = np.all(a.cylinders == b.cylinders, axis=1)
    assert same_boxes.sum() > 30 and (~same_boxes).sum() + (~same_cyls).sum() >= 3
    # the lights change along the path
    assert not np.allclose(a.lights[:, 3:], b.lights[:, 3:])
    assert not np.allclose(a.ambient, b.ambient)


def test_corridor_style_is_unchanged_by_the_warehouse_style():
    # seed 2's drive, as the corridor.py before the warehouse style gave it (checked against
    # that file when the style was added): the same path, bit for bit
    scenes = sequence_scenes(2, 30, CORRIDOR)
    pos = np.array([s.cam_pos for s in scenes])
    assert pos.sum() == 175.50097738848777
