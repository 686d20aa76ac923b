"""Materials and furniture placement for the synthetic generator's scene sampling (numpy).

Furniture is placed piece by piece with rejection against the AABBs of everything placed so
far and of door/window clearances, so nothing intersects the walls or anything else; small
items rest on the tops of tables, cabinets, crates and shelves. Every surface gets a material
row: texture, tint, contrast, tile size and emission.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np

from depthart_core.data.synthetic.config import SynthConfig
from depthart_core.data.synthetic.textures import COLOUR_PHOTOS, TEX_ID

_MATS = {
    "floor": (("wood", 0.45), ("tiles", 0.2), ("fabric", 0.15), ("gravel", 0.1), ("checker", 0.1)),
    "wall": (("plain", 0.5), ("noise", 0.15), ("stripes", 0.15), ("brick", 0.1), ("tiles", 0.1)),
    "ceiling": (("plain", 0.8), ("noise", 0.2)),
    "object": (
        ("wood", 0.25),
        ("plain", 0.15),
        ("fabric", 0.15),
        ("noise", 0.1),
        ("checker", 0.05),
        ("stripes", 0.05),
        ("brick", 0.05),
        ("grass", 0.04),
        ("astronaut", 0.04),
        ("coffee", 0.04),
        ("chelsea", 0.04),
        ("rocket", 0.04),
    ),
    "poster": (
        ("astronaut", 0.2),
        ("coffee", 0.2),
        ("chelsea", 0.2),
        ("rocket", 0.2),
        ("camera", 0.2),
    ),
    "outside": (("rocket", 0.7), ("grass", 0.3)),
}
_CONTRAST = {
    "noise": (0.15, 0.5),
    "wood": (0.6, 1.0),
    "tiles": (0.6, 1.0),
    "checker": (0.4, 0.9),
    "fabric": (0.5, 1.0),
    "stripes": (0.4, 0.9),
}  # others: full contrast
_TILE = {"fabric": (0.3, 0.8), "checker": (0.4, 1.2), "tiles": (0.6, 1.6)}  # others: 0.8-2.5 m
_WALL_YAW = ((0.0, -1.0), (0.0, 1.0), (1.0, 0.0), (-1.0, 0.0))  # (cos, sin): local +z into room


_MAT_CDF = {
    k: ([n for n, _ in v], np.cumsum([p for _, p in v]) / sum(p for _, p in v))
    for k, v in _MATS.items()
}


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    return colorsys.hsv_to_rgb(h, s, v)


def _pick(rng: np.random.Generator, names: list, cdf: np.ndarray):
    return names[min(int(np.searchsorted(cdf, rng.uniform())), len(names) - 1)]


def _material(rng: np.random.Generator, kind: str, tile: float | None = None) -> np.ndarray:
    tex = _pick(rng, *_MAT_CDF[kind])
    if kind == "outside" and tex == "grass":  # a lawn seen through the window
        tint = _hsv(rng.uniform(0.22, 0.33), rng.uniform(0.5, 0.8), rng.uniform(0.6, 0.9))
    elif tex in COLOUR_PHOTOS or kind == "outside":
        tint = _hsv(rng.uniform(), rng.uniform(0.0, 0.1), rng.uniform(0.85, 1.0))
    elif tex == "wood":
        tint = _hsv(rng.uniform(0.04, 0.12), rng.uniform(0.3, 0.7), rng.uniform(0.35, 0.9))
    elif kind == "ceiling":
        tint = _hsv(rng.uniform(), rng.uniform(0.0, 0.08), rng.uniform(0.85, 1.0))
    elif kind == "wall":
        tint = _hsv(rng.uniform(), rng.uniform(0.0, 0.3), rng.uniform(0.6, 0.95))
    else:
        tint = _hsv(rng.uniform(), rng.uniform(0.0, 0.8), rng.uniform(0.25, 0.95))
    contrast = rng.uniform(*_CONTRAST.get(tex, (1.0, 1.0)))
    if tile is None:
        tile = rng.uniform(*_TILE.get(tex, (0.8, 2.5)))
    emission = rng.uniform(2.0, 4.0) if kind == "outside" else 0.0
    return np.array([TEX_ID[tex], *tint, contrast, tile, emission])


def overlaps(bb: np.ndarray, others: list[np.ndarray]) -> bool:
    if not others:
        return False
    o = np.asarray(others)
    return bool(np.any(np.all((bb[:3] < o[:, 3:]) & (o[:, :3] < bb[3:]), axis=1)))


class Layout:
    """Accumulates primitives and the AABBs (x0 y0 z0 x1 y1 z1) they and clearances occupy."""

    def __init__(self, rng: np.random.Generator, room: np.ndarray, reserved: list) -> None:
        self.rng, self.room = rng, room
        self.materials: list[np.ndarray] = []
        self.boxes: list = []
        self.cyls: list = []
        self.sphs: list = []
        self.solids: list[np.ndarray] = []
        self.blocked: list[np.ndarray] = [np.asarray(b, dtype=float) for b in reserved]

    def n_prims(self) -> int:
        return len(self.boxes) + len(self.cyls) + len(self.sphs)

    def material(self, kind: str, tile: float | None = None) -> int:
        self.materials.append(_material(self.rng, kind, tile))
        return len(self.materials) - 1

    def place(self, parts: list, x: float, z: float, c: float, s: float, kinds: list):
        """Put a piece (parts in its local frame) at (x, z) with yaw (c, s), giving its parts new
        materials of `kinds` (a kind, or (kind, tile)); None if it collides."""
        lo = np.min([_part_bounds(p)[0] for p in parts], axis=0)
        hi = np.max([_part_bounds(p)[1] for p in parts], axis=0)
        ex, ez = (
            abs(c) * (hi[0] - lo[0]) / 2 + abs(s) * (hi[2] - lo[2]) / 2,
            abs(s) * (hi[0] - lo[0]) / 2 + abs(c) * (hi[2] - lo[2]) / 2,
        )
        mx, mz = (lo[0] + hi[0]) / 2, (lo[2] + hi[2]) / 2
        wx, wz = x + c * mx - s * mz, z + s * mx + c * mz
        bb = np.array([wx - ex, lo[1], wz - ez, wx + ex, hi[1], wz + ez])
        if (bb[:3] < 0).any() or (bb[3:] > self.room - [0, 0.05, 0]).any():
            return None
        if overlaps(bb, self.solids + self.blocked):
            return None
        mats = [self.material(k) if isinstance(k, str) else self.material(*k) for k in kinds]
        for kind, px, py, pz, *dims, slot in parts:
            gx, gz = x + c * px - s * pz, z + s * px + c * pz
            if kind == "box":
                self.boxes.append([gx, py, gz, *dims, c, s, mats[slot]])
            elif kind == "cyl":
                self.cyls.append([gx, py, gz, *dims, mats[slot]])
            else:
                self.sphs.append([gx, py, gz, *dims, mats[slot]])
        self.solids.append(bb)
        return bb


def _part_bounds(part: tuple) -> tuple[np.ndarray, np.ndarray]:
    kind, x, y, z, *dims, _ = part
    if kind == "box":
        hx, hy, hz = dims
        return np.array([x - hx, y - hy, z - hz]), np.array([x + hx, y + hy, z + hz])
    if kind == "cyl":
        r, h = dims
        return np.array([x - r, y, z - r]), np.array([x + r, y + h, z + r])
    (r,) = dims
    return np.array([x - r, y - r, z - r]), np.array([x + r, y + r, z + r])


def _piece(rng: np.random.Generator, name: str, ly: float, budget: int):
    """(parts, material kinds, top surface (y, half x, half z) or None, mount) of one piece."""
    u = rng.uniform
    if name == "table":
        hx, hz, top, th = u(0.4, 0.9), u(0.3, 0.5), u(0.68, 0.78), u(0.015, 0.03)
        leg = (top - 2 * th) / 2
        parts = [("box", 0.0, top - th, 0.0, hx, th, hz, 0)]
        if budget >= 5:
            parts += [
                ("box", sx * (hx - 0.06), leg, sz * (hz - 0.06), 0.025, leg, 0.025, 0)
                for sx in (-1, 1)
                for sz in (-1, 1)
            ]
        else:
            parts += [
                ("box", sx * (hx - 0.05), leg, 0.0, 0.02, leg, hz - 0.04, 0) for sx in (-1, 1)
            ]
        return parts, ["object"], (top, hx, hz), "wall" if u() < 0.4 else "aligned"
    if name == "round_table":
        r, top = u(0.35, 0.6), u(0.68, 0.76)
        parts = [
            ("cyl", 0.0, top - 0.03, 0.0, r, 0.03, 0),
            ("cyl", 0.0, 0.0, 0.0, u(0.03, 0.06), top - 0.03, 0),
        ]
        return parts, ["object"], (top, 0.6 * r, 0.6 * r), "aligned"
    if name == "cabinet":
        hx, hz, h = u(0.3, 1.0), u(0.18, 0.3), u(0.45, min(2.1, ly - 0.6))
        top = (h, hx, hz) if h < 1.3 else None
        return [("box", 0.0, h / 2, 0.0, hx, h / 2, hz, 0)], ["object"], top, "wall"
    if name == "sofa":
        hx, hz, h, hb = u(0.8, 1.1), u(0.45, 0.9), u(0.35, 0.5), u(0.75, 1.0)
        parts = [
            ("box", 0.0, h / 2, 0.06, hx, h / 2, hz - 0.06, 0),
            ("box", 0.0, hb / 2, -hz + 0.06, hx, hb / 2, 0.06, 1),
        ]
        return parts, ["object", "object"], None, "wall"
    if name == "crate":
        hx, hy, hz = u(0.12, 0.45, 3)
        return [("box", 0.0, hy, 0.0, hx, hy, hz, 0)], ["object"], (2 * hy, hx, hz), "any"
    if name == "ball":
        r = u(0.1, 0.35)
        return [("sph", 0.0, r, 0.0, r, 0)], ["object"], None, "any"
    if name == "bin":
        r, h = u(0.1, 0.3), u(0.3, 1.2)
        return [("cyl", 0.0, 0.0, 0.0, r, h, 0)], ["object"], (h, 0.6 * r, 0.6 * r), "any"
    if name == "shelf":
        hx, hz, y = u(0.3, 0.7), u(0.1, 0.16), u(1.0, 1.8)
        return [("box", 0.0, y, 0.0, hx, 0.015, hz, 0)], ["object"], (y + 0.015, hx, hz), "wall"
    hw, y = u(0.2, 0.5), u(1.2, 1.7)  # poster: one copy of a photograph, square
    return [("box", 0.0, y, 0.0, hw, hw, 0.01, 0)], [("poster", 2 * hw)], None, "wall"


_PIECES = (
    ("table", 0.16),
    ("round_table", 0.07),
    ("cabinet", 0.15),
    ("sofa", 0.08),
    ("crate", 0.14),
    ("ball", 0.08),
    ("bin", 0.1),
    ("shelf", 0.1),
    ("poster", 0.12),
)


def _small_item(rng: np.random.Generator) -> list:
    u = rng.uniform
    kind = rng.integers(3)
    if kind == 0:
        r = u(0.04, 0.12)
        return [("sph", 0.0, r, 0.0, r, 0)]
    if kind == 1:
        return [("cyl", 0.0, 0.0, 0.0, u(0.03, 0.1), u(0.08, 0.3), 0)]
    hx, hy, hz = u(0.04, 0.15, 3)
    return [("box", 0.0, hy, 0.0, hx, hy, hz, 0)]


def wall_frame(room: np.ndarray, k: int, a: float, z_min: float) -> tuple[float, ...]:
    """Origin and yaw putting a piece's back (local z = z_min) 5 mm off wall k at position a."""
    c, s = _WALL_YAW[k]
    wx, wz = ((0.0, a), (room[0], a), (a, 0.0), (a, room[2]))[k]
    off = 0.005 - z_min
    return wx - s * off, wz + c * off, c, s


