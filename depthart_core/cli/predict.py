"""`depthart predict IMAGE... [--checkpoint CKPT] --out DIR [--ply] [--uncertainty]`: depth maps
for image files, with --ply a coloured point cloud of each (`depthart_core.pointcloud`), and with
--uncertainty each pixel's expected relative error from the checkpoint's uncertainty head
(`depthart_core.uncertainty_head`), drawn on a fixed scale (`UNCERTAINTY_RANGE`) so that a colour
means the same error in every image.

A bad input never stops the batch: each one is skipped with a line naming the file and why, the
rest are processed, the summary counts both, and the exit status is 1 if anything was skipped.
Outputs are written atomically; an image whose outputs cannot all be written (a full disk) is
skipped the same way, with none of its new files left and its earlier outputs unchanged. An
--out that cannot be written at all (a file, a read-only file system) stops the command with one
line before the model is loaded, and so does --uncertainty with a checkpoint that has no head
(or one whose head is not its own, `checkpoint.copied_head`: the line says why).
A run that writes nothing leaves no --out folder behind that it made.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path

from depthart_core.cli.args import (
    add_flip_arg,
    add_model_args,
    add_progress_arg,
    options_named,
    remember_defaults,
    sampling_from_args,
    without_effect,
)
from depthart_core.colormap import COLORMAPS
from depthart_core.image_header import (
    TRUNCATED_JPEG,
    png_jpeg_size,
    too_many_pixels,
    truncated_jpeg,
)

UNCERTAINTY_RANGE = (0.0, 0.3)  # expected relative error drawn from dark to bright; above: bright
UNCERTAINTY_COLORMAP = "inferno"
UNCERTAINTY_INVALID_RGB = (0, 255, 255)  # cyan: not in inferno, never read as "certain" (black)
NAME_MAX_BYTES = 255  # a file name's limit on ext4, XFS, btrfs, ZFS, APFS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict relative depth for image files",
        description="Writes <stem>.npy (float32 HxW relative depth) and <stem>_depth.png "
        "(colorized) for every image, named after the path as given (a symbolic link's own "
        "name). Images that share a stem (cam0/1.png, cam1/1.png) are named after their paths "
        "instead (cam0__1_png.npy), so no output overwrites another; a non-image given with "
        "them (IMG_1.xmp beside IMG_1.JPG) does not count. Of an animated GIF or a multi-page "
        "TIFF the first frame is predicted, and said. "
        "With --uncertainty also <stem>_uncertainty.npy and <stem>_uncertainty.png. A stem "
        "whose output names would pass 255 bytes is cut, a hash of the whole appended "
        "(<start>~1a2b3c4d.npy), and said.",
    )
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    p.add_argument("--checkpoint", default=None, help="checkpoint (default: the shipped model)")
    p.add_argument("--backend", default="auto", help="auto|tensorrt|onnxruntime|torch (auto)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads; 0 = auto (see README)")
    p.add_argument("--letterbox", action="store_true", help="aspect-preserving resize + padding")
    add_flip_arg(p)
    p.add_argument("--colormap", default="turbo", choices=COLORMAPS)
    p.add_argument(
        "--ply",
        action="store_true",
        help="also write <stem>.ply: the depth back-projected through a pinhole camera of "
        "--hfov (relative units: scale before measuring)",
    )
    p.add_argument(
        "--hfov",
        type=float,
        default=60.0,
        help="--ply, --camera-height: horizontal field of view, degrees (60)",
    )
    p.add_argument(
        "--camera-height",
        type=float,
        default=None,
        metavar="M",
        help="the camera's height above the floor, metres: .npy and .ply in metres, scaled by "
        "the floor's plane (depthart_core.ground_plane); an image without a usable floor is "
        "skipped with the reason",
    )
    p.add_argument(
        "--ground-pitch",
        type=float,
        default=0.0,
        metavar="DEG",
        help="--camera-height: the camera's pitch below level, degrees (0; a prior: the fitted "
        "floor carries the true one), for a camera looking down more than --ground-max-angle",
    )
    p.add_argument(
        "--ground-max-angle",
        type=float,
        default=35.0,
        metavar="DEG",
        help="--camera-height: a floor further than this from the up that --ground-pitch gives "
        "is refused (35)",
    )
    p.add_argument("--ply-stride", type=int, default=1, help="--ply: every Nth pixel (1)")
    lo, hi = UNCERTAINTY_RANGE
    p.add_argument(
        "--uncertainty",
        action="store_true",
        help="also write <stem>_uncertainty.npy (float32 HxW: each pixel's expected relative "
        "error |s d - g| / g after a median scale s; 0.1 = off by about 10 %%) and "
        f"<stem>_uncertainty.png ({UNCERTAINTY_COLORMAP}, on the FIXED scale {lo:g} (dark) to "
        f"{hi:g} (bright, and everything above), the same in every image; a non-finite "
        "uncertainty is cyan and counted); needs a checkpoint "
        "with the uncertainty head (training/uncertainty_head.py)",
    )
    p.add_argument("--out", required=True, help="output directory")
    add_model_args(p)
    add_progress_arg(p)
    p.set_defaults(func=run)
    remember_defaults(p)


def read_rgb(name: str):
    """HxWx3 uint8 RGB of an image file; ValueError/FileNotFoundError say what is wrong. A
    format this OpenCV cannot decode (GIF before OpenCV 4.12) is read with Pillow where it is
    installed: its first frame, turned by its EXIF orientation as OpenCV turns what it reads."""
    import cv2
    import numpy as np

    path = Path(name)
    if not path.exists():
        raise FileNotFoundError("no such file")
    if not path.is_file():
        raise ValueError("not a file")
    data = path.read_bytes()  # read once: checked, then decoded
    if truncated_jpeg(data):  # OpenCV would fill the missing rows with grey
        raise ValueError(TRUNCATED_JPEG)
    too_large = too_many_pixels(data)  # from the header: a decompression bomb is never decoded
    if too_large:
        raise ValueError(too_large)
    # grey and 16-bit files become 8-bit BGR; a JPEG's EXIF orientation is applied, as imread does
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if bgr is not None:
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    elif data and png_jpeg_size(data) is None:  # not a PNG or JPEG, which OpenCV always reads
        rgb = _pillow_rgb(data)
    else:
        rgb = None
    if rgb is None:
        raise ValueError("not a readable image")
    h, w = rgb.shape[:2]
    if h < 2 or w < 2:
        raise ValueError(f"too small ({h}x{w}; images must be at least 2x2 pixels)")
    return rgb


def _pillow_rgb(data: bytes):
    """HxWx3 uint8 RGB of the first frame of an image that OpenCV did not decode, by Pillow (its
    EXIF orientation applied), or None where Pillow cannot read it either; a ValueError saying
    that Pillow would read a GIF where Pillow is not installed."""
    import numpy as np

    try:
        from PIL import Image, ImageOps
    except ImportError:  # optional: without it, OpenCV's formats only
        if data[:6] in (b"GIF87a", b"GIF89a"):
            raise ValueError(
                "not a readable image (this OpenCV cannot decode GIF; Pillow would read it if "
                "installed: pip install pillow)"
            ) from None
        return None
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # MAX_PIXELS was checked
    try:
        with Image.open(io.BytesIO(data)) as im:  # the first frame
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.uint8)
    except Exception:  # unidentified or malformed, in one of many exception types
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def frame_count(name: str) -> int:
    """How many frames or pages `name` holds (an animated GIF, WebP or PNG, a multi-page TIFF;
    the first is decoded), from their headers: OpenCV's count, or Pillow's where OpenCV cannot
    read the format (GIF before OpenCV 4.12) and Pillow is installed; 1 where neither can tell."""
    import cv2

    try:
        name.encode("utf-8")  # OpenCV takes the path as UTF-8 (and crashes on a name that is not)
        count = int(cv2.imcount(name))
    except (UnicodeEncodeError, cv2.error):
        count = 0
    if count >= 1:
        return count
    try:
        from PIL import Image
    except ImportError:
        return 1
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # read_rgb checked the size
    try:
        with Image.open(name) as im:
            return max(1, int(getattr(im, "n_frames", 1)))
    except Exception:  # unidentified or malformed: the frame predicted is all there is
        return 1
    finally:
        Image.MAX_IMAGE_PIXELS = limit


# the first bytes of the files OpenCV decodes: PNG, JPEG, GIF, TIFF and BigTIFF, BMP, Sun raster,
# JPEG 2000 (file and codestream), Radiance HDR, OpenEXR, PFM, PNM (P1-P7); WebP and AVIF below
IMAGE_SIGNATURES = (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\0", b"MM\0*", b"II+\0",
    b"MM\0+", b"BM", b"\x59\xa6\x6a\x95", b"\0\0\0\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51",
    b"#?RADIANCE", b"#?RGBE", b"\x76\x2f\x31\x01", b"PF", b"Pf",
    *(b"P%d" % i for i in range(1, 8)),
)  # fmt: skip


def looks_like_image(name: str) -> bool:
    """Whether `name` is a file that starts like an image (`IMAGE_SIGNATURES`, WebP, AVIF): the
    files that will be predicted, unlike a sidecar (IMG_0001.xmp beside IMG_0001.JPG); decided
    from 16 bytes, before anything is decoded."""
    try:
        with open(name, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return (
        head.startswith(IMAGE_SIGNATURES)
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
        or (head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"))
    )


def output_stems(names: list[str], images: list[bool]) -> list[str]:
    """The output stem of each input: its file stem, or, where several images (`images`: which
    inputs `looks_like_image`) share that stem, its path as given below their common folder, with
    separators made "__" and the dots of the file name "_" (cam0/1.png: cam0__1_png). A non-image
    that shares an image's stem (a sidecar, skipped) is named after its path, the image is not.
    Paths are made absolute without following symbolic links, so links to one file (git-annex,
    DVC) keep their own names."""
    from collections import defaultdict

    groups: dict[str, dict[str, bool]] = defaultdict(dict)
    for name, image in zip(names, images, strict=True):
        groups[Path(name).stem][os.path.abspath(name)] = image
    stems = []
    for name, image in zip(names, images, strict=True):
        stem, group = Path(name).stem, groups[Path(name).stem]
        if len(group) > 1 and (not image or sum(group.values()) > 1):
            base = os.path.commonpath([os.path.dirname(g) for g in group])
            *folders, file = Path(os.path.relpath(os.path.abspath(name), base)).parts
            stem = "__".join([*folders, file.replace(".", "_")])
            stem = "_" + stem[1:] if stem.startswith(".") else stem  # not a hidden file
        stems.append(stem)
    return stems


def fit_stem(stem: str, args: argparse.Namespace) -> str:
    """`stem`, or where the longest name `output_names` gives it with these options would pass
    a file system's NAME_MAX_BYTES, its first characters that fit followed by "~" and 8 hex
    digits of the whole stem's sha256, so that two long names that begin alike keep apart.
    Bytes are counted as the name is written (os.fsencode: UTF-8, and a name that is not UTF-8
    as its own bytes); the cut is between characters."""
    limit = NAME_MAX_BYTES - max(len(os.fsencode(n)) for n in output_names("", args))
    raw = os.fsencode(stem)
    if len(raw) <= limit:
        return stem
    tag = "~" + hashlib.sha256(raw).hexdigest()[:8]
    kept, size = [], 0
    for char in stem:
        size += len(os.fsencode(char))
        if size > limit - len(tag):
            break
        kept.append(char)
    return "".join(kept) + tag


def output_names(stem: str, args: argparse.Namespace) -> list[str]:
    """The files `write_outputs` writes for one image."""
    names = [f"{stem}.npy", f"{stem}_depth.png"]
    if args.uncertainty:
        names += [f"{stem}_uncertainty.npy", f"{stem}_uncertainty.png"]
    return names + ([f"{stem}.ply"] if args.ply else [])


def check_output_names(
    images: list[str], stems: list[str], out: Path, args: argparse.Namespace
) -> None:
    """Refuse, before any work, outputs that would overwrite an input image or each other: an
    image named `a_uncertainty.png` beside `a.png` (both would write `a_uncertainty.npy`), or a
    folder of earlier outputs predicted into itself (`a_depth.png` is `a.png`'s output)."""
    inputs = {Path(n).resolve() for n in images}
    owner: dict[Path, str] = {}
    for name, stem in zip(images, stems, strict=True):
        for file in output_names(stem, args):
            path = (out / file).resolve()
            if path in inputs:
                raise ValueError(
                    f"{out / file}, an output of {name}, is one of the input images; "
                    "give another --out"
                )
            if owner.setdefault(path, name) != name:
                raise ValueError(
                    f"{owner[path]} and {name} would both write {out / file}; predict them "
                    "into separate --out folders"
                )


def write_outputs(
    out: Path, stem: str, depth, rgb, args: argparse.Namespace, uncertainty=None
) -> None:
    """<stem>.npy, <stem>_depth.png, with `uncertainty` <stem>_uncertainty.npy and .png, and with
    --ply <stem>.ply, together (`fileutil.atomic_write_all`): if one cannot be written (or on
    Ctrl-C) none is changed, and the earlier outputs of a rerun stay as they were; the error is
    raised."""
    import cv2
    import numpy as np

    from depthart_core.colormap import colorize
    from depthart_core.fileutil import atomic_write_all, npy_bytes
    from depthart_core.pointcloud import depth_to_points, pinhole_p, pixel_rays, write_ply

    files: dict[Path, bytes | Callable[[str], None]] = {}
    files[out / f"{stem}.npy"] = npy_bytes(depth.astype(np.float32))
    ok, png = cv2.imencode(".png", colorize(depth, cmap=args.colormap)[:, :, ::-1])
    if not ok:
        raise ValueError(f"OpenCV could not encode the colorized depth of {stem}")
    files[out / f"{stem}_depth.png"] = png.tobytes()
    if uncertainty is not None:
        uncertainty = np.where(np.isfinite(uncertainty), uncertainty, np.nan)  # +-inf too
        files[out / f"{stem}_uncertainty.npy"] = npy_bytes(uncertainty.astype(np.float32))
        lo, hi = UNCERTAINTY_RANGE
        rgb_u = colorize(
            uncertainty, cmap=UNCERTAINTY_COLORMAP, lo=lo, hi=hi, near_bright=False,
            invalid_rgb=UNCERTAINTY_INVALID_RGB,
        )  # fmt: skip
        if n_bad := int((~np.isfinite(uncertainty)).sum()):
            print(f"{stem}: {n_bad} of {uncertainty.size} pixels' uncertainty is not finite "
                  "(NaN in the .npy, cyan in the .png)", file=sys.stderr)  # fmt: skip
        ok, png = cv2.imencode(".png", rgb_u[:, :, ::-1])
        if not ok:
            raise ValueError(f"OpenCV could not encode the colorized uncertainty of {stem}")
        files[out / f"{stem}_uncertainty.png"] = png.tobytes()
    if args.ply:
        h, w = depth.shape
        P = pinhole_p(h, w, args.hfov)
        rays = pixel_rays(h, w, (), P, stride=args.ply_stride)  # rectified: P only
        cloud = depth_to_points(depth, rays, args.ply_stride, rgb)
        files[out / f"{stem}.ply"] = lambda tmp: write_ply(tmp, cloud)  # noqa: E731
    atomic_write_all(files)


def run(args: argparse.Namespace) -> int:
    from depthart_core.checkpoint_file import read_checkpoint_info, resolve_checkpoint
    from depthart_core.fileutil import output_folder

    unused = _options_without_effect(args)  # set, but doing nothing: said, not ignored
    if unused:
        raise ValueError(unused)
    if args.camera_height is not None:  # raises naming a bad value, before loading anything
        from depthart_core.ground_plane import GroundPlaneConfig, check_camera_height

        check_camera_height(args.camera_height)
        with options_named():  # named by the options the user typed
            args.ground = GroundPlaneConfig(
                pitch_deg=args.ground_pitch, max_normal_angle_deg=args.ground_max_angle
            )
    if args.ply or args.camera_height is not None:  # check the camera before loading anything
        from depthart_core.pointcloud import pinhole_p

        pinhole_p(2, 2, args.hfov)  # raises naming a bad --hfov
        if args.ply_stride < 1:
            raise ValueError(f"--ply-stride must be >= 1, got {args.ply_stride}")
    if args.uncertainty:  # a checkpoint without the head: one line before anything is made
        from depthart_core.export.onnx_meta import checkpoint_has_head

        path = resolve_checkpoint(args.checkpoint)
        dropped = read_checkpoint_info(path).get("uncertainty_dropped")
        if dropped:  # it holds one, not its own (`copied_head`): loaded without it, said why
            raise ValueError(
                f"--uncertainty: checkpoint {path} is loaded without the uncertainty head it "
                f"holds: {dropped}; or drop --uncertainty"
            )
        if not checkpoint_has_head(path):
            raise ValueError(
                f"--uncertainty: checkpoint {path} has no uncertainty head; give --checkpoint one "
                "that has it (training/uncertainty_head.py adds one) or drop --uncertainty"
            )
    unique: dict[str, str] = {}  # each path once (links to one file are different paths)
    for name in args.images:
        unique.setdefault(os.path.abspath(name), name)
    if len(unique) < len(args.images):  # a glob and a name, or a name typed twice
        repeated = len(args.images) - len(unique)
        print(f"{repeated} image(s) given more than once: each is predicted once", file=sys.stderr)
        args.images = list(unique.values())
    images = [looks_like_image(name) for name in args.images]
    full_stems = output_stems(args.images, images)
    stems = [fit_stem(stem, args) for stem in full_stems]  # what is written, and checked
    check_output_names(args.images, stems, Path(args.out), args)
    with output_folder(args.out) as out:  # left empty (nothing written): removed again
        return _predict_into(out, args, stems, images, full_stems)


def _predict_into(
    out: Path,
    args: argparse.Namespace,
    stems: list[str],
    images: list[bool],
    full_stems: list[str],
) -> int:
    from collections import Counter

    import cv2
    import numpy as np
    from tqdm import tqdm

    from depthart_core.fileutil import WriteError
    from depthart_core.runtime import get_backend

    if args.camera_height is not None:
        from depthart_core.ground_plane import expected_up, metric_from_floor
    backend = get_backend(
        args.backend,
        checkpoint=args.checkpoint,
        device=args.device,
        letterbox=args.letterbox,
        threads=args.threads,
        sampling=sampling_from_args(args),
        vae=args.vae,
        vae_setting="--vae",
        flip_average=args.flip_average,
    )
    if args.uncertainty and not backend.has_uncertainty:  # e.g. an engine built without it
        raise ValueError(
            f"--uncertainty: backend {backend.describe()} has no uncertainty output "
            f"({backend.uncertainty_missing}); {backend.uncertainty_remedy}"
        )
    skipped: Counter[str] = Counter()
    renamed = [
        (n, s)
        for n, s, f, i in zip(args.images, stems, full_stems, images, strict=True)
        if i and f != Path(n).stem
    ]
    if renamed:
        print(
            f"{len(renamed)} images share a file name with another; their outputs are named "
            f"after their paths, e.g. {renamed[0][0]} -> {renamed[0][1]}.npy",
            file=sys.stderr,
        )
    for name, stem, full, image in zip(args.images, stems, full_stems, images, strict=True):
        if image and stem != full:
            print(
                f"{name}: its output names would be longer than {NAME_MAX_BYTES} bytes; they are "
                f"shortened to {stem}.npy, ...",
                file=sys.stderr,
            )
    todo = list(zip(args.images, stems, strict=True))
    for name, stem in tqdm(
        todo, desc="predict", unit="img", disable=len(todo) < 2 or args.no_progress
    ):
        try:
            rgb = read_rgb(name)
        except (ValueError, FileNotFoundError) as exc:
            _say_skipped(name, exc)
            skipped[str(exc).split(" (")[0]] += 1
            continue
        if (frames := frame_count(name)) > 1:
            note = f"{name}: only the first of its {frames} frames/pages is predicted"
            tqdm.write(note, file=sys.stderr)
        uncertainty = None
        try:
            if args.uncertainty:
                depth, uncertainty = backend.predict(rgb, with_uncertainty=True)
            else:
                depth = backend.predict(rgb)
        except (ValueError, cv2.error) as exc:
            _say_skipped(name, f"prediction failed: {str(exc).splitlines()[0]}")
            skipped["prediction failed"] += 1
            continue
        if args.camera_height is not None:
            depth, fit = metric_from_floor(depth, args.hfov, args.camera_height, args.ground)
            if depth is None:
                _say_skipped(name, f"no metric scale: {fit.reason}")
                skipped[f"no metric scale ({fit.code})"] += 1
                continue
            level = expected_up(0.0, 0.0)  # the up of a level camera (optical frame)
            cos = float(np.clip(np.dot(np.asarray(fit.normal_3), level), -1.0, 1.0))
            print(
                f"{name}: {fit.scale:.4g} m per relative unit (floor: {fit.inlier_fraction:.0%} "
                f"of {fit.n_candidates} points; camera {np.degrees(np.arccos(cos)):.0f} deg from "
                f"level, {fit.normal_angle_deg:.0f} deg from the --ground-pitch prior)"
            )
        try:
            write_outputs(out, stem, depth, rgb, args, uncertainty)
        except WriteError as exc:
            _say_skipped(name, exc)
            skipped[f"not written ({exc.strerror})"] += 1
    n_skipped = sum(skipped.values())
    what = "depth maps" + (", uncertainty maps" if args.uncertainty else "")
    what += " and point clouds" if args.ply else ""
    n_written = len(args.images) - n_skipped
    summary = f"wrote {n_written} {what} to {out}" if n_written else f"wrote no {what}"
    if n_skipped:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
        summary += f", skipped {n_skipped} ({why})"
    print(f"{summary} (backend {backend.describe()})")
    return 1 if n_skipped else 0


def _options_without_effect(args: argparse.Namespace) -> str | None:
    """Options set away from their defaults that only act with another one that is missing."""
    needs = {
        "--camera-height": ["ground_pitch", "ground_max_angle"],
        "--ply": ["ply_stride"],
        "--ply or --camera-height": ["hfov"],
        "--sampling paper": ["seed"],
    }
    given = {"--camera-height": args.camera_height is not None, "--ply": args.ply}
    given["--ply or --camera-height"] = given["--ply"] or given["--camera-height"]
    given["--sampling paper"] = args.sampling == "paper"
    for needed, dests in needs.items():
        unused = None if given[needed] else without_effect(args, dests, needed)
        if unused:
            return unused
    return None


def _say_skipped(name: str, why: object) -> None:
    """One "skipped NAME: why" line on stderr, with the tool's other warnings (stdout keeps the
    results: the summary and the metric scales), above the progress bar."""
    from tqdm import tqdm

    tqdm.write(f"skipped {name}: {why}", file=sys.stderr)
