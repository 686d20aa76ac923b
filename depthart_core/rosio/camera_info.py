"""The checks a sensor_msgs/CameraInfo passes before its intrinsics are used, and the CameraInfo
republished beside a depth image (no ROS imports).

One home for them, so the node (`depthart_ros.pipeline`, `depthart_ros.calibration`) and the
replay (`depthart_core.replay.frames`) refuse the same calibrations: `camera_info_problem`, a
calibration that describes no camera, and `aspect_problem`, one that cannot describe an image of
this shape without stretching its pixels; and publish the same camera: `depth_camera`, the
fields of the node's `depth/camera_info` (the replay's `--write-bag` writes them too).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from depthart_core.rosio.image import (
    camera_info_field,
    described_size,
    image_projection,
    scaled_intrinsics,
)

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


NO_ROI = {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False}


def depth_camera(info: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    """The fields but the header of the CameraInfo republished beside a depth image of `shape`
    (h, w, ...) that the calibration `info` describes (ROS 1 or ROS 2 layout), as plain Python
    values ("roi" a dict of RegionOfInterest's fields): `info`'s own, with the intrinsics
    rescaled when the image it describes (after its binning and ROI) is not the depth image's
    size, a binned or cropped one then republished as the depth's own camera (no binning, no
    ROI: `image_projection`'s K and P). A P of zeros (a driver that fills only K) goes out as
    [K | 0], what the node itself projects with, so consumers that read P (depth_image_proc)
    get a camera too."""
    k = camera_info_field(info, "k").tolist()
    p = camera_info_field(info, "p").tolist()
    if not any(p):
        p = [*k[0:3], 0.0, *k[3:6], 0.0, *k[6:9], 0.0]
    roi = info.roi
    out = {
        "height": int(info.height),
        "width": int(info.width),
        "distortion_model": str(info.distortion_model),
        "d": camera_info_field(info, "d").tolist(),
        "k": k,
        "r": camera_info_field(info, "r").tolist(),
        "p": p,
        "binning_x": int(info.binning_x),
        "binning_y": int(info.binning_y),
        "roi": {name: int(getattr(roi, name)) for name in NO_ROI if name != "do_rectify"},
    }
    out["roi"]["do_rectify"] = bool(roi.do_rectify)
    h, w = int(shape[0]), int(shape[1])
    size = (out["width"], out["height"])
    plain = out["binning_x"] <= 1 and out["binning_y"] <= 1 and out["roi"]["width"] == 0
    if plain and all(size) and size != (w, h):
        out["k"], out["p"] = scaled_intrinsics(k, p, size, (w, h))
        out["width"], out["height"] = w, h
    elif not plain and all(described_size(info)) and described_size(info) != (w, h):
        # binned or cropped for another size: the depth's own camera, as its cloud uses
        out["k"], out["p"] = image_projection(info, shape)
        out.update(width=w, height=h, binning_x=0, binning_y=0, roi=dict(NO_ROI))
    return out
