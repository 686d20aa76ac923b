"""The node's Fast DDS memory profile, applied before rclpy creates its participant.

rmw_fastrtps gives every reader the PREALLOCATED_WITH_REALLOC history memory policy: a reader's
buffer grows to the largest sample it ever received and never shrinks, so a single 8000x6000
frame (144 MB) stayed in the node's memory after it was refused. `fastdds_node.xml` (beside this
file) makes readers free each payload once taken. rmw_fastrtps reads an XML profile's memory
policies only with RMW_FASTRTPS_USE_QOS_FROM_XML=1; ROS QoS settings given in code (reliability,
depth, ...) still apply on top. Nothing is changed when the environment already names a Fast
DDS profile file, when another RMW is selected, or with DEPTHART_DDS_PROFILE=0.

Under RMW_FASTRTPS_USE_QOS_FROM_XML=1 rmw_fastrtps also takes the writers' publication mode from
the XML instead of RMW_FASTRTPS_PUBLICATION_MODE, so the profile states rmw_fastrtps's default,
SYNCHRONOUS, and `ASYNC_PROFILE` (the same with ASYNCHRONOUS) is loaded where that variable asks
for asynchronous publication: the user's choice is kept either way.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

PROFILE = Path(__file__).with_name("fastdds_node.xml")
ASYNC_PROFILE = Path(__file__).with_name("fastdds_node_async.xml")


def use_node_profile(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """Point Fast DDS at the node's profile unless the user chose otherwise; returns the file
    used, or None. Must run before `rclpy.init`."""
    rmw = environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if environ.get("DEPTHART_DDS_PROFILE") == "0" or rmw != "rmw_fastrtps_cpp":
        return None
    if any(environ.get(f"FAST{v}_DEFAULT_PROFILES_FILE") for v in ("DDS", "RTPS")):
        return None
    mode = environ.get("RMW_FASTRTPS_PUBLICATION_MODE", "").strip().upper()
    profile = ASYNC_PROFILE if mode == "ASYNCHRONOUS" else PROFILE
    environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    environ["RMW_FASTRTPS_USE_QOS_FROM_XML"] = "1"
    return str(profile)
