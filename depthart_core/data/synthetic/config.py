"""Settings and scene records shared by the synthetic generator's modules.

`SynthConfig` is what a caller sets (image size, camera, room and furniture ranges); `Scene` is
one sampled frame in world coordinates, the hand-off from scene sampling (numpy,
`synthetic.scene`) to the torch ray caster (`synthetic.render.render_scenes`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

STYLES = ("room", "corridor", "warehouse")


MAX_PIXELS = 4096 * 4096  # a frame larger than any camera; 100000x100000 ran out of memory
MAX_LENGTH_M = 1000.0  # a building; 1e39 m overflows the renderer's float32 (inf) and crashes it
LENGTHS = ("room_size", "room_height", "camera_height", "corridor_length")  # ranges in metres


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
    style: str = "room"  # room | corridor (synthetic.corridor: an aisle lined with shelving)
    corridor_length: tuple[float, float] = (18.0, 30.0)  # corridor style: length of the aisle
    # Probability that a frame is a close-up: the camera stands 0.3-1.2 m in front of a piece
    # of furniture, which then fills much of the view with the room behind it (as a robot sees
    # a chair or a bike it drives up to). 0 keeps every existing seed's frames unchanged.
    near_view: float = 0.0
    # Lighting variety, so that brightness says less about depth: the ambient term as a fraction
    # of one ceiling light, and the probability of a light at the camera (a flash or a robot's
    # headlamp, lighting near surfaces most). The defaults keep existing frames unchanged.
    ambient: tuple[float, float] = (0.1, 0.35)
    camera_light: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # a pair of numbers where the default is one; counts
            default, value = f.default, getattr(self, f.name)  # (size, lights, ...) whole ones
            if isinstance(default, tuple):
                ints = all(isinstance(v, int) for v in default)
                ok = isinstance(value, tuple) and len(value) == len(default) and all(
                    isinstance(v, int if ints else (int, float)) and not isinstance(v, bool)
                    and (ints or math.isfinite(v))
                    for v in value
                )  # fmt: skip
                if not ok:
                    kind = "whole numbers" if ints else "finite numbers"
                    raise ValueError(f"{f.name} must be {len(default)} {kind}, got {value!r}")
        h, w = self.size
        if h <= 0 or w <= 0 or h * w > MAX_PIXELS:
            raise ValueError(
                f"size must be positive (H, W) with at most {MAX_PIXELS} pixels (4096x4096), "
                f"got {self.size}"
            )
        for name in (
            "fov_deg",
            "lights",
            "objects",
            "openings",
            "room_size",
            "room_height",
            "camera_height",
            "corridor_length",
            "ambient",
        ):
            lo, hi = getattr(self, name)
            if lo > hi or lo < 0:
                raise ValueError(f"{name} must be an ordered non-negative range, got {(lo, hi)}")
        if not 1.0 <= self.fov_deg[0] <= self.fov_deg[1] < 179.0:
            raise ValueError(f"fov_deg must lie in [1, 179), got {self.fov_deg}")
        if self.lights[0] < 1:
            raise ValueError(f"at least one light is needed, got lights={self.lights}")
        for name in ("near_view", "camera_light"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {self.style!r}")
        if self.openings[1] > 2:
            raise ValueError(f"at most 2 openings are supported, got openings={self.openings}")
        if self.room_size[0] < 3.0 or self.room_height[0] < 2.2:
            raise ValueError(
                f"rooms must be at least 3 m wide and 2.2 m high, got room_size="
                f"{self.room_size}, room_height={self.room_height}"
            )
        if not (math.isfinite(self.max_depth) and self.max_depth > 0):
            raise ValueError(f"max_depth must be finite and > 0 metres, got {self.max_depth}")
        highest = {name: getattr(self, name)[1] for name in LENGTHS}
        for name, hi in (highest | {"max_depth": self.max_depth}).items():
            if hi > MAX_LENGTH_M:
                raise ValueError(f"{name} must stay within {MAX_LENGTH_M:g} m, got {hi}")
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
    def for_style(style: str, size: tuple[int, int] = (128, 128)) -> SynthConfig:
        """The generator's settings for a scene style. "room" is the training distribution;
        "corridor" differs from it on purpose (a long aisle between shelving seen by a ground
        robot: camera 2.0-2.4 m high instead of 0.6-1.9 m, a 95-110 degree field of view
        instead of 45-90, depth up to the far end of a 18-30 m aisle instead of a 3-7 m room)."""
        if style == "room":
            return SynthConfig(size=size)
        if style == "corridor":
            return SynthConfig(
                size=size,
                style="corridor",
                fov_deg=(95.0, 110.0),
                camera_height=(2.0, 2.4),
                room_size=(3.0, 3.8),  # the aisle's width
                room_height=(2.8, 3.4),
                lights=(3, 4),
                openings=(0, 0),
                max_depth=30.0,
            )
        if style == "warehouse":  # corridor aisles, driven with turns, a mast from 0.3 m, movers
            return dataclasses.replace(
                SynthConfig.for_style("corridor", size),
                style="warehouse",
                camera_height=(0.3, 1.9),
                room_size=(3.4, 4.0),
            )
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")

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
