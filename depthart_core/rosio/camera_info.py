"""The checks a sensor_msgs/CameraInfo passes before its intrinsics are used (no ROS imports).

One home for both, so the node (`depthart_ros.pipeline`, `depthart_ros.calibration`) and the
replay (`depthart_core.replay.frames`) refuse the same calibrations: `camera_info_problem`, a
calibration that describes no camera, and `aspect_problem`, one that cannot describe an image of
this shape without stretching its pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from depthart_core.rosio.image import camera_info_field, described_size

MIN_FOCAL_PX = 1e-3  # below: x = (u - cx) z / f overflows float32 clouds (denormals included)
ASPECT_TOLERANCE = 0.01  # a calibration of another aspect than the image is not rescaled


def camera_info_problem(info: Any) -> tuple[str, str] | None:
    """(cause, text) when a sensor_msgs/CameraInfo cannot describe the depth image, else None:
    NaN/Inf anywhere in D, K, R, P, a focal length in K or P that is not positive (an all-zero
    K is ROS's "uncalibrated"; an all-zero P with a good K is a driver that fills only K, and
    stands for [K | 0]), or one below `MIN_FOCAL_PX` (1e-320 once passed as positive).
    Republishing it would hand consumers such as depth_image_proc a camera that projects every
    pixel to NaN or infinity."""
    arrays = {name: camera_info_field(info, name) for name in "dkrp"}
    bad = [name.upper() for name, a in arrays.items() if not np.isfinite(a).all()]
    if bad:
        return "non_finite", f"non-finite values in {', '.join(bad)}"
    k, p = arrays["k"], arrays["p"]
    fx, fy = (k[0], k[4]) if k.size == 9 else (0.0, 0.0)
    px, py = (p[0], p[5]) if p.size == 12 else (0.0, 0.0)
    if p.size == 12 and not p.any():  # a driver that fills only K: P is taken as [K | 0]
        px, py = fx, fy
    focals = f"K fx={fx:g} fy={fy:g}, P fx={px:g} fy={py:g}"
    if min(fx, fy, px, py) <= 0:
        return "zero_focal", f"focal lengths must be positive: {focals}"
    if min(fx, fy, px, py) < MIN_FOCAL_PX:
        return "tiny_focal", f"focal lengths below {MIN_FOCAL_PX:g} px describe no camera: {focals}"
    return None


def aspect_problem(info: Any, shape: tuple[int, ...]) -> str | None:
    """Why a calibration cannot describe an image of `shape` (h, w): the image it describes
    (after binning and ROI) has another aspect ratio, so rescaling would stretch the pixels
    (a latched calibration of the camera's other mode); None when it can, or states no size."""
    w0, h0 = described_size(info)
    h, w = int(shape[0]), int(shape[1])
    if not (w0 and h0) or abs((w0 / h0) / (w / h) - 1.0) <= ASPECT_TOLERANCE:
        return None
    return (
        f"camera_info describes a {w0}x{h0} image, this one is {w}x{h}: another aspect ratio "
        "(a calibration of another camera mode?)"
    )
