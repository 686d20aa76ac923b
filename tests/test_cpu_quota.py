"""The CPUs this process may use follow its container's CPU quota, not only its affinity mask:
under `docker run --cpus=2` (Kubernetes' CPU limit, systemd's CPUQuota=) the mask still shows
every host core, so the thread rule and the render pool started a thread or worker per host core
and CFS throttling stalled them. Fake /proc and /sys trees stand in for the kernel's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from depthart_core import procutil
from depthart_core.runtime import threads
from depthart_core.training import data

HOST_CPUS = 16


class FakeKernel:
    """A /proc/self and /sys/fs/cgroup under tmp_path, patched into `procutil`."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch
        self.proc = tmp_path / "proc" / "self"
        self.sys = tmp_path / "sys" / "fs" / "cgroup"
        self.proc.mkdir(parents=True)
        self.sys.mkdir(parents=True)
        # raising=False: the old code has no such constants, reads the real kernel's, and
        # answers the affinity (HOST_CPUS), which is what these tests catch
        monkeypatch.setattr(procutil, "PROC_SELF_CGROUP", self.proc / "cgroup", raising=False)
        monkeypatch.setattr(procutil, "PROC_SELF_MOUNTINFO", self.proc / "mountinfo", raising=False)
        monkeypatch.setattr(procutil, "CGROUP_ROOT", self.sys, raising=False)
        self.affinity(HOST_CPUS)

    def affinity(self, n: int) -> None:
        self.monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)
        self.monkeypatch.setattr(os, "cpu_count", lambda: n)

    def cgroup(self, text: str) -> None:
        (self.proc / "cgroup").write_text(text)

    def mountinfo(self, *mounts: tuple[str, Path, str, str]) -> None:
        """(root, mount point, fs type, super options) each."""
        lines = [
            f"{30 + i} 23 0:{40 + i} {root} {str(point).replace(' ', chr(92) + '040')} rw,relatime"
            f" shared:{i} - {fstype} {fstype} {opts}"
            for i, (root, point, fstype, opts) in enumerate(mounts)
        ]
        (self.proc / "mountinfo").write_text("\n".join(lines) + "\n")

    def file(self, rel: str, text: str | bytes) -> None:
        path = self.sys / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    return FakeKernel(tmp_path, monkeypatch)


@pytest.mark.parametrize(
    ("leaf", "parent", "want"),
    [
        ("250000 100000\n", "150000 100000\n", 2),  # the parent's 1.5 CPUs, smaller, win
        ("150000 100000\n", "400000 100000\n", 2),  # the leaf's 1.5 CPUs: up to 2
        ("max 100000\n", "100000 100000\n", 1),
        ("100001 100000\n", "max 100000\n", 2),  # a hair over one CPU is two threads' worth
    ],
)
def test_v2_quota_of_the_cgroup_and_its_parents(kernel, leaf, parent, want):
    kernel.cgroup("0::/kubepods/pod1/ctr\n")
    kernel.mountinfo(("/", kernel.sys, "cgroup2", "rw,nsdelegate"))
    kernel.file("kubepods/cpu.max", "max 100000\n")
    kernel.file("kubepods/pod1/cpu.max", parent)
    kernel.file("kubepods/pod1/ctr/cpu.max", leaf)
    assert procutil.available_cpus() == want


def test_v2_in_a_container_reads_its_root_and_follows_a_changed_quota(kernel):
    """Inside a container the path is "/" and /sys/fs/cgroup/cpu.max is its own; no mountinfo
    needed. `docker update --cpus` changes the quota of a running process: read again."""
    kernel.cgroup("0::/\n")
    kernel.file("cpu.max", "150000 100000\n")
    assert procutil.available_cpus() == 2
    kernel.file("cpu.max", "300000 100000\n")
    assert procutil.available_cpus() == 3
    kernel.file("cpu.max", "max 100000\n")
    assert procutil.available_cpus() == HOST_CPUS


def test_v2_max_is_no_quota(kernel):
    kernel.cgroup("0::/user.slice/session-1.scope\n")
    kernel.mountinfo(("/", kernel.sys, "cgroup2", "rw"))
    kernel.file("user.slice/cpu.max", "max 100000\n")
    kernel.file("user.slice/session-1.scope/cpu.max", "max 100000\n")
    assert procutil.available_cpus() == HOST_CPUS
    assert procutil.cgroup_cpu_quota() is None


