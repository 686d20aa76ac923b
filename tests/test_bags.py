"""depthart_core.rosio.bags and .messages: real ROS 2 (MCAP, sqlite3) and ROS 1 bags, read back."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys

import numpy as np
import pytest
import yaml
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from depthart_core.data.synthetic.config import SynthConfig
from depthart_core.data.synthetic.render import render_sequence
from depthart_core.replay.frames import match_stamps
from depthart_core.rosio import bags, messages
from depthart_core.rosio.bags import BagError, TopicNotFoundError, TopicTypeError

T0 = 1_700_000_000 * 1_000_000_000
SIZE = (24, 32)  # (H, W): small, so rendering and I/O stay fast


def _roundtrip(msg):
    """Through CDR bytes and back, as a bag stores it."""
    return messages.deserialize(messages.serialize(msg, msg.__msgtype__), msg.__msgtype__)


def test_rgb_and_depth_messages_round_trip_exactly():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = _roundtrip(messages.image_msg(rgb, "rgb8", T0 + 123, "cam"))
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("rgb8", 5, 7, 21)
    assert messages.stamp_to_ns(msg.header.stamp) == T0 + 123 and msg.header.frame_id == "cam"
    np.testing.assert_array_equal(messages.image_to_rgb(msg), rgb)
    bgr = _roundtrip(messages.image_msg(np.ascontiguousarray(rgb[:, :, ::-1]), "bgr8", T0, "cam"))
    np.testing.assert_array_equal(messages.image_to_rgb(bgr), rgb)

    depth = np.array([[1.25, 2.0, 0.0], [np.nan, 3.5, 70.0]], dtype=np.float32)
    valid = np.array([[True, False, True], [True, True, True]])
    d32, v32 = messages.image_to_depth(
        _roundtrip(messages.depth_msg(depth, T0, "cam", "32FC1", valid))
    )
    # invalid: masked out, zero, or non-finite
    np.testing.assert_array_equal(v32, [[True, False, False], [False, True, True]])
    np.testing.assert_array_equal(d32[v32], [1.25, 3.5, 70.0])

    d16, v16 = messages.image_to_depth(_roundtrip(messages.depth_msg(depth, T0, "cam", "16UC1")))
    # millimetres: 1.25 m is exactly 1250 mm; 70 m does not fit in 16 bits and becomes invalid
    np.testing.assert_array_equal(v16, [[True, True, False], [False, True, False]])
    np.testing.assert_allclose(d16[v16], [1.25, 2.0, 3.5], rtol=1e-6, atol=0)


def test_depth_msg_rejects_unknown_encoding():
    with pytest.raises(ValueError, match="'mono8'"):
        messages.depth_msg(np.ones((2, 2), np.float32), T0, "cam", "mono8")


@pytest.mark.parametrize("storage, suffix", [("mcap", ".mcap"), ("sqlite3", ".db3")])
def test_synthetic_bag_holds_the_rendered_frames(tmp_path, storage, suffix):
    out = tmp_path / "bag"
    counts = bags.write_synthetic_bag(out, 3, rate_hz=20.0, seed=5, storage=storage, size=SIZE)
    topics = bags.list_topics(out)
    assert counts == {"/camera/camera_info": 3, "/camera/image_raw": 3, "/camera/depth": 3}
    assert {t: (s.msgtype, s.count) for t, s in topics.items()} == {
        "/camera/image_raw": (messages.IMAGE_TYPE, 3),
        "/camera/depth": (messages.IMAGE_TYPE, 3),
        "/camera/camera_info": (messages.CAMERA_INFO_TYPE, 3),
    }
    assert [p.suffix for p in out.iterdir() if p.name != "metadata.yaml"] == [suffix]

    expected = list(render_sequence(5, 3, SynthConfig(size=SIZE)))
    msgs = list(bags.iter_messages(out, list(topics)))
    by_topic = {t: [m for m in msgs if m.topic == t] for t in topics}
    for i, s in enumerate(expected):
        stamp = T0 + i * 50_000_000  # 20 Hz
        img, dep, info = (
            by_topic[t][i] for t in ("/camera/image_raw", "/camera/depth", "/camera/camera_info")
        )
        for m in (img, dep, info):
            assert (m.stamp_ns, m.log_ns) == (stamp, stamp)
            assert m.msg.header.frame_id == "camera_optical_frame"
        np.testing.assert_array_equal(messages.image_to_rgb(img.msg), s.rgb)
        depth, valid = messages.image_to_depth(dep.msg)
        assert dep.msg.encoding == "32FC1"
        np.testing.assert_array_equal(valid, s.valid & (s.depth > 0))
        np.testing.assert_array_equal(depth[valid], s.depth[valid])
        np.testing.assert_array_equal(messages.camera_info_K(info.msg), s.intrinsics)
        assert (info.msg.height, info.msg.width) == SIZE


def test_a_rig_bag_is_rendered_a_chunk_at_a_time_with_the_frames_of_one_batch(
    tmp_path, monkeypatch
):
    """`synth-bag --rig` renders 16 frames at a time (its memory no longer grows with --frames)
    and records the messages it recorded from the whole path rendered in one batch, byte for
    byte: the ground-plane benchmark's bags are unchanged."""
    from depthart_core.data.synthetic.render import batch_sample
    from depthart_core.evaluation import ground_plane as gp

    n, seed, fid = 20, 4, "camera_optical_frame"
    whole = gp.rig_frames(gp.RigEval.named("cart", sequences=1, frames=n, size=SIZE, seed=seed), 0)
    batches = []
    render = gp.render_scenes

    def render_noting(scenes, *args, **kwargs):
        batches.append(len(scenes))
        return render(scenes, *args, **kwargs)

    monkeypatch.setattr(gp, "render_scenes", render_noting)
    out = tmp_path / "rig"
    bags.write_synthetic_bag(out, n, seed=seed, size=SIZE, rig="cart", imu_noise_deg=1.0)
    assert batches == [16, 4]
    topics = bags.SynthBagTopics()
    got = list(bags.iter_messages(out, list(bags.list_topics(out))))
    want = []
    for i in range(n):
        s, t = batch_sample(whole, i, ""), T0 + i * 100_000_000
        want.append((topics.imu, bags._rig_imu(s, "cart", seed, i, 1.0, t, topics)))
        want.append((topics.camera_info, messages.camera_info_msg(s.intrinsics, *SIZE, t, fid)))
        want.append((topics.image, messages.image_msg(s.rgb, "rgb8", t, fid)))
        want.append((topics.depth, messages.depth_msg(s.depth, t, fid, "32FC1", valid=s.valid)))
    assert [m.topic for m in got] == [topic for topic, _ in want]
    for m, (_, msg) in zip(got, want, strict=True):
        assert m.raw == messages.serialize(msg, msg.__msgtype__), m.topic