def furnish(rng: np.random.Generator, cfg: SynthConfig, lay: Layout) -> None:
    target = int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))
    names = [n for n, _ in _PIECES]
    cdf = np.cumsum([p for _, p in _PIECES]) / sum(p for _, p in _PIECES)
    lx, ly, lz = lay.room
    for _ in range(40):
        budget = target - lay.n_prims()
        if budget <= 0:
            break
        parts, kinds, top, mount = _piece(rng, _pick(rng, names, cdf), ly, budget)
        if len(parts) > budget:
            continue
        for _ in range(12):
            if mount == "wall":
                k = int(rng.integers(4))
                a = rng.uniform(0.1, (lz if k < 2 else lx) - 0.1)
                x, z, c, s = wall_frame(lay.room, k, a, min(_part_bounds(p)[0][2] for p in parts))
            else:
                x, z = rng.uniform(0.2, lx - 0.2), rng.uniform(0.2, lz - 0.2)
                yaw = (
                    rng.integers(4) * math.pi / 2 + rng.normal(0.0, 0.08)
                    if mount == "aligned"
                    else rng.uniform(0.0, 2 * math.pi)
                )
                c, s = math.cos(yaw), math.sin(yaw)
            bb = lay.place(parts, x, z, c, s, kinds)
            if bb is not None:
                break
        else:
            continue
        if top is None or rng.uniform() > 0.6:
            continue
        for _ in range(int(rng.integers(1, 3))):  # small items resting on the piece's top
            item = _small_item(rng)
            lo, hi = _part_bounds(item[0])
            mx, mz = top[1] - (hi[0] - lo[0]) / 2, top[2] - (hi[2] - lo[2]) / 2
            if lay.n_prims() >= target or mx < 0 or mz < 0:
                break
            px, pz, ty = rng.uniform(-mx, mx), rng.uniform(-mz, mz), bb[4] + 1e-4
            item = [(kd, ix + px, iy + ty, iz + pz, *rest) for kd, ix, iy, iz, *rest in item]
            lay.place(item, x, z, c, s, ["object"])
