"""`camera_info_problem`: the CameraInfo check of the node's pipeline, on real message types."""

from __future__ import annotations

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
