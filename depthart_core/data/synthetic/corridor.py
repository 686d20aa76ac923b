"""The "corridor" scene style: a long aisle lined with shelving, seen by a ground robot (numpy).

A test distribution that differs from the training rooms on purpose (`SynthConfig.for_style`):
the room box is 3-3.8 m wide and 18-30 m long; both long walls carry runs of rack units (two
end frames, three to five shelves, crates and bins on the shelves) with gaps, and a few crates
stand on the floor in front of them. Point lights hang along the ceiling's centre line. A
sequence drives down the aisle at 3-6 cm per frame with a slow sideways weave and gaze sway;
single frames stand anywhere in the aisle looking along it. Same coordinate conventions and
material slots as `synthetic.scene` (world y up, OpenCV camera axes).

The "warehouse" style (`warehouse_sequence`) drives the same kind of aisle the hard way: turns,
pitch changes, a camera mast at mixed heights starting at 0.3 m, people and carts that move
between frames, and lights that dim and go out along the path. Its single frames are corridor
frames at its camera heights. The corridor style's frames do not change.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from depthart_core.data.synthetic.config import Scene, SynthConfig
from depthart_core.data.synthetic.furniture import Layout, wall_frame
from depthart_core.data.synthetic.scene import intrinsics, look_rotation

_FIXED_SLOTS = ("floor", "ceiling", "wall", "wall", "wall", "wall", "outside")  # as scene.py


def sample_corridor(rng: np.random.Generator, cfg: SynthConfig, length: float) -> np.ndarray:
    """(width, height, length) of the aisle; x across, y up, z along it."""
    return np.array([rng.uniform(*cfg.room_size), rng.uniform(*cfg.room_height), length])


def _rack(rng: np.random.Generator, ly: float) -> tuple[list, int]:
    """One rack unit in its local frame (x along the wall, z out of it): parts, item count.
    Material slots: 0 frame, 1 shelves, 2.. one per item."""
    u = rng.uniform
    hx, depth, height = u(0.9, 1.5), u(0.4, 0.6), min(u(1.8, 2.4), ly - 0.3)
    levels = int(rng.integers(3, 6))
    hz = depth / 2
    parts = [("box", sx * (hx - 0.03), height / 2, hz, 0.03, height / 2, hz, 0) for sx in (-1, 1)]
    ys = 0.12 + np.arange(levels) * (height - 0.2) / (levels - 1)
    gap = (height - 0.2) / (levels - 1)
    n_items = 0
    for y in ys:
        parts.append(("box", 0.0, y, hz, hx - 0.06, 0.02, hz, 1))
        x = -hx + 0.1
        while y + 0.3 < height and n_items < 8:  # the top shelf stays empty when it is the roof
            w = u(0.15, 0.45)
            if x + 2 * w > hx - 0.1:
                break
            if u() < 0.7:
                h = u(0.1, max(0.12, min(0.5, gap - 0.1)))
                d = u(0.15, hz - 0.02)
                if u() < 0.75:
                    parts.append(("box", x + w, y + 0.02 + h / 2, hz, w, h / 2, d, 2 + n_items))
                else:
                    r = min(w, d)
                    parts.append(("cyl", x + w, y + 0.02, hz, r, h, 2 + n_items))
                n_items += 1
            x += 2 * w + u(0.02, 0.3)
    return parts, n_items


def _floor_crate(rng: np.random.Generator) -> list:
    hx, hy, hz = rng.uniform(0.2, 0.45), rng.uniform(0.15, 0.5), rng.uniform(0.2, 0.4)
    return [("box", 0.0, hy, hz, hx, hy, hz, 0)]


def _shelving(rng: np.random.Generator, lay: Layout) -> None:
    lx, ly, lz = lay.room
    for wall in (0, 1):  # the two long walls, x = 0 and x = lx
        a = rng.uniform(0.0, 1.0)
        while a < lz - 1.0:
            if rng.uniform() < 0.15:  # a gap in the run, sometimes with a crate in it
                width = rng.uniform(0.8, 2.0)
                if rng.uniform() < 0.5:
                    crate = _floor_crate(rng)
                    x, z, c, s = wall_frame(lay.room, wall, a + width / 2, 0.0)
                    lay.place(crate, x, z, c, s, ["object"])
                a += width
                continue
            parts, n_items = _rack(rng, ly)
            hx = max(p[4] for p in parts if p[0] == "box")
            x, z, c, s = wall_frame(lay.room, wall, a + hx, 0.0)
            lay.place(parts, x, z, c, s, ["object", "object"] + ["object"] * n_items)
            a += 2 * hx + rng.uniform(0.0, 0.1)


def _lights(rng: np.random.Generator, cfg: SynthConfig, room: np.ndarray) -> np.ndarray:
    lx, ly, lz = room
    n = int(rng.integers(cfg.lights[0], cfg.lights[1] + 1))
    colour = np.array([0.9, 0.95, 1.0]) + rng.uniform(-0.05, 0.05, 3)
    zs = (np.arange(n) + 0.5) * lz / n + rng.uniform(-0.5, 0.5, n)
    return np.array(
        [[lx / 2, ly - 0.3, z, *(colour * rng.uniform(0.8, 1.3) * 4.0 * ly**2)] for z in zs]
    )


def corridor_scene(
    rng: np.random.Generator, cfg: SynthConfig, room: np.ndarray, reserved: list | tuple = ()
) -> Scene:
    """A furnished, lit aisle (no camera). `reserved` AABBs are kept free of furniture."""
    lay = Layout(rng, room, list(reserved))
    for kind in _FIXED_SLOTS:
        lay.material(kind)
    _shelving(rng, lay)
    lights = _lights(rng, cfg, room)
    ambient = rng.uniform(0.15, 0.3) * lights[:, 3:].mean(axis=0) / room[1] ** 2
    return Scene(
        room=room,
        wall_mat=np.full(4, 2.0),
        materials=np.array(lay.materials),
        openings=np.zeros((0, 8)),
        boxes=np.array(lay.boxes, dtype=float).reshape(-1, 9),
        cylinders=np.array(lay.cyls, dtype=float).reshape(-1, 6),
        spheres=np.zeros((0, 5)),
        lights=lights,
        ambient=ambient,
        solids=np.array(lay.solids, dtype=float).reshape(-1, 6),
    )


def _forward(yaw: np.ndarray, pitch: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(pitch) * np.sin(yaw), np.sin(pitch), np.cos(pitch) * np.cos(yaw)], -1)


def _path_box(p: np.ndarray) -> np.ndarray:
    return np.concatenate([p - [0.4, 0.5, 0.4], p + [0.4, 0.5, 0.4]])


def _aisle(
    rng: np.random.Generator, cfg: SynthConfig, n_frames: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """An aisle long enough for the drive: (room, frame indices, z along it, metres per frame
    in 0.03-0.06); both styles draw these first, in this order."""
    step = rng.uniform(0.03, 0.06)  # metres per frame
    length = max(rng.uniform(*cfg.corridor_length), n_frames * step + 6.0)
    room = sample_corridor(rng, cfg, length)
    i = np.arange(n_frames, dtype=float)
    return room, i, 1.0 + step * i, step


def corridor_sequence(rng: np.random.Generator, cfg: SynthConfig, n_frames: int) -> list[Scene]:
    """One aisle driven down its centre line: smooth path, fixed intrinsics."""
    room, i, z, step = _aisle(rng, cfg, n_frames)
    phase = rng.uniform(0.0, 2 * math.pi, 3)
    x = room[0] / 2 + 0.25 * np.sin(2 * math.pi * z / rng.uniform(6.0, 10.0) + phase[0])
    y = rng.uniform(*cfg.camera_height) + 0.005 * np.sin(2 * math.pi * z / 0.7 + phase[1])
    yaw = 0.15 * np.sin(2 * math.pi * z / rng.uniform(4.0, 7.0) + phase[2])
    pitch = np.full(n_frames, rng.uniform(-0.12, 0.0))
    pos = np.stack([x, y, z], axis=1)
    fwd = _forward(yaw, pitch)
    reserved = [_path_box(p) for p in pos[:: max(1, int(0.3 / step))]] + [_path_box(pos[-1])]
    scene = corridor_scene(rng, cfg, room, reserved)
    K = intrinsics(rng.uniform(*cfg.fov_deg), cfg.size)
    roll = rng.normal(0.0, 0.01)
    return [
        dataclasses.replace(scene, cam_pos=pos[k], cam_R=look_rotation(fwd[k], roll), K=K)
        for k in range(n_frames)
    ]


def corridor_frame(rng: np.random.Generator, cfg: SynthConfig) -> Scene:
    """One aisle and one camera in it, looking along the aisle either way."""
    room = sample_corridor(rng, cfg, rng.uniform(*cfg.corridor_length))
    pos = np.array(
        [
            room[0] / 2 + rng.uniform(-0.3, 0.3),
            rng.uniform(*cfg.camera_height),
            rng.uniform(1.0, room[2] - 1.0),
        ]
    )
    scene = corridor_scene(rng, cfg, room, [_path_box(pos)])
    yaw = rng.normal(0.0, 0.15) + (math.pi if rng.uniform() < 0.5 else 0.0)
    fwd = _forward(np.array(yaw), np.array(rng.uniform(-0.12, 0.0)))
    K = intrinsics(rng.uniform(*cfg.fov_deg), cfg.size)
    return dataclasses.replace(
        scene, cam_pos=pos, cam_R=look_rotation(fwd, rng.normal(0.0, 0.01)), K=K
    )


# ------------------------------------------------------------------------------------------------
# The "warehouse" style: the same aisles, driven the hard way (issue 27)


def _segments(
    rng: np.random.Generator, n: int, values: np.ndarray, ramp: int, first: float | None = None
) -> np.ndarray:
    """A piecewise-constant signal over n frames with cosine ramps between its levels: held
    for 30-80 frames each, the level drawn from `values` (`first`, if given, to start with)."""
    out = np.empty(n)
    i, level = 0, float(rng.choice(values)) if first is None else first
    while i < n:
        hold = int(rng.integers(30, 81))
        nxt = float(rng.choice(values))
        out[i : i + hold] = level
        k = np.arange(min(ramp, max(0, n - i - hold)))
        blend = (1 - np.cos(np.pi * k / ramp)) / 2
        out[i + hold : i + hold + len(k)] = level + (nxt - level) * blend
        i += hold + len(k)
        level = nxt
    return out


def _movers(
    rng: np.random.Generator, scene: Scene, n_frames: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """People (a cylinder and a sphere) and carts (a box) walking along the aisle, 0.6-0.8 m
    beside its centre line (the camera weaves 0.25 m about it): per frame boxes, cylinders,
    spheres, and the scene's materials with theirs appended."""
    lx, _, lz = scene.room
    lay = Layout(rng, scene.room, [])
    boxes = np.zeros((n_frames, 0, 9))
    cyls = np.zeros((n_frames, 0, 6))
    sphs = np.zeros((n_frames, 0, 5))
    mats = [scene.materials]
    base = len(scene.materials)
    for _ in range(int(rng.integers(3, 7))):
        side = rng.choice([-1.0, 1.0])
        x = lx / 2 + side * rng.uniform(0.6, 0.8)
        z0, v = rng.uniform(2.0, lz - 2.0), rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.08)
        span = lz - 1.0  # bounce between z = 0.5 and lz - 0.5
        t = (z0 - 0.5 + v * np.arange(n_frames)) % (2 * span)
        z = 0.5 + np.where(t < span, t, 2 * span - t)
        one = np.ones(n_frames)
        m = base + len(mats) - 1
        mats.append(lay.materials[lay.material("object")][None])
        if rng.uniform() < 0.6:  # a person
            r, h = rng.uniform(0.18, 0.25), rng.uniform(1.5, 1.85)
            c = np.stack([x * one, 0 * one, z, r * one, (h - 0.24) * one, m * one], -1)
            s = np.stack([x * one, (h - 0.12) * one, z, 0.12 * one, m * one], -1)
            cyls = np.concatenate([cyls, c[:, None]], axis=1)
            sphs = np.concatenate([sphs, s[:, None]], axis=1)
        else:  # a cart of boxes
            hx, hy, hz = rng.uniform(0.25, 0.4), rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.45)
            b = np.stack([x * one, hy * one, z, hx * one, hy * one, hz * one, one, 0 * one], -1)
            b = np.concatenate([b, m * one[:, None]], axis=1)
            boxes = np.concatenate([boxes, b[:, None]], axis=1)
    return boxes, cyls, sphs, np.concatenate(mats)


