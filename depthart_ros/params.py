"""The parameters of `depthart_node`: name, default (which fixes the type), description, choices or
range, and whether it is read only at start-up; plus the check that names a bad value.

Kept free of rclpy and ROS messages so the table and its validation are testable on their own;
`depthart_ros.node` turns each `Param` into a `ParameterDescriptor` (ROS 2 parameter API).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from depthart_core.colormap import COLORMAPS
from depthart_core.config import PRECISIONS
from depthart_core.ground_plane import NORMALS as GROUND_NORMALS
from depthart_core.metric_scale import FIT_MODES
from depthart_core.pointcloud import IMAGES as POINT_IMAGES
from depthart_core.runtime import BACKENDS
from depthart_core.runtime.threads import MAX_THREADS
from depthart_core.sampling import SAMPLING_NAMES

RELIABILITY = ("best_effort", "reliable")
MIN_RATE_HZ = 0.1  # a slower cap would leave the node silent for minutes to days
DEBUG_MAX_INFERENCE_MS = 5000.0  # the test hook may slow a frame, never stall the node
SAMPLINGS = SAMPLING_NAMES  # greedy | soft | paper
_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?)$")
# the head's log u is clamped to [-9, 2] (depthart_core.uncertainty_head.LOG_U_RANGE): u <= 7.4,
# so an uncertainty.max of 10 keeps every pixel with a finite uncertainty
UNCERTAINTY_MAX_HI = 10.0


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    read_only: bool = False  # read at start-up only (model, QoS, which topics exist)


_RO = {"read_only": True}
PARAMS: tuple[Param, ...] = (
    # read at start-up only
    Param("checkpoint", "", "DepthART .safetensors file; '' = the shipped default", **_RO),
    Param("backend", "auto", "auto = tensorrt, else onnxruntime, else torch", BACKENDS, **_RO),
    Param("device", "cpu", "cpu, cuda or cuda:<index>", **_RO),
    Param("precision", "fp32", "inference precision", PRECISIONS, **_RO),
    Param(
        "threads",
        0,
        "CPU inference threads; 0 = $OMP_NUM_THREADS if set, else half the cores, at most 4",
        lo=0,
        hi=MAX_THREADS,
        **_RO,
    ),
    Param("letterbox", False, "aspect-preserving resize + padding (else stretch)", **_RO),
    Param(
        "flip_average",
        False,
        "also run each frame mirrored and average (more accurate, half the frame rate)",
        **_RO,
    ),
    Param("vae", "", "VAR's vae_ch160v4096z32.pth for an authors' checkpoint without it", **_RO),
    Param(
        "sampling",
        "soft",
        "soft (probability-weighted code embeddings), greedy, or paper's sampling (torch)",
        SAMPLINGS,
        **_RO,
    ),
    Param("sampling_seed", 0, "seed of sampling=paper (repeatable)", lo=0, hi=2**31 - 1, **_RO),
    Param(
        "image_transport",
        "raw",
        "raw: sensor_msgs/Image on `image`; compressed: image_transport's CompressedImage "
        "(JPEG/PNG) on `image`'s resolved name + /compressed",
        ("raw", "compressed"),
        **_RO,
    ),
    Param("use_camera_info", True, "subscribe camera_info, republish depth/camera_info", **_RO),
    Param("input_qos.reliability", "best_effort", "image subscription", RELIABILITY, **_RO),
    Param("input_qos.depth", 1, "image subscription history depth", lo=1, hi=100, **_RO),
    Param("output_qos.reliability", "reliable", "depth publishers", RELIABILITY, **_RO),
    Param("output_qos.depth", 5, "depth publishers history depth", lo=1, hi=100, **_RO),
    Param("sparse_depth.enabled", False, "subscribe sparse_depth for metric scale", **_RO),
    Param(
        "sparse_depth.transport",
        "raw",
        "raw: sensor_msgs/Image on `sparse_depth`; compressedDepth: image_transport's "
        "CompressedImage (PNG or RVL) on `sparse_depth`'s resolved name + /compressedDepth",
        ("raw", "compressedDepth"),
        **_RO,
    ),
    Param("ground_plane.enabled", False, "metres from the floor and the camera height", **_RO),
    Param(
        "ground_plane.imu",
        False,
        "subscribe imu (sensor_msgs/Imu): each frame's up from its attitude, not the fixed prior",
        **_RO,
    ),
    Param(
        "ground_plane.vertical_lines",
        False,
        "camera only: each frame's up from the image's vertical lines, else the horizon's "
        "vanishing points (a real camera's resolution; the prior where none); an IMU in time wins",
        **_RO,
    ),
    # settable at runtime
    Param("colormap", "turbo", "colormap of depth/colored", COLORMAPS),
    Param("publish_colored", True, "publish depth/colored while it has subscribers"),
    Param("publish_points", True, "publish depth/points (XYZRGB) while it has subscribers"),
    Param(
        "points.stride", 2, "every Nth pixel of each row and column becomes a point", lo=1, hi=16
    ),
    Param(
        "points.image",
        "rectified",
        "rectified: project with P; raw: undistort with K, D",
        POINT_IMAGES,
    ),
    Param(
        "camera_info.wait_s",
        0.1,
        "wait this long after an image for the camera_info with its stamp",
        lo=0,
        hi=5,
    ),
    Param(
        "max_input_pixels",
        4096 * 4096,
        "frames with more pixels are refused (counted as too_large) before decoding",
        lo=4,
        hi=2**31 - 1,
    ),
    Param(
        "max_rate_hz",
        0.0,
        f"cap on the inference rate; 0 = no cap, else >= {MIN_RATE_HZ:g}",
        lo=0,
        hi=1e3,
    ),
    Param("max_frame_age_s", 0.0, "drop frames older than this; 0 = off", lo=0, hi=60),
    Param(
        "input_timeout_s",
        10.0,
        "diagnostics warn when no image came for this long while active; 0 = off",
        lo=0,
        hi=3600,
    ),
    Param(
        "min_depth",
        0.0,
        "output values below become -inf (REP 117); 0 = off; with a metric "
        "source in metres, and a frame that falls back to relative depth is not bounded",
        lo=0,
        hi=1e4,
    ),
    Param(
        "max_depth",
        0.0,
        "output values above become +inf (REP 117); 0 = off; metres with a "
        "metric source, as min_depth",
        lo=0,
        hi=1e4,
    ),
    Param("sparse_depth.mode", "scale", "median-ratio scale, or scale + shift", FIT_MODES),
    Param("sparse_depth.max_stamp_diff_s", 0.05, "stamp tolerance image/sparse", lo=0, hi=10),
    Param(
        "sparse_depth.wait_s",
        0.05,
        "wait this long after an image for a sparse cue of its stamp still to come",
        lo=0,
        hi=5,
    ),
    Param("sparse_depth.min_points", 20, "fewer overlapping points -> relative", lo=2, hi=1e7),
    Param("sparse_depth.min_m", 0.05, "sparse values below (m) are ignored", lo=0, hi=1e4),
    Param(
        "sparse_depth.max_m",
        200.0,
        "sparse values above (m) are ignored; 0 = no bound",
        lo=0,
        hi=1e4,
    ),
    Param(
        "ground_plane.camera_height_m",
        1.0,
        "camera optical centre above the floor (m)",
        lo=1e-3,
        hi=100.0,
    ),
    Param(
        "ground_plane.pitch_deg",
        0.0,
        "prior camera pitch, positive = looking down (deg)",
        lo=-89.0,
        hi=89.0,
    ),
    Param(
        "ground_plane.roll_deg",
        0.0,
        "prior camera roll, positive = right side down (deg)",
        lo=-89.0,
        hi=89.0,
    ),
    Param(
        "ground_plane.max_normal_angle_deg",
        35.0,
        "floor normal tolerance around the up (the prior's, or the IMU's with ground_plane.imu)",
        lo=1.0,
        hi=89.0,
    ),
    Param(
        "ground_plane.floor_region",
        0.5,
        "lower fraction of the image searched for the floor",
        lo=0.05,
        hi=1.0,
    ),
    Param(
        "ground_plane.min_inlier_fraction",
        0.3,
        "fewer floor inliers -> relative output",
        lo=0.01,
        hi=1.0,
    ),
    Param(
        "ground_plane.normal",
        "fit",
        "fit: distance along the fitted floor normal; prior: along the pitch_deg prior",
        GROUND_NORMALS,
    ),
    Param(
        "ground_plane.window",
        9,
        "median of this many frames' scales; 1 = each frame's own (best with ground_plane.imu; "
        "a jump above 1.3x is still held, at most 2 frames, until it persists 3)",
        lo=1,
        hi=100,
    ),
    Param(
        "ground_plane.tilt",
        0.0,
        "with a measured up (ground_plane.imu or vertical_lines) and normal prior: share of the "
        "fitted floor's tilt from that up taken out of the depth, not only its scale (0 = scale "
        "only; 0.75 measured)",
        lo=0.0,
        hi=1.0,
    ),
    Param(
        "ground_plane.lines_agree_deg",
        0.0,
        "with ground_plane.vertical_lines: a floor fitted further than this from the lines' up "
        "means one of the two is wrong; the frame is fitted along the prior instead (deg; 0 = off)",
        lo=0.0,
        hi=89.0,
    ),
    Param(
        "ground_plane.imu_max_stamp_diff_s",
        0.05,
        "stamp tolerance image/imu; without an imu message that near, the prior is used",
        lo=0,
        hi=10,
    ),
    Param(
        "uncertainty.max",
        0.15,
        "depth/filtered drops pixels whose expected relative error (depth/uncertainty) is "
        "above this: 0.15 = more than ~15 % off",
        lo=0.0,
        hi=UNCERTAINTY_MAX_HI,
    ),
    Param(
        "debug_min_inference_ms",
        0.0,
        "TEST HOOK: pad each inference to this",
        lo=0,
        hi=DEBUG_MAX_INFERENCE_MS,
    ),
)
# a whole number given to one of these (`max_rate_hz: 5`) is taken as a double by the node
FLOAT_PARAMS = frozenset(p.name for p in PARAMS if isinstance(p.default, float))


def validate_params(values: dict[str, Any]) -> str | None:
    """The reason the parameter set is invalid (naming parameter and value), or None."""
    problems = param_problems(values)
    return problems[0] if problems else None


def param_problems(values: dict[str, Any]) -> list[str]:
    """Every reason the parameter set is invalid, each naming parameter and value, in order."""
    found: list[str] = []
    specs = {p.name: p for p in PARAMS}
    for name, value in values.items():
        p = specs.get(name)
        if p is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            found.append(f"{name}={value!r} is not a finite number")
            continue
        if p.choices and value not in p.choices:
            found.append(f"{name}={value!r} is not one of {list(p.choices)}")
        elif p.lo is not None and not p.lo <= value <= p.hi:
            found.append(f"{name}={value!r} is outside [{p.lo:g}, {p.hi:g}]")
    rate = values.get("max_rate_hz", 0.0)
    if 0 < rate < MIN_RATE_HZ:
        found.append(
            f"max_rate_hz={rate!r} would leave the node silent for {1 / rate:.0f} s between "
            f"frames: use 0 (no cap) or at least {MIN_RATE_HZ:g}"
        )
    if not _DEVICE_RE.match(str(values.get("device", "cpu"))):
        found.append(f"device={values['device']!r} must be cpu, cuda or cuda:<index>")
    if values.get("ground_plane.enabled", False) and not values.get("use_camera_info", True):
        found.append(
            "ground_plane.enabled=True needs the camera's intrinsics to find the floor, but "
            "use_camera_info=False does not subscribe camera_info: set use_camera_info true"
        )
    if not values.get("ground_plane.enabled", False):  # they would be silently unused
        used = [k for k in ("ground_plane.imu", "ground_plane.vertical_lines") if values.get(k)]
        if values.get("ground_plane.tilt", 0.0) > 0:
            used.append("ground_plane.tilt")
        if used:
            found.append(f"{', '.join(used)} set, but ground_plane.enabled is false: they only "
                         "take effect with the ground-plane scale on")  # fmt: skip
    tilt = values.get("ground_plane.tilt", 0.0)
    measured = values.get("ground_plane.imu", False) or values.get(
        "ground_plane.vertical_lines", False
    )
    if tilt > 0 and not measured:
        found.append(
            f"ground_plane.tilt={tilt!r} straightens the floor toward a measured up: it needs "
            "ground_plane.imu or ground_plane.vertical_lines true"
        )
    if tilt > 0 and values.get("ground_plane.normal", "fit") != "prior":
        found.append(
            f"ground_plane.tilt={tilt!r} measures the floor along the measured up: it needs "
            f"ground_plane.normal 'prior', got {values.get('ground_plane.normal', 'fit')!r}"
        )
    for lo, hi in (("min_depth", "max_depth"), ("sparse_depth.min_m", "sparse_depth.max_m")):
        if values.get(hi, 0) > 0 and values.get(lo, 0) >= values[hi]:
            found.append(f"{lo}={values[lo]!r} must be below {hi}={values[hi]!r}")
    return found
