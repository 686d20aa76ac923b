"""Vectorized ray casting for the synthetic generator: primitive hits, tile culling, the room.

Ray/primitive intersections work on flat (ray, primitive) pairs. Origins, directions and
parameter columns are (K,) tensors, one entry per pair. Each returns t (K,) for hits with
t_min < t < t_max (t in units of the direction vector, which need not be unit), +inf on a miss.

Tile culling: rays of one 8x8 pixel tile share an origin (the camera, or a light for shadow
rays) and lie in a narrow cone around their mean direction; a primitive whose bounding sphere
misses the cone (or lies beyond the tile's longest ray) cannot be hit by any of them. Only the
surviving (ray, primitive) pairs are tested exactly. Culling only decides which pairs are
tested, never a result, so it may use inexact math (acos, atomic sums) without breaking
bit-exact determinism.

The room is an axis-aligned box seen from inside; rays that reach a door or window continue
into the opening's niche box.

Sources: ray/box slab test (Kay & Kajiya, SIGGRAPH 1986; Williams et al., JGT 2005), ray/sphere
and ray/cylinder quadrics (Pharr, Jakob & Humphreys, PBRT 3rd ed., sec. 3.2 and 3.6).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

INF = float("inf")

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
    return torch.where((near <= far) & (near > t_min) & (near < t_max), near, INF)


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
    best = torch.where((disc >= 0) & (ys >= 0) & (ys <= hgt) & (ts > t_min), ts, INF)
    for cap in (hgt, 0.0):
        tc = (cap - ry) / d[1]
        xc, zc = rx + tc * d[0], rz + tc * d[2]
        ok = (tc > t_min) & (xc * xc + zc * zc <= r * r)
        best = torch.minimum(best, torch.where(ok, tc, INF))
    return torch.where(best < t_max, best, INF)


def _hit_spheres(o: Vec, d: Vec, p: list, t_min: float, t_max: float) -> torch.Tensor:
    cx, cy, cz, r = p[:4]
    rx, ry, rz = o[0] - cx, o[1] - cy, o[2] - cz
    a = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    b = rx * d[0] + ry * d[1] + rz * d[2]
    c = rx * rx + ry * ry + rz * rz - r * r
    disc = b * b - a * c
    t = (-b - torch.sqrt(disc.clamp(min=0.0))) / a
    return torch.where((disc >= 0) & (t > t_min) & (t < t_max), t, INF)


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
# Tile culling (see the module docstring).
_TILE_PX = 8


@functools.lru_cache(maxsize=16)
def tile_order(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Permutation of raster pixels into tile-major order, and the tile id of each position."""
    tiles_x = (w + _TILE_PX - 1) // _TILE_PX
    tid = (
        (np.arange(h) // _TILE_PX)[:, None] * tiles_x + (np.arange(w) // _TILE_PX)[None, :]
    ).ravel()
    perm = np.argsort(tid, kind="stable")
    return perm, tid[perm]


@dataclass
class Tiles:
    of: torch.Tensor  # (M,) tile of each flat ray, non-decreasing
    start: torch.Tensor  # (G,) first flat ray of each tile
    size: torch.Tensor  # (G,)
    frame: torch.Tensor  # (G,) frame of each tile

    @staticmethod
    def build(tile_ids: torch.Tensor, n_frames: int) -> Tiles:
        local = tile_ids - tile_ids[0]  # (Pc,) consecutive ids of this pass's positions
        g = int(local[-1]) + 1
        of = (torch.arange(n_frames, device=local.device)[:, None] * g + local).reshape(-1)
        size = torch.bincount(of, minlength=n_frames * g)
        start = torch.cumsum(size, 0) - size
        frame = torch.arange(n_frames, device=local.device).repeat_interleave(g)
        return Tiles(of, start, size, frame)


def _cones(tiles: Tiles, d: Vec, length: torch.Tensor) -> tuple[torch.Tensor, ...]:
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
    tiles: Tiles, org: torch.Tensor, cones: tuple, key: str, prm: torch.Tensor
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


def _pairs(tiles: Tiles, cand: torch.Tensor) -> tuple[torch.Tensor, ...]:
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


def cast(
    s: dict,
    tiles: Tiles,
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
    t_best = torch.full((m,), INF, device=d[0].device)
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
            hit_any.index_fill_(0, ray[t < INF], True)
            continue
        tk = torch.full((m,), INF, device=t.device).scatter_reduce_(0, ray, t, "amin")
        win = (t < INF) & (t == tk.index_select(0, ray))
        ik = torch.full((m,), prm.shape[1], device=t.device, dtype=torch.long)
        ik = ik.scatter_reduce_(0, ray[win], n[win], "amin")
        better = tk < t_best
        t_best = torch.where(better, tk, t_best)
        kind = torch.where(better, kk, kind)
        idx = torch.where(better, ik, idx)
    return (t_best, kind, idx) if nearest else hit_any


# ---------------------------------------------------------------------------------------------
# The room and its openings: exit points of axis-aligned slabs, niches behind doors and windows
def _exit_slab(
    lo: torch.Tensor, hi: torch.Tensor, o: torch.Tensor, d: torch.Tensor
) -> torch.Tensor:
    """Where a ray inside the slab [lo, hi] of one axis leaves it (+inf when parallel)."""
    return torch.where(d > 0, (hi - o) / d, torch.where(d < 0, (lo - o) / d, INF))


def argmin3(t: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    m = torch.minimum(torch.minimum(t[0], t[1]), t[2])
    return m, torch.where(t[0] == m, 0, torch.where(t[1] == m, 1, 2))


def opening(s: dict, j: int) -> tuple[torch.Tensor, ...]:
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


def hit_room(s: dict, o: Vec, d: Vec) -> tuple[torch.Tensor, ...]:
    """Camera rays against the room's inside, continuing through openings into their niches."""
    zero = torch.zeros_like(s["room"][:, :1])
    t, ax = argmin3([_exit_slab(zero, s["room"][:, k : k + 1], o[k], d[k]) for k in range(3)])
    p = [o[k] + t * d[k] for k in range(3)]
    wall = torch.where(ax == 0, 2 + (d[0] > 0).long(), 4 + (d[2] > 0).long())
    mat = torch.where(ax == 1, (d[1] > 0).long(), torch.gather(s["wall_mat"], 1, wall - 2))
    niche = torch.full_like(ax, -1)
    glass = torch.zeros_like(ax, dtype=torch.bool)
    for j in range(s["openings"].shape[1]):
        act, w, a0, a1, y0, y1, win, on_x, _, lo, hi = opening(s, j)
        h = torch.where(on_x, p[2], p[0])
        inside = (act > 0) & (ax != 1) & (wall == w.long()) & (h > a0) & (h < a1)
        inside = inside & (p[1] > y0) & (p[1] < y1)
        tj, axj = argmin3([_exit_slab(lo[k], hi[k], o[k], d[k]) for k in range(3)])
        is_glass = inside & (axj == torch.where(on_x, 0, 2)) & (win > 0)
        t, ax = torch.where(inside, tj, t), torch.where(inside, axj, ax)
        niche = torch.where(inside, j, niche)
        mat = torch.where(inside, torch.where(is_glass, 6, 4 + j), mat)
        glass = glass | is_glass
    return t, ax, mat, niche, glass