def test_a_rig_seed_is_checked_as_given_not_as_its_rooms_seed(tmp_path):
    """A rig's rooms draw from seed x 100000 + an offset: the refusal names the caller's seed
    and the largest that works (42949 x 100000 + 20000 < 2**32 <= 42950 x 100000), before
    anything is written."""
    for seed in (42950, -1):
        with pytest.raises(ValueError, match=f"seed {seed} with a rig at 1 m: .* 0 to 42949") as e:
            bags.write_synthetic_bag(tmp_path / "b", 1, seed=seed, size=SIZE, rig="cart")
        assert "4295010000" not in str(e.value) and "-90000" not in str(e.value)
    assert not (tmp_path / "b").exists()
    bags.write_synthetic_bag(tmp_path / "b", 1, seed=42949, size=SIZE, rig="mast")  # still works


def test_synthetic_bag_16uc1_is_millimetres(tmp_path):
    out = tmp_path / "bag16"
    bags.write_synthetic_bag(out, 1, seed=2, size=SIZE, depth_encoding="16UC1")
    (m,) = bags.iter_messages(out, ["/camera/depth"])
    (s,) = render_sequence(2, 1, SynthConfig(size=SIZE))
    assert m.msg.encoding == "16UC1"
    depth, valid = messages.image_to_depth(m.msg)
    np.testing.assert_array_equal(valid, s.valid & (s.depth >= 0.0005))
    assert np.abs(depth[valid] - s.depth[valid]).max() <= 0.0005 + 1e-6


