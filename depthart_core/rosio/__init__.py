"""ROS message data without ROS: the sensor_msgs/Image codec and rosbag files, in pure Python.

    image   sensor_msgs/Image <-> numpy (every common encoding), REP 117/118 depth conventions
    cloud   sensor_msgs/PointCloud2 from `depthart_core.pointcloud` arrays
    bags    read and write ROS 1 / ROS 2 bags with `rosbags`, messages built and (de)serialised

Nothing here imports rclpy: the node (`depthart_ros`) and the replay tools share this code.
"""
