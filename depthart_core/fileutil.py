"""Small torch-free file helpers: hashing, atomic writes and the one cache root.

Everything DepthART caches (exported ONNX graphs, TensorRT engines, rendered synthetic pools)
lives under `cache_root()`: `$DEPTHART_CACHE` if set, else `$XDG_CACHE_HOME/depthart`, else
`~/.cache/depthart` (the XDG Base Directory default).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

ENV_CACHE = "DEPTHART_CACHE"


def cache_root() -> Path:
    """`$DEPTHART_CACHE`, else `$XDG_CACHE_HOME/depthart`, else `~/.cache/depthart`."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "depthart"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(path: str | Path, content: bytes | Callable[[str], None]) -> None:
    """Write `content` to `path` so that readers see the old file or the whole new one.

    `content` is the bytes to write, or `write_fn(tmp)` that writes a temp file beside `path`;
    the temp file is fsynced and renamed over `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        if isinstance(content, bytes | bytearray | memoryview):
            Path(tmp).write_bytes(content)
        else:
            content(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 is too private for shared checkpoints
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
