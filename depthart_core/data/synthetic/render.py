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
batch is bit-identical to the frame rendered alone on the same device.

This module renders: seeded frames, sequences and streams, and `render_scenes`, which batches
scenes into tensors, traces them and tone-maps the result. The package's other modules, lowest
first, are listed in `depthart_core.data.synthetic`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from depthart_core.data.sample import DepthSample
from depthart_core.data.synthetic.config import Scene, SynthConfig
from depthart_core.data.synthetic.corridor import (
    corridor_frame,
    corridor_sequence,
    warehouse_sequence,
)
from depthart_core.data.synthetic.scene import (
    intrinsics,
    look_rotation,
    orbit,
    sample_camera,
    sample_room,
    sample_scene,
)
from depthart_core.data.synthetic.shade import trace_rays
from depthart_core.data.synthetic.trace import Tiles, Vec, tile_order

__all__ = [
    "SyntheticStream",
    "frame_scene",
    "render_batch",
    "render_frame",
    "render_scenes",
    "render_sequence",
    "sequence_scenes",
]

_FRAME_TAG = 0x5F4A11  # domain tags: frames and sequences never share a random stream
_SEQ_TAG = 0x5E9F17
_FAR = 1.0e4  # padding primitives sit here, outside every room
_CPU_CHUNK = 65536  # pixels per tracing pass on CPU
_GPU_CHUNK = 1 << 22
_DEFAULT_CFG = SynthConfig()  # frozen, so one shared default is safe


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
# Rendering: camera rays, tracing passes, exposure
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
    scenes: list[Scene], cfg: SynthConfig = _DEFAULT_CFG, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Render given scenes (with cameras) to the `render_batch` dict, plus "pose" (B, 4, 4)."""
    dev = torch.device(device)
    h, w = cfg.size
    n_px, nb = h * w, len(scenes)
    chunk = _CPU_CHUNK if dev.type == "cpu" else _GPU_CHUNK
    perm_np, tile_np = tile_order(h, w)
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
            tiles = Tiles.build(tile_ids[sl], d[0].shape[0])
            t, l_, g = trace_rays(s, tuple(x[:, sl] for x in d), tiles)
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
# Public API
MAX_SEED = 2**32 - 1  # numpy splits a larger int into 32-bit words: [TAG, s + 2^32 k, 0] would
# be the stream of [TAG, s, k], another seed's frame


def _check(seed: int, indices: list[int]) -> None:
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be a non-negative int below 2**32, got {seed!r}")
    bad = [i for i in indices if not isinstance(i, (int, np.integer)) or not 0 <= i <= MAX_SEED]
    if bad:
        raise ValueError(f"frame indices must be non-negative ints below 2**32, got {bad[:5]}")


def frame_scene(seed: int, index: int, cfg: SynthConfig = _DEFAULT_CFG) -> Scene:
    """The scene and camera of frame `index` of `seed`, from its own random stream."""
    _check(seed, [index])
    rng = np.random.default_rng([_FRAME_TAG, int(seed), int(index)])
    if cfg.style in ("corridor", "warehouse"):
        return corridor_frame(rng, cfg)
    return sample_camera(rng, cfg, sample_scene(rng, cfg))


def sequence_scenes(seed: int, n_frames: int, cfg: SynthConfig = _DEFAULT_CFG) -> list[Scene]:
    """One scene seen along a smooth camera path, fixed intrinsics; furniture keeps off the path."""
    _check(seed, [n_frames])
    rng = np.random.default_rng([_SEQ_TAG, int(seed)])
    if cfg.style == "corridor":
        return corridor_sequence(rng, cfg, n_frames)
    if cfg.style == "warehouse":
        return warehouse_sequence(rng, cfg, n_frames)
    room = sample_room(rng, cfg)
    pos, fwd, roll, step = orbit(rng, cfg, room, max(1, n_frames))
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
    cfg: SynthConfig = _DEFAULT_CFG,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    """Frames `indices` of `seed`: rgb (B,3,H,W) uint8, depth (B,H,W) float32 metres (planar,
    0 where invalid), valid (B,H,W) bool, K (B,3,3) float32, pose (B,4,4) camera-to-world."""
    return render_scenes([frame_scene(seed, i, cfg) for i in indices], cfg, device)


def batch_sample(out: dict[str, torch.Tensor], i: int, name: str) -> DepthSample:
    """Frame `i` of a `render_scenes` / `render_batch` output as a DepthSample (pose in extras)."""
    return DepthSample(
        rgb=out["rgb"][i].permute(1, 2, 0).cpu().numpy(),
        depth=out["depth"][i].cpu().numpy(),
        valid=out["valid"][i].cpu().numpy(),
        name=name,
        intrinsics=out["K"][i].cpu().numpy(),
        extras={"pose": out["pose"][i].cpu().numpy()},
    )


def render_frame(
    seed: int, index: int, cfg: SynthConfig = _DEFAULT_CFG, device: str | torch.device = "cpu"
) -> DepthSample:
    """Frame `index` of `seed` as a DepthSample named synth_{seed}_{index:06d}."""
    return batch_sample(render_batch(seed, [index], cfg, device), 0, f"synth_{seed}_{index:06d}")


def render_sequence(
    seed: int,
    n_frames: int,
    cfg: SynthConfig = _DEFAULT_CFG,
    device: str | torch.device = "cpu",
    chunk: int = 16,
) -> Iterator[DepthSample]:
    """One scene recorded along a smooth camera path (extras["pose"] holds each camera pose)."""
    scenes = sequence_scenes(seed, n_frames, cfg)
    for c0 in range(0, n_frames, chunk):
        out = render_scenes(scenes[c0 : c0 + chunk], cfg, device)
        for i in range(out["rgb"].shape[0]):
            yield batch_sample(out, i, f"synth_seq_{seed}_{c0 + i:06d}")


class SyntheticStream:
    """Infinite deterministic training batches: batch `step` holds frames step*B ... step*B+B-1,
    so resuming at a step resumes the data exactly."""

    def __init__(
        self,
        seed: int,
        cfg: SynthConfig = _DEFAULT_CFG,
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


@functools.cache
def generator_digest() -> str:
    """16 hex digits of sha256 over this package's code: frames cached by a generator whose
    code differs are stale (a pool's file name only carries the seed and the settings)."""
    return source_digest(Path(__file__).parent)


def source_digest(folder: Path) -> str:
    """16 hex digits of sha256 over the code of `folder`'s Python files: their syntax trees
    without docstrings, so a comment or a docstring does not make every cached pool stale."""
    h = hashlib.sha256()
    for f in sorted(folder.glob("*.py")):
        tree = ast.parse(f.read_bytes())  # its own coding (UTF-8), not the locale's
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (
                isinstance(body, list)
                and body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
        h.update(f.name.encode())
        h.update(ast.dump(tree, include_attributes=False).encode())
    return h.hexdigest()[:16]
