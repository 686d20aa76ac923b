"""Cost of one `depth/points` cloud for a 640x480 frame, per stride, as the node builds it.

    PYTHONPATH=.:tests python -m ros_helpers.bench_points

Back-projection (`depthart_core.pointcloud`, ray table cached as in the node) plus filling an
rclpy sensor_msgs/PointCloud2 (`depthart_core.rosio.cloud`); median of 50 clouds. Also the one-off
cost of a `points.image: raw` ray table (undistorting every pixel), paid on the first frame after
a new calibration.
"""

from __future__ import annotations

import time

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

from depthart_core.pointcloud import _rays, depth_to_points, pixel_rays
from depthart_core.rosio.cloud import set_point_cloud

H, W = 480, 640
K = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
P = [525.0, 0.0, 319.5, 0.0, 0.0, 525.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]
D = [-0.28, 0.09, 0.001, -0.0005, -0.01]


def main() -> None:
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 5.0, (H, W)).astype(np.float32)
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    for stride in (1, 2, 4):
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            cloud = depth_to_points(depth, pixel_rays(H, W, K, P, stride=stride), stride, rgb)
            msg = set_point_cloud(PointCloud2(), cloud, PointField)
            times.append(time.perf_counter() - t0)
        print(
            f"stride {stride}: {msg.width}x{msg.height} points, {len(msg.data) / 1e6:.2f} MB, "
            f"{1e3 * np.median(times):.2f} ms per cloud"
        )
    _rays.cache_clear()
    t0 = time.perf_counter()
    pixel_rays(H, W, K, P, d=D, distortion_model="plumb_bob", image="raw")
    print(f"raw plumb_bob ray table, {W}x{H}: {1e3 * (time.perf_counter() - t0):.1f} ms (once)")


if __name__ == "__main__":
    main()
