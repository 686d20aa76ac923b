"""ROS 2 glue for DepthART: `depthart_ros.node` (entry points `depthart-node` / `depthart_node`).

Everything that converts, fits or colours lives in `depthart_core` (no rclpy there); this package
only moves messages in and out of it.
"""
