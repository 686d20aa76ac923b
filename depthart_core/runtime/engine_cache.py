"""On-disk cache of serialized TensorRT engines, keyed so a stale engine is never loaded.

A TensorRT plan only runs on the TensorRT version and GPU architecture that built it; loading
one from elsewhere fails with "Version tag does not match" or worse (YOLOX-ROS #40, TensorRT
#2041). The key therefore holds everything the plan depends on: the model's sha256, precision,
input shape, TensorRT version and GPU compute capability ("sm_87" on Orin). Each engine lives as

    <cache_dir>/<sha[:16]>_<precision>_<shape>_trt<version>_<sm>.engine   the plan
    <same stem>.json                                                   key + engine sha256
    <same stem>.lock                                                   fcntl build lock

in `cache_dir`, by default `$DEPTHART_ENGINE_CACHE`, else `engines/` under the cache root
(`$DEPTHART_CACHE`, else `$XDG_CACHE_HOME/depthart`, else `~/.cache/depthart`). Files are written
through a temp file and `os.replace`, the sidecar last, so a crash mid-write leaves no half
engine behind a valid sidecar. A missing, stale (sidecar key differs), truncated (sha256
differs) or undeserializable engine is rebuilt and never crashes the caller. A build holds an
exclusive `fcntl.flock` on the lock file, so two processes starting at once build once: the
second waits and then loads the first one's engine, saying every 30 s for which process (pid and
host, written into the lock file) it waits. Once the lock is held, the temp folders a killed
build left beside the engine are removed (`fileutil.build_lock`).

An engine or sidecar that another user could have written (not owned by you or root, or writable
by its group or others: `fileutil.untrusted_cache_file`) is never deserialized: it is rebuilt with
a warning naming the file, its owner and mode. The files stored here are writable by their owner
only, whatever the umask (on a file system that keeps no modes, FAT or NTFS, your own files are
trusted by their owner alone); a cache folder that other users can write and that is not yours is
warned about once. Where the cache cannot be written (a read-only mount, another user's folder,
one you cannot enter too, lock or engine in a sticky folder: `fileutil.cache_unwritable`) the
engine is built and used without being stored, with one warning saying why and that every start
builds it again.

TensorRT's timing cache (`timing_<hardware>.cache` beside the engines: which kernels, "tactics",
won on this GPU) is trusted in the same way (`read_timing_cache`): it cannot change what an
engine computes, but a planted one steers the build to tactics that crash or crawl, so one that
another user could have written is passed over (the build times its tactics afresh) with a
warning naming the file, its owner and mode, and is replaced afterwards only if it is yours.

Pure Python: the TensorRT build and deserialization come in as callables, so the logic is
tested without TensorRT. `import_tensorrt` lives here too, importing neither torch nor onnx:
`get_backend("auto")` tries it before it imports `tensorrt_backend`, so a machine without
TensorRT never loads those for the attempt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Generic, TypeVar

from depthart_core.fileutil import (
    ENV_CACHE,
    WriteError,
    atomic_write,
    build_lock,
    cache_root,
    cache_unwritable,
    describe_os_error,
    untrusted_cache_file,
    warn_shared_cache_folder,
)

log = logging.getLogger(__name__)

ENV_CACHE_DIR = "DEPTHART_ENGINE_CACHE"
PRECISIONS = ("fp32", "fp16")
_HEX = re.compile(r"^[0-9a-f]{16,}$")
_SM = re.compile(r"^sm_\d{2,3}[a-z]?$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")

T = TypeVar("T")


# TensorRT's import: here, without torch or onnx (`runtime.get_backend` tries it first)
INSTALL_HINT = (
    "Install TensorRT's Python package: on Jetson it ships with JetPack (apt package "
    "python3-libnvinfer; create the venv with --system-site-packages to see it); on x86-64 "
    "run `pip install tensorrt-cu12` (or `pip install tensorrt`), which fetches the "
    "tensorrt-cu12-libs wheels from NVIDIA's index https://pypi.nvidia.com."
)


class TensorRTMissing(RuntimeError):
    """TensorRT cannot be imported; `str()` says how to install it, `reason` is the short cause
    (what `--backend auto` logs when it moves on to the next backend)."""

    def __init__(self, cause: BaseException) -> None:
        self.reason = f"tensorrt is not importable ({type(cause).__name__}: {cause})"
        super().__init__(f"tensorrt is not importable ({cause!r}). {INSTALL_HINT}")


MIN_TENSORRT = 10  # strongly typed networks, tensors bound by name, execute_async_v3


def import_tensorrt() -> ModuleType:
    """`import tensorrt` (10 or newer), or a `TensorRTMissing` that says how to install it."""
    try:  # optional dependency: tensorrt (the `tensorrt` extra, NVIDIA GPUs only)
        import tensorrt as trt
    except Exception as exc:  # ImportError, or OSError when libnvinfer is missing
        raise TensorRTMissing(exc) from exc
    version = getattr(trt, "__version__", None)
    if version is None:  # an empty folder named tensorrt imports as a namespace package
        where = getattr(trt, "__file__", None) or list(getattr(trt, "__path__", []))
        raise TensorRTMissing(
            ImportError(f"the tensorrt found ({where}) has no __version__: not TensorRT's package")
        )
    major = str(version).split(".")[0]
    if not major.isdigit() or int(major) < MIN_TENSORRT:  # JetPack 5 ships 8.x
        raise TensorRTMissing(
            ImportError(
                f"tensorrt {version} is older than {MIN_TENSORRT}, which the "
                "engine build and run are written for"
            )  # fmt: skip
        )
    return trt


def default_cache_dir() -> Path:
    """`$DEPTHART_ENGINE_CACHE`, else `engines/` under the cache root (`fileutil.cache_root`)."""
    env = os.environ.get(ENV_CACHE_DIR)
    if env:
        return Path(env).expanduser()
    return cache_root() / "engines"


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized TensorRT engine depends on."""

    model_sha256: str
    precision: str
    input_shape: tuple[int, ...]
    trt_version: str
    compute_capability: str
    # the GPU model and memory (`tensorrt_backend.gpu_name`): engines are not portable between
    # models of one architecture; "" where unknown (keys written before it was recorded)
    gpu: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        if not _HEX.match(self.model_sha256):
            raise ValueError(
                f"model_sha256 must be lowercase hex (>= 16), got {self.model_sha256!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        shape = self.input_shape
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ValueError(f"input_shape must be positive ints, got {shape!r}")
        if not _VERSION.match(self.trt_version):
            raise ValueError(f"trt_version is not a version string: {self.trt_version!r}")
        if not _SM.match(self.compute_capability):
            raise ValueError(
                f"compute_capability must look like 'sm_87', got {self.compute_capability!r}"
            )
        if not re.fullmatch(r"[a-z0-9_.-]*", self.gpu):
            raise ValueError(f"gpu must be a file-name-safe slug, got {self.gpu!r}")

    @property
    def hardware(self) -> str:
        """What the engine and TensorRT's timing cache are specific to, as a file-name part."""
        return f"trt{self.trt_version}_{self.compute_capability}" + (
            f"_{self.gpu}" if self.gpu else ""
        )

    @property
    def stem(self) -> str:
        shape = "x".join(map(str, self.input_shape))
        return f"{self.model_sha256[:16]}_{self.precision}_{shape}_{self.hardware}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d


@dataclass(frozen=True)
class CacheResult(Generic[T]):
    engine: T
    path: Path  # where it is cached (where it would have been, for one the cache could not store)
    built: bool


class EngineCache:
    """Engine files in one directory; see the module docstring for layout and guarantees."""

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        # what a warning says to set to move the cache
        explicit = cache_dir or os.environ.get(ENV_CACHE_DIR)
        self._setting = ENV_CACHE_DIR if explicit else ENV_CACHE

    @property
    def setting(self) -> str:
        """The environment variable a warning tells the user to set to move this cache."""
        return self._setting

    def engine_path(self, key: EngineKey) -> Path:
        return self.cache_dir / f"{key.stem}.engine"

    def timing_cache_path(self, key: EngineKey) -> Path:
        """TensorRT's timing cache for the hardware of `key`, shared by its engines."""
        return self.cache_dir / f"timing_{key.hardware}.cache"

    def sidecar_path(self, key: EngineKey) -> Path:
        return self.cache_dir / f"{key.stem}.json"

    def load(self, key: EngineKey, deserialize: Callable[[bytes], T | None]) -> T | None:
        """The cached engine for `key`, or None (with the reason logged) if it is not usable."""
        path, sidecar = self.engine_path(key), self.sidecar_path(key)
        warn_shared_cache_folder(self.cache_dir, self._setting)
        try:
            present = path.is_file() and sidecar.is_file()
        except OSError as exc:  # a folder of another user you cannot enter (is_file raises
            # on EACCES): no engine to load; the lock is then refused and the engine used unstored
            log.info("engine cache miss: %s cannot be looked up (%s)", path, describe_os_error(exc))
            return None
        if not present:
            log.info("engine cache miss: %s", path)
            return None
        try:
            raw = self._read_trusted(sidecar)
            if raw is None:  # said why
                return None
            meta = json.loads(raw)  # UTF-8, whatever the locale
            blob = self._read_trusted(path)
            if blob is None:
                return None
        except (OSError, ValueError) as exc:
            log.warning("engine cache: unreadable %s (%s); rebuilding", sidecar, exc)
            return None
        if not isinstance(meta, dict):  # valid JSON, not a record of ours
            log.warning("engine cache: unreadable %s (not an object); rebuilding", sidecar)
            return None
        if meta.get("key") != key.to_dict():
            log.warning("engine cache: stale %s (built for %s); rebuilding", path, meta.get("key"))
            return None
        if meta.get("engine_sha256") != hashlib.sha256(blob).hexdigest():
            log.warning("engine cache: %s is corrupt (sha256 mismatch); rebuilding", path)
            return None
        try:
            engine = deserialize(blob)
        except Exception as exc:  # a runtime may raise on a foreign or damaged plan
            log.warning("engine cache: deserializing %s raised %r; rebuilding", path, exc)
            return None
        if engine is None:
            log.warning("engine cache: %s did not deserialize; rebuilding", path)
        return engine

    def _read_trusted(self, path: Path) -> bytes | None:
        """The bytes of `path`, or None (with a warning saying why) if it is not to be trusted;
        judged on the open file, so the file checked is the file read."""
        with open(path, "rb") as f:
            problem = untrusted_cache_file(path, f.fileno(), self._setting)
            if problem is None:
                return f.read()
        log.warning("engine cache: %s %s; rebuilding", path, problem)
        return None

    def get_or_build(
        self,
        key: EngineKey,
        build: Callable[[], bytes],
        deserialize: Callable[[bytes], T | None],
    ) -> CacheResult[T]:
        """Load the engine for `key`, building and storing it first if needed (once at a time)."""
        engine = self.load(key, deserialize)
        if engine is not None:
            return CacheResult(engine, self.engine_path(key), built=False)
        lock = self.cache_dir / f"{key.stem}.lock"
        try:
            # engine and sidecar are written under this lock only: a temp folder of theirs in the
            # cache is a killed build's, removed (an engine's: hundreds of MB) once it is held
            temps = (self.engine_path(key), self.sidecar_path(key))
            with build_lock(lock, f"engine {key.stem}", temps_of=temps):
                # The process that held the lock may have just stored this engine.
                engine = self.load(key, deserialize)
                if engine is not None:
                    return CacheResult(engine, self.engine_path(key), built=False)
                return self._build_and_store(key, build, deserialize)
        except WriteError as exc:
            if exc.path != lock or not cache_unwritable(exc):  # a full disk: the one-line error
                raise
            return self._build_and_store(key, build, deserialize, refused=exc)

    def _build_and_store(
        self,
        key: EngineKey,
        build: Callable[[], bytes],
        deserialize: Callable[[bytes], T | None],
        refused: WriteError | None = None,
    ) -> CacheResult[T]:
        """Build the engine and store it, unless the cache cannot be written (`refused`: its
        lock; or the store fails so): then the engine is used unstored, with a warning."""
        blob = bytes(build())
        if not blob:
            raise RuntimeError(f"the engine build for {key.stem} returned no data")
        engine = deserialize(blob)
        if engine is None:
            raise RuntimeError(f"a freshly built engine for {key.stem} does not deserialize")
        path = self.engine_path(key)
        if refused is None:
            try:
                self._store(key, blob)
                return CacheResult(engine, path, built=True)
            except WriteError as exc:
                if not cache_unwritable(exc):  # a full disk: the one-line error
                    raise
                refused = exc
        log.warning(
            "engine cache %s cannot be written (%s): the engine %s is used without being stored; "
            "every start will build it again until %s points to a folder you can write",
            self.cache_dir,
            refused,
            path.name,
            self._setting,
        )
        return CacheResult(engine, path, built=True)

    def _store(self, key: EngineKey, blob: bytes) -> None:
        path, sidecar = self.engine_path(key), self.sidecar_path(key)
        meta = {"key": key.to_dict(), "engine_sha256": hashlib.sha256(blob).hexdigest()}
        # (under the build lock, which removed a killed write's temp folder: `get_or_build`)
        atomic_write(path, blob, owner_only=True)
        atomic_write(sidecar, (json.dumps(meta, indent=2) + "\n").encode(), owner_only=True)
        log.info("engine cache: stored %s (%.1f MB)", path, len(blob) / 1e6)


def read_timing_cache(path: str | Path | None, setting: str = ENV_CACHE) -> tuple[bytes, bool]:
    """TensorRT's timing cache at `path` for a build: (its bytes, b"" where there is none, it
    cannot be read or it is not trusted; whether the build may save its own at `path`).

    A timing cache is read only if `untrusted_cache_file` trusts it (judged on the open file, so
    the file checked is the file read): yours or root's and writable by no one else. Else the
    build goes without it, with one warning naming the file, its owner and mode; and one that is
    not yours (another user's, root's, or a link of another's) is not replaced either, while one
    of yours that others could write (written under an old umask) is replaced by the build's own,
    which the caller makes writable by you only (`owner_write_only`)."""
    if path is None:
        return b"", False
    try:
        with open(path, "rb") as f:
            problem = untrusted_cache_file(path, f.fileno(), setting)
            if problem is None:
                data = f.read()
                log.info("TensorRT timing cache: %s (%d bytes)", path, len(data))
                return data, True
            uid = os.getuid()
            ours = os.fstat(f.fileno()).st_uid == uid and os.lstat(path).st_uid == uid
    except FileNotFoundError:
        return b"", True
    except OSError as exc:  # a folder you cannot enter (another user's cache): start empty
        why = describe_os_error(exc, with_path=False)
        log.info("TensorRT timing cache %s not readable (%s); starting empty", path, why)
        return b"", True
    log.warning(
        "TensorRT timing cache %s %s; building without it%s",
        path,
        problem,
        "" if ours else ", and leaving it as it is",
    )
    return b"", ours
