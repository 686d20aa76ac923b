"""Synthetic RGB-D frames written to disk, and their reader.

`write_synthetic_set` renders frames 0 .. count-1 of a seed with
`depthart_core.data.synthetic.render` and writes this layout (format "depthart-synth/1"):

    DIR/meta.json               {"format": "depthart-synth/1", "count": N, "seed": S,
                                 "size": [H, W], "generator": SynthConfig as a dict}
    DIR/rgb/000000.png          8-bit RGB PNG, H x W
    DIR/depth/000000.png        16-bit single-channel PNG, planar depth in millimetres
                                (round(depth_m * 1000)), 0 = invalid
    DIR/intrinsics/000000.json  {"fx", "fy", "cx", "cy", "width", "height"} in pixels, pixel
                                centres at integer coordinates (OpenCV convention)

Frame i is frame i of the seed, so `SyntheticSet(DIR)[i]` equals `render_frame(S, i, cfg)` up to
the millimetre quantisation of depth (same name, same RGB, same intrinsics up to float32).

Damaged and absent frames. `SyntheticSet` indexes the frames below meta.json's `count` of which
at least one of the three files is on disk (one listing per folder); frames of which no file at
all is there (the last ones removed, or a `count` far beyond the files) are skipped, counted in
`skipped` and in one warning that gives their number, without a look per frame. A frame of the
index whose file is missing, whose PNGs do not start with the PNG signature, or whose intrinsics
file is not valid JSON with the six keys is damaged: `__getitem__` raises a frame error
(`FileNotFoundError` for a missing file, else `BadFrameError`) naming the file, which
`depthart eval` lists as unreadable. Those checks are cheap and made when the frame is read;
decoding every image up front would cost a full pass over the data, so a PNG with a valid header
but a damaged body (or one that claims more pixels than `image_header.MAX_PIXELS`, never decoded)
is found the same way, when read. A meta.json whose `count`, `seed` or `size` are not whole
numbers is refused in one line naming it and the key.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from depthart_core.data.benchmarks._io import (
    BadFrameError,
    BenchmarkDataset,
    check_same_size,
    make_sample,
    read_png_u16,
    read_rgb,
    require_dir,
)
from depthart_core.data.sample import DepthSample
from depthart_core.data.synthetic.config import SynthConfig
from depthart_core.data.synthetic.render import render_batch
from depthart_core.fileutil import atomic_write, describe_os_error, output_folder, read_json
from depthart_core.rundir import hold_folder

log = logging.getLogger(__name__)

FORMAT = "depthart-synth/1"
PARTIAL = "partial.json"  # an interrupted set: its settings and how many frames are complete
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_K_KEYS = ("fx", "fy", "cx", "cy", "width", "height")
_FRAME_FILES = (("rgb", ".png"), ("depth", ".png"), ("intrinsics", ".json"))  # as _frame_paths
_FRAME_NAME = re.compile(r"[0-9]{6,}\.(png|json)")


def _frame_paths(root: Path, i: int) -> tuple[Path, Path, Path]:
    stem = f"{i:06d}"
    return (
        root / "rgb" / f"{stem}.png",
        root / "depth" / f"{stem}.png",
        root / "intrinsics" / f"{stem}.json",
    )


def depth_to_mm(depth_m: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Metres -> uint16 millimetres, 0 where invalid; raises if a valid depth does not fit."""
    mm = np.round(depth_m.astype(np.float64) * 1000.0)
    bad = valid & ((mm < 1) | (mm > 65535))
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} valid depths lie outside the 16-bit millimetre range "
            f"[0.001, 65.535] m (e.g. {float(depth_m[bad][0])} m)"
        )
    return np.where(valid, mm, 0).astype(np.uint16)


