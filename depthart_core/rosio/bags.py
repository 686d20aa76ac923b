"""Rosbag reading and writing over the pure-Python `rosbags` library (no ROS install needed).

Reads ROS 2 bags (sqlite3 and MCAP storage, as a bag directory or a single `.db3`/`.mcap` file)
and ROS 1 `.bag` files through `rosbags.highlevel.AnyReader`; writes ROS 2 bags (MCAP by default).
Messages are deserialised with the definitions stored in the bag and built for writing from the
newest ROS 2 typestore (Kilted). Image conversion goes through `depthart_core.rosio.image` (the
node's own) and follows REP-118 units as `depth_image_proc` consumes them: 32FC1 depth is metres
(non-finite = invalid), 16UC1/mono16 depth is millimetres (0 = invalid). Every failure to read a
bag raises `BagError` naming the bag and what it contains.

Format references: rosbag2 `metadata.yaml` + storage plugins, MCAP spec (mcap.dev/spec),
sensor_msgs/Image and CameraInfo message definitions.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from depthart_core.data.synthetic.config import SynthConfig
from depthart_core.data.synthetic.render import render_sequence
from depthart_core.rosio import image as ros_image

IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
STORAGE_FORMATS = ("mcap", "sqlite3")
DEPTH_ENCODINGS = ("32FC1", "16UC1")


class BagError(ValueError):
    """A bag that is missing, truncated, corrupt, or lacks what was asked of it."""


class TopicNotFoundError(BagError):
    """The requested topic is not in the bag; the message lists the topics it has."""


class TopicTypeError(BagError):
    """The topic exists but carries another message type than the one needed."""


@functools.cache
def typestore() -> Typestore:
    """The newest ROS 2 typestore of the installed rosbags (Kilted where present)."""
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
# Reading


@dataclass(frozen=True)
class TopicSummary:
    name: str
    msgtype: str | None
    count: int


@dataclass(frozen=True)
class BagMessage:
    """One message: `log_ns` is the recording time, `stamp_ns` the header stamp (or log time)."""

    topic: str
    msgtype: str
    log_ns: int
    stamp_ns: int
    msg: Any
    raw: bytes
    ros2: bool  # raw is CDR (ROS 2); False for ROS 1 serialisation


def _reader_paths(path: Path) -> list[Path]:
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    if path.is_dir() and not (path / "metadata.yaml").is_file():
        mcaps = sorted(path.glob("*.mcap")) + sorted(path.glob("*.db3"))
        if len(mcaps) == 1:  # a rosbag2 directory that lost its metadata.yaml
            return mcaps
        raise BagError(
            f"{path} is a directory without metadata.yaml: not a ROS 2 bag "
            f"(contents: {sorted(p.name for p in path.iterdir())[:10]})"
        )
    return [path]


@contextmanager
def open_bag(path: str | Path) -> Iterator[AnyReader]:
    """Open a ROS 1 or ROS 2 bag; unreadable bags raise `BagError` naming the cause."""
    path = Path(path)
    try:
        reader = AnyReader(_reader_paths(path), default_typestore=typestore())
        reader.open()
    except (FileNotFoundError, BagError):
        raise
    except Exception as exc:  # rosbags raises its own reader errors plus sqlite/yaml/mcap ones
        raise BagError(f"cannot read bag {path} (truncated or corrupt?): {exc}") from exc
    try:
        yield reader
    finally:
        reader.close()


def list_topics(path: str | Path) -> dict[str, TopicSummary]:
    """Topic name -> (message type, message count)."""
    with open_bag(path) as reader:
        return {
            name: TopicSummary(name, info.msgtype, info.msgcount)
            for name, info in reader.topics.items()
        }


def describe_topics(topics: dict[str, TopicSummary]) -> str:
    if not topics:
        return "(no topics)"
    return ", ".join(f"{t.name} [{t.msgtype}, {t.count} msgs]" for t in topics.values())


def check_topic(
    topics: dict[str, TopicSummary], topic: str, msgtype: str, bag: str | Path = "bag"
) -> TopicSummary:
    """The summary of `topic`, raising if it is missing or not of `msgtype`."""
    if topic not in topics:
        raise TopicNotFoundError(
            f"topic {topic!r} not found in {bag}; it has: {describe_topics(topics)}"
        )
    found = topics[topic]
    if found.msgtype != msgtype:
        raise TopicTypeError(
            f"topic {topic!r} in {bag} has type {found.msgtype}, expected {msgtype}"
        )
    return found


def iter_messages(path: str | Path, topics: Sequence[str]) -> Iterator[BagMessage]:
    """Messages of `topics` in recording order. Corruption met while reading raises `BagError`."""
    path = Path(path)
    with open_bag(path) as reader:
        conns = [c for c in reader.connections if c.topic in set(topics)]
        if not conns:
            return
        ros2 = bool(reader.is2)
        stream = reader.messages(connections=conns)
        while True:
            try:
                item = next(stream, None)
                if item is None:
                    return
                conn, log_ns, raw = item
                msg = reader.deserialize(raw, conn.msgtype)
            except Exception as exc:
                raise BagError(f"cannot read bag {path} (truncated or corrupt?): {exc}") from exc
            header = getattr(msg, "header", None)
            stamp = stamp_to_ns(header.stamp) if header is not None else 0
            yield BagMessage(conn.topic, conn.msgtype, log_ns, stamp or log_ns, msg, raw, ros2)


def bag_is_ros2(path: str | Path) -> bool:
    with open_bag(path) as reader:
        return bool(reader.is2)


# ------------------------------------------------------------------------------------------------
# Messages <-> arrays, through depthart_core.rosio.image (the node's own conversions)


def image_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/Image in any colour encoding `ros_image` reads -> HxWx3 uint8 RGB."""
    return ros_image.image_to_rgb(msg)