def test_writer_never_overwrites(tmp_path):
    (tmp_path / "exists").mkdir()
    with pytest.raises(ValueError, match="exists already"):
        bags.BagWriter(tmp_path / "exists")
    with pytest.raises(ValueError, match="'zip'"):
        bags.BagWriter(tmp_path / "new", storage="zip")


def _small_bag(path, storage="mcap", frames=range(4)):
    with bags.BagWriter(path, storage=storage) as w:
        for i in frames:
            t = T0 + i * 100_000_000
            w.write(
                "/cam/image", messages.image_msg(np.full((4, 6, 3), i, np.uint8), "rgb8", t, "c"), t
            )
            K = np.array([[5.0, 0, 3], [0, 5, 2], [0, 0, 1]])
            w.write("/cam/info", messages.camera_info_msg(K, 4, 6, t, "c"), t)
    return path


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag_raises_bag_error(tmp_path, storage):
    bag = _small_bag(tmp_path / "bag", storage)
    (f,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagError, match="truncated or corrupt"):
        bags.list_topics(bag)
    with pytest.raises(BagError, match="truncated or corrupt"):
        list(bags.iter_messages(bag, ["/cam/image"]))


def test_missing_and_non_bag_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        bags.list_topics(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match="without metadata.yaml"):
        bags.list_topics(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(BagError, match="x.txt"):
        bags.list_topics(tmp_path / "x.txt")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_split_bag_without_its_metadata_is_read_in_order(tmp_path, storage):
    """A split rosbag2 recording (name_0, name_1, ... name_10) that lost metadata.yaml: its files
    are read together, by time, with name_2 before name_10."""
    split = tmp_path / "split"
    split.mkdir()
    for part in (0, 2, 10):
        bag = _small_bag(tmp_path / f"part{part}", storage, frames=range(part * 2, part * 2 + 2))
        (f,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
        f.rename(split / f"rec_{part}{f.suffix}")
    assert bags.list_topics(split)["/cam/image"].count == 6
    msgs = list(bags.iter_messages(split, ["/cam/image"]))
    assert [int(np.asarray(m.msg.data)[0]) for m in msgs] == [0, 1, 4, 5, 20, 21]
    assert [p.name for p in bags._reader_paths(split)] == [
        f"rec_{i}{'.mcap' if storage == 'mcap' else '.db3'}" for i in (0, 2, 10)
    ]


def test_the_first_image_gets_the_calibration_recorded_just_after_it(tmp_path):
    """A driver publishes each image just before its CameraInfo, so a recording starts with an
    image and no calibration yet: replay (and finetune) pair that first image with the
    calibration of its exact stamp, as the node does by waiting for it."""
    from depthart_core.replay.frames import ReplayConfig, index_bag, iter_frames

    bag = _small_bag(tmp_path / "bag")  # each frame: image, then its CameraInfo
    cfg = ReplayConfig(image_topic="/cam/image", depth_topic=None, camera_info_topic="/cam/info")
    index = index_bag(bag, cfg)
    frames = list(iter_frames(bag, cfg, index))
    assert len(frames) == 4 and all(f.camera_info is not None for f in frames)
    assert messages.stamp_to_ns(frames[0].camera_info.header.stamp) == index.image_stamps[0]


def test_check_topic_lists_what_the_bag_has(tmp_path):
    topics = bags.list_topics(_small_bag(tmp_path / "bag"))
    with pytest.raises(TopicNotFoundError) as err:
        bags.check_topic(topics, "/camera/image_raw", messages.IMAGE_TYPE, "bag")
    assert "'/camera/image_raw' not found" in str(err.value)
    assert "/cam/image [sensor_msgs/msg/Image, 4 msgs]" in str(err.value)
    assert "/cam/info [sensor_msgs/msg/CameraInfo, 4 msgs]" in str(err.value)
    with pytest.raises(TopicTypeError, match="has type sensor_msgs/msg/CameraInfo"):
        bags.check_topic(topics, "/cam/info", messages.IMAGE_TYPE, "bag")


def test_ros1_bag_is_read_and_converted_to_ros2(tmp_path):
    ts1 = get_typestore(Stores.ROS1_NOETIC)
    Header, Time = ts1.types["std_msgs/msg/Header"], ts1.types["builtin_interfaces/msg/Time"]
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    img = ts1.types["sensor_msgs/msg/Image"](
        Header(7, Time(12, 345), "cam1"), 2, 3, "rgb8", 0, 9, rgb.reshape(-1)
    )
    roi = ts1.types["sensor_msgs/msg/RegionOfInterest"](0, 0, 0, 0, False)
    K = np.arange(9, dtype=np.float64)
    info = ts1.types["sensor_msgs/msg/CameraInfo"](
        Header(7, Time(12, 345), "cam1"),
        2,
        3,
        "plumb_bob",
        np.zeros(5),
        K,
        np.eye(3).ravel(),
        np.zeros(12),
        0,
        0,
        roi,
    )
    path = tmp_path / "old.bag"
    with Ros1Writer(path) as w:
        for topic, msg in (("/img", img), ("/info", info)):
            conn = w.add_connection(topic, msg.__msgtype__, typestore=ts1)
            w.write(conn, 12_000_000_345, ts1.serialize_ros1(msg, msg.__msgtype__))
    assert not bags.bag_is_ros2(path)
    m_img, m_info = sorted(bags.iter_messages(path, ["/img", "/info"]), key=lambda m: m.topic)
    assert m_img.stamp_ns == 12_000_000_345 and not m_img.ros2
    np.testing.assert_array_equal(messages.image_to_rgb(m_img.msg), rgb)
    np.testing.assert_array_equal(messages.camera_info_K(m_info.msg), K.reshape(3, 3))
    # ROS 2 CDR for live playback, restamped
    cdr = messages.with_stamp(m_info.msg, messages.CAMERA_INFO_TYPE, 99)
    back = messages.deserialize(cdr, messages.CAMERA_INFO_TYPE)
    assert messages.stamp_to_ns(back.header.stamp) == 99 and back.header.frame_id == "cam1"
    np.testing.assert_array_equal(back.k, K)
    img2 = messages.deserialize(
        messages.with_stamp(m_img.msg, messages.IMAGE_TYPE, 5), messages.IMAGE_TYPE
    )
    np.testing.assert_array_equal(messages.image_to_rgb(img2), rgb)


def test_match_stamps_picks_nearest_within_tolerance():
    ms = 1_000_000
    images = [0, 100 * ms, 200 * ms, 300 * ms, 400 * ms]
    depths = [305 * ms, 2 * ms, 190 * ms, 215 * ms, 100 * ms]  # not in order
    match, dts = match_stamps(images, depths, tol_ns=8 * ms)
    # 0 -> 2 ms; 100 -> 100 exactly; 200 -> none (10 and 15 ms away); 300 -> 305; 400 -> none
    assert match == [1, 4, None, 0, None]
    assert dts == [2 * ms, 0, None, 5 * ms, None]
    assert match_stamps(images, [], 8 * ms) == ([None] * 5, [None] * 5)


def test_a_writer_that_loses_the_race_leaves_the_winners_bag(tmp_path):
    """Two writers past the constructor's check: the one whose open finds the folder made
    refuses, and does not remove the bag the other is writing."""
    from depthart_core.rosio.bags import BagWriter

    a, b = BagWriter(tmp_path / "bag"), BagWriter(tmp_path / "bag")
    with a:
        with pytest.raises(ValueError, match="exists already"):
            b.__enter__()
        assert (tmp_path / "bag").is_dir()
    assert (tmp_path / "bag" / "metadata.yaml").is_file()  # the winner finished


# ------------------------------------------------------------------------------------------------
# Header stamps of 0, one file of a bag, compressed bags, a failing sqlite3 write

PERIOD = 100_000_000  # 10 Hz


def _sim_bag(path, n=20, storage="mcap"):
    """A simulator's recording: header stamps from 0 (its clock), recorded at wall-clock times
    (T0 on); image and 32FC1 depth i (1 + i m) share the stamp i * PERIOD. `/cam/nostamp`: a
    driver that never sets the stamp (all 0)."""
    with bags.BagWriter(path, storage=storage) as w:
        for i in range(n):
            t, log = i * PERIOD, T0 + i * PERIOD + 4_000_000
            rgb = np.full((*SIZE, 3), i, np.uint8)
            w.write("/cam/image", messages.image_msg(rgb, "rgb8", t, "c"), log)
            depth = np.full(SIZE, 1.0 + i, np.float32)
            w.write("/cam/depth", messages.depth_msg(depth, t, "c", "32FC1"), log + 2_000_000)
            w.write("/cam/nostamp", messages.image_msg(rgb, "rgb8", 0, "c"), log + 3_000_000)
    return path


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_simulator_clock_starting_at_0_keeps_the_first_stamp(tmp_path, storage):
    """A stamp of 0 is a stamp (the simulator's first frame): only a topic whose every stamp is
    0 falls back to the recording times. Replay pairs frame 0, and finetune's time split puts
    it first in time (not a wall-clock stamp at the end, alone in the held-out block)."""
    from depthart_core.finetune.frames import FrameConfig, scan_bag, split_by_time
    from depthart_core.replay.frames import ReplayConfig, index_bag, iter_frames

    bag = _sim_bag(tmp_path / "sim", storage=storage)
    msgs = list(bags.iter_messages(bag, ["/cam/image", "/cam/depth", "/cam/nostamp"]))
    by_topic = {t: [m for m in msgs if m.topic == t] for t in ("/cam/image", "/cam/depth")}
    for topic_msgs in by_topic.values():
        assert [m.stamp_ns for m in topic_msgs] == [i * PERIOD for i in range(20)]
    assert all(m.stamp_ns == m.log_ns for m in msgs if m.topic == "/cam/nostamp")

    cfg = ReplayConfig(image_topic="/cam/image", depth_topic="/cam/depth", camera_info_topic=None)
    index = index_bag(bag, cfg)
    assert index.match == list(range(20)) and index.image_stamps[0] == 0
    frames = list(iter_frames(bag, cfg, index))
    assert frames[0].image.stamp_ns == 0 and np.allclose(frames[0].gt[0], 1.0)

    frames_cfg = FrameConfig("/cam/image", "/cam/depth", heldout=0.2, gap_s=0.3, min_train=4)
    scan = scan_bag(bag, frames_cfg)
    split_by_time(scan, frames_cfg)
    # span 0..1.9 s: held out t >= 1.52 s (frames 16-19), gap (1.22, 1.52) s (frames 13-15)
    assert scan.block == ["train"] * 13 + ["gap"] * 3 + ["heldout"] * 4


def test_a_zero_stamp_among_wall_clock_stamps_is_a_glitch_read_by_recording_time(tmp_path):
    """A driver's one unstamped message among wall-clock stamps is not 1970: kept as 0 it would
    stretch finetune's time split over 50 years. It gets its recording time, the others keep
    their stamps."""
    bag = tmp_path / "real"
    with bags.BagWriter(bag) as w:
        for i in range(6):
            t = T0 + i * PERIOD
            rgb = np.full((*SIZE, 3), i, np.uint8)
            w.write("/cam/image", messages.image_msg(rgb, "rgb8", 0 if i == 2 else t, "c"), t + 1)
    stamps = [m.stamp_ns for m in bags.iter_messages(bag, ["/cam/image"])]
    assert stamps == [T0 + i * PERIOD + (1 if i == 2 else 0) for i in range(6)]


def test_frames_sent_before_the_simulators_clock_are_refused_not_given_wall_clock_times(tmp_path):
    """Nodes that publish before /clock arrives stamp 0 several times. Given the recorder's
    wall-clock times among simulated stamps, they became the whole held-out block of a
    fine-tune (the latest "times"); kept as 0, the pairing refuses them as shared stamps, and
    says why."""
    from depthart_core.replay.frames import ReplayConfig, index_bag

    bag = tmp_path / "early"
    with bags.BagWriter(bag) as w:
        for i in range(6):
            t = 0 if i < 3 else 5_000_000_000 + i * PERIOD
            rgb = np.full((*SIZE, 3), i, np.uint8)
            w.write("/cam/image", messages.image_msg(rgb, "rgb8", t, "c"), T0 + i * PERIOD)
            depth = np.full(SIZE, 1.0 + i, np.float32)
            w.write("/cam/depth", messages.depth_msg(depth, t, "c", "32FC1"), T0 + i * PERIOD + 1)
    stamps = [m.stamp_ns for m in bags.iter_messages(bag, ["/cam/image"])]
    assert stamps == [0, 0, 0] + [5_000_000_000 + i * PERIOD for i in (3, 4, 5)]
    cfg = ReplayConfig(image_topic="/cam/image", depth_topic="/cam/depth", camera_info_topic=None)
    with pytest.raises(ValueError, match="stamped 0 on a simulator's clock: frames sent before"):
        index_bag(bag, cfg)


def _split_bag(tmp_path, storage, parts=3):
    """One recording split into `parts` files (rec_0, rec_1, ...) and the metadata.yaml listing
    them all, as rosbag2's --max-bag-size writes it."""
    rec = tmp_path / "rec"
    rec.mkdir()
    metas = []
    for k in range(parts):
        part = _small_bag(tmp_path / f"part{k}", storage, frames=range(2 * k, 2 * k + 2))
        (f,) = [p for p in part.iterdir() if p.suffix in (".mcap", ".db3")]
        f.rename(rec / f"rec_{k}{f.suffix}")
        info = yaml.safe_load((part / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        info["files"][0]["path"] = f"rec_{k}{f.suffix}"
        metas.append(info)
    meta = metas[0]
    meta["relative_file_paths"] = [m["files"][0]["path"] for m in metas]
    meta["files"] = [m["files"][0] for m in metas]
    meta["message_count"] = sum(m["message_count"] for m in metas)
    for topic in meta["topics_with_message_count"]:
        topic["message_count"] *= parts
    (rec / "metadata.yaml").write_text(yaml.safe_dump({"rosbag2_bagfile_information": meta}))
    return rec


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_one_file_of_a_split_bag_is_read_alone_with_a_warning(tmp_path, storage, caplog):
    """The metadata.yaml of a split bag opens its folder: all of its files. One file of it is
    read alone, as asked (a run fine-tuned on one part resumes on it), but not silently: a
    warning says it is one of N and how to read them all. Either is that bag for a check of a
    bag given twice."""
    rec = _split_bag(tmp_path, storage)
    suffix = ".mcap" if storage == "mcap" else ".db3"
    for path in (rec / "metadata.yaml", rec):
        assert bags.bag_location(path) == rec
        msgs = list(bags.iter_messages(path, ["/cam/image"]))
        assert [int(np.asarray(m.msg.data)[0]) for m in msgs] == [0, 1, 2, 3, 4, 5], path
        assert bags.list_topics(path)["/cam/image"].count == 6
    part = rec / f"rec_1{suffix}"
    with caplog.at_level("WARNING", logger="depthart_core.rosio.bags"):
        msgs = list(bags.iter_messages(part, ["/cam/image"]))
    assert [int(np.asarray(m.msg.data)[0]) for m in msgs] == [2, 3]
    assert "is one of the 3 files of the bag" in caplog.text and "give the folder" in caplog.text
    caplog.clear()
    list(bags.iter_messages(part, ["/cam/image"]))
    assert "is one of" not in caplog.text  # once per file: a command opens a bag often
    # which files each path reads: a part and its bag meet, two parts do not
    whole = bags.bag_files(rec / "metadata.yaml")
    assert whole == bags.bag_files(rec) and len(whole) == 3
    assert bags.bag_files(part) == {part.resolve()} and bags.bag_files(part) <= whole
    assert not bags.bag_files(part) & bags.bag_files(rec / f"rec_0{suffix}")
    # a file without a metadata.yaml listing it is the bag itself
    alone = tmp_path / f"alone{suffix}"
    (rec / f"rec_2{suffix}").rename(alone)
    assert bags.bag_location(alone) == alone
    assert len(list(bags.iter_messages(alone, ["/cam/image"]))) == 2


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize(
    "mode", [CompressionMode.FILE, CompressionMode.MESSAGE], ids=["file", "message"]
)
def test_a_compressed_bag_is_read_through_its_folder(tmp_path, storage, mode):
    """A file of a bag compressed per file (.mcap.zstd) or per message reads through the bag's
    folder; without it, the error asks for the folder instead of calling a good bag corrupt."""
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    bag = tmp_path / "z"
    writer = Writer(bag, version=Writer.VERSION_LATEST, storage_plugin=plugin)
    writer.set_compression(mode, CompressionFormat.ZSTD)
    with writer:
        conn = writer.add_connection(
            "/cam/image", messages.IMAGE_TYPE, typestore=messages.typestore()
        )
        for i in range(3):
            msg = messages.image_msg(np.full((4, 6, 3), i, np.uint8), "rgb8", T0 + i, "c")
            writer.write(conn, T0 + i, messages.serialize(msg, messages.IMAGE_TYPE))
    (f,) = [p for p in bag.iterdir() if p.name != "metadata.yaml"]
    for path in (f, bag / "metadata.yaml", bag):
        msgs = list(bags.iter_messages(path, ["/cam/image"]))
        assert [int(np.asarray(m.msg.data)[0]) for m in msgs] == [0, 1, 2], path
    (bag / "metadata.yaml").unlink()  # the file alone
    with pytest.raises(BagError, match="give the bag's folder") as err:
        list(bags.iter_messages(f, ["/cam/image"]))
    assert "corrupt" not in str(err.value)


def test_sqlite3_bag_over_a_file_size_limit_is_one_line(tmp_path):
    """sqlite3 reports a write past the file-size limit (EFBIG) as 'disk I/O error', at its
    final commit: one error line naming the bag, no traceback, and no partial bag left."""
    out = tmp_path / "bag"

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, resource.RLIM_INFINITY))

    code = "import sys; from depthart_core.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["synth-bag", "--out", str(out), "--frames", "5", "--size", "64x64", "--no-progress"]
    run = subprocess.run(
        [sys.executable, "-c", code, *argv, "--format", "sqlite3"],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert (
        run.stderr.strip()
        == f"depthart synth-bag: error: cannot write {out}: sqlite3: disk I/O error"
    )
    assert not out.exists()


def test_a_sqlite3_bag_with_a_write_ahead_log_is_refused(tmp_path):
    """rosbag2's 'resilient' preset records sqlite3 in WAL mode: a recorder killed (or still
    recording) leaves messages in <db3>-wal, which the reader (immutable) would skip. The bag is
    refused in one line naming the log and the repair, which then reads every message."""
    import sqlite3

    bag = _small_bag(tmp_path / "bag", "sqlite3")
    (db3,) = bag.glob("*.db3")
    con = sqlite3.connect(db3)  # a recorder's connection, still open: its WAL is not merged
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute(
        "INSERT INTO messages (topic_id, timestamp, data) "
        "SELECT topic_id, timestamp + 1000000000, data FROM messages"
    )
    con.commit()
    try:
        assert db3.with_name(db3.name + "-wal").stat().st_size > 0
        for path in (bag, db3):
            with pytest.raises(BagError) as err:
                bags.list_topics(path)
            text = str(err.value)
            assert "\n" not in text and f"{db3}-wal" in text
            assert f"`sqlite3 {db3} 'PRAGMA wal_checkpoint(TRUNCATE)'`" in text
    finally:
        con.close()  # the last connection merges the log (what the repair does) and removes it
    assert len(list(bags.iter_messages(db3, ["/cam/image"]))) == 8
    (db3.with_name(db3.name + "-wal")).write_bytes(b"")  # an empty log is nothing to merge
    assert len(list(bags.iter_messages(db3, ["/cam/image"]))) == 8


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_truncated_bag_is_refused_with_its_repair(tmp_path, storage):
    """A cut MCAP (a recorder killed or powered off: no end magic) or a malformed sqlite3 file
    is refused in one line that names the tool that repairs it."""
    bag = _small_bag(tmp_path / "bag", storage)
    (f,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    want = {
        "mcap": f"an MCAP cut short (a killed or power-lost recorder): `mcap recover {f} -o "
        "OUT.mcap` repairs it",
        "sqlite3": f"`sqlite3 {f} .recover | sqlite3 out.db3` repairs it",
    }[storage]
    for path in (bag, f, bag / "metadata.yaml"):
        with pytest.raises(BagError, match="truncated or corrupt") as err:
            list(bags.iter_messages(path, ["/cam/image"]))
        assert want in str(err.value) and "\n" not in str(err.value), path


@pytest.mark.parametrize("text", ["", "cut"], ids=["empty", "cut"])
def test_an_unusable_metadata_yaml_reads_the_storage_files(tmp_path, caplog, text):
    """An empty metadata.yaml, or one cut short (a full disk when the recorder stopped), is read
    as a folder without one, with a warning naming it and `ros2 bag reindex`."""
    bag = _small_bag(tmp_path / "bag")
    meta = bag / "metadata.yaml"
    if text == "cut":
        text = meta.read_text()[:400]
        assert yaml.safe_load(text)  # YAML still, only cut short
    meta.write_text(text)
    with caplog.at_level("WARNING"):
        assert bags.list_topics(bag)["/cam/image"].count == 4
        assert len(list(bags.iter_messages(bag, ["/cam/image"]))) == 4
    warned = [r.getMessage() for r in caplog.records if "reindex" in r.getMessage()]
    assert len(warned) == 1 and f"{meta} cannot be used" in warned[0]
    assert f"`ros2 bag reindex {bag}`" in warned[0]


def test_storage_files_metadata_yaml_does_not_list_are_named(tmp_path, caplog):
    """A split the recorder never recorded in metadata.yaml is not read, and named."""
    bag = _small_bag(tmp_path / "bag")
    (f,) = bag.glob("*.mcap")
    (bag / "bag_1.mcap").write_bytes(f.read_bytes())
    with caplog.at_level("WARNING"):
        assert len(list(bags.iter_messages(bag, ["/cam/image"]))) == 4
    warned = [r.getMessage() for r in caplog.records if "does not list" in r.getMessage()]
    assert len(warned) == 1 and "bag_1.mcap" in warned[0] and f.name not in warned[0]
