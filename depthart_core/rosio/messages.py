"""ROS message construction and (de)serialisation with the `rosbags` typestore (no ROS install).

Messages are built for writing from the newest ROS 2 typestore of the installed rosbags
(Kilted). Image conversion goes through `depthart_core.rosio.image` (the node's own) and follows
REP-118 units as `depth_image_proc` consumes them: 32FC1 depth is metres (non-finite = invalid),
16UC1/mono16 depth is millimetres (0 = invalid). ROS 1 Image and CameraInfo messages read from
a bag are rebuilt as ROS 2 ones by `to_ros2`.

Format references: sensor_msgs/Image and CameraInfo message definitions, REP 117/118.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from depthart_core.rosio import compressed
from depthart_core.rosio import image as ros_image
from depthart_core.rosio.camera_info import depth_camera
from depthart_core.rosio.compressed import COMPRESSED_IMAGE_TYPE

if TYPE_CHECKING:
    from rosbags.typesys.store import Typestore

IMAGE_TYPE = "sensor_msgs/msg/Image"
IMAGE_TYPES = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE)  # what a bag's image and depth topics may hold
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
IMU_TYPE = "sensor_msgs/msg/Imu"
DEPTH_ENCODINGS = ("32FC1", "16UC1")


@functools.cache
def typestore() -> Typestore:
    """The newest ROS 2 typestore of the installed rosbags (Kilted where present). rosbags is
    imported here, not at the top: the nodes use this module's converters (`imu_orientation`,
    `depth_to_metres`) and a robot need not install rosbags (tests/test_package.py)."""
    from rosbags.typesys import Stores, get_typestore

    store = getattr(Stores, "ROS2_KILTED", None)
    if store is None:
        store = [s for s in Stores if s.name.startswith("ROS2_")][-1]
    return get_typestore(store)


# ------------------------------------------------------------------------------------------------
# Stamps


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Any:
    """Integer nanoseconds -> builtin_interfaces/Time of the ROS 2 typestore."""
    if ns < 0:
        raise ValueError(f"stamp must be >= 0 ns, got {ns}")
    time_cls = typestore().types["builtin_interfaces/msg/Time"]
    return time_cls(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def make_header(stamp_ns: int, frame_id: str) -> Any:
    header_cls = typestore().types["std_msgs/msg/Header"]
    return header_cls(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id)


# ------------------------------------------------------------------------------------------------
# Messages <-> arrays, through depthart_core.rosio.image (the node's own conversions)


def image_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image in any colour encoding `ros_image` reads, or a `compressed`
    CompressedImage (JPEG/PNG) -> HxWx3 uint8 RGB."""
    if compressed.is_compressed(msg):
        return compressed.compressed_to_rgb(msg)
    return ros_image.image_to_rgb(msg)


def depth_to_metres(msg: Any, min_m: float = 0.0, max_m: float = float("inf")) -> np.ndarray:
    """A raw depth Image or a `compressedDepth` CompressedImage -> HxW float32 metres, NaN where
    invalid or outside [min_m, max_m]."""
    if compressed.is_compressed(msg):
        return compressed.compressed_depth_to_metres(msg, min_m, max_m)
    return ros_image.depth_image_to_metres(msg, min_m, max_m)


def image_to_depth(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """Depth image -> (HxW float32 metres with 0 where invalid, HxW bool valid).

    32FC1 is metres (non-finite or <= 0 invalid), 16UC1/mono16 millimetres (0 invalid); a
    `compressedDepth` CompressedImage carries either.
    """
    depth = depth_to_metres(msg)
    valid = np.isfinite(depth)
    return np.where(valid, depth, np.float32(0.0)).astype(np.float32), valid


def image_msg(array: np.ndarray, encoding: str, stamp_ns: int, frame_id: str) -> Any:
    """A rosbags sensor_msgs/Image from an array in `encoding`'s layout."""
    filled = ros_image.set_image(SimpleNamespace(), np.asarray(array), encoding)
    return _rosbags_image(filled, make_header(stamp_ns, frame_id))


def _rosbags_image(src: Any, header: Any) -> Any:
    """A rosbags sensor_msgs/Image with `header` and the image fields of any Image-like `src`."""
    return typestore().types[IMAGE_TYPE](
        header=header,
        height=src.height,
        width=src.width,
        encoding=src.encoding,
        is_bigendian=src.is_bigendian,
        step=src.step,
        data=np.frombuffer(bytes(src.data), dtype=np.uint8),
    )


def compressed_msg(fmt: str, data: bytes, stamp_ns: int, frame_id: str) -> Any:
    """A rosbags sensor_msgs/CompressedImage (`compressed.encode_rgb`/`encode_depth` give the
    format and data)."""
    return typestore().types[COMPRESSED_IMAGE_TYPE](
        header=make_header(stamp_ns, frame_id),
        format=fmt,
        data=np.frombuffer(data, dtype=np.uint8),
    )


def depth_msg(
    depth_m: np.ndarray,
    stamp_ns: int,
    frame_id: str,
    encoding: str = "32FC1",
    valid: np.ndarray | None = None,
) -> Any:
    """Depth in metres -> 32FC1 metres (invalid = NaN) or 16UC1 millimetres (invalid = 0; depth
    beyond the 65.535 m that 16 bits hold is written as invalid, not clipped)."""
    if encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"depth encoding must be one of {DEPTH_ENCODINGS}, got {encoding!r}")
    depth_m = np.asarray(depth_m, dtype=np.float32)
    ok = np.isfinite(depth_m) & (depth_m > 0)
    if valid is not None:
        ok &= valid
    if encoding == "32FC1":
        array = np.where(ok, depth_m, np.float32(np.nan)).astype(np.float32)
    else:
        mm = np.rint(np.where(ok, depth_m, 0.0) * 1000.0)
        array = np.where(mm <= 65535, mm, 0).astype(np.uint16)  # beyond 65.535 m: no return
    return image_msg(array, encoding, stamp_ns, frame_id)


