"""Procedural synthetic indoor RGB-D scenes, ray-cast in torch, for training on the fly.

Each frame is one furnished room: floor, walls and ceiling (an axis-aligned box), up to two
openings (a door into a corridor, or a window recess whose glass shows an outdoor photograph),
and boxes, slabs, cylinders and spheres standing on the floor, on each other or on the walls.
Surfaces carry procedural (1/f noise, planks, tiles, stripes, checks, weave) or photographic
textures (scikit-image's bundled sample images, read from the installed wheel, never downloaded),
mip-mapped. Shading is Lambertian: ambient light plus one to three point lights with hard shadows
(one shadow ray per light and pixel). Cameras have a random horizontal field of view and stand
inside the room looking at furniture or walls. Depth is planar (z along the optical axis), as
RGB-D sensors and Hypersim-converted labels report it; window glass is invalid, as it is for real
depth sensors.

Sources: ray/box slab test (Kay & Kajiya, SIGGRAPH 1986; Williams et al., JGT 2005), ray/sphere
and ray/cylinder quadrics (Pharr, Jakob & Humphreys, PBRT 3rd ed., sec. 3.2 and 3.6), point
lights with shadow rays (Whitted, CACM 1980), 1/f noise by spectral synthesis (Saupe, "The
Science of Fractal Images", 1988, ch. 2), mip-mapping (Williams, SIGGRAPH 1983).

Speed: every pixel is traced at once in torch (CPU or CUDA). Primitives are culled per 8x8
pixel tile with bounding spheres against the tile's cone of rays (camera rays, and shadow rays,
which start at the light), and only surviving (ray, primitive) pairs are intersected exactly.

Determinism: frame `index` of `seed` is drawn from `np.random.default_rng([TAG, seed, index])`
alone, so it does not depend on the rest of its batch. Exact intersections and shading use only
correctly rounded arithmetic (+, -, *, /, sqrt), min/max, comparisons and gathers per pixel, and
culling (which may be inexact) only decides which pairs get tested, so a frame rendered in a
batch is bit-identical to the frame rendered alone on the same device. Layout of this file:
config and scene types, textures, tracer (torch), scene sampling (numpy), public API.
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from depthart_core.data.sample import DepthSample

_FRAME_TAG = 0x5F4A11  # domain tags: frames and sequences never share a random stream
_SEQ_TAG = 0x5E9F17
_EPS = 1e-4  # self-intersection tolerance along a camera ray (metres, direction z = 1)
_INF = float("inf")
_FAR = 1.0e4  # padding primitives sit here, outside every room
_CPU_CHUNK = 65536  # pixels per tracing pass on CPU
_GPU_CHUNK = 1 << 22


@dataclass(frozen=True)
class SynthConfig:
    """Generator settings. Ranges are inclusive (lo, hi); lengths in metres, angles in degrees."""

    size: tuple[int, int] = (128, 128)  # (H, W)
    fov_deg: tuple[float, float] = (45.0, 90.0)  # horizontal field of view
    lights: tuple[int, int] = (1, 3)  # point lights per scene
    objects: tuple[int, int] = (5, 12)  # primitives per scene (a table is 3 to 5 of them)
    openings: tuple[int, int] = (0, 2)  # doors and windows, at most one per wall
    room_size: tuple[float, float] = (3.0, 7.0)  # floor width and length
    room_height: tuple[float, float] = (2.4, 3.2)
    camera_height: tuple[float, float] = (0.6, 1.9)
    max_depth: float = 20.0  # farther pixels are invalid
    glass_invalid: bool = True  # window glass has no depth, as with real sensors

    def __post_init__(self) -> None:
        h, w = self.size
        if h <= 0 or w <= 0:
            raise ValueError(f"size must be positive (H, W), got {self.size}")
        for name in (
            "fov_deg",
            "lights",
            "objects",
            "openings",
            "room_size",
            "room_height",
            "camera_height",
        ):
            lo, hi = getattr(self, name)
            if lo > hi or lo < 0:
                raise ValueError(f"{name} must be an ordered non-negative range, got {(lo, hi)}")
        if not 1.0 <= self.fov_deg[0] <= self.fov_deg[1] < 179.0:
            raise ValueError(f"fov_deg must lie in [1, 179), got {self.fov_deg}")
        if self.lights[0] < 1:
            raise ValueError(f"at least one light is needed, got lights={self.lights}")
        if self.openings[1] > 2:
            raise ValueError(f"at most 2 openings are supported, got openings={self.openings}")
        if self.room_size[0] < 3.0 or self.room_height[0] < 2.2:
            raise ValueError(
                f"rooms must be at least 3 m wide and 2.2 m high, got room_size="
                f"{self.room_size}, room_height={self.room_height}"
            )
        if self.camera_height[1] > self.room_height[0] - 0.3:
            raise ValueError(
                f"camera_height {self.camera_height} must stay 0.3 m under the lowest ceiling "
                f"{self.room_height[0]}"
            )

    def to_dict(self) -> dict:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @staticmethod
    def from_dict(d: dict) -> SynthConfig:
        names = {f.name for f in dataclasses.fields(SynthConfig)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown SynthConfig key(s) {unknown}; valid keys: {sorted(names)}")
        return SynthConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass
class Scene:
    """One frame's scene in world coordinates (y up, metres); the room spans [0, room]."""

    room: np.ndarray  # (3,) Lx, Ly, Lz
    wall_mat: np.ndarray  # (4,) material of walls x=0, x=Lx, z=0, z=Lz (surfaces 2..5)
    materials: np.ndarray  # (M, 7) texture, r, g, b, contrast, tile (m), emission
    openings: np.ndarray  # (n, 8) 1, wall surface (2..5), a0, a1, y0, y1, depth, is_window
    boxes: np.ndarray  # (n, 9) centre xyz, half sizes xyz, cos yaw, sin yaw, material
    cylinders: np.ndarray  # (n, 6) centre x, base y, centre z, radius, height, material
    spheres: np.ndarray  # (n, 5) centre xyz, radius, material
    lights: np.ndarray  # (n, 6) position xyz, rgb intensity
    ambient: np.ndarray  # (3,)
    solids: np.ndarray  # (n, 6) furniture AABBs x0 y0 z0 x1 y1 z1 (camera placement)
    cam_pos: np.ndarray = field(default_factory=lambda: np.zeros(3))
    cam_R: np.ndarray = field(default_factory=lambda: np.eye(3))  # columns: right, down, fwd
    K: np.ndarray = field(default_factory=lambda: np.eye(3))


