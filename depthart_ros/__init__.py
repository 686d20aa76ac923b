"""ROS 2 glue for DepthART: `depthart_ros.node` (entry points `depthart-node` / `depthart_node`)
and its managed twin `depthart_ros.lifecycle_node` (`depthart_lifecycle_node`).

Everything that converts, fits or colours lives in `depthart_core` (no rclpy there); this package
only moves messages in and out of it.
"""
