"""Fill a sensor_msgs/PointCloud2 from `depthart_core.pointcloud` arrays (rclpy or rosbags
message classes alike: the message and its PointField class are passed in)."""

from __future__ import annotations

import array
import sys
from typing import Any

import numpy as np

from depthart_core.pointcloud import POINT_DTYPE, POINT_FIELDS, POINT_STEP

FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32


def set_point_cloud(msg: Any, cloud_hw: np.ndarray, point_field: type) -> Any:
    """An organized cloud (h, w) of POINT_DTYPE -> msg's height, width, fields, steps and data
    (little-endian float32 x, y, z, rgb; is_dense false: invalid pixels are NaN points)."""
    if cloud_hw.dtype != POINT_DTYPE or cloud_hw.ndim != 2:
        raise ValueError(f"cloud must be 2-D of POINT_DTYPE, got {cloud_hw.dtype} {cloud_hw.shape}")
    if sys.byteorder != "little":
        raise RuntimeError("point clouds are written little-endian; this host is big-endian")
    h, w = cloud_hw.shape
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(cloud_hw).view(np.uint8).reshape(-1))
    msg.height, msg.width = int(h), int(w)
    msg.fields = [point_field(name=n, offset=o, datatype=FLOAT32, count=1) for n, o in POINT_FIELDS]
    msg.is_bigendian = False
    msg.point_step = POINT_STEP
    msg.row_step = POINT_STEP * int(w)
    msg.data = data
    msg.is_dense = False
    return msg
