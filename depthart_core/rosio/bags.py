"""Rosbag reading and writing over the pure-Python `rosbags` library (no ROS install needed).

Reads ROS 2 bags (sqlite3 and MCAP storage, as a bag directory or a single `.db3`/`.mcap` file;
a file or the metadata.yaml of a bag directory opens the directory: `bag_location`) and ROS 1
`.bag` files through `rosbags.highlevel.AnyReader`; writes ROS 2 bags (MCAP by default).
Messages are deserialised with the definitions stored in the bag; the messages written are built
by `depthart_core.rosio.messages`. Every failure to read a bag raises `BagError` naming the bag
and what it contains: a cut MCAP or a malformed sqlite3 file with the command that repairs it,
a sqlite3 file whose write-ahead log (`<db3>-wal`, a killed recorder's) still holds messages with
the command that merges it. A bag folder whose metadata.yaml is empty or cut short is read by its
storage files, as one without it, and storage files a metadata.yaml does not list are named (not
read); both with a warning. `write_synthetic_bag` records a synthetic scene (`data.synthetic`).
A bag that cannot be written whole (a full or read-only disk) is removed, and the failure raised
as one `fileutil.WriteError` line naming the bag.

Format references: rosbag2 `metadata.yaml` + storage plugins, MCAP spec (mcap.dev/spec).
"""

from __future__ import annotations

import codecs
import errno
import locale
import logging
import math
import os
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from tqdm import tqdm

from depthart_core.data.sample import DepthSample
from depthart_core.data.synthetic.config import SynthConfig
from depthart_core.data.synthetic.render import render_sequence
from depthart_core.data.synthetic.sensor import SensorModel, sensor_depth_mm
from depthart_core.evaluation.ground_plane import RIGS, RigEval, iter_rig_samples, noisy_up
from depthart_core.fileutil import WriteError
from depthart_core.ground_plane import attitude_for_up
from depthart_core.rosio.compressed import TRANSPORT_SUFFIX, encode_depth, encode_rgb
from depthart_core.rosio.messages import (
    DEPTH_ENCODINGS,
    camera_info_msg,
    compressed_msg,
    depth_msg,
    depth_to_metres,
    image_msg,
    imu_msg,
    serialize,
    stamp_to_ns,
    typestore,
)
from depthart_core.rundir import utf8_name
from depthart_core.text import printable

log = logging.getLogger(__name__)

STORAGE_FORMATS = ("mcap", "sqlite3")
_BAG_FILE_SUFFIXES = (".mcap", ".db3", ".bag")  # files a reader opens without metadata.yaml
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # a zstd frame's first bytes (rosbag2 compression)
# stamps below this (1973) are on a clock that starts near 0, a simulator's, not the wall clock
SIM_CLOCK_MAX_NS = 10**17


class BagError(ValueError):
    """A bag that is missing, truncated, corrupt, or lacks what was asked of it."""


class TopicNotFoundError(BagError):
    """The requested topic is not in the bag; the message lists the topics it has."""


class TopicTypeError(BagError):
    """The topic exists but carries another message type than the one needed."""


# ------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class TopicSummary:
    name: str
    msgtype: str | None
    count: int


@dataclass(frozen=True)
class BagMessage:
    """One message: `log_ns` is the recording time, `stamp_ns` the header stamp (or the
    recording time: `iter_messages`)."""

    topic: str
    msgtype: str
    log_ns: int
    stamp_ns: int
    msg: Any
    raw: bytes
    ros2: bool  # raw is CDR (ROS 2); False for ROS 1 serialisation


def bag_location(path: str | Path) -> Path:
    """What `open_bag(path)` opens: the bag's folder for its metadata.yaml, or for a file of a
    compressed bag (file or message mode: only the folder's metadata.yaml says how to read it);
    else `path` itself. A plain file of a split bag is read alone (`_reader_paths` warns)."""
    path = Path(path)
    if path.is_file():
        meta = path.parent / "metadata.yaml"
        if path.name == "metadata.yaml":
            return path.parent
        listed, compressed = _listing(meta) if meta.is_file() else (set(), False)
        if path.name in listed and (compressed or path.suffix == ".zstd"):
            return path.parent
    return path