def write_synthetic_set(
    out_dir: str | Path,
    count: int,
    seed: int,
    size: tuple[int, int] = (128, 128),
    progress: bool = True,
    cfg: SynthConfig | None = None,
    batch_size: int = 16,
    overwrite: bool = False,
    resume: bool = False,
) -> Path:
    """Render frames 0 .. count-1 of `seed` into `out_dir` (layout in the module docstring).

    `cfg` is a SynthConfig (its `size` is replaced by `size`); frames are rendered on the CPU in
    batches of `batch_size`. An existing set is only replaced with `overwrite=True`.

    Stopped part-way (Ctrl-C, a full disk), the frames written so far
    stay, with `partial.json` (the settings and how many frames are complete) and no `meta.json`,
    so no reader takes them for a set. `resume=True` with the same settings renders the rest:
    frame i depends only on (seed, i), so the finished set equals an uninterrupted one.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:  # as render's
        raise ValueError(f"seed must be a non-negative int below 2**32, got {seed!r}")
    h, w = size
    cfg = dataclasses.replace(cfg or SynthConfig(), size=(int(h), int(w)))  # checks the size
    root = Path(out_dir)
    meta = {
        "format": FORMAT,
        "count": int(count),
        "seed": int(seed),
        "size": [int(h), int(w)],
        "generator": cfg.to_dict(),
    }
    meta = json.loads(json.dumps(meta))  # as read back (tuples are lists): compared on resume
    if resume and _complete_set_matches(root, meta):
        return root  # finished by an earlier call: nothing to do
    # a file, a read-only or full disk: one line before any rendering; the folders this call
    # makes are removed again if it ends with nothing in them
    with output_folder(root):
        lock = hold_folder(root)  # a second writer of this folder is refused, not interleaved
        try:
            _write_frames(root, meta, cfg, progress, batch_size, overwrite, resume)
            # written last: marks the set complete
            atomic_write(root / "meta.json", json.dumps(meta, indent=2).encode())
            (root / PARTIAL).unlink(missing_ok=True)
        finally:
            lock.release_and_remove()
    return root


def _complete_set_matches(root: Path, meta: dict) -> bool:
    """Whether `root` already holds the complete set `meta` describes (for `resume`)."""
    if not (root / "meta.json").is_file():
        return False
    held = read_json(root / "meta.json", "synthetic set metadata")
    if any(held.get(k) != v for k, v in meta.items()):
        raise ValueError(f"{root} already holds a complete set of other settings "
                         f"({_settings(held)}); pass --overwrite to replace it")  # fmt: skip
    return True


def _settings(meta: dict) -> str:
    h, w = meta.get("size") or ("?", "?")
    return f"--count {meta.get('count')} --seed {meta.get('seed')} --size {h}x{w}"


def _first_frame(root: Path, meta: dict, overwrite: bool, resume: bool) -> int:
    """The frame to start at: 0, or the first one an interrupted run left to do (`resume`).
    Refuses a folder that holds a set (without `overwrite`) or someone else's partial set."""
    partial = root / PARTIAL
    held = read_json(partial, "interrupted synthetic set") if partial.is_file() else None
    had_set = (root / "meta.json").exists()
    if had_set:
        if not overwrite:
            raise ValueError(
                f"{root} already holds a synthetic set (meta.json); pass overwrite=True "
                f"(--overwrite on the command line)"
            )
        _refuse_foreign(root / "meta.json")  # before anything of the folder is touched
    if overwrite and held is not None:
        _refuse_foreign(partial)
    if had_set:
        (root / "meta.json").unlink()  # an interrupted rewrite must not look complete
    if overwrite and (had_set or held is not None):
        _remove_frames(root)  # a larger old set's frames would stay beside the new ones
    if overwrite or held is None:
        if resume and not overwrite:
            raise ValueError(f"{root} holds no interrupted set ({PARTIAL}) to resume")
        partial.unlink(missing_ok=True)
        return 0
    done = held.get("written")
    if not resume:
        raise ValueError(
            f"{root} holds an interrupted set ({done} of {held.get('count')} frames): pass "
            f"--resume to finish it, or --overwrite to start again"
        )
    differs = [k for k, v in meta.items() if held.get(k) != v]
    if differs or not isinstance(done, int) or not 0 <= done <= meta["count"]:
        raise ValueError(
            f"{root} holds an interrupted set of other settings ({_settings(held)}"
            f"{', generator' if 'generator' in differs else ''}): resume it with those, "
            f"or pass --overwrite"
        )
    return done


