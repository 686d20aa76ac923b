"""Fast DDS settings: the node's memory profile, applied before rclpy creates its participant,
and the check that a ROS domain's discovery port can be shared (below).

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

import errno
import os
import socket
from collections.abc import MutableMapping
from pathlib import Path

PROFILE = Path(__file__).with_name("fastdds_node.xml")
ASYNC_PROFILE = Path(__file__).with_name("fastdds_node_async.xml")
# Fast DDS's default well-known ports (DDSI-RTPS 9.6.1.1: port base PB, domain gain DG, offset
# d0 = 0): a domain's participants discover each other through the multicast port PB + DG x id
PORT_BASE = 7400
DOMAIN_GAIN = 250


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


def default_ports(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Whether a participant started with `environ` discovers on Fast DDS's default ports
    (`discovery_port`): rmw_fastrtps_cpp (ROS 2's default middleware), with no XML profile but
    the node's own (`use_node_profile`), which sets no port. Another middleware, or a user's
    profile that may move the ports: not known, so nothing is said or refused about them."""
    if environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return False
    ours = {str(PROFILE), str(ASYNC_PROFILE)}
    return all(
        environ.get(f"FAST{v}_DEFAULT_PROFILES_FILE", "") in ("", *ours) for v in ("DDS", "RTPS")
    )


def discovery_port(domain_id: int) -> int:
    """The UDP port on which a domain's participants hear multicast discovery (SUBNET)."""
    return PORT_BASE + DOMAIN_GAIN * domain_id


def discovery_port_held(domain_id: int) -> bool:
    """True when a socket that does not share its port (bound without SO_REUSEADDR, on any
    address) holds `domain_id`'s discovery port. Fast DDS shares that port among its own
    participants, but cannot open it then, and its participants on the domain never discover
    each other under SUBNET discovery (measured: two processes did not meet in 15 s while a plain
    UDP socket held the port, met in 0.3 s without it, also with ROS_STATIC_PEERS=127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", discovery_port(domain_id)))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


# ROS_AUTOMATIC_DISCOVERY_RANGE values under which Fast DDS discovers through the multicast port
# (unset: ROS 2's default, SUBNET); LOCALHOST discovery met on a held port, OFF uses none
MULTICAST_RANGES = ("", "SUBNET", "SYSTEM_DEFAULT")


def held_discovery_port_said(
    domain_id: int, environ: MutableMapping[str, str] = os.environ
) -> str | None:
    """Why no other process discovers this one, where a held discovery port says so
    (`discovery_port_held` under Fast DDS's multicast discovery on its default ports, no
    discovery server), else None."""
    if environ.get("ROS_DISCOVERY_SERVER") or environ.get("ROS_LOCALHOST_ONLY") == "1":
        return None
    if not default_ports(environ):
        return None
    if environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").strip().upper() not in MULTICAST_RANGES:
        return None
    if not discovery_port_held(domain_id):
        return None
    port = discovery_port(domain_id)
    return (
        f"ROS domain {domain_id}'s discovery port {port}/udp is held by another program that "
        f"does not share it (`ss -uapn 'sport = :{port}'` names it): under SUBNET discovery no "
        f"other process discovers this one"
    )