def bag_files(path: str | Path) -> frozenset[Path]:
    """The files, resolved, that reading `path` reads: the listed files of a bag folder (its
    metadata.yaml, a file of a compressed bag), the storage files of a folder that lost it, a
    single file itself. Two bags whose sets meet would give some frames twice."""
    path = bag_location(path)
    if path.is_dir():
        meta = path / "metadata.yaml"
        usable = meta.is_file() and _metadata_problem(meta) is None
        listed = _listing(meta)[0] if usable else set()
        if not listed:
            listed = {p.name for p in path.iterdir() if p.suffix in _BAG_FILE_SUFFIXES}
        return frozenset((path / name).resolve() for name in listed)
    return frozenset({path.resolve()})


_WARNED_PARTS: set[Path] = set()


def _listing(meta: Path) -> tuple[set[str], bool]:
    """(the file names a rosbag2 metadata.yaml lists, whether it says they are compressed);
    (empty, False) if it cannot be read."""
    try:
        info = yaml.safe_load(meta.read_text(encoding="utf-8"))["rosbag2_bagfile_information"]
        files = [*info.get("relative_file_paths", []), *(f["path"] for f in info.get("files", []))]
        return {_disk_name(Path(str(f)).name) for f in files}, bool(info.get("compression_format"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return set(), False


def _disk_name(name: str) -> str:
    """A file name as metadata.yaml lists it (UTF-8 text) as Python names that file on disk:
    the same under a UTF-8 locale; under the ASCII one (`LC_ALL=C`) a non-ASCII name's bytes
    are surrogates ('\\udcc3\\udca9' for an e-acute), which a path made from the listed text would
    not match (and could not even be encoded)."""
    return os.fsdecode(name.encode("utf-8", "surrogateescape"))


# what the reader needs of a metadata.yaml (`rosbags.rosbag2.Reader.open`)
_METADATA_KEYS = (
    "version",
    "storage_identifier",
    "relative_file_paths",
    "topics_with_message_count",
    "message_count",
    "duration",
    "starting_time",
)


def _metadata_problem(meta: Path) -> str | None:
    """Why a bag folder's metadata.yaml cannot be used (empty, not YAML, cut short: a key the
    reader needs is missing), or None."""
    try:
        raw = meta.read_bytes()
        text = raw.decode("utf-8")  # rosbag2 writes it in UTF-8, whatever the locale
        doc = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        return f"unreadable: {exc}"
    except yaml.YAMLError as exc:
        return f"not YAML: {printable(' '.join(str(exc).split())[:120])}"
    if not text.strip():
        return "it is empty"
    info = doc.get("rosbag2_bagfile_information") if isinstance(doc, dict) else None
    if not isinstance(info, dict):
        return "no rosbag2_bagfile_information"
    missing = [k for k in _METADATA_KEYS if info.get(k) is None]
    if missing:
        return f"cut short or malformed: no {missing[0]!r}"
    try:
        for t in info["topics_with_message_count"]:
            _ = t["message_count"], t["topic_metadata"]["name"], t["topic_metadata"]["type"]
        _ = info["duration"]["nanoseconds"], info["starting_time"]["nanoseconds_since_epoch"]
    except (KeyError, TypeError, AttributeError):
        return "cut short or malformed: a topic or time entry is incomplete"
    return _reader_decoding_problem(raw)


def _reader_decoding_problem(raw: bytes) -> str | None:
    """Why the bag reader cannot decode a metadata.yaml, or None: rosbags reads it in the
    locale's encoding, so under the ASCII locale (`LC_ALL=C`) one with a non-ASCII character
    (a file or folder name with an accent, a comment) fails there; its storage files are read
    without it instead."""
    encoding = locale.getpreferredencoding(False)
    try:
        encoding = codecs.lookup(encoding).name  # "ascii", not "ANSI_X3.4-1968"
        raw.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return (
            f"its non-ASCII text cannot be decoded in this locale's encoding ({encoding}), which "
            "the bag reader uses: run under a UTF-8 locale (LC_ALL=C.UTF-8) to read the bag by it"
        )
    return None


def _storage_files(folder: Path) -> list[Path]:
    """The rosbag2 storage files in a bag folder (plain or zstd-compressed MCAP and sqlite3)."""
    return [
        p
        for p in folder.iterdir()
        if p.suffix in (".mcap", ".db3") or p.name.endswith((".mcap.zstd", ".db3.zstd"))
    ]


_WARNED_META: set[Path] = set()


def _warn_once(key: Path, msg: str, *args: object) -> None:
    """Log a warning once per `key` and process: a command opens a bag often."""
    if key not in _WARNED_META:
        _WARNED_META.add(key)
        log.warning(msg, *args)


def _usable_metadata(folder: Path) -> bool:
    """Whether a bag folder has a metadata.yaml to read it by; a metadata.yaml that cannot be
    used (empty, cut short) is warned about and the folder read as if it had none. Storage
    files it does not list (a split the recorder never wrote into it) are warned about."""
    meta = folder / "metadata.yaml"
    if not meta.is_file():
        return False
    why = _metadata_problem(meta)
    if why is not None:
        _warn_once(
            meta.resolve(),
            "%s cannot be used (%s): reading the storage files of %s without it (`ros2 bag "
            "reindex %s` rewrites it)", meta, why, folder, folder,
        )  # fmt: skip
        return False
    listed = _listing(meta)[0]
    unlisted = sorted(p.name for p in _storage_files(folder) if p.name not in listed)
    if unlisted:
        _warn_once(
            meta.resolve(),
            "%s holds %s, which its metadata.yaml does not list: not read (a split the recorder "
            "never recorded in metadata.yaml? `ros2 bag reindex %s` lists every file)",
            folder, ", ".join(printable(n) for n in unlisted), folder,
        )  # fmt: skip
    return True


def counts_source(path: str | Path) -> str:
    """What gives `list_topics`' message counts of the bag at `path`: its folder's
    metadata.yaml, or the storage file's own index (a file, or a folder read without one)."""
    loc = bag_location(path)
    return "metadata.yaml" if loc.is_dir() and _usable_metadata(loc) else "the bag's index"


def _reader_paths(path: Path) -> list[Path]:
    if not path.exists():
        raise FileNotFoundError(f"bag not found: {path}")
    path = bag_location(path)
    if path.is_file() and (path.parent / "metadata.yaml").is_file():
        listed = _listing(path.parent / "metadata.yaml")[0]
        key = path.resolve()
        if path.name in listed and len(listed) > 1 and key not in _WARNED_PARTS:  # read as asked
            _WARNED_PARTS.add(key)  # once per file and process: a command opens a bag often
            log.warning(
                "%s is one of the %d files of the bag in %s: reading this file only (give the "
                "folder to read the whole bag)", path, len(listed), path.parent,
            )  # fmt: skip
    if path.is_dir() and not _usable_metadata(path):
        # a rosbag2 directory that lost its metadata.yaml: its file, or the files of a split
        # bag (name_0.mcap, name_1.mcap, ...; read together, merged by time)
        mcaps, db3s = (
            sorted(path.glob("*.mcap"), key=_split_key),
            sorted(path.glob("*.db3"), key=_split_key),
        )
        if bool(mcaps) != bool(db3s):
            return mcaps or db3s
        if any(path.glob("*.zstd")):
            raise BagError(
                f"{path} holds compressed bag files but no usable metadata.yaml, which says how "
                "to read them: give the bag's folder with its metadata.yaml"
            )
        raise BagError(
            f"{path} is a directory without metadata.yaml: not a ROS 2 bag "
            f"(contents: {sorted(p.name for p in path.iterdir())[:10]})"
        )
    return [path]


def _unreadable(path: Path, exc: BaseException, raw: bytes = b"") -> str:
    """Why `path` cannot be read: a file that is no bag by itself (a compressed bag's file, a
    metadata.yaml) or a message compressed per message needs the bag's folder; others are
    truncated or corrupt."""
    zstd = raw.startswith(_ZSTD_MAGIC)
    alone = path.suffix not in _BAG_FILE_SUFFIXES and path.name != "metadata.yaml"
    if zstd or (path.is_file() and alone):
        why = "its messages are compressed (zstd)" if zstd else str(exc).rstrip(".")
        return (
            f"cannot read bag {path}: {why}; give the bag's folder (its metadata.yaml says how "
            "the files are stored/compressed)"
        )
    hint = _repair_hint(path, exc)
    why = str(exc).rstrip(".") + hint if hint else str(exc)
    return f"cannot read bag {path} (truncated or corrupt?): {why}"


def _repair_hint(path: Path, exc: BaseException) -> str:
    """How to repair a bag that the reader refused as truncated or corrupt: `mcap recover` for
    a cut MCAP file, sqlite3's .recover for a malformed database; "" for other causes."""
    text, loc = str(exc), bag_location(path)
    names = sorted(f.name for f in bag_files(path)) if path.exists() else []
    files = [loc / n for n in names] if loc.is_dir() else [loc]
    mcaps = [f for f in files if f.suffix == ".mcap"]
    db3s = [f for f in files if f.suffix == ".db3"]
    cut = ("end magic", "Truncated record", "MCAP footer", "MCAP summary", "Chunk", "record length")
    if mcaps and any(k in text for k in cut):
        name = mcaps[0] if len(mcaps) == 1 else "IN.mcap"
        return (
            f"; an MCAP cut short (a killed or power-lost recorder): `mcap recover {name} -o "
            "OUT.mcap` repairs it"
        )
    if db3s and any(k in text for k in ("malformed", "not a database")):
        name = db3s[0] if len(db3s) == 1 else "in.db3"
        return f"; a malformed sqlite3 file: `sqlite3 {name} .recover | sqlite3 out.db3` repairs it"
    return ""


def _check_wal(paths: Sequence[Path]) -> None:
    """Refuse a sqlite3 bag file with a non-empty write-ahead log beside it (rosbag2's
    'resilient' preset, a recorder killed or still recording): the reader opens the file
    immutable and would not see the messages still in the log."""
    for path in paths:
        if path.is_dir():
            names = _listing(path / "metadata.yaml")[0]  # `_reader_paths`: a usable one
            db3s = [path / n for n in sorted(names) if n.endswith(".db3")]
        else:
            db3s = [path] if path.suffix == ".db3" else []
        for db3 in db3s:
            wal = db3.with_name(db3.name + "-wal")
            with suppress(OSError):
                if wal.stat().st_size > 0:
                    raise BagError(
                        f"{wal} holds messages not yet in {db3} (sqlite3's write-ahead log, left "
                        "by a recorder killed or still recording), which the reader would skip: "
                        f"merge them first with `sqlite3 {db3} 'PRAGMA wal_checkpoint(TRUNCATE)'`"
                    )


def _split_key(path: Path) -> tuple[str, int]:
    """A split bag's files in recording order: name_2 before name_10."""
    stem, _, index = path.stem.rpartition("_")
    return (stem, int(index)) if index.isdigit() else (path.stem, -1)


_NOT_UTF8_ADVICE = "rename it, or read it through a symlink with an ASCII name"


def _sqlite_path(path: Path, stack: ExitStack) -> Path:
    """`path` as the sqlite3 reader can open it. That reader hands sqlite the path as UTF-8
    text (apsw), so a folder whose name is not UTF-8 (a Latin-1 one: '\\udce9' in Python) was
    refused with "surrogates not allowed": such a folder is opened here and given by its
    descriptor's name, /proc/self/fd/N, which stays open on `stack` while the reader reads. An
    MCAP or ROS 1 bag (read by Python's own file calls) is left on its path."""
    if utf8_name(path) is not None or not any(f.suffix == ".db3" for f in bag_files(path)):
        return path
    folder, name = (path, "") if path.is_dir() else (path.parent, path.name)
    alias = Path("/proc/self/fd")
    if utf8_name(name) is None or not alias.is_dir():  # no folder to stand in for: its own name
        raise BagError(
            f"cannot read bag {path}: the sqlite3 bag reader needs a UTF-8 path, and this one "
            f"is not: {_NOT_UTF8_ADVICE}"
        )
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    stack.callback(os.close, fd)
    return alias / str(fd) / name if name else alias / str(fd)


@contextmanager
def open_bag(path: str | Path) -> Iterator[AnyReader]:
    """Open a ROS 1 or ROS 2 bag; unreadable bags raise `BagError` naming the cause."""
    path = Path(path)
    with ExitStack() as stack:
        try:
            paths = _reader_paths(path)
            _check_wal(paths)
            reader = AnyReader(
                [_sqlite_path(p, stack) for p in paths], default_typestore=typestore()
            )
            reader.open()
        except (FileNotFoundError, BagError):
            raise
        except Exception as exc:  # rosbags raises its own reader errors plus sqlite/yaml/mcap
            if isinstance(exc, UnicodeEncodeError) and exc.reason == "surrogates not allowed":
                raise BagError(  # a name the reader takes as UTF-8, not a truncated bag
                    f"cannot read bag {path}: the bag reader needs a UTF-8 path, and a name in "
                    f"this one is not: {_NOT_UTF8_ADVICE}"
                ) from exc
            raise BagError(_unreadable(path, exc)) from exc
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
    return ", ".join(
        f"{printable(t.name)} [{printable(t.msgtype)}, {t.count} msgs]" for t in topics.values()
    )


def check_topic(
    topics: dict[str, TopicSummary],
    topic: str,
    msgtype: str | tuple[str, ...],
    bag: str | Path = "bag",
) -> TopicSummary:
    """The summary of `topic`, raising if it is missing or not of `msgtype` (or one of them)."""
    if topic not in topics:
        raise TopicNotFoundError(
            f"topic {topic!r} not found in {bag}; it has: {describe_topics(topics)}"
        )
    found = topics[topic]
    wanted = (msgtype,) if isinstance(msgtype, str) else msgtype
    if found.msgtype not in wanted:
        raise TopicTypeError(
            f"topic {topic!r} in {bag} has type {found.msgtype}, expected {' or '.join(wanted)}"
        )
    return found


def iter_messages(path: str | Path, topics: Sequence[str]) -> Iterator[BagMessage]:
    """Messages of `topics` in recording order. Corruption met while reading raises `BagError`.

    `stamp_ns` is the header stamp. A stamp of 0 is kept on a topic whose clock starts at 0 (a
    simulator's: its first stamp that is not 0 is below `SIM_CLOCK_MAX_NS`), where it is the
    first frame's, or frames sent before /clock came, which the pairing then refuses as shared
    stamps rather than give them wall-clock times among simulated ones; on any other topic (a
    driver that never stamps, a glitch among wall-clock stamps), and for a message without a
    header, it is the recording time. The rule is per topic and by the kind of its clock, so
    every reader of the bag, or of a part of it, agrees."""
    path = Path(path)
    sim: dict[str, bool] = {}  # topic -> its clock starts at 0 (decided on its first 0)
    with open_bag(path) as reader:
        ros2 = bool(reader.is2)
        for conn, log_ns, raw, msg in _decoded(path, reader, topics):
            stamp = _header_stamp(msg)
            if stamp == 0 and conn.topic not in sim:
                sim[conn.topic] = _sim_clock(path, conn.topic)
            elif stamp:
                sim.setdefault(conn.topic, stamp < SIM_CLOCK_MAX_NS)
            if stamp is None or (stamp == 0 and not sim[conn.topic]):
                stamp = log_ns
            yield BagMessage(conn.topic, conn.msgtype, log_ns, stamp, msg, raw, ros2)


def _decoded(
    path: Path, reader: AnyReader, topics: Sequence[str]
) -> Iterator[tuple[Any, int, bytes, Any]]:
    """(connection, log_ns, raw, message) of `topics` in recording order."""
    conns = [c for c in reader.connections if c.topic in set(topics)]
    if not conns:
        return
    stream = reader.messages(connections=conns)
    while True:
        raw = b""
        try:
            item = next(stream, None)
            if item is None:
                return
            conn, log_ns, raw = item
            msg = reader.deserialize(raw, conn.msgtype)
        except Exception as exc:
            raise BagError(_unreadable(path, exc, bytes(raw[:4]))) from exc
        yield conn, log_ns, raw, msg


def _header_stamp(msg: Any) -> int | None:
    header = getattr(msg, "header", None)
    return None if header is None else stamp_to_ns(header.stamp)


def _sim_clock(path: Path, topic: str) -> bool:
    """Whether `topic`'s stamps are on a clock that starts at 0 (a simulator's), judged by its
    first stamp that is not 0: False where every stamp is 0."""
    with open_bag(path) as reader, closing(_decoded(path, reader, [topic])) as msgs:
        first = next((t for *_, msg in msgs if (t := _header_stamp(msg))), None)
    return first is not None and first < SIM_CLOCK_MAX_NS


def bag_is_ros2(path: str | Path) -> bool:
    with open_bag(path) as reader:
        return bool(reader.is2)


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
        try:
            self._writer.open()  # makes the folder (mkdir: it fails if the folder exists)
        except WriterError as exc:
            if "exists already" in str(exc):  # another writer made it since the constructor
                raise ValueError(f"{self.path} exists already; bags are never overwritten") from exc
            self._discard(exc)
            raise
        except BaseException as exc:
            self._discard(exc)
            raise
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            try:
                self._writer.close()  # flushes the storage and writes metadata.yaml
                return
            except sqlite3.OperationalError as err:  # the final commit could not be written
                exc = _sqlite_os_error(err) or OSError(errno.EIO, f"sqlite3: {err}")
            except BaseException as err:
                exc = err
        with suppress(Exception):
            self._writer.abort()
        self._discard(exc)

    def _discard(self, exc: BaseException) -> None:
        """Remove the unfinished bag (the constructor made sure it did not exist) and raise a
        failure to write it as a `WriteError`; other errors propagate as they are."""
        shutil.rmtree(self.path, ignore_errors=True)
        if isinstance(exc, sqlite3.OperationalError):
            exc = _sqlite_os_error(exc) or exc
        if isinstance(exc, OSError) and not isinstance(exc, WriteError):
            raise WriteError(self.path, exc) from exc
        if exc is not None:
            raise exc

    def _conn(
        self,
        topic: str,
        msgtype: str,
        msgdef: str | None,
        digest: str | None,
        qos: Sequence[Any] = (),
    ) -> Any:
        conn = self._conns.get(topic)
        if conn is None:
            # from the typestore without a definition and hash: a Humble bag stores no hash
            # (and a Humble sqlite3 bag no definition), which rosbags cannot write as given
            if not msgdef or not digest:
                kind: dict[str, Any] = {"typestore": typestore()}
            else:
                kind = {"msgdef": msgdef, "rihs01": digest}
            conn = self._writer.add_connection(
                topic, msgtype, offered_qos_profiles=list(qos), **kind
            )
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
        qos: Sequence[Any] = (),
    ) -> None:
        """Write already serialised CDR bytes (e.g. copied from another ROS 2 bag: its type's
        `msgdef` and `digest`, and the `qos` profiles its publishers offered, rosbags' `Qos`,
        which a topic's first message sets)."""
        conn = self._conn(topic, msgtype, msgdef, digest, qos)
        self._writer.write(conn, int(log_ns), raw)
        self.counts[topic] += 1


def _sqlite_os_error(exc: sqlite3.OperationalError) -> OSError | None:
    """The OSError behind a sqlite3 write failure, which sqlite3 reports in words only."""
    if "disk is full" in str(exc):
        err = OSError(errno.ENOSPC, str(exc))
    elif "disk I/O error" in str(exc):  # EIO, or EFBIG past a file-size limit
        err = OSError(errno.EIO, f"sqlite3: {exc}")
    else:
        return None
    err.__cause__ = exc
    return err


MAX_RATE_HZ = 1000.0  # a synthetic camera's frame rate; stamps 1 ms apart at most this


def known_type(msgtype: str) -> bool:
    """Whether the Kilted typestore describes `msgtype` (a writer can add it without a
    definition and hash of its own)."""
    return msgtype in typestore().fielddefs


def copy_connections_info(path: str | Path) -> dict[str, tuple[str, str, str, list[Any]]]:
    """Topic -> (msgtype, msgdef, rihs01 digest, offered QoS profiles) of a ROS 2 bag, for
    copying it verbatim: the profiles (rosbags' `Qos`, as recorded; a topic's last connection
    gives its entry) keep a latched topic (/tf_static, a transient_local camera_info) latched when
    the copy is played."""
    with open_bag(path) as reader:
        if not reader.is2:
            return {}
        info: dict[str, tuple[str, str, str, list[Any]]] = {}
        for c in reader.connections:
            qos = list(getattr(c.ext, "offered_qos_profiles", None) or [])
            info[c.topic] = (c.msgtype, c.msgdef.data, c.digest, qos)
        return info


def iter_raw(path: str | Path) -> Iterator[tuple[str, str, int, bytes]]:
    """(topic, msgtype, log_ns, raw) of every message in recording order."""
    path = Path(path)
    with open_bag(path) as reader:
        stream = reader.messages()
        while True:
            try:
                item = next(stream, None)
            except Exception as exc:
                raise BagError(_unreadable(path, exc)) from exc
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
    imu: str = "/imu/data"  # rig bags with `imu_noise_deg`
    imu_frame_id: str = "imu_link"


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
    style: str = "room",
    sensor: SensorModel | None = None,
    depth_delay_ns: int = 0,
    rig: str | None = None,
    imu_noise_deg: float | None = None,
    compressed: bool = False,
    progress: bool = False,
) -> dict[str, int]:
    """Record one synthetic scene along a smooth camera path as a ROS 2 bag.

    Each frame writes rgb8 image, CameraInfo and depth with the same header stamp, start + i /
    rate, also used as the recording time. `style` is the scene style (`SynthConfig.for_style`).
    Depth is the exact ground truth (32FC1 m or 16UC1 mm), or with `sensor` what an RGB-D
    sensor reports (16UC1 mm with range limit, holes and noise, `data.synthetic.sensor`),
    stamped `depth_delay_ns` after the image as an unsynchronised depth camera would be.
    `rig` (`wheeled`, `cart`, `mast`: `evaluation.ground_plane.RIGS`) records instead a robot's
    camera at that rig's exact height and mounting pitch, turning with pitch and roll bumps,
    every 10th frame of the path (`rig_frames`, rendered 16 frames at a time, so memory does not
    grow with `frames`): the ground-plane replay's bags. With a rig,
    `imu_noise_deg` also records an IMU attitude per frame (`topics.imu`, stamped with the image):
    the body's true tilt (the direction of gravity, with Gaussian noise of that many degrees about
    each axis; the yaw is always 0, and there is no linear acceleration or angular velocity), the
    camera mounted at the rig's pitch relative to the IMU frame (`ground_plane.attitude_for_up`):
    what the ground plane reads, not a full IMU for a localization filter.
    `compressed`: image_transport's topics instead of the raw ones, as robots usually record:
    `<image>/compressed` (JPEG, quality 95) and `<depth>/compressedDepth` (PNG, the plugin's
    default depth_max 10 m and quantisation; `depthart_core.rosio.compressed`).
    `progress`: a bar per frame written (stderr). Returns the message count per topic.
    """
    if imu_noise_deg is not None:
        if rig is None:
            raise ValueError("an IMU is recorded only with a rig (its attitude is the rig's pose)")
        if not (math.isfinite(imu_noise_deg) and imu_noise_deg >= 0.0):
            raise ValueError(f"IMU noise must be finite and >= 0 degrees, got {imu_noise_deg}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if not (math.isfinite(rate_hz) and 0 < rate_hz <= MAX_RATE_HZ):  # 1e10 Hz: all one stamp
        raise ValueError(f"rate must be > 0 and <= {MAX_RATE_HZ:g} Hz, got {rate_hz}")
    if depth_encoding not in DEPTH_ENCODINGS:
        raise ValueError(f"depth encoding must be one of {DEPTH_ENCODINGS}, got {depth_encoding!r}")
    if sensor is not None and depth_encoding != "16UC1":
        raise ValueError(f"sensor depth is written as 16UC1 millimetres, not {depth_encoding!r}")
    cfg = SynthConfig.for_style(style, tuple(size) if size is not None else SynthConfig().size)
    if rig is None:
        samples = render_sequence(seed, frames, cfg)
    else:
        rig_eval = RigEval.named(rig, sequences=1, frames=frames, size=cfg.size, seed=seed)
        samples = iter_rig_samples(rig_eval, 0)  # 16 frames at a time, as render_sequence
    period_ns = round(1e9 / rate_hz)
    desc = f"synth-bag {Path(out).name}"
    with (
        BagWriter(out, storage=storage) as bag,  # an unwritable --out fails before any bar
        closing(tqdm(samples, total=frames, desc=desc, unit="frame", disable=not progress)) as bar,
    ):
        for i, sample in enumerate(bar):
            t = start_ns + i * period_ns
            h, w = sample.depth.shape
            fid = topics.frame_id
            if imu_noise_deg is not None:
                bag.write(topics.imu, _rig_imu(sample, rig, seed, i, imu_noise_deg, t, topics), t)
            if sample.intrinsics is not None:  # before its image, as camera drivers publish
                bag.write(topics.camera_info, camera_info_msg(sample.intrinsics, h, w, t, fid), t)
            td = t + depth_delay_ns
            if sensor is None:
                depth = depth_msg(sample.depth, td, fid, depth_encoding, valid=sample.valid)
            else:
                rng = np.random.default_rng([seed, i, 0x5E7502])
                mm = sensor_depth_mm(sample.depth, sample.valid, rng, sensor)
                depth = image_msg(mm, "16UC1", td, fid)
            if compressed:
                fmt, data = encode_rgb(sample.rgb, "jpeg", quality=95)
                topic = topics.image + TRANSPORT_SUFFIX["compressed"]
                bag.write(topic, compressed_msg(fmt, data, t, fid), t)
                # the raw message's own reading (16UC1 rounding, holes), so both bags agree
                fmt, data = encode_depth(depth_to_metres(depth), depth.encoding)
                topic = topics.depth + TRANSPORT_SUFFIX["compressedDepth"]
                bag.write(topic, compressed_msg(fmt, data, td, fid), td)
            else:
                bag.write(topics.image, image_msg(sample.rgb, "rgb8", t, fid), t)
                bag.write(topics.depth, depth, td)
        return dict(bag.counts)


def _rig_imu(
    sample: DepthSample,
    rig: str,
    seed: int,
    i: int,
    noise_deg: float,
    stamp_ns: int,
    topics: SynthBagTopics,
) -> Any:
    """The Imu message of a rig frame: the camera's true up, noised, as the IMU attitude that
    gives it through the rig's mounting pitch."""
    up_3 = sample.extras["pose"][:3, :3].T @ np.array([0.0, 1.0, 0.0])  # the world's y is up
    rng = np.random.default_rng([seed, i, 0x1A0])
    noisy_3 = noisy_up(up_3, noise_deg, rng)
    attitude = attitude_for_up(noisy_3, RIGS[rig][1])
    return imu_msg(attitude, stamp_ns, topics.imu_frame_id)
