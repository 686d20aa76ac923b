"""ROS 2 glue for DepthART: the nodes and the live rosbag replay, above all of `depthart_core`.

    node            `depthart_node` (entry points `depthart-node` / `depthart_node`): message in,
                    one `predict`, message out; its parameters are `params`, its frame slot
                    `pipeline`
    lifecycle_node  its managed twin `depthart_lifecycle_node`
    replay          live replay through the node in its own process (`depthart replay --live`,
                    added to core's command through the `depthart.replay` entry point) and
                    `make demo`

Everything that converts, fits or colours lives in `depthart_core` (no rclpy there); this package
only moves messages in and out of it.
"""
