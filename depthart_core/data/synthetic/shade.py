"""Shading for the synthetic generator: surfaces, textures, point lights and shadow rays.

`trace_rays` takes one pass of camera rays to planar depth and linear radiance: nearest hit (room
or furniture, `synthetic.trace`), its world normal, texture coordinates and material, a mip-mapped
texel (`synthetic.textures`), then Lambertian shading: ambient light plus point lights (inverse
square, a lamp shade dimming them upwards) with hard shadows, one shadow ray per light and
pixel. Only correctly rounded arithmetic, min/max, comparisons and gathers are used per pixel.

Sources: point lights with shadow rays (Whitted, CACM 1980), mip-mapping (Williams, SIGGRAPH
1983).
"""

from __future__ import annotations

import math

import torch

from depthart_core.data.synthetic.textures import TEX_SIZE, texture_bank
from depthart_core.data.synthetic.trace import (
    INF,
    Tiles,
    Vec,
    argmin3,
    cast,
    hit_room,
    opening,
)

_EPS = 1e-4  # self-intersection tolerance along a camera ray (metres, direction z = 1)


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


Surf = tuple[Vec, torch.Tensor, torch.Tensor, torch.Tensor]  # normal, u, v (metres), material


def _box_surface(s: dict, p: list, idx: torch.Tensor) -> Surf:
    """Box faces: the face is the axis where the local hit point is proportionally farthest out."""
    cx, cy, cz, hx, hy, hz, c, sn, m = _gather(s["boxes"], idx)
    rx, rz = p[0] - cx, p[2] - cz
    lx, ly, lz = c * rx + sn * rz, p[1] - cy, c * rz - sn * rx
    _, face = argmin3([-(lx.abs() / hx), -(ly.abs() / hy), -(lz.abs() / hz)])
    nl = [
        torch.where(face == k, torch.where(lk >= 0, 1.0, -1.0), 0.0)
        for k, lk in enumerate((lx, ly, lz))
    ]
    nb = (c * nl[0] - sn * nl[2], nl[1], sn * nl[0] + c * nl[2])
    u = torch.where(face == 0, lz + hz, lx + hx)
    v = torch.where(face == 1, lz + hz, ly + hy)
    return nb, u, v, m


def _cylinder_surface(s: dict, p: list, idx: torch.Tensor) -> Surf:
    """Cylinders: side or cap, whichever surface the hit point lies closest to."""
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
    u = torch.where(side, _diamond(rx, rz) * (r * (math.pi / 2)), rx)
    v = torch.where(side, ry, rz)
    return nc, u, v, m


def _sphere_surface(s: dict, p: list, idx: torch.Tensor) -> Surf:
    cx, cy, cz, r, m = _gather(s["sphs"], idx)
    inv = 1.0 / r
    ns = ((p[0] - cx) * inv, (p[1] - cy) * inv, (p[2] - cz) * inv)
    arc = r * (math.pi / 2)
    return ns, _diamond(ns[0], ns[2]) * arc, (ns[1] + 1.0) * arc, m


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
    # room and niches: axis-aligned planes facing the camera
    n = [torch.where(ax == k, torch.where(d[k] > 0, -1.0, 1.0), 0.0) for k in range(3)]
    u = torch.where(ax == 0, p[2], p[0])
    v = torch.where(ax == 1, p[2], p[1])
    # furniture: kind 1 boxes, 2 cylinders, 3 spheres
    for k_prim, fn in enumerate((_box_surface, _cylinder_surface, _sphere_surface), start=1):
        nk, uk, vk, mk = fn(s, p, idx)
        sel = kind == k_prim
        n = [torch.where(sel, nk[k], n[k]) for k in range(3)]
        u, v = torch.where(sel, uk, u), torch.where(sel, vk, v)
        mat = torch.where(sel, mk.long(), mat)
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
    texels, sizes, offsets = texture_bank(str(t.device))
    tex, r, g, b, contrast, tile, emis = _gather(s["mats"], mat)
    dn = torch.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    cos = (n[0] * d[0] + n[1] * d[1] + n[2] * d[2]).abs() / dn
    # texels under one pixel: footprint (distance / focal, widened at grazing angles) / texel size
    tpp = (t * dn / fx) / cos.clamp(min=0.2) * (TEX_SIZE / tile)
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
        _, _, a0, a1, y0, y1, _, on_x, plane, _, _ = opening(s, j)
        tc = (plane - torch.where(on_x, so[0], so[2])) / torch.where(on_x, v[0], v[2])
        h = torch.where(on_x, so[2] + tc * v[2], so[0] + tc * v[0])
        y = so[1] + tc * v[1]
        through = (h > a0) & (h < a1) & (y > y0) & (y < y1)
        blocked = blocked | ((niche == j) & ~through)
    return blocked


def _shade(
    s: dict,
    tiles: Tiles,
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
        blocked = cast(
            s, tiles, light[:, :3], seg, dist.reshape(-1), 1e-5, 1.0, nearest=False
        ).reshape(dist2.shape)
        blocked = blocked | _niche_blocked(s, so, v, niche)
        irr = torch.where(blocked | (ndl <= 0) | emissive, 0.0, ndl * shade / (dist2 + 0.2))
        lin = lin + albedo * (irr.unsqueeze(-1) * light[:, None, 3:6])
    return lin


def trace_rays(s: dict, d: Vec, tiles: Tiles) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Camera rays d (B, P) per component -> planar depth (B, P), radiance (B, P, 3), glass."""
    o = tuple(s["cam_pos"][:, k : k + 1] for k in range(3))
    t, ax, mat, niche, glass = hit_room(s, o, d)
    shape = t.shape
    dn = torch.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])
    flat = tuple(x.reshape(-1) for x in d)
    tt, kind, idx = cast(s, tiles, s["cam_pos"], flat, (t * dn).reshape(-1), _EPS, INF, True)
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
