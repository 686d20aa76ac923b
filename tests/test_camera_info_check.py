"""`camera_info_problem`: the CameraInfo check of the node's pipeline, on real message types."""

from __future__ import annotations

import numpy as np
import pytest

CameraInfo = pytest.importorskip("sensor_msgs.msg").CameraInfo

from depthart_ros.pipeline import camera_info_problem  # noqa: E402

K = [500.0, 0.0, 319.5, 0.0, 500.0, 239.5, 0.0, 0.0, 1.0]
P = [500.0, 0.0, 319.5, 0.0, 0.0, 500.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]


def _info(k=K, p=P, d=(0.0,) * 5) -> CameraInfo:
    return CameraInfo(width=640, height=480, distortion_model="plumb_bob", k=k, p=p, d=list(d))


def test_a_good_calibration_passes() -> None:
    assert camera_info_problem(_info()) is None
    assert camera_info_problem(_info(p=[0.0] * 12)) is None  # only K filled: P = [K | 0]


@pytest.mark.parametrize(
    ("info", "cause", "text"),
    [
        (_info(k=[float("nan")] + K[1:]), "non_finite", "non-finite values in K"),
        (_info(p=P[:5] + [float("inf")] + P[6:]), "non_finite", "non-finite values in P"),
        (_info(d=(0.1, float("nan"), 0, 0, 0)), "non_finite", "non-finite values in D"),
        (_info(k=[0.0] * 9, p=[0.0] * 12), "zero_focal", "K fx=0 fy=0, P fx=0 fy=0"),
        (_info(k=K[:4] + [-500.0] + K[5:]), "zero_focal", "K fx=500 fy=-500"),
        (_info(p=P[:5] + [0.0] + P[6:]), "zero_focal", "P fx=500 fy=0"),
    ],
)
def test_broken_calibrations_are_named(info: CameraInfo, cause: str, text: str) -> None:
    got = camera_info_problem(info)
    assert got is not None and got[0] == cause and text in got[1], got


def _both(width, height, k=K, p=P, binning=0, roi=None):
    """The same calibration as the node's rclpy message and as the replay's rosbags one."""
    from sensor_msgs.msg import RegionOfInterest

    from depthart_core.rosio import messages

    node = _info(k=k, p=p)
    node.width, node.height, node.binning_x, node.binning_y = width, height, binning, binning
    bag = messages.camera_info_msg(np.reshape(k, (3, 3)), height, width, 7, "calib")
    bag.p, bag.binning_x, bag.binning_y = np.asarray(p, float), binning, binning
    node.r = bag.r.tolist()  # identity
    if roi is not None:
        node.roi = RegionOfInterest(x_offset=roi[0], y_offset=roi[1], width=roi[2], height=roi[3])
        bag.roi.x_offset, bag.roi.y_offset, bag.roi.width, bag.roi.height = roi
    return node, bag


@pytest.mark.parametrize(
    ("calibration", "shape"),
    [
        (dict(width=640, height=480), (480, 640)),  # as it came
        (dict(width=640, height=480), (120, 160)),  # another size: rescaled
        (dict(width=640, height=480, p=[0.0] * 12), (240, 320)),  # only K: P = [K | 0]
        (dict(width=1280, height=960, binning=2), (120, 160)),  # binned: the depth's own
        (dict(width=1280, height=960, binning=2), (480, 640)),  # binned to the depth's size
        (dict(width=640, height=480, roi=(80, 60, 480, 360)), (90, 120)),  # cropped
    ],
)
def test_write_bag_publishes_the_nodes_camera_info(calibration, shape) -> None:
    """`--write-bag`'s `<pred_topic>/camera_info` (`messages.depth_camera_info_msg`) is the
    node's `depth/camera_info` (`camera_info_for`) field for field: one `depth_camera` builds
    both."""
    from std_msgs.msg import Header

    from depthart_core.rosio import messages
    from depthart_ros.calibration import camera_info_for

    node_in, bag_in = _both(**calibration)
    node = camera_info_for(node_in, Header(frame_id="cam"), shape)
    bag = messages.depth_camera_info_msg(bag_in, shape, 7, "cam")
    assert bag.header.frame_id == node.header.frame_id == "cam"
    for name in ("height", "width", "distortion_model", "binning_x", "binning_y"):
        assert getattr(bag, name) == getattr(node, name), name
    for name in "dkrp":
        assert list(getattr(bag, name)) == list(getattr(node, name)), name
    for name in ("x_offset", "y_offset", "height", "width", "do_rectify"):
        assert getattr(bag.roi, name) == getattr(node.roi, name), name