def camera_info_msg(K: np.ndarray, height: int, width: int, stamp_ns: int, frame_id: str) -> Any:
    """A plumb-bob CameraInfo with zero distortion and P = [K | 0]."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"intrinsics must be a 3x3 matrix, got shape {K.shape}")
    ts = typestore()
    P = np.zeros((3, 4), dtype=np.float64)
    P[:, :3] = K
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return ts.types[CAMERA_INFO_TYPE](
        header=make_header(stamp_ns, frame_id),
        height=int(height),
        width=int(width),
        distortion_model="plumb_bob",
        d=np.zeros(5, dtype=np.float64),
        k=K.reshape(9).copy(),
        r=np.eye(3, dtype=np.float64).reshape(9),
        p=P.reshape(12),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def depth_camera_info_msg(info: Any, shape: tuple[int, ...], stamp_ns: int, frame_id: str) -> Any:
    """The CameraInfo the node publishes beside a depth image of `shape` (h, w, ...) with this
    header: the calibration `info` (ROS 1 or ROS 2) rescaled to the depth's pixels
    (`camera_info.depth_camera`, the node's own)."""
    fields = depth_camera(info, shape)
    ts = typestore()
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](**fields.pop("roi"))
    arrays = {name: np.asarray(fields.pop(name), dtype=np.float64) for name in "dkrp"}
    return ts.types[CAMERA_INFO_TYPE](
        header=make_header(stamp_ns, frame_id), roi=roi, **arrays, **fields
    )


def imu_msg(orientation_xyzw: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
    """A sensor_msgs/Imu carrying only an attitude (x, y, z, w): angular velocity and linear
    acceleration unknown (their covariance[0] = -1, REP 145)."""
    ts = typestore()
    q = [float(v) for v in np.asarray(orientation_xyzw, dtype=np.float64).reshape(4)]
    unknown = np.zeros(9, dtype=np.float64)
    unknown[0] = -1.0
    vec = ts.types["geometry_msgs/msg/Vector3"]
    return ts.types[IMU_TYPE](
        header=make_header(stamp_ns, frame_id),
        orientation=ts.types["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
        orientation_covariance=np.zeros(9, dtype=np.float64),
        angular_velocity=vec(x=0.0, y=0.0, z=0.0),
        angular_velocity_covariance=unknown.copy(),
        linear_acceleration=vec(x=0.0, y=0.0, z=0.0),
        linear_acceleration_covariance=unknown.copy(),
    )


def imu_orientation(msg: Any) -> tuple[float, float, float, float] | None:
    """(x, y, z, w) of an Imu message, or None when it says it has no orientation
    (orientation_covariance[0] = -1, REP 145)."""
    if float(msg.orientation_covariance[0]) == -1.0:
        return None
    q = msg.orientation
    return (float(q.x), float(q.y), float(q.z), float(q.w))


def camera_info_K(msg: Any) -> np.ndarray:
    """3x3 K of a ROS 2 (`k`) or ROS 1 (`K`) CameraInfo."""
    return ros_image.camera_info_field(msg, "k").reshape(3, 3)


def with_stamp(msg: Any, msgtype: str, stamp_ns: int) -> bytes:
    """CDR bytes of a ROS 2 Image/CameraInfo copy of `msg` with a new header stamp."""
    return serialize(to_ros2(msg, msgtype, stamp_ns=stamp_ns), msgtype)


def to_ros2(msg: Any, msgtype: str, stamp_ns: int | None = None) -> Any:
    """Rebuild an Image, CompressedImage or CameraInfo (ROS 1 or ROS 2 layout) as a ROS 2 Kilted
    message."""
    stamp = stamp_to_ns(msg.header.stamp) if stamp_ns is None else stamp_ns
    header = make_header(stamp, msg.header.frame_id)
    cls = typestore().types[msgtype]
    if msgtype == IMAGE_TYPE:
        return _rosbags_image(msg, header)
    if msgtype == COMPRESSED_IMAGE_TYPE:
        return cls(header=header, format=msg.format, data=np.frombuffer(bytes(msg.data), np.uint8))
    if msgtype == CAMERA_INFO_TYPE:
        roi = msg.roi
        roi_cls = typestore().types["sensor_msgs/msg/RegionOfInterest"]
        return cls(
            header=header,
            height=msg.height,
            width=msg.width,
            distortion_model=msg.distortion_model,
            d=ros_image.camera_info_field(msg, "d"),
            k=ros_image.camera_info_field(msg, "k"),
            r=ros_image.camera_info_field(msg, "r"),
            p=ros_image.camera_info_field(msg, "p"),
            binning_x=msg.binning_x,
            binning_y=msg.binning_y,
            roi=roi_cls(roi.x_offset, roi.y_offset, roi.height, roi.width, roi.do_rectify),
        )
    known = (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE, CAMERA_INFO_TYPE)
    raise ValueError(f"cannot convert {msgtype} to ROS 2 (only {', '.join(known)})")


def serialize(msg: Any, msgtype: str) -> bytes:
    return bytes(typestore().serialize_cdr(msg, msgtype))


def deserialize(raw: bytes, msgtype: str) -> Any:
    return typestore().deserialize_cdr(raw, msgtype)