def _refuse_foreign(path: Path) -> None:
    """`--overwrite` replaces only a set `depthart synth` wrote (its meta.json or partial.json
    says FORMAT): another dataset's folder of the same layout (rgb/, depth/, six-digit names)
    would lose its files to `_remove_frames`."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not JSON, not UTF-8
        doc = None
    if not (isinstance(doc, dict) and doc.get("format") == FORMAT):
        raise ValueError(
            f"{path} is not one `depthart synth` wrote (no format {FORMAT!r}): --overwrite "
            "replaces only its own sets, never another dataset's files; give another --out"
        )


def _remove_frames(root: Path) -> None:
    """Remove the frame files of the set in `root` being replaced: only names of the set's own
    pattern (`_frame_paths`: six or more digits) in its three sub-folders; other files stay."""
    for sub, suffix in _FRAME_FILES:
        folder = root / sub
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if _FRAME_NAME.fullmatch(path.name) and path.suffix == suffix and path.is_file():
                path.unlink(missing_ok=True)


def _write_frames(
    root: Path,
    meta: dict,
    cfg: SynthConfig,
    progress: bool,
    batch_size: int,
    overwrite: bool,
    resume: bool,
) -> None:
    """Frames of the set `meta` describes into `root`, from the first one not yet written. On a
    failure (Ctrl-C, a full disk) the frame being written is removed; the complete ones stay with
    `partial.json`, or, when there are none, the sub-folders this call made go too."""
    count, seed = int(meta["count"]), int(meta["seed"])
    start = _first_frame(root, meta, overwrite, resume)
    subs = [root / sub for sub in ("rgb", "depth", "intrinsics")]
    made = [p for p in subs if not p.exists()]
    for sub in made:
        sub.mkdir(exist_ok=True)
    written = start
    try:
        with tqdm(
            total=count, initial=start, desc=f"synth {root.name}", unit="frame",
            disable=not progress,
        ) as bar:  # fmt: skip
            for b0 in range(start, count, batch_size):
                idx = list(range(b0, min(count, b0 + batch_size)))
                out = render_batch(seed, idx, cfg, "cpu")
                for j, i in enumerate(idx):
                    _write_frame(root, i, out, j, cfg.size)
                    written = i + 1
                bar.update(len(idx))
    except BaseException:
        for path in _frame_paths(root, written):  # the frame being written
            path.unlink(missing_ok=True)
        if written > 0:  # keep what is complete, and say how far it got
            try:
                atomic_write(root / PARTIAL, json.dumps(meta | {"written": written}).encode())
            except OSError:  # the disk that stopped the frames: the first error is the one told
                pass
        else:
            for sub in made:
                sub.rmdir()
        raise


def _write_frame(root: Path, i: int, out: dict, j: int, size: tuple[int, int]) -> None:
    """Frame i of the set from item j of a `render_batch` output: RGB, depth and intrinsics."""
    rgb_p, depth_p, k_p = _frame_paths(root, i)
    rgb = out["rgb"][j].permute(1, 2, 0).numpy()
    mm = depth_to_mm(out["depth"][j].numpy(), out["valid"][j].numpy())
    atomic_write(rgb_p, _png(np.ascontiguousarray(rgb[:, :, ::-1]), rgb_p))
    atomic_write(depth_p, _png(mm, depth_p))
    K = out["K"][j].numpy().astype(float)
    intr = {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2]}
    intr |= {"width": int(size[1]), "height": int(size[0])}
    atomic_write(k_p, json.dumps(intr).encode())


def _png(image: np.ndarray, path: Path) -> bytes:
    """PNG bytes for `atomic_write` (encoded in memory: a full disk then raises with its errno,
    where `cv2.imwrite` only returns False)."""
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"OpenCV could not encode {path}")
    return buf.tobytes()


def _read_meta(root: Path) -> dict:
    path = root / "meta.json"
    if not path.exists() and (root / PARTIAL).is_file():
        held = read_json(root / PARTIAL, "interrupted synthetic set")
        raise ValueError(
            f"{root} holds an interrupted synthetic set ({held.get('written')} of "
            f"{held.get('count')} frames): finish it with `depthart synth --out {root} "
            f"{_settings(held)} --resume`"
        )
    meta = read_json(path, "synthetic set metadata")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r} is not {FORMAT!r}")
    for key in ("count", "seed", "size"):
        if key not in meta:
            raise ValueError(f"{path}: missing key {key!r}")
    count, seed, size = meta["count"], meta["seed"], meta["size"]
    if not _whole(count):
        raise ValueError(f"{path}: 'count' must be a whole number of frames, got {count!r}")
    if not (_whole(seed) and 0 <= seed < 2**32):  # as write_synthetic_set's
        raise ValueError(f"{path}: 'seed' must be a whole number in [0, 2**32), got {seed!r}")
    if not (isinstance(size, list) and len(size) == 2 and all(_whole(v) and v > 0 for v in size)):
        raise ValueError(f"{path}: 'size' must be [H, W], two positive whole numbers, got {size!r}")
    return meta


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _frames_on_disk(root: Path) -> set[int]:
    """The frame numbers that any of the set's three folders holds a file of: one listing per
    folder, not one look per frame that meta.json's `count` claims."""
    found: set[int] = set()
    for sub, suffix in _FRAME_FILES:
        try:
            names = os.listdir(root / sub)
        except OSError:  # missing, not a folder, unreadable: no frame there
            continue
        found.update(
            int(name[: -len(suffix)])
            for name in names
            if _FRAME_NAME.fullmatch(name) and name.endswith(suffix)
        )
    return found


