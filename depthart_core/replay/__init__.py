"""Rosbag replay evaluation: a recorded camera stream through the depth model, scored against GT.

    frames    config, stamp matching, frames with their GT, scoring, run state, --write-bag
    offline   offline mode: every image through `Backend.predict`, the call the node makes
    report    report.json, report.md and the pictures, also for runs that stop early

Live mode (the bag played into the real node) is `depthart_ros.replay`, which builds on these.
"""
