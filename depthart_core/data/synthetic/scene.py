"""Scene sampling for the synthetic generator (numpy): rooms, openings, lights, cameras.

A scene is a furnished room (`synthetic.furniture`) with up to two openings (a door into a
corridor, or a window recess whose glass shows an outdoor photograph) and one to three point
lights under the ceiling. Single frames get a random camera inside the room looking at
furniture or a wall; sequences follow a slow elliptical walk (`orbit`). Cameras use OpenCV
axes (x right, y down, z forward) and square pixels.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from depthart_core.data.synthetic.config import Scene, SynthConfig
from depthart_core.data.synthetic.furniture import Layout, furnish, overlaps


def _openings(rng: np.random.Generator, cfg: SynthConfig, lay: Layout) -> np.ndarray:
    lx, ly, lz = lay.room
    rows = []
    for k in rng.permutation(4)[: rng.integers(cfg.openings[0], cfg.openings[1] + 1)]:
        length = lz if k < 2 else lx
        window = bool(rng.uniform() < 0.5)
        if window:
            width, y0 = rng.uniform(0.8, min(2.0, length - 1.0)), rng.uniform(0.8, 1.0)
            y1, depth, clear = (
                min(y0 + rng.uniform(1.0, 1.4), ly - 0.2),
                rng.uniform(0.15, 0.3),
                0.4,
            )
        else:
            width, y0 = rng.uniform(0.8, 1.0), 0.0
            y1, depth, clear = min(rng.uniform(2.0, 2.2), ly - 0.2), rng.uniform(1.5, 4.0), 0.9
        a0 = rng.uniform(0.3, length - width - 0.3)
        rows.append([1.0, k + 2.0, a0, a0 + width, y0, y1, depth, float(window)])
        ylo, yhi, b0, b1 = (y0 - 0.05 if window else 0.0), y1 + 0.05, a0 - 0.05, a0 + width + 0.05
        lay.blocked.append(
            np.array(
                (
                    [0.0, ylo, b0, clear, yhi, b1],
                    [lx - clear, ylo, b0, lx, yhi, b1],
                    [b0, ylo, 0.0, b1, yhi, clear],
                    [b0, ylo, lz - clear, b1, yhi, lz],
                )[k]
            )
        )
    return np.array(rows, dtype=float).reshape(-1, 8)


def _lights(rng: np.random.Generator, cfg: SynthConfig, lay: Layout) -> np.ndarray:
    lx, ly, lz = lay.room
    warm, cool = np.array([1.0, 0.85, 0.65]), np.array([0.85, 0.92, 1.0])
    rows = []
    for _ in range(int(rng.integers(cfg.lights[0], cfg.lights[1] + 1))):
        for _ in range(20):
            pos = np.array(
                [
                    rng.uniform(0.3, lx - 0.3),
                    rng.uniform(ly - 0.7, ly - 0.35),
                    rng.uniform(0.3, lz - 0.3),
                ]
            )
            if not overlaps(np.concatenate([pos - 0.1, pos + 0.1]), lay.solids):
                break
        colour = warm + (cool - warm) * rng.uniform()
        rows.append([*pos, *(colour * rng.uniform(0.5, 1.5) * ly**2)])
    return np.array(rows)


def sample_room(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    return np.array(
        [rng.uniform(*cfg.room_size), rng.uniform(*cfg.room_height), rng.uniform(*cfg.room_size)]
    )


def sample_scene(
    rng: np.random.Generator,
    cfg: SynthConfig,
    room: np.ndarray | None = None,
    reserved: list | tuple = (),
) -> Scene:
    """A furnished, lit room (no camera). `reserved` AABBs are kept free of furniture."""
    room = sample_room(rng, cfg) if room is None else np.asarray(room, dtype=float)
    lay = Layout(rng, room, list(reserved))
    for kind in ("floor", "ceiling", "wall", "wall", "wall", "wall", "outside"):
        lay.material(kind)  # fixed slots: 0 floor ... 4, 5 niche walls, 6 window view
    wall_mat = np.full(4, 2.0)
    if rng.uniform() < 0.3:
        wall_mat[rng.integers(4)] = 3.0  # accent wall
    openings = _openings(rng, cfg, lay)
    for j, row in enumerate(openings):
        if row[7] > 0:  # window reveal: the wall's own finish
            lay.materials[4 + j] = lay.materials[int(wall_mat[int(row[1]) - 2])].copy()
    furnish(rng, cfg, lay)
    lights = _lights(rng, cfg, lay)
    ambient = rng.uniform(*cfg.ambient) * lights[:, 3:].mean(axis=0) / room[1] ** 2  # ~ one light
    return Scene(
        room=room,
        wall_mat=wall_mat,
        materials=np.array(lay.materials),
        openings=openings,
        boxes=np.array(lay.boxes, dtype=float).reshape(-1, 9),
        cylinders=np.array(lay.cyls, dtype=float).reshape(-1, 6),
        spheres=np.array(lay.sphs, dtype=float).reshape(-1, 5),
        lights=lights,
        ambient=ambient,
        solids=np.array(lay.solids, dtype=float).reshape(-1, 6),
    )


def look_rotation(forward: np.ndarray, roll: float = 0.0) -> np.ndarray:
    """Camera-to-world rotation, columns (right, down, forward) in world (y up), OpenCV axes."""
    f = np.asarray(forward, dtype=float) / np.linalg.norm(forward)
    right = np.cross(f, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    cr, sr = math.cos(roll), math.sin(roll)
    return np.stack([cr * right + sr * down, cr * down - sr * right, f], axis=1)


def intrinsics(fov_deg: float, size: tuple[int, int]) -> np.ndarray:
    """Square-pixel K for a horizontal FOV; principal point at the image centre (pixel centres
    at integer coordinates, OpenCV convention)."""
    h, w = size
    f = w / 2.0 / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]])


def _near_view(
    rng: np.random.Generator, cfg: SynthConfig, scene: Scene
) -> tuple[np.ndarray, np.ndarray] | None:
    """(camera position, look-at target) 0.3-1.2 m in front of a random piece's nearest face,
    or None when no free spot is found."""
    lx, _, lz = scene.room
    solids = list(scene.solids)
    for _ in range(30):
        bb = solids[rng.integers(len(solids))]
        centre, half = (bb[:3] + bb[3:]) / 2, (bb[3:] - bb[:3]) / 2
        ang = rng.uniform(0.0, 2 * math.pi)
        d = np.array([math.sin(ang), 0.0, math.cos(ang)])
        reach = np.min(half[[0, 2]] / np.maximum(np.abs(d[[0, 2]]), 1e-6))  # centre to face
        pos = centre + d * (reach + rng.uniform(0.3, 1.2))
        pos[1] = rng.uniform(*cfg.camera_height)
        inside = 0.35 <= pos[0] <= lx - 0.35 and 0.35 <= pos[2] <= lz - 0.35
        if inside and not overlaps(np.concatenate([pos - 0.25, pos + 0.25]), solids):
            target = centre + rng.normal(0.0, 0.1, 3) * np.maximum(half, 0.05)
            return pos, target
    return None


def sample_camera(rng: np.random.Generator, cfg: SynthConfig, scene: Scene) -> Scene:
    lx, _, lz = scene.room
    solids = list(scene.solids)
    # no draw when near_view is 0, so the default generator's frames stay bit-identical
    near = (
        _near_view(rng, cfg, scene)
        if cfg.near_view > 0 and solids and rng.uniform() < cfg.near_view
        else None
    )
    if near is not None:
        pos, target = near
        return _aim(rng, cfg, scene, pos, target - pos)
    for _ in range(50):
        pos = np.array(
            [
                rng.uniform(0.35, lx - 0.35),
                rng.uniform(*cfg.camera_height),
                rng.uniform(0.35, lz - 0.35),
            ]
        )
        if not overlaps(np.concatenate([pos - 0.3, pos + 0.3]), solids):
            break
    for _ in range(10):  # look at a piece of furniture, or at a wall
        if solids and rng.uniform() < 0.65:
            bb = solids[rng.integers(len(solids))]
            target = (bb[:3] + bb[3:]) / 2 + rng.normal(0.0, 0.2, 3)
        else:
            k, y = int(rng.integers(4)), rng.uniform(0.3, 2.0)
            a = rng.uniform(0.0, lz if k < 2 else lx)
            target = np.array(((0.0, y, a), (lx, y, a), (a, y, 0.0), (a, y, lz))[k])
        f = target - pos
        if np.hypot(f[0], f[2]) > 0.5:
            break
    return _aim(rng, cfg, scene, pos, f)


def _aim(
    rng: np.random.Generator, cfg: SynthConfig, scene: Scene, pos: np.ndarray, f: np.ndarray
) -> Scene:
    """The scene with a camera at `pos` looking along `f` (pitch clipped, small jitter)."""
    yaw = math.atan2(f[0], f[2]) + rng.normal(0.0, 0.1)
    pitch = float(np.clip(math.atan2(f[1], np.hypot(f[0], f[2])), -0.7, 0.4)) + rng.normal(0, 0.05)
    fwd = [math.cos(pitch) * math.sin(yaw), math.sin(pitch), math.cos(pitch) * math.cos(yaw)]
    K = intrinsics(rng.uniform(*cfg.fov_deg), cfg.size)
    cam_R = look_rotation(fwd, rng.normal(0, 0.05))
    lights = scene.lights
    if cfg.camera_light > 0 and rng.uniform() < cfg.camera_light:  # no draw when it is 0
        lamp = pos + np.array([0.0, 0.1, 0.0])  # just above the lens
        power = lights[:, 3:].mean(axis=0).mean() * rng.uniform(0.2, 0.8)
        lights = np.concatenate([lights, [[*lamp, power, 0.97 * power, 0.92 * power]]])
    return dataclasses.replace(scene, cam_pos=pos, cam_R=cam_R, K=K, lights=lights)


def orbit(rng: np.random.Generator, cfg: SynthConfig, room: np.ndarray, n: int):
    """A slow elliptical walk around the room centre, gaze between inward and along the path."""
    lx, _, lz = room
    i = np.arange(n, dtype=float)
    rx, rz = rng.uniform(0.12, 0.3) * lx, rng.uniform(0.12, 0.3) * lz
    step = rng.uniform(0.01, 0.03)  # metres per frame: a hand-held walk at 30 fps
    w = step / (0.5 * (rx + rz)) * rng.choice([-1.0, 1.0])
    phase = rng.uniform(0.0, 2 * math.pi, 4)
    th = phase[0] + w * i
    breathe = 1.0 + 0.15 * np.sin(0.31 * w * i + phase[1])
    x, z = lx / 2 + rx * breathe * np.cos(th), lz / 2 + rz * breathe * np.sin(th)
    y = rng.uniform(*cfg.camera_height) + 0.03 * np.sin(0.8 * w * i + phase[2])
    y = np.clip(y, cfg.camera_height[0], cfg.camera_height[1])
    inward = np.stack([lx / 2 - x, lz / 2 - z], axis=1)
    inward /= np.linalg.norm(inward, axis=1, keepdims=True)
    tangent = np.stack([-np.sin(th), np.cos(th)], axis=1) * np.sign(w)
    alpha = rng.uniform(0.3, 1.0)
    fh = alpha * inward + (1 - alpha) * tangent
    fh /= np.linalg.norm(fh, axis=1, keepdims=True)
    pitch = rng.uniform(-0.35, 0.05) + 0.05 * np.sin(0.5 * w * i + phase[3])
    fwd = np.stack([np.cos(pitch) * fh[:, 0], np.sin(pitch), np.cos(pitch) * fh[:, 1]], axis=1)
    pos = np.stack([x, y, z], axis=1)
    return pos, fwd, rng.normal(0.0, 0.02), step