def _frame_problem(paths: tuple[Path, Path, Path]) -> OSError | BadFrameError | None:
    """Why a frame cannot be used, checked cheaply (no decoding), as the frame error to raise:
    FileNotFoundError naming a missing file, BadFrameError naming a PNG without its signature,
    intrinsics that are not JSON with the six keys, or a file that cannot be read; or None."""
    for p in paths:
        if not p.is_file():
            return FileNotFoundError(f"{p} is missing")
    p = paths[0]
    try:
        for p in paths[:2]:
            with open(p, "rb") as f:
                if f.read(8) != _PNG_SIGNATURE:
                    return BadFrameError(f"{p} is not a PNG file")
        p = paths[2]
        k = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:  # removed since the look above
        return FileNotFoundError(f"{p} is missing")
    except OSError as exc:  # unreadable, an I/O error: this frame only
        return BadFrameError(f"cannot read {p}: {describe_os_error(exc, with_path=False)}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return BadFrameError(f"{p} is not valid JSON ({exc})")
    if not isinstance(k, dict) or any(key not in k for key in _K_KEYS):
        return BadFrameError(f"{p} lacks one of the keys {_K_KEYS}")
    return None


class SyntheticSet(BenchmarkDataset):
    """Reader of a `write_synthetic_set` directory (DepthDataset protocol): depth in metres,
    valid = depth > 0, intrinsics from the JSON files. See the module docstring for skips."""

    name = "synthetic"

    def __init__(self, root: str | Path) -> None:
        super().__init__()
        self.root = require_dir(Path(root), "synthetic set root")
        self.meta = _read_meta(self.root)
        count = self.meta["count"]  # a whole number
        if count < 1:
            raise ValueError(f"synthetic set {self.root} is empty (count={count})")
        # the frames with a file on disk are the set's: one of them that lacks a file or whose
        # files are bad is raised when read (a frame error, eval lists it as unreadable). Those of
        # which no file is there (a trailing frame removed, or a count of 10**12) are only
        # counted, in one warning, without a look per frame
        on_disk = _frames_on_disk(self.root)
        self.frames: list[int] = sorted(i for i in on_disk if i < count)
        absent = count - len(self.frames)  # not one of their files is there
        if absent:
            first = list(islice((i for i in range(count) if i not in on_disk), 5))
            more = f" and {absent - len(first)} more" if absent > len(first) else ""
            self.skipped += absent
            log.warning(
                "%s: skipped %d frame(s) with no file in rgb/, depth/ or intrinsics/: %s%s",
                self.name, absent, ", ".join(f"{i:06d}" for i in first), more,
            )  # fmt: skip
        if not self.frames:
            raise ValueError(
                f"synthetic set {self.root}: none of its {count} frames is readable "
                f"({self.skipped} skipped)"
            )

    def _items(self) -> list:
        return self.frames

    def _load(self, index: int) -> DepthSample:
        i = self.frames[index]
        rgb_p, depth_p, k_p = paths = _frame_paths(self.root, i)
        problem = _frame_problem(paths)
        if problem is not None:  # a frame error naming the file: eval lists the frame
            raise problem
        rgb = read_rgb(rgb_p)
        mm = read_png_u16(depth_p)
        check_same_size(mm.shape, rgb.shape, depth_p)  # BadFrameError: eval skips the frame
        k = json.loads(k_p.read_text(encoding="utf-8"))  # checked by _frame_problem
        K = np.array(
            [[k["fx"], 0.0, k["cx"]], [0.0, k["fy"], k["cy"]], [0.0, 0.0, 1.0]], dtype=np.float32
        )
        depth = mm.astype(np.float32) / np.float32(1000.0)
        return make_sample(rgb, depth, mm > 0, f"synth_{self.meta['seed']}_{i:06d}", K)


def set_problem(root: str) -> str | None:
    """Why `root` is not a set `depthart synth` wrote, as "ROOT: why" (one line, for a script's
    argument parser), or None. A shell glob that matched nothing arrives as itself: said so."""
    if not root.strip():
        return "'': give a folder `depthart synth` wrote"
    try:
        SyntheticSet(root)
    except (OSError, ValueError) as exc:
        glob = " (a pattern that matched nothing?)" if set("*?[") & set(root) else ""
        return f"{root}: {exc}{glob}"
    return None
