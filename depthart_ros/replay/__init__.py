"""Live rosbag replay: the bag played into the real node in its own process, its outputs scored.

    process    `LiveConfig`, the node command, its ROS environment, start and stop;
               `LiveTransport`, the ROS side the replay talks through
    live       `LiveSession` (playback clock, outputs matched back) and `replay_live`
    transport  `RclpyTransport`, the rclpy `LiveTransport`
    cli        the `--live` options and run of `depthart replay` (registered as an entry point)
    demo       `make demo`: a synthetic bag replayed live, with a report

Scoring and reports are `depthart_core.replay`'s, shared with offline mode. Only `transport`
imports rclpy.
"""