def image_to_depth(msg: Any) -> tuple[np.ndarray, np.ndarray]:
    """Depth image -> (HxW float32 metres with 0 where invalid, HxW bool valid).

    32FC1 is metres (non-finite or <= 0 invalid), 16UC1/mono16 millimetres (0 invalid).
    """
    depth = ros_image.depth_image_to_metres(msg)
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


def camera_info_K(msg: Any) -> np.ndarray:
    """3x3 K of a ROS 2 (`k`) or ROS 1 (`K`) CameraInfo."""
    return _ci_field(msg, "k").reshape(3, 3)


def with_stamp(msg: Any, msgtype: str, stamp_ns: int) -> bytes:
    """CDR bytes of a ROS 2 Image/CameraInfo copy of `msg` with a new header stamp."""
    return serialize(to_ros2(msg, msgtype, stamp_ns=stamp_ns), msgtype)


def to_ros2(msg: Any, msgtype: str, stamp_ns: int | None = None) -> Any:
    """Rebuild an Image or CameraInfo (ROS 1 or ROS 2 layout) as a ROS 2 Kilted message."""
    stamp = stamp_to_ns(msg.header.stamp) if stamp_ns is None else stamp_ns
    header = make_header(stamp, msg.header.frame_id)
    cls = typestore().types[msgtype]
    if msgtype == IMAGE_TYPE:
        return _rosbags_image(msg, header)
    if msgtype == CAMERA_INFO_TYPE:
        roi = msg.roi
        roi_cls = typestore().types["sensor_msgs/msg/RegionOfInterest"]
        return cls(
            header=header,
            height=msg.height,
            width=msg.width,
            distortion_model=msg.distortion_model,
            d=_ci_field(msg, "d"),
            k=_ci_field(msg, "k"),
            r=_ci_field(msg, "r"),
            p=_ci_field(msg, "p"),
            binning_x=msg.binning_x,
            binning_y=msg.binning_y,
            roi=roi_cls(roi.x_offset, roi.y_offset, roi.height, roi.width, roi.do_rectify),
        )
    raise ValueError(f"cannot convert {msgtype} to ROS 2 (only {IMAGE_TYPE}, {CAMERA_INFO_TYPE})")


def _ci_field(msg: Any, name: str) -> np.ndarray:
    """CameraInfo matrix `name` of a ROS 2 (lower case) or ROS 1 (upper case) message."""
    value = getattr(msg, name, None)
    return np.asarray(getattr(msg, name.upper()) if value is None else value, dtype=np.float64)


def serialize(msg: Any, msgtype: str) -> bytes:
    return bytes(typestore().serialize_cdr(msg, msgtype))


def deserialize(raw: bytes, msgtype: str) -> Any:
    return typestore().deserialize_cdr(raw, msgtype)


# ------------------------------------------------------------------------------------------------
# Writing