def warehouse_sequence(rng: np.random.Generator, cfg: SynthConfig, n_frames: int) -> list[Scene]:
    """An aisle driven with turns (the gaze swings up to 75 degrees to either side and turns
    round), pitch changes (-25 to +10 degrees), a camera mast at mixed heights (0.3 m, 0.8 m,
    1.4 m, 1.9 m; the first level is the low one), people and carts moving between frames, and
    lighting that changes along the path (lights dimming and going out, the ambient level)."""
    room, i, z, step = _aisle(rng, cfg, n_frames)
    phase = rng.uniform(0.0, 2 * math.pi, 2)
    x = room[0] / 2 + 0.25 * np.sin(2 * math.pi * z / rng.uniform(6.0, 10.0) + phase[0])
    yaw = _segments(rng, n_frames, np.array([0.0, 0.0, -0.7, 0.7, -1.3, 1.3, math.pi]), 20)
    pitch = _segments(rng, n_frames, np.radians([-25.0, -12.0, -5.0, 0.0, 10.0]), 15)
    y = _segments(rng, n_frames, np.array([0.3, 0.8, 1.4, 1.9]), 25, first=0.3)
    y += 0.005 * np.sin(2 * math.pi * z / 0.7 + phase[1])
    pos = np.stack([x, y, z], axis=1)
    fwd = _forward(yaw, pitch)
    reserved = [_path_box(p) for p in pos[:: max(1, int(0.3 / step))]] + [_path_box(pos[-1])]
    scene = corridor_scene(rng, cfg, room, reserved)
    boxes, cyls, sphs, mats = _movers(rng, scene, n_frames)
    # lights: each dims and brightens on its own slow cycle, and one in three goes out for a
    # stretch of the drive; the ambient level follows the mean light
    n_l = len(scene.lights)
    period = rng.uniform(60.0, 200.0, n_l)
    gain = 0.55 + 0.45 * np.sin(2 * math.pi * i[:, None] / period + rng.uniform(0, 6.3, n_l))
    for k in range(n_l):
        if rng.uniform() < 1 / 3:
            a = int(rng.integers(0, max(1, n_frames - 40)))
            gain[a : a + int(rng.integers(30, 90)), k] = 0.05
    K = intrinsics(rng.uniform(*cfg.fov_deg), cfg.size)
    roll = rng.normal(0.0, 0.01)
    out = []
    for k in range(n_frames):
        lights = scene.lights.copy()
        lights[:, 3:] *= gain[k][:, None]
        out.append(
            dataclasses.replace(
                scene,
                materials=mats,
                boxes=np.concatenate([scene.boxes, boxes[k]]),
                cylinders=np.concatenate([scene.cylinders, cyls[k]]),
                spheres=np.concatenate([scene.spheres, sphs[k]]),
                lights=lights,
                ambient=scene.ambient * gain[k].mean(),
                cam_pos=pos[k],
                cam_R=look_rotation(fwd[k], roll),
                K=K,
            )
        )
    return out