# ---------------------------------------------------------------------------------------------
# Textures: 15 tiles of 256x256 (procedural, then photographs), stored bottom row first so that
# v grows upwards on walls, with four box-filtered mip levels, flattened into one texel table.
_TEX = (
    "plain",
    "noise",
    "wood",
    "tiles",
    "checker",
    "fabric",
    "stripes",
    "brick",
    "grass",
    "gravel",
    "camera",
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
)
_TEX_ID = {n: i for i, n in enumerate(_TEX)}
_COLOUR_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
_TEX_SIZE = 256
_MIP_LEVELS = 5


def _fractal_noise(rng: np.random.Generator, n: int, beta: float, aniso: float = 1.0) -> np.ndarray:
    """Periodic 1/f^beta noise in [0, 1] (tiles seamlessly); aniso < 1 stretches it along u."""
    f = np.fft.fftfreq(n)
    fv, fu = np.meshgrid(f, f, indexing="ij")
    k = np.sqrt((fu * aniso) ** 2 + fv**2)
    k[0, 0] = 1.0
    spec = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) / k**beta
    spec[0, 0] = 0.0
    x = np.fft.ifft2(spec).real
    return (x - x.min()) / (x.max() - x.min())


def _procedural(name: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(_TEX_ID[name])
    v, u = np.meshgrid(np.arange(n) / n, np.arange(n) / n, indexing="ij")
    noise = _fractal_noise(rng, n, 1.6)
    if name == "plain":
        return 0.9 + 0.1 * noise
    if name == "noise":
        return noise
    if name == "wood":  # 8 planks across v, per-plank tone, grain stretched along u, dark seams
        plank = np.floor(v * 8).astype(int)
        tone = rng.uniform(-0.15, 0.15, 8)[plank]
        grain = _fractal_noise(rng, n, 1.2, aniso=0.08)
        seam = (v * 8 % 1.0) < 0.04
        return np.where(seam, 0.25, 0.6 + tone + 0.35 * (grain - 0.5))
    if name == "tiles":
        grout = ((u * 4 % 1.0) < 0.04) | ((v * 4 % 1.0) < 0.04)
        tone = rng.uniform(-0.08, 0.08, (4, 4))[(v * 4).astype(int), (u * 4).astype(int)]
        return np.where(grout, 0.35, 0.85 + tone + 0.06 * (noise - 0.5))
    if name == "checker":
        return np.where((np.floor(u * 4) + np.floor(v * 4)) % 2 == 0, 0.25, 0.85) + 0.05 * noise
    if name == "fabric":
        weave = np.sin(2 * np.pi * 32 * u) * np.sin(2 * np.pi * 32 * v)
        return 0.6 + 0.12 * weave + 0.3 * (_fractal_noise(rng, n, 0.8) - 0.5)
    if name == "stripes":
        return np.where((u * 6 % 1.0) < 0.5, 0.65, 0.9) + 0.06 * noise
    raise KeyError(name)


def _photo(name: str, n: int) -> np.ndarray:
    import cv2
    import skimage.data

    img = getattr(skimage.data, name)()
    img = cv2.resize(img, (n, n), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return img**2.0  # display (gamma ~2) to linear, undone by the sqrt at output


@functools.lru_cache(maxsize=4)
def _texture_bank(device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(texels (N, 3) float32, mip size per level (L,), first texel of each level (L,))."""
    import cv2

    n = _TEX_SIZE
    tiles = []
    for name in _TEX:
        if name in ("brick", "grass", "gravel", "camera") or name in _COLOUR_PHOTOS:
            img = _photo(name, n)
        else:
            img = _procedural(name, n).astype(np.float32)
        img = np.clip(img, 0.0, 1.0)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        tiles.append(img[::-1])  # bottom row first
    levels, sizes, offsets, start = [], [], [], 0
    for lvl in range(_MIP_LEVELS):
        s = n >> lvl
        lv = np.stack(
            [
                cv2.resize(np.ascontiguousarray(t), (s, s), interpolation=cv2.INTER_AREA)
                if s != n
                else t
                for t in tiles
            ]
        )
        levels.append(lv.reshape(-1, 3))
        sizes.append(s)
        offsets.append(start)
        start += lv.shape[0] * s * s
    texels = torch.as_tensor(np.concatenate(levels).astype(np.float32), device=device)
    return (texels, torch.tensor(sizes, device=device), torch.tensor(offsets, device=device))


# ---------------------------------------------------------------------------------------------
# Batching: scenes -> padded tensors. Padding primitives sit far outside every room, so they are
# never the nearest hit nor block a light; padding lights have zero intensity.
def _pad(rows: list[np.ndarray], fill: list[float]) -> np.ndarray:
    n = max(1, max(len(r) for r in rows))
    out = np.tile(np.asarray(fill, dtype=np.float64), (len(rows), n, 1))
    for i, r in enumerate(rows):
        if len(r):
            out[i, : len(r)] = r
    return out


def _collate(scenes: list[Scene], device: torch.device) -> dict[str, torch.Tensor]:
    def t(a: object) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float32), device=device)

    f = _FAR
    return {
        "room": t([s.room for s in scenes]),
        "wall_mat": t([s.wall_mat for s in scenes]).long(),
        "mats": t(_pad([s.materials for s in scenes], [0.0] * 7)),
        "openings": t(_pad([s.openings for s in scenes], [0.0] * 8)),
        "boxes": t(_pad([s.boxes for s in scenes], [f, f, f, 1e-3, 1e-3, 1e-3, 1.0, 0.0, 0.0])),
        "cyls": t(_pad([s.cylinders for s in scenes], [f, f, f, 1e-3, 1e-3, 0.0])),
        "sphs": t(_pad([s.spheres for s in scenes], [f, f, f, 1e-3, 0.0])),
        "lights": t(_pad([s.lights for s in scenes], [f, f, f, 0.0, 0.0, 0.0])),
        "ambient": t([s.ambient for s in scenes]),
        "cam_pos": t([s.cam_pos for s in scenes]),
        "cam_R": t([s.cam_R for s in scenes]),
        "K": t([s.K for s in scenes]),
    }


# ---------------------------------------------------------------------------------------------
# Ray/primitive intersections on flat (ray, primitive) pairs. Origins, directions and parameter
# columns are (K,) tensors, one entry per pair. Each returns t (K,) for hits with
# t_min < t < t_max (t in units of the direction vector, which need not be unit), +inf on a miss.
Vec = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _hit_boxes(o: Vec, d: Vec, p: list, t_min: float, t_max: float) -> torch.Tensor:
    """Slab test in each box's frame; boxes are rotated by yaw about the vertical axis."""
    cx, cy, cz, hx, hy, hz, c, s = p[:8]
    rx, rz = o[0] - cx, o[2] - cz
    lo = (c * rx + s * rz, o[1] - cy, c * rz - s * rx)  # ray origin in the box frame
    ld = (c * d[0] + s * d[2], d[1], c * d[2] - s * d[0])
    near = far = None
    for lo_k, ld_k, h in zip(lo, ld, (hx, hy, hz), strict=True):
        inv = 1.0 / ld_k
        ta, tb = (-h - lo_k) * inv, (h - lo_k) * inv
        n_k, f_k = torch.minimum(ta, tb), torch.maximum(ta, tb)
        near = n_k if near is None else torch.maximum(near, n_k)
        far = f_k if far is None else torch.minimum(far, f_k)
    return torch.where((near <= far) & (near > t_min) & (near < t_max), near, _INF)


def _hit_cylinders(o: Vec, d: Vec, p: list, t_min: float, t_max: float) -> torch.Tensor:
    """Vertical capped cylinders: the side quadric plus top and bottom discs."""
    cx, y0, cz, r, hgt = p[:5]
    rx, ry, rz = o[0] - cx, o[1] - y0, o[2] - cz
    a = d[0] * d[0] + d[2] * d[2]
    b = rx * d[0] + rz * d[2]
    c = rx * rx + rz * rz - r * r
    disc = b * b - a * c
    ts = (-b - torch.sqrt(disc.clamp(min=0.0))) / a
    ys = ry + ts * d[1]
    best = torch.where((disc >= 0) & (ys >= 0) & (ys <= hgt) & (ts > t_min), ts, _INF)
    for cap in (hgt, 0.0):
        tc = (cap - ry) / d[1]
        xc, zc = rx + tc * d[0], rz + tc * d[2]
        ok = (tc > t_min) & (xc * xc + zc * zc <= r * r)
        best = torch.minimum(best, torch.where(ok, tc, _INF))
    return torch.where(best < t_max, best, _INF)


def _hit_spheres(o: Vec, d: Vec, p: list, t_min: float, t_max: float) -> torch.Tensor:
    cx, cy, cz, r = p[:4]
    rx, ry, rz = o[0] - cx, o[1] - cy, o[2] - cz
    a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    b = rx * d[0] + ry * d[1] + rz * d[2]
    c = rx * rx + ry * ry + rz * rz - r * r
    disc = b * b - a * c
    t = (-b - torch.sqrt(disc.clamp(min=0.0))) / a
    return torch.where((disc >= 0) & (t > t_min) & (t < t_max), t, _INF)


def _bounds(key: str, prm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounding spheres (B, N, 3), (B, N) of one primitive kind, slightly inflated."""
    if key == "boxes":
        centre, r = prm[..., 0:3], prm[..., 3:6].square().sum(-1).sqrt()
    elif key == "cyls":
        half = prm[..., 4] / 2
        centre = torch.stack([prm[..., 0], prm[..., 1] + half, prm[..., 2]], dim=-1)
        r = (prm[..., 3].square() + half.square()).sqrt()
    else:
        centre, r = prm[..., 0:3], prm[..., 3]
    return centre, r * 1.001 + 1e-4


_PRIMS = ((_hit_boxes, "boxes"), (_hit_cylinders, "cyls"), (_hit_spheres, "sphs"))


# ---------------------------------------------------------------------------------------------
# Tile culling. Rays of one 8x8 pixel tile share an origin (the camera, or a light for shadow
# rays) and lie in a narrow cone around their mean direction; a primitive whose bounding sphere
# misses the cone (or lies beyond the tile's longest ray) cannot be hit by any of them. Only the
# surviving (ray, primitive) pairs are tested exactly. Culling only decides which pairs are
# tested, never a result, so it may use inexact math (acos, atomic sums) without breaking
# bit-exact determinism.
_TILE_PX = 8


@functools.lru_cache(maxsize=16)
def _tile_order(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Permutation of raster pixels into tile-major order, and the tile id of each position."""
    tiles_x = (w + _TILE_PX - 1) // _TILE_PX
    tid = (
        (np.arange(h) // _TILE_PX)[:, None] * tiles_x + (np.arange(w) // _TILE_PX)[None, :]
    ).ravel()
    perm = np.argsort(tid, kind="stable")
    return perm, tid[perm]


@dataclass
class _Tiles:
    of: torch.Tensor  # (M,) tile of each flat ray, non-decreasing
    start: torch.Tensor  # (G,) first flat ray of each tile
    size: torch.Tensor  # (G,)
    frame: torch.Tensor  # (G,) frame of each tile

    @staticmethod
    def build(tile_ids: torch.Tensor, n_frames: int) -> _Tiles:
        local = tile_ids - tile_ids[0]  # (Pc,) consecutive ids of this pass's positions
        g = int(local[-1]) + 1
        of = (torch.arange(n_frames, device=local.device)[:, None] * g + local).reshape(-1)
        size = torch.bincount(of, minlength=n_frames * g)
        start = torch.cumsum(size, 0) - size
        frame = torch.arange(n_frames, device=local.device).repeat_interleave(g)
        return _Tiles(of, start, size, frame)


def _cones(tiles: _Tiles, d: Vec, length: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per tile: unit axis (G, 3), half-angle (G, 1) and longest ray (G, 1) in metres."""
    g = tiles.start.shape[0]
    dn = torch.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).clamp(min=1e-12)
    u = torch.stack([x / dn for x in d], dim=1)  # (M, 3) unit directions
    axis = torch.zeros(g, 3, device=u.device).index_add_(0, tiles.of, u)
    axis = axis / axis.norm(dim=1, keepdim=True).clamp(min=1e-12)
    cos_in = (u * axis.index_select(0, tiles.of)).sum(1)
    cos_spread = torch.ones(g, device=u.device).scatter_reduce_(0, tiles.of, cos_in, "amin")
    reach = torch.zeros(g, device=u.device).scatter_reduce_(0, tiles.of, length, "amax")
    return axis, torch.acos(cos_spread.clamp(-1.0, 1.0))[:, None], reach[:, None]


def _cull(
    tiles: _Tiles, org: torch.Tensor, cones: tuple, key: str, prm: torch.Tensor
) -> torch.Tensor:
    """(G, N) bool: may a ray of tile g hit primitive n? Conservative."""
    axis, theta, reach = cones
    centre, radius = _bounds(key, prm)
    w = centre[tiles.frame] - org[tiles.frame][:, None, :]  # (G, N, 3)
    r = radius[tiles.frame]
    dist = w.norm(dim=-1).clamp(min=1e-12)
    beta = torch.acos(((w * axis[:, None, :]).sum(-1) / dist).clamp(-1.0, 1.0))
    alpha = torch.asin((r / dist).clamp(0.0, 1.0))
    return (dist <= r) | ((beta <= theta + alpha + 1e-3) & (dist - r <= reach + 1e-3))


def _pairs(tiles: _Tiles, cand: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Candidate (tile, primitive) pairs -> (flat ray, frame, primitive) per ray pair."""
    gt, n = cand.nonzero(as_tuple=True)
    cnt = tiles.size[gt]
    k = int(cnt.sum())
    first = torch.cumsum(cnt, 0) - cnt
    offset = torch.arange(k, device=cnt.device) - first.repeat_interleave(cnt, output_size=k)
    ray = tiles.start[gt].repeat_interleave(cnt, output_size=k) + offset
    return (
        ray,
        tiles.frame[gt].repeat_interleave(cnt, output_size=k),
        n.repeat_interleave(cnt, output_size=k),
    )


def _cast(
    s: dict,
    tiles: _Tiles,
    org: torch.Tensor,
    d: Vec,
    length: torch.Tensor,
    t_min: float,
    t_max: float,
    nearest: bool,
):
    """Rays org[frame] + t d (flat (M,)) against all furniture. nearest: (t, kind 1..3, index)
    of the closest hit (t = inf, kind 0 on a miss); otherwise whether anything is hit."""
    m = d[0].shape[0]
    t_best = torch.full((m,), _INF, device=d[0].device)
    kind = torch.zeros(m, dtype=torch.long, device=d[0].device)
    idx = torch.zeros_like(kind)
    hit_any = torch.zeros(m, dtype=torch.bool, device=d[0].device)
    cones = _cones(tiles, d, length)
    for kk, (fn, key) in enumerate(_PRIMS, start=1):
        prm = s[key]
        ray, frame, n = _pairs(tiles, _cull(tiles, org, cones, key, prm))
        if ray.numel() == 0:
            continue
        # index_select, not advanced indexing: several times faster on CPU
        cols = (
            prm.reshape(-1, prm.shape[2]).T.contiguous().index_select(1, frame * prm.shape[1] + n)
        )
        o = org.T.contiguous().index_select(1, frame)
        t = fn(tuple(o), tuple(x.index_select(0, ray) for x in d), list(cols), t_min, t_max)
        if not nearest:
            hit_any.index_fill_(0, ray[t < _INF], True)
            continue
        tk = torch.full((m,), _INF, device=t.device).scatter_reduce_(0, ray, t, "amin")
        win = (t < _INF) & (t == tk.index_select(0, ray))
        ik = torch.full((m,), prm.shape[1], device=t.device, dtype=torch.long)
        ik = ik.scatter_reduce_(0, ray[win], n[win], "amin")
        better = tk < t_best
        t_best = torch.where(better, tk, t_best)
        kind = torch.where(better, kk, kind)
        idx = torch.where(better, ik, idx)
    return (t_best, kind, idx) if nearest else hit_any


def _exit_slab(
    lo: torch.Tensor, hi: torch.Tensor, o: torch.Tensor, d: torch.Tensor
) -> torch.Tensor:
    """Where a ray inside the slab [lo, hi] of one axis leaves it (+inf when parallel)."""
    return torch.where(d > 0, (hi - o) / d, torch.where(d < 0, (lo - o) / d, _INF))


def _argmin3(t: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.minimum(torch.minimum(t[0], t[1]), t[2])
    return m, torch.where(t[0] == m, 0, torch.where(t[1] == m, 1, 2))


def _opening(s: dict, j: int) -> tuple[torch.Tensor, ...]:
    """Opening j as (B, 1) columns plus its wall plane and its niche box bounds."""
    act, w, a0, a1, y0, y1, dep, win = (s["openings"][:, j, c : c + 1] for c in range(8))
    on_x = w < 3.5  # walls 2 and 3 are x = const planes; their horizontal coordinate is z
    zero = torch.zeros_like(w)
    plane = torch.where(
        on_x,
        torch.where(w > 2.5, s["room"][:, 0:1], zero),
        torch.where(w > 4.5, s["room"][:, 2:3], zero),
    )
    outward = (w > 2.5) & (w < 3.5) | (w > 4.5)
    out_lo = torch.where(outward, plane, plane - dep)
    out_hi = torch.where(outward, plane + dep, plane)
    lo = (torch.where(on_x, out_lo, a0), y0, torch.where(on_x, a0, out_lo))
    hi = (torch.where(on_x, out_hi, a1), y1, torch.where(on_x, a1, out_hi))
    return act, w, a0, a1, y0, y1, win, on_x, plane, lo, hi


def _hit_room(s: dict, o: Vec, d: Vec) -> tuple[torch.Tensor, ...]:
    """Camera rays against the room's inside, continuing through openings into their niches."""
    zero = torch.zeros_like(s["room"][:, :1])
    t, ax = _argmin3([_exit_slab(zero, s["room"][:, k : k + 1], o[k], d[k]) for k in range(3)])
    p = [o[k] + t * d[k] for k in range(3)]
    wall = torch.where(ax == 0, 2 + (d[0] > 0).long(), 4 + (d[2] > 0).long())
    mat = torch.where(ax == 1, (d[1] > 0).long(), torch.gather(s["wall_mat"], 1, wall - 2))
    niche = torch.full_like(ax, -1)
    glass = torch.zeros_like(ax, dtype=torch.bool)
    for j in range(s["openings"].shape[1]):
        act, w, a0, a1, y0, y1, win, on_x, _, lo, hi = _opening(s, j)
        h = torch.where(on_x, p[2], p[0])
        inside = (act > 0) & (ax != 1) & (wall == w.long()) & (h > a0) & (h < a1)
        inside = inside & (p[1] > y0) & (p[1] < y1)
        tj, axj = _argmin3([_exit_slab(lo[k], hi[k], o[k], d[k]) for k in range(3)])
        is_glass = inside & (axj == torch.where(on_x, 0, 2)) & (win > 0)
        t, ax = torch.where(inside, tj, t), torch.where(inside, axj, ax)
        niche = torch.where(inside, j, niche)
        mat = torch.where(inside, torch.where(is_glass, 6, 4 + j), mat)
        glass = glass | is_glass
    return t, ax, mat, niche, glass


def _gather(prm: torch.Tensor, idx: torch.Tensor) -> list[torch.Tensor]:
    """Per-pixel parameters (B, P) of primitive idx (B, P) from prm (B, N, F); indices past N
    (pixels whose nearest hit is another kind of primitive) read the last row, unused."""
    idx = idx.clamp(max=prm.shape[1] - 1)
    return [torch.gather(prm[..., k], 1, idx) for k in range(prm.shape[2])]


def _diamond(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """A monotone stand-in for atan2(z, x) in [0, 4) built from exact arithmetic only."""
    s = x.abs() + z.abs()
    q = z / torch.where(s > 0, s, 1.0)
    return torch.where(x >= 0, torch.where(z >= 0, q, 4.0 + q), 2.0 - q)


def _surface(
    s: dict,
    p: list,
    d: Vec,
    kind: torch.Tensor,
    idx: torch.Tensor,
    ax: torch.Tensor,
    mat: torch.Tensor,
) -> tuple[list, torch.Tensor, torch.Tensor, torch.Tensor]:
    """World normal, texture coordinates (metres) and material of each pixel's hit."""
    # 1. room and niches: axis-aligned planes facing the camera
    n = [torch.where(ax == k, torch.where(d[k] > 0, -1.0, 1.0), 0.0) for k in range(3)]
    u = torch.where(ax == 0, p[2], p[0])
    v = torch.where(ax == 1, p[2], p[1])
    # 2. boxes: the face is the axis where the local hit point is proportionally farthest out
    cx, cy, cz, hx, hy, hz, c, sn, m = _gather(s["boxes"], idx)
    rx, rz = p[0] - cx, p[2] - cz
    lx, ly, lz = c * rx + sn * rz, p[1] - cy, c * rz - sn * rx
    _, face = _argmin3([-(lx.abs() / hx), -(ly.abs() / hy), -(lz.abs() / hz)])
    nl = [
        torch.where(face == k, torch.where(lk >= 0, 1.0, -1.0), 0.0)
        for k, lk in enumerate((lx, ly, lz))
    ]
    sel = kind == 1
    nb = (c * nl[0] - sn * nl[2], nl[1], sn * nl[0] + c * nl[2])
    n = [torch.where(sel, nb[k], n[k]) for k in range(3)]
    u = torch.where(sel, torch.where(face == 0, lz + hz, lx + hx), u)
    v = torch.where(sel, torch.where(face == 1, lz + hz, ly + hy), v)
    mat = torch.where(sel, m.long(), mat)
    # 3. cylinders: side or cap, whichever surface the hit point lies closest to
    cx, y0, cz, r, hgt, m = _gather(s["cyls"], idx)
    rx, ry, rz = p[0] - cx, p[1] - y0, p[2] - cz
    rad = torch.sqrt(rx * rx + rz * rz)
    side = (rad - r).abs() < torch.minimum((ry - hgt).abs(), ry.abs())
    inv = 1.0 / torch.where(rad > 0, rad, 1.0)
    nc = (
        torch.where(side, rx * inv, 0.0),
        torch.where(side, 0.0, torch.where(ry > 0.5 * hgt, 1.0, -1.0)),
        torch.where(side, rz * inv, 0.0),
    )
    sel = kind == 2
    n = [torch.where(sel, nc[k], n[k]) for k in range(3)]
    u = torch.where(sel, torch.where(side, _diamond(rx, rz) * (r * (math.pi / 2)), rx), u)
    v = torch.where(sel, torch.where(side, ry, rz), v)
    mat = torch.where(sel, m.long(), mat)
    # 4. spheres
    cx, cy, cz, r, m = _gather(s["sphs"], idx)
    inv = 1.0 / r
    ns = ((p[0] - cx) * inv, (p[1] - cy) * inv, (p[2] - cz) * inv)
    sel = kind == 3
    n = [torch.where(sel, ns[k], n[k]) for k in range(3)]
    arc = r * (math.pi / 2)
    u = torch.where(sel, _diamond(ns[0], ns[2]) * arc, u)
    v = torch.where(sel, (ns[1] + 1.0) * arc, v)
    mat = torch.where(sel, m.long(), mat)
    return n, u, v, mat


def _albedo(
    s: dict,
    mat: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    t: torch.Tensor,
    d: Vec,
    n: list,
    fx: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """Mip-mapped nearest texel lookup: albedo and emission (B, P, 3), emissive (B, P, 1)."""
    texels, sizes, offsets = _texture_bank(str(t.device))
    tex, r, g, b, contrast, tile, emis = _gather(s["mats"], mat)
    dn = torch.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    cos = (n[0] * d[0] + n[1] * d[1] + n[2] * d[2]).abs() / dn
    # texels under one pixel: footprint (distance / focal, widened at grazing angles) / texel size
    tpp = (t * dn / fx) / cos.clamp(min=0.2) * (_TEX_SIZE / tile)
    lvl = (tpp > 1.5).long() + (tpp > 3.0).long() + (tpp > 6.0).long() + (tpp > 12.0).long()
    size, off = sizes.index_select(0, lvl.reshape(-1)), offsets.index_select(0, lvl.reshape(-1))
    size, off = size.reshape(lvl.shape), off.reshape(lvl.shape)
    fu, fv = u / tile, v / tile
    iu = torch.minimum(((fu - torch.floor(fu)) * size).long(), size - 1)
    iv = torch.minimum(((fv - torch.floor(fv)) * size).long(), size - 1)
    flat = (off + (tex.long() * size + iv) * size + iu).reshape(-1)
    texel = texels.index_select(0, flat).reshape(*lvl.shape, 3)
    tint = torch.stack([r, g, b], dim=-1)
    k = contrast.unsqueeze(-1)
    albedo = tint * ((1.0 - k) + k * texel)
    emis = emis.unsqueeze(-1)
    return albedo, texel * tint * emis, emis > 0


def _niche_blocked(s: dict, so: list, v: list, niche: torch.Tensor) -> torch.Tensor:
    """Inside a niche, light only arrives through the opening's rectangle."""
    blocked = torch.zeros_like(niche, dtype=torch.bool)
    for j in range(s["openings"].shape[1]):
        _, _, a0, a1, y0, y1, _, on_x, plane, _, _ = _opening(s, j)
        tc = (plane - torch.where(on_x, so[0], so[2])) / torch.where(on_x, v[0], v[2])
        h = torch.where(on_x, so[2] + tc * v[2], so[0] + tc * v[0])
        y = so[1] + tc * v[1]
        through = (h > a0) & (h < a1) & (y > y0) & (y < y1)
        blocked = blocked | ((niche == j) & ~through)
    return blocked


def _shade(
    s: dict,
    tiles: _Tiles,
    p: list,
    n: list,
    albedo: torch.Tensor,
    niche: torch.Tensor,
    emissive: torch.Tensor,
) -> torch.Tensor:
    """Lambertian radiance: ambient plus point lights (inverse square) with shadow rays."""
    lin = albedo * s["ambient"].unsqueeze(1)
    so = [p[k] + n[k] * 2e-3 for k in range(3)]  # shadow rays end just off the surface
    for li in range(s["lights"].shape[1]):
        light = s["lights"][:, li]
        if not bool((light[:, 3:] > 0).any()):
            continue  # padding light in every frame of this pass: it would add exactly zero
        lp = [light[:, k : k + 1] for k in range(3)]
        v = [lp[k] - so[k] for k in range(3)]
        dist2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2]
        dist = torch.sqrt(dist2)
        ndl = (n[0] * v[0] + n[1] * v[1] + n[2] * v[2]) / dist
        shade = 0.3 + 0.7 * (v[1] / dist).clamp(min=0.0)  # lamp shade: dimmer upwards
        # shadow segments run from the light (one origin per frame) to the surface point
        seg = tuple((so[k] - lp[k]).reshape(-1) for k in range(3))
        blocked = _cast(
            s, tiles, light[:, :3], seg, dist.reshape(-1), 1e-5, 1.0, nearest=False
        ).reshape(dist2.shape)
        blocked = blocked | _niche_blocked(s, so, v, niche)
        irr = torch.where(blocked | (ndl <= 0) | emissive, 0.0, ndl * shade / (dist2 + 0.2))
        lin = lin + albedo * (irr.unsqueeze(-1) * light[:, None, 3:6])
    return lin


def _trace(s: dict, d: Vec, tiles: _Tiles) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Camera rays d (B, P) per component -> planar depth (B, P), radiance (B, P, 3), glass."""
    o = tuple(s["cam_pos"][:, k : k + 1] for k in range(3))
    t, ax, mat, niche, glass = _hit_room(s, o, d)
    shape = t.shape
    dn = torch.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    flat = tuple(x.reshape(-1) for x in d)
    tt, kind, idx = _cast(s, tiles, s["cam_pos"], flat, (t * dn).reshape(-1), _EPS, _INF, True)
    tt, kind, idx = tt.reshape(shape), kind.reshape(shape), idx.reshape(shape)
    on_room = tt >= t
    t = torch.where(on_room, t, tt)
    kind = torch.where(on_room, 0, kind)
    niche, glass = torch.where(on_room, niche, -1), glass & on_room
    p = [o[k] + t * d[k] for k in range(3)]
    n, u, v, mat = _surface(s, p, d, kind, idx, ax, mat)
    albedo, emission, emissive = _albedo(s, mat, u, v, t, d, n, s["K"][:, 0, 0:1])
    lin = _shade(s, tiles, p, n, albedo, niche, emissive[..., 0])
    return t, torch.where(emissive, emission, lin), glass


def _camera_rays(s: dict, h: int, w: int) -> Vec:
    """d = a * right + b * down + forward: unit forward component, so t is planar depth."""
    K, R = s["K"], s["cam_R"]
    dev = K.device
    a = (torch.arange(w, device=dev, dtype=torch.float32) - K[:, 0, 2:3]) / K[:, 0, 0:1]
    b = (torch.arange(h, device=dev, dtype=torch.float32) - K[:, 1, 2:3]) / K[:, 1, 1:2]
    return tuple(
        (
            R[:, k, 0, None, None] * a[:, None, :]
            + R[:, k, 1, None, None] * b[:, :, None]
            + R[:, k, 2, None, None]
        ).reshape(K.shape[0], h * w)
        for k in range(3)
    )


def render_scenes(
    scenes: list[Scene], cfg: SynthConfig = SynthConfig(), device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Render given scenes (with cameras) to the `render_batch` dict, plus "pose" (B, 4, 4)."""
    dev = torch.device(device)
    h, w = cfg.size
    n_px, nb = h * w, len(scenes)
    chunk = _CPU_CHUNK if dev.type == "cpu" else _GPU_CHUNK
    perm_np, tile_np = _tile_order(h, w)
    perm, tile_ids = torch.as_tensor(perm_np, device=dev), torch.as_tensor(tile_np, device=dev)
    depth = torch.empty(nb, n_px, device=dev)  # pixels in tile order until the end
    lin = torch.empty(nb, n_px, 3, device=dev)
    glass = torch.empty(nb, n_px, dtype=torch.bool, device=dev)
    per_pass = max(1, chunk // n_px)
    for b0 in range(0, nb, per_pass):
        s = _collate(scenes[b0 : b0 + per_pass], dev)
        d = tuple(x.index_select(1, perm) for x in _camera_rays(s, h, w))
        for p0 in range(0, n_px, chunk):
            sl = slice(p0, p0 + chunk)
            tiles = _Tiles.build(tile_ids[sl], d[0].shape[0])
            t, l_, g = _trace(s, tuple(x[:, sl] for x in d), tiles)
            depth[b0 : b0 + per_pass, sl], lin[b0 : b0 + per_pass, sl] = t, l_
            glass[b0 : b0 + per_pass, sl] = g
    # auto exposure: the median luminance (an exact order statistic) maps to mid grey
    lum = 0.25 * lin[..., 0] + 0.6 * lin[..., 1] + 0.15 * lin[..., 2]
    med = lum.kthvalue(max(1, n_px // 2), dim=1).values
    exposure = (0.3 / med.clamp(min=1e-6)).clamp(0.05, 50.0)[:, None, None]
    rgb = (torch.sqrt((lin * exposure).clamp(0.0, 1.0)) * 255.0 + 0.5).floor().to(torch.uint8)
    valid = torch.isfinite(depth) & (depth > 0) & (depth < cfg.max_depth)
    if cfg.glass_invalid:
        valid = valid & ~glass
    depth = torch.where(valid, depth, 0.0)
    raster = torch.empty_like(perm)
    raster[perm] = torch.arange(n_px, device=dev)  # tile position of each raster pixel
    pose = torch.zeros(nb, 4, 4)
    pose[:, :3, :3] = torch.as_tensor(np.stack([sc.cam_R for sc in scenes]), dtype=torch.float32)
    pose[:, :3, 3] = torch.as_tensor(np.stack([sc.cam_pos for sc in scenes]), dtype=torch.float32)
    pose[:, 3, 3] = 1.0
    return {
        "rgb": rgb.index_select(1, raster).reshape(nb, h, w, 3).permute(0, 3, 1, 2).contiguous(),
        "depth": depth.index_select(1, raster).reshape(nb, h, w),
        "valid": valid.index_select(1, raster).reshape(nb, h, w),
        "K": torch.as_tensor(np.stack([sc.K for sc in scenes]), dtype=torch.float32, device=dev),
        "pose": pose.to(dev),
    }


# ---------------------------------------------------------------------------------------------
# Scene sampling (numpy). Furniture is placed piece by piece with rejection against the AABBs of
# everything placed so far and of door/window clearances, so nothing intersects the walls or
# anything else; small items rest on the tops of tables, cabinets, crates and shelves.
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
    elif tex in _COLOUR_PHOTOS or kind == "outside":
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
    return np.array([_TEX_ID[tex], *tint, contrast, tile, emission])


def _overlaps(bb: np.ndarray, others: list[np.ndarray]) -> bool:
    if not others:
        return False
    o = np.asarray(others)
    return bool(np.any(np.all((bb[:3] < o[:, 3:]) & (o[:, :3] < bb[3:]), axis=1)))


class _Layout:
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
        if _overlaps(bb, self.solids + self.blocked):
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


def _wall_frame(room: np.ndarray, k: int, a: float, z_min: float) -> tuple[float, ...]:
    """Origin and yaw putting a piece's back (local z = z_min) 5 mm off wall k at position a."""
    c, s = _WALL_YAW[k]
    wx, wz = ((0.0, a), (room[0], a), (a, 0.0), (a, room[2]))[k]
    off = 0.005 - z_min
    return wx - s * off, wz + c * off, c, s


def _openings(rng: np.random.Generator, cfg: SynthConfig, lay: _Layout) -> np.ndarray:
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


def _furnish(rng: np.random.Generator, cfg: SynthConfig, lay: _Layout) -> None:
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
                x, z, c, s = _wall_frame(lay.room, k, a, min(_part_bounds(p)[0][2] for p in parts))
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


def _lights(rng: np.random.Generator, cfg: SynthConfig, lay: _Layout) -> np.ndarray:
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
            if not _overlaps(np.concatenate([pos - 0.1, pos + 0.1]), lay.solids):
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
    lay = _Layout(rng, room, list(reserved))
    for kind in ("floor", "ceiling", "wall", "wall", "wall", "wall", "outside"):
        lay.material(kind)  # fixed slots: 0 floor ... 4, 5 niche walls, 6 window view
    wall_mat = np.full(4, 2.0)
    if rng.uniform() < 0.3:
        wall_mat[rng.integers(4)] = 3.0  # accent wall
    openings = _openings(rng, cfg, lay)
    for j, row in enumerate(openings):
        if row[7] > 0:  # window reveal: the wall's own finish
            lay.materials[4 + j] = lay.materials[int(wall_mat[int(row[1]) - 2])].copy()
    _furnish(rng, cfg, lay)
    lights = _lights(rng, cfg, lay)
    ambient = rng.uniform(0.1, 0.35) * lights[:, 3:].mean(axis=0) / room[1] ** 2  # ~ one light
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


def _sample_camera(rng: np.random.Generator, cfg: SynthConfig, scene: Scene) -> Scene:
    lx, _, lz = scene.room
    solids = list(scene.solids)
    for _ in range(50):
        pos = np.array(
            [
                rng.uniform(0.35, lx - 0.35),
                rng.uniform(*cfg.camera_height),
                rng.uniform(0.35, lz - 0.35),
            ]
        )
        if not _overlaps(np.concatenate([pos - 0.3, pos + 0.3]), solids):
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
    yaw = math.atan2(f[0], f[2]) + rng.normal(0.0, 0.1)
    pitch = float(np.clip(math.atan2(f[1], np.hypot(f[0], f[2])), -0.7, 0.4)) + rng.normal(0, 0.05)
    fwd = [math.cos(pitch) * math.sin(yaw), math.sin(pitch), math.cos(pitch) * math.cos(yaw)]
    K = intrinsics(rng.uniform(*cfg.fov_deg), cfg.size)
    return dataclasses.replace(
        scene, cam_pos=pos, cam_R=look_rotation(fwd, rng.normal(0, 0.05)), K=K
    )


def _orbit(rng: np.random.Generator, cfg: SynthConfig, room: np.ndarray, n: int):
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


# ---------------------------------------------------------------------------------------------
# Public API
def _check(seed: int, indices: list[int]) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    bad = [i for i in indices if not isinstance(i, (int, np.integer)) or i < 0]
    if bad:
        raise ValueError(f"frame indices must be non-negative ints, got {bad[:5]}")


def frame_scene(seed: int, index: int, cfg: SynthConfig = SynthConfig()) -> Scene:
    """The scene and camera of frame `index` of `seed`, from its own random stream."""
    _check(seed, [index])
    rng = np.random.default_rng([_FRAME_TAG, int(seed), int(index)])
    return _sample_camera(rng, cfg, sample_scene(rng, cfg))


def sequence_scenes(seed: int, n_frames: int, cfg: SynthConfig = SynthConfig()) -> list[Scene]:
    """One scene seen along a smooth camera path, fixed intrinsics; furniture keeps off the path."""
    _check(seed, [n_frames])
    rng = np.random.default_rng([_SEQ_TAG, int(seed)])
    room = sample_room(rng, cfg)
    pos, fwd, roll, step = _orbit(rng, cfg, room, max(1, n_frames))
    keep = pos[:: max(1, int(0.2 / step))]
    reserved = [np.concatenate([p - [0.35, 0.4, 0.35], p + [0.35, 0.4, 0.35]]) for p in keep]
    reserved.append(np.concatenate([pos[-1] - [0.35, 0.4, 0.35], pos[-1] + [0.35, 0.4, 0.35]]))
    scene = sample_scene(rng, cfg, room, reserved)
    K = intrinsics(rng.uniform(*cfg.fov_deg), cfg.size)
    return [
        dataclasses.replace(scene, cam_pos=pos[i], cam_R=look_rotation(fwd[i], roll), K=K)
        for i in range(n_frames)
    ]


def render_batch(
    seed: int,
    indices: list[int],
    cfg: SynthConfig = SynthConfig(),
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """Frames `indices` of `seed`: rgb (B,3,H,W) uint8, depth (B,H,W) float32 metres (planar,
    0 where invalid), valid (B,H,W) bool, K (B,3,3) float32, pose (B,4,4) camera-to-world."""
    return render_scenes([frame_scene(seed, i, cfg) for i in indices], cfg, device)


def _sample(out: dict[str, torch.Tensor], i: int, name: str) -> DepthSample:
    return DepthSample(
        rgb=out["rgb"][i].permute(1, 2, 0).cpu().numpy(),
        depth=out["depth"][i].cpu().numpy(),
        valid=out["valid"][i].cpu().numpy(),
        name=name,
        intrinsics=out["K"][i].cpu().numpy(),
        extras={"pose": out["pose"][i].cpu().numpy()},
    )


def render_frame(
    seed: int, index: int, cfg: SynthConfig = SynthConfig(), device: str | torch.device = "cpu"
) -> DepthSample:
    """Frame `index` of `seed` as a DepthSample named synth_{seed}_{index:06d}."""
    return _sample(render_batch(seed, [index], cfg, device), 0, f"synth_{seed}_{index:06d}")


def render_sequence(
    seed: int,
    n_frames: int,
    cfg: SynthConfig = SynthConfig(),
    device: str | torch.device = "cpu",
    chunk: int = 16,
) -> Iterator[DepthSample]:
    """One scene recorded along a smooth camera path (extras["pose"] holds each camera pose)."""
    scenes = sequence_scenes(seed, n_frames, cfg)
    for c0 in range(0, n_frames, chunk):
        out = render_scenes(scenes[c0 : c0 + chunk], cfg, device)
        for i in range(out["rgb"].shape[0]):
            yield _sample(out, i, f"synth_seq_{seed}_{c0 + i:06d}")


class SyntheticStream:
    """Infinite deterministic training batches: batch `step` holds frames step*B ... step*B+B-1,
    so resuming at a step resumes the data exactly."""

    def __init__(
        self,
        seed: int,
        cfg: SynthConfig = SynthConfig(),
        batch_size: int = 8,
        device: str | torch.device = "cpu",
    ) -> None:
        _check(seed, [])
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.seed, self.cfg, self.batch_size, self.device = seed, cfg, batch_size, device

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        b = self.batch_size
        return render_batch(self.seed, list(range(step * b, step * b + b)), self.cfg, self.device)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        step = 0
        while True:
            yield self.batch(step)
            step += 1