@pytest.mark.parametrize("layout", ["container mount", "host mount", "no mountinfo", "spaced"])
def test_v1_cfs_quota(kernel, layout):
    """cgroup v1: 50000/100000 us is half a CPU: one. A container's mount of its own cgroup
    has the process's path as its root (the files at its top); the host's has the whole tree."""
    kernel.cgroup(
        "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n0::/\n"
    )
    top = "cpu x" if layout == "spaced" else "cpu,cpuacct"
    under = "docker/abc/" if layout in ("host mount", "spaced") else ""
    kernel.file(f"{top}/{under}cpu.cfs_quota_us", "50000\n")
    kernel.file(f"{top}/{under}cpu.cfs_period_us", "100000\n")
    if layout == "container mount":
        kernel.mountinfo(
            ("/docker/abc", kernel.sys / "memory", "cgroup", "rw,memory"),
            ("/docker/abc", kernel.sys / top, "cgroup", "rw,cpu,cpuacct"),
        )
    elif layout != "no mountinfo":
        kernel.mountinfo(("/", kernel.sys / top, "cgroup", "rw,cpu,cpuacct"))
    assert procutil.available_cpus() == 1
    assert procutil.cgroup_cpu_quota() == 1


def test_v1_minus_one_is_no_quota(kernel):
    kernel.cgroup("3:cpu:/\n")
    kernel.mountinfo(("/", kernel.sys / "cpu", "cgroup", "rw,cpu"))
    kernel.file("cpu/cpu.cfs_quota_us", "-1\n")
    kernel.file("cpu/cpu.cfs_period_us", "100000\n")
    assert procutil.available_cpus() == HOST_CPUS


def test_missing_files_are_no_quota(kernel):
    assert procutil.available_cpus() == HOST_CPUS  # no /proc/self/cgroup at all
    kernel.cgroup("0::/a/b\n5:cpu:/a/b\n")
    assert procutil.available_cpus() == HOST_CPUS  # no cgroup files, no mountinfo
    kernel.mountinfo(("/", kernel.sys / "nowhere", "cgroup2", "rw"))
    assert procutil.available_cpus() == HOST_CPUS


@pytest.mark.parametrize(
    "content",
    [
        "lots 100000\n",
        "150000\n",
        "",
        "150000 0\n",
        "-5 100000\n",
        "150000 100000 7\n",
        "1.5 1\n",
        b"\xff\xfe\x00 100000",
    ],
)
def test_garbage_is_no_quota_and_never_raises(kernel, content):
    kernel.cgroup("0::/\n")
    kernel.file("cpu.max", content)
    assert procutil.available_cpus() == HOST_CPUS


def test_garbage_proc_files_never_raise(kernel):
    (kernel.proc / "cgroup").write_bytes(b"\xff\xfe garbage\n::::\n0:\n")
    (kernel.proc / "mountinfo").write_text("junk - \n1 2 3\n- - - -\n")
    assert procutil.available_cpus() == HOST_CPUS
    kernel.cgroup("0::/../../escape\n")  # outside the namespace's root: only the top is read
    kernel.file("cpu.max", "200000 100000\n")
    kernel.file("cpu.cfs_quota_us", "not a number\n")
    assert procutil.available_cpus() == 2


def test_the_smaller_of_affinity_and_quota_wins(kernel):
    kernel.cgroup("0::/\n")
    kernel.file("cpu.max", "800000 100000\n")  # 8 CPUs of quota
    kernel.affinity(3)  # taskset -c 0-2
    assert procutil.available_cpus() == 3
    kernel.file("cpu.max", "150000 100000\n")
    assert procutil.available_cpus() == 2


def test_thread_rule_and_render_pool_follow_the_quota(kernel, monkeypatch):
    """docker run --cpus=2 on a 16-core host: the automatic thread count was 4 and the render
    pool 16 workers; now half of 2 CPUs and one worker per CPU of quota."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for name in ("LOCAL_WORLD_SIZE", "LOCAL_RANK", "RANK"):
        monkeypatch.delenv(name, raising=False)
    kernel.cgroup("0::/\n")
    kernel.file("cpu.max", "200000 100000\n")
    assert threads.resolve_threads(0) == 1
    assert data.render_workers() == 2
    with pytest.raises(ValueError, match=r"got 300 \(this process may use 2 CPUs\)"):
        threads.resolve_threads(300)