class BagWriter:
    """A ROS 2 bag writer that adds one connection per topic on first write.

    with BagWriter(out, storage="mcap") as bag:
        bag.write("/camera/image_raw", image_msg(rgb, "rgb8", t_ns, "camera"), t_ns)
    """

    def __init__(self, path: str | Path, storage: str = "mcap") -> None:
        if storage not in STORAGE_FORMATS:
            raise ValueError(f"storage must be one of {STORAGE_FORMATS}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise ValueError(f"{self.path} exists already; bags are never overwritten")
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=plugin)
        self._conns: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self._writer.close()

    def _conn(self, topic: str, msgtype: str, msgdef: str | None, digest: str | None) -> Any:
        conn = self._conns.get(topic)
        if conn is None:
            if msgdef is None or digest is None:
                conn = self._writer.add_connection(topic, msgtype, typestore=typestore())
            else:
                conn = self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=digest)
            self._conns[topic] = conn
            self.counts[topic] = 0
        elif conn.msgtype != msgtype:
            raise ValueError(f"topic {topic!r} already holds {conn.msgtype}, not {msgtype}")
        return conn

    def write(self, topic: str, msg: Any, log_ns: int) -> None:
        """Serialise a rosbags message of the Kilted typestore and write it at `log_ns`."""
        msgtype = msg.__msgtype__
        self.write_raw(topic, msgtype, serialize(msg, msgtype), log_ns)

    def write_raw(
        self,
        topic: str,
        msgtype: str,
        raw: bytes,
        log_ns: int,
        msgdef: str | None = None,
        digest: str | None = None,
    ) -> None:
        """Write already serialised CDR bytes (e.g. copied from another ROS 2 bag)."""
        self._writer.write(self._conn(topic, msgtype, msgdef, digest), int(log_ns), raw)
        self.counts[topic] += 1


def copy_connections_info(path: str | Path) -> dict[str, tuple[str, str, str]]:
    """Topic -> (msgtype, msgdef, rihs01 digest) of a ROS 2 bag, for copying it verbatim."""
    with open_bag(path) as reader:
        return {
            c.topic: (c.msgtype, c.msgdef.data, c.digest) for c in reader.connections if reader.is2
        }


def iter_raw(path: str | Path) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, log_ns, raw) of every message in recording order."""
    path = Path(path)
    with open_bag(path) as reader:
        stream = reader.messages()
        while True:
            try:
                item = next(stream, None)
            except Exception as exc:
                raise BagError(f"cannot read bag {path} (truncated or corrupt?): {exc}") from exc
            if item is None:
                return
            conn, log_ns, raw = item
            yield conn.topic, conn.msgtype, log_ns, raw


# ------------------------------------------------------------------------------------------------
# Synthetic recordings


@dataclass(frozen=True)
class SynthBagTopics:
    image: str = "/camera/image_raw"
    camera_info: str = "/camera/camera_info"
    depth: str = "/camera/depth"
    frame_id: str = "camera_optical_frame"


def write_synthetic_bag(
    out: str | Path,
    frames: int,
    rate_hz: float = 10.0,
    seed: int = 0,
    storage: str = "mcap",
    depth_encoding: str = "32FC1",
    size: tuple[int, int] | None = None,
    start_ns: int = 1_700_000_000 * 1_000_000_000,
    topics: SynthBagTopics = SynthBagTopics(),
) -> dict[str, int]:
    """Record one synthetic scene along a smooth camera path as a ROS 2 bag.

    Each frame writes rgb8 image, CameraInfo and ground-truth depth (32FC1 m or 16UC1 mm) with
    the same header stamp, start + i / rate, also used as the recording time. Returns the
    message count per topic.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if not rate_hz > 0:
        raise ValueError(f"rate must be > 0 Hz, got {rate_hz}")
    if depth_encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"depth encoding must be one of {DEPTH_ENCODINGS}, got {depth_encoding!r}")
    cfg = SynthConfig() if size is None else SynthConfig(size=tuple(size))
    period_ns = round(1e9 / rate_hz)
    with BagWriter(out, storage=storage) as bag:
        for i, sample in enumerate(render_sequence(seed, frames, cfg)):
            t = start_ns + i * period_ns
            h, w = sample.depth.shape
            fid = topics.frame_id
            if sample.intrinsics is not None:  # before its image, as camera drivers publish
                bag.write(topics.camera_info, camera_info_msg(sample.intrinsics, h, w, t, fid), t)
            bag.write(topics.image, image_msg(sample.rgb, "rgb8", t, fid), t)
            depth = depth_msg(sample.depth, t, fid, depth_encoding, valid=sample.valid)
            bag.write(topics.depth, depth, t)
        return dict(bag.counts)
