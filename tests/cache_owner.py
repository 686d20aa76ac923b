"""Test helpers for the cache trust tests (test_cache_trust*.py, test_latent_cache_trust.py):
another user's ownership simulated in the stat of an open descriptor, so the tests run alike as
root and as anyone else."""

from __future__ import annotations

import os
import stat
from pathlib import Path

OTHER_UID = 4242 + os.getuid() if hasattr(os, "getuid") else 4242
MARK_NS = 10**9  # the mtime that marks a file (or folder) as another user's


def owned_by_another(monkeypatch, *paths: Path) -> None:
    """The files now at `paths` read as owned by OTHER_UID in the stat of their open descriptor
    (marked by an old mtime: a file written in their place, even on a reused inode, is not)."""
    for p in paths:
        os.utime(p, ns=(MARK_NS, MARK_NS))
    real_fstat = os.fstat

    def fstat(fd):
        st = real_fstat(fd)
        if st.st_mtime_ns != MARK_NS:
            return st
        fields = list(st[:10])
        fields[stat.ST_UID] = OTHER_UID
        return os.stat_result(fields)

    monkeypatch.setattr(os, "fstat", fstat)


def file_mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)
