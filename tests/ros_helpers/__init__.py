"""Helpers for the ROS 2 node tests: synthetic camera frames, process control, a test peer."""
