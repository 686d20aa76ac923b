"""The one ONNX export cache, shared by the ONNX Runtime and TensorRT backends.

A checkpoint is exported once per precision and decoding, to

    <cache root>/onnx/<model sha256[:16]>_<precision>.onnx              greedy
    <cache root>/onnx/<model sha256[:16]>_<precision>_<decoding>.onnx   e.g. soft

(model sha256: `CheckpointFile.model_sha256`, the file's, combined with the VQ-VAE file's for an
authors' checkpoint read with a separate one; cache root: `depthart_core.fileutil.cache_root`),
and reused by every later process. The graph is written through a temp file and a rename, so a
reader never finds a half-written one; an export holds the graph's lock (`fileutil.build_lock`:
another process waits, saying every 30 s for which), and the temp folders a killed export left
are removed once it is held. The backends check the model hash stamped in the graph's
metadata before they run it.

A checkpoint with the uncertainty head exports a graph with the "uncertainty" output. Its hash
differs from any headless checkpoint's, so the two never share a cache entry; a graph cached for
it by an exporter from before the head (no `depthart_uncertainty` = "head" stamp) is exported
again rather than served without the head.

Graphs are stamped with the exporter's version (`EXPORTER_VERSION`, raised whenever the export
changes what a graph computes); one cached by an older exporter is exported again, so an upgrade
never keeps serving a graph the new code would not write.

Each graph's sha256 is recorded beside it (`<graph>.sha256`) when it is written. A cached graph
that cannot be read, whose stamps (model hash, precision, decoding, head) are not the ones asked
for, or whose bytes no longer match the record (a truncated copy, a disk error, an edit) is
exported again with a warning saying why, instead of failing every later run or being served.
An entry from before the record is checked by its stamps, and its record written then.

A graph or record that another user could have written (one not owned by you or root, or
writable by its group or others: `fileutil.untrusted_cache_file`) is never loaded: anyone who can
write a shared cache could put a different model there under the right stamps and a matching
record. It is exported again with a warning naming the file, its owner and mode. The graphs and
records written here are writable by their owner only, whatever the umask (on a file system that
keeps no modes, FAT or NTFS, your own files are trusted by their owner alone).

A cache that cannot be written (a read-only mount, a folder or lock file of another user, another
user's graph in a sticky folder: `fileutil.cache_unwritable`) and holds no graph to serve (one in
a folder of another user's that you cannot enter cannot be looked up: none) does not end the
run: the graph is exported into a temp folder of the process's own, removed at exit
(`fileutil.private_cache_folder`), with one warning saying why the cache was not used and that
every start exports again until `$DEPTHART_CACHE` names a folder you can write. A trusted graph
in a read-only cache is served as ever.

Serving a cached graph needs no torch (its stamps are read with `onnx` alone): torch, the model
and the exporter are imported at the first export (`export_onnx`, `_export`), so a process that
runs a cached graph on ONNX Runtime never loads torch.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from depthart_core.checkpoint_file import CheckpointFile
from depthart_core.export.onnx_meta import (
    EXPORTER_VERSION,
    META_DECODING,
    META_EXPORTER,
    META_PRECISION,
    META_SHA,
    META_UNCERTAINTY,
    UNCERTAINTY_HEAD,
    checkpoint_has_head,
    read_onnx_header,
)
from depthart_core.fileutil import (
    ENV_CACHE,
    WriteError,
    atomic_write,
    build_lock,
    cache_root,
    cache_unwritable,
    describe_os_error,
    private_cache_folder,
    sha256_file,
    untrusted_cache_file,
    warn_shared_cache_folder,
)
from depthart_core.runtime.base import torch_missing
from depthart_core.sampling import SamplingConfig, graph_decoding

log = logging.getLogger(__name__)


def onnx_cache_path(sha256: str, precision: str, decoding: str = "greedy") -> Path:
    suffix = "" if decoding == "greedy" else f"_{decoding}"  # greedy keeps its older name
    return cache_root() / "onnx" / f"{sha256[:16]}_{precision}{suffix}.onnx"


def cached_onnx(
    ckpt: CheckpointFile, precision: str = "fp32", sampling: SamplingConfig | None = None
) -> Path:
    """The checkpoint's exported graph at `precision` with the deterministic decoding `sampling`
    (None: greedy), exported (once) if not cached yet.

    "fp16" exports a half-precision graph, "fp32" a full one; nothing else has a graph (bf16:
    ONNX Runtime has no kernels for it; the backends refuse it before asking for one).
    """
    decoding = graph_decoding(sampling)
    path = onnx_cache_path(ckpt.model_sha256, precision, decoding)
    for folder in (cache_root(), path.parent):
        warn_shared_cache_folder(folder)
    # why the cached graph is not served (None: there is none), kept for the warning of a cache
    # that cannot be written, where the lock below is refused before any export
    present, problem = _lookup(path, ckpt, precision, decoding)
    if present and problem is None:
        return path  # the common case: no lock
    try:
        # one process at a time checks, exports and records (its graph and record are replaced
        # one after the other: another reading between the two would see a mismatch)
        # (the graph is written under this lock only: a temp folder of its left in the cache is
        # a killed export's, removed once the lock is held)
        lock = path.with_name(path.name + ".lock")
        with build_lock(lock, f"the graph {path.name}", temps_of=(path,)):
            present, problem = _lookup(path, ckpt, precision, decoding)
            if present:
                if problem is None:  # (re)exported by the process that held the lock
                    return path
                log.warning("cached graph %s %s: exporting it again", path, problem)
            _export(ckpt, path, precision, sampling)
    except WriteError as exc:
        if not cache_unwritable(exc):  # a full disk: the one-line error
            raise
        return _export_privately(ckpt, path, precision, sampling, problem, exc)
    return path


def _export_privately(
    ckpt: CheckpointFile,
    path: Path,
    precision: str,
    sampling: SamplingConfig | None,
    problem: str | None,
    failure: WriteError,
) -> Path:
    """Export the graph of `path` into this process's own temp folder, the cache having refused
    the write (`failure`); the graph exported there earlier by this process is used again."""
    decoding = graph_decoding(sampling)
    try:
        private = private_cache_folder("onnx") / path.name
    except OSError as exc:  # no temp folder either: the cache's own error
        raise failure from exc
    if private.is_file() and _cached_problem(private, ckpt, precision, decoding) is None:
        return private
    why = f"the cached graph {problem}; " if problem is not None else ""
    log.warning(
        "the ONNX cache cannot be used for %s (%s%s): exporting it into %s, a temp folder removed "
        "at exit; every start will export it again until %s points to a folder you can write",
        path.name,
        why,
        failure,
        private.parent,
        ENV_CACHE,
    )
    _export(ckpt, private, precision, sampling, cached=False)
    return private


def export_onnx(model: Any, out_path: Path, **kwargs: Any) -> Path:
    """`export.onnx_export.export_onnx`, imported at the first export: it needs torch, which
    serving a cached graph does not (the module docstring)."""
    from depthart_core.export import onnx_export  # torch: a cache miss only

    return onnx_export.export_onnx(model, out_path, **kwargs)


def _export(
    ckpt: CheckpointFile,
    path: Path,
    precision: str,
    sampling: SamplingConfig | None,
    cached: bool = True,
) -> None:
    """Export `ckpt`'s graph to `path`: the cache's (`cached`, under its `build_lock`), or this
    process's private folder (`_export_privately`). Without torch (an install made for a cached
    graph: ONNX Runtime alone) a ModuleNotFoundError saying how to get the graph there instead."""
    try:
        from depthart_core.checkpoint import load_model  # torch: a cache miss only
    except ModuleNotFoundError as exc:  # (torch imported here, the exporter finds it loaded)
        if not torch_missing(exc):
            raise
        why = _needs_torch(ckpt, path, precision, sampling, cached)
        raise ModuleNotFoundError(why, name="torch") from exc

    how = "once; cached" if cached else "this run only: the cache cannot be used"
    log.info("exporting %s to %s (%s)", ckpt.path, path, how)
    model, _ = load_model(ckpt)
    fp16 = precision == "fp16"
    atomic_write(
        path,
        lambda tmp: export_onnx(
            model,
            tmp,
            checkpoint_sha256=ckpt.model_sha256,
            fp16=fp16,
            sampling=sampling,
            final_path=path,
        ),
        # the cache's: a killed export's temp folder was removed under the lock (`temps_of`);
        # a private folder's: removed with the folder
        owner_only=True,
    )
    _record(path)


def _needs_torch(
    ckpt: CheckpointFile, path: Path, precision: str, sampling: SamplingConfig | None, cached: bool
) -> str:
    """One line for a graph `_export` cannot export without torch: the `depthart export` command
    that writes the same graph (same stamps) where torch is, and where to put it."""
    options = "" if ckpt.default else f" --checkpoint {ckpt.path}"  # the default: its own
    options += f" --vae {ckpt.vae}" if ckpt.vae else ""
    options += f" --out {path.name}" + (" --fp16" if precision == "fp16" else "")
    command = f"depthart export{options} --sampling {graph_decoding(sampling)}"
    into = path if cached else f"<a {ENV_CACHE} you can write>/onnx/{path.name}"
    return (
        f"exporting {path.name} into the ONNX cache needs PyTorch, which is not installed: "
        f"export it once where torch is (`{command}`, same checkpoint) and copy it to {into}, "
        f"or run once with torch and the same {ENV_CACHE}"
    )


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _record(path: Path) -> None:
    atomic_write(_record_path(path), (sha256_file(path) + "\n").encode(), owner_only=True)


def _lookup(
    path: Path, ckpt: CheckpointFile, precision: str, decoding: str
) -> tuple[bool, str | None]:
    """(whether a graph is cached at `path`, why it must not be served or None). A graph that
    cannot even be looked for (a folder of another user that you cannot enter: Path.is_file
    raises on EACCES) is none to serve, with the reason: the lock is then refused the same way
    and the graph exported privately."""
    try:
        present = path.is_file()
    except OSError as exc:
        return False, f"cannot be looked up ({describe_os_error(exc, with_path=False)})"
    return present, (_cached_problem(path, ckpt, precision, decoding) if present else None)


def _cached_problem(path: Path, ckpt: CheckpointFile, precision: str, decoding: str) -> str | None:
    """Why the cached graph at `path` must not be served for `ckpt`, or None."""
    try:
        with open(path, "rb") as graph:  # trusted and hashed as opened: the file checked is read
            problem = untrusted_cache_file(path, graph.fileno())
            if problem is not None:
                return problem
            problem = _stamp_problem(path, ckpt, precision, decoding)
            if problem is not None:
                return problem
            digest = hashlib.sha256()
            for chunk in iter(lambda: graph.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        return f"cannot be read ({describe_os_error(exc, with_path=False)})"
    record = _record_path(path)
    try:
        has_record = record.is_file()
    except OSError as exc:  # one that cannot be looked up is not taken for an absent one
        why = describe_os_error(exc, with_path=False)
        return f"has a record {record.name} that cannot be looked up ({why})"
    if not has_record:  # cached before graphs had a record: its stamps were checked
        try:
            _record(path)
        except OSError as exc:  # bookkeeping only (a read-only cache): serve the graph
            log.info("could not record the sha256 of %s (%s)", path, exc)
        return None
    try:
        with open(record, "rb") as f:
            problem = untrusted_cache_file(record, f.fileno())
            if problem is not None:
                return f"has a record {record.name} that {problem}"
            recorded = f.read().decode("utf-8", errors="replace").strip()
    except OSError as exc:
        return f"has an unreadable record {record.name} ({describe_os_error(exc, with_path=False)})"
    if recorded != digest.hexdigest():
        return "no longer matches the sha256 recorded when it was written"
    return None


def _stamp_problem(path: Path, ckpt: CheckpointFile, precision: str, decoding: str) -> str | None:
    """Why the stamps in the graph at `path` are not the ones `ckpt` asks for, or None."""
    try:
        meta, _ = read_onnx_header(path)
    except ValueError as exc:
        return f"is damaged ({exc})"
    stamps = {
        META_SHA: ckpt.model_sha256,
        META_PRECISION: "fp16" if precision == "fp16" else "fp32",
        META_DECODING: decoding,
    }
    for key, want in stamps.items():
        have = meta.get(key, "greedy" if key == META_DECODING else None)  # greedy: unstamped
        if have != want:
            return f"has {key} {have!r}, not {want!r}"
    exporter = meta.get(META_EXPORTER, "1")  # 1: graphs from before the stamp
    if exporter != EXPORTER_VERSION:  # the export code changed since: the graph may be stale
        return f"was written by exporter version {exporter}, not {EXPORTER_VERSION} (this code)"
    if checkpoint_has_head(ckpt) and meta.get(META_UNCERTAINTY) != UNCERTAINTY_HEAD:
        return f"lacks the uncertainty output of {ckpt.path}'s head"
    return None
