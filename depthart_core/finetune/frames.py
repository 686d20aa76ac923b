"""RGB-D frames from ROS 2 bags for fine-tuning: pairing, counting, depth-to-image mapping, split.

Per bag, pass 1 (`scan_bag`) checks the topics and the encodings of their first messages and
matches every image to the nearest depth header stamp within `max_dt_s` (the replay's
`index_bag`/`match_stamps`); pass 2 (`decode_frames`) decodes the matched pairs in recording
order (the replay's `iter_frames`). Every image is counted once: `paired` (used), `unmatched` (no
depth stamp within tolerance), or `rejected` with its cause.

Depth follows REP 117/118 (`rosio.image`): 16UC1/mono16 millimetres with 0 invalid, 32FC1 metres
with NaN/Inf/<=0 invalid. A depth image of another size than the colour image is mapped onto it
(`depth_onto_image`): through both cameras' lens models when both CameraInfo topics are given
(`Lens`: K, and the distortion D of a raw image; same optical centre and axes, as for a depth
stream registered to the colour camera at another resolution, crop or lens), else by plain
resizing when the aspect ratios agree; otherwise the frame is rejected with the sizes. As the
node's `points.image` tells `image_rect` from `image_raw`, a topic named as rectified (a name part
starting "rect": image_rect, image_rect_color, a RealSense's depth/image_rect_raw) projects
through P with D ignored, any other through K and D (`lens_of`). CameraInfo frame_ids that differ
are warned about once per bag and counted apart (`MAPPINGS`): the extrinsics between the two
cameras are not applied. A depth CameraInfo topic needs the colour one. With both, each image
takes the newest usable colour calibration received before it, each depth image the newest
usable depth calibration stamped at or before it (`InfoTimeline`: a depth stream reconfigured
mid-bag), and a frame without a usable one on either side is rejected with the cause, never
resized. `Counts.mapping` says how each frame's depth was mapped (`MAPPINGS`).

Split by time (`split_by_time`), per recording: the last `heldout` fraction of its paired time
span is held out, and training frames within `gap_s` before it are dropped, so that no two
neighbouring frames sit on both sides of the split. Bags whose stamp spans overlap or lie within
`gap_s` of each other are one recording (`recordings`: a drive split into several bags, or
recorded twice), split on the span of all of them; bags apart in time are split each alone.

With `stride` N (`finetune --stride`) only every N-th image of a bag (recording order, its first
kept) is placed and decoded; the others are counted under `strided`, and neither they nor the
depth only they pair with are decoded. The spans above are those of every image, so a kept
frame falls in the block it falls in without a stride.

With a teacher (`FrameConfig.sensor_scores_only`, `finetune --teacher`) every decodable image is
used and the split runs over all image stamps; the depth topic is optional and its depth, where
an image pairs with a usable one, is kept on the frame to score with, never to train on. A frame
without usable sensor depth is then counted under `no_sensor` with the cause, not rejected.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from depthart_core.pointcloud import DISTORTION_MODELS, pixel_rays, project_rays
from depthart_core.replay.frames import (
    BagIndex,
    ReplayConfig,
    index_bag,
    iter_frames,
    nearest_offset_s,
)
from depthart_core.replay.frames import Frame as BagFrame
from depthart_core.rosio import bags, compressed, messages
from depthart_core.rosio.camera_info import aspect_problem, camera_info_problem
from depthart_core.rosio.image import (
    DEPTH_ENCODINGS,
    RGB_ENCODINGS,
    ImageDecodeError,
    camera_info_field,
    described_size,
    image_projection,
)

log = logging.getLogger(__name__)

SUPPORTED_DEPTH = ("16UC1", "32FC1", "mono16")


class FinetuneInputError(ValueError):
    """Bags, topics or frames that cannot be fine-tuned on; the message is one line."""


SPLITS = ("recording", "bag")


@dataclass(frozen=True)
class FrameConfig:
    image_topic: str
    depth_topic: str | None  # None only with sensor_scores_only (a teacher labels the frames)
    camera_info_topic: str | None = None  # the colour camera's intrinsics
    depth_info_topic: str | None = None  # the depth camera's (needs the colour camera's)
    max_dt_s: float = 0.02  # image <-> depth header stamp tolerance
    min_valid: float = 0.2  # frames with a smaller share of valid depth pixels are rejected
    heldout: float = 0.2  # share of each bag's time span held out (its end)
    gap_s: float = 1.0  # training frames this close before the held-out block are dropped
    # "recording": bags whose stamps overlap or nearly touch are split as one drive (leak-free
    # for a drive split into several bags); "bag": each bag alone, for simulator drives whose
    # clocks all start at 0 (their stamps overlap without being one drive)
    split: str = "recording"
    min_train: int = 16
    min_heldout: int = 4
    sensor_scores_only: bool = False  # teacher mode: every image is a frame, depth only scores
    # keep every N-th image of each bag's image topic (recording order, the first kept): the
    # others are never decoded; the split is the one of every image (`split_by_time`)
    stride: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.stride, bool) or not isinstance(self.stride, int) or self.stride < 1:
            raise ValueError(
                f"stride must be a positive integer (keep every N-th image), got {self.stride!r}"
            )
        if not 0 <= self.max_dt_s <= 3600:  # a stamp tolerance, not a duration
            raise ValueError(f"max_dt_s must lie in [0, 3600] s, got {self.max_dt_s}")
        if not 0 <= self.min_valid < 1:
            raise ValueError(f"min_valid must lie in [0, 1), got {self.min_valid}")
        if not 0 < self.heldout < 1:
            raise ValueError(f"heldout must lie in (0, 1), got {self.heldout}")
        if not self.gap_s >= 0:
            raise ValueError(f"gap_s must be >= 0 s, got {self.gap_s}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if not self.depth_topic and not self.sensor_scores_only:
            raise ValueError("a depth topic is needed unless a teacher labels the frames")
        if self.depth_topic == self.image_topic:
            raise ValueError(f"depth topic and image topic are the same: {self.image_topic!r}")
        if self.depth_info_topic and not self.camera_info_topic:
            raise ValueError(
                f"depth info topic {self.depth_info_topic!r} needs a camera info topic: depth is "
                "mapped through both cameras' intrinsics"
            )

    def kept(self, i: int) -> bool:
        """Whether image `i` (recording order) of a bag is kept under `stride`."""
        return i % self.stride == 0


@dataclass
class BagScan:
    """Pass 1 of one bag: the stamp match and which images go to which block."""

    path: Path
    index: BagIndex
    depth_encoding: str | None  # None without a depth topic (teacher mode)
    image_encoding: str
    block: list[str | None] = field(default_factory=list)  # per image: train/heldout/gap/None
    # the first image's (width, height): the size held-out frames are scored at (memory estimate)
    image_wh: tuple[int, int] | None = None


def _first_encoding(
    path: Path, topic: str, depth: bool
) -> tuple[str | None, tuple[int, int] | None]:
    """The encoding of the topic's first message and its (width, height); for a CompressedImage
    its `format` and the decoded size (a format this reader cannot decode raises
    `FinetuneInputError` with why). (None, None) for a topic without messages."""
    for m in bags.iter_messages(path, [topic]):
        if not compressed.is_compressed(m.msg):
            return str(m.msg.encoding), (int(m.msg.width), int(m.msg.height))
        try:
            if depth:
                px = compressed.compressed_depth_to_metres(m.msg)
            else:
                px = compressed.compressed_to_rgb(m.msg)
        except ImageDecodeError as exc:
            kind = "depth" if depth else "image"
            raise FinetuneInputError(f"{kind} topic {topic!r} in {path}: {exc}") from exc
        return str(m.msg.format), (int(px.shape[1]), int(px.shape[0]))
    return None, None


def _replay_config(cfg: FrameConfig) -> ReplayConfig:
    """The replay's view of the topics and stamp tolerance (its bag index and matching)."""
    return ReplayConfig(
        image_topic=cfg.image_topic,
        depth_topic=cfg.depth_topic,
        camera_info_topic=cfg.camera_info_topic,
        max_dt_s=cfg.max_dt_s,
        plots=False,
    )


def scan_bag(path: str | Path, cfg: FrameConfig) -> BagScan:
    """Check topics and encodings, match stamps. Raises `FinetuneInputError` / `BagError`."""
    path = Path(path)
    rcfg = _replay_config(cfg)
    topics = bags.list_topics(path)
    if cfg.depth_info_topic:
        bags.check_topic(topics, cfg.depth_info_topic, messages.CAMERA_INFO_TYPE, path)
    index = index_bag(path, rcfg)  # raises TopicNotFoundError listing the bag's topics
    for topic, n in ((cfg.image_topic, index.n_frames), (cfg.depth_topic, len(index.depth_stamps))):
        if topic and n == 0:
            raise FinetuneInputError(f"topic {topic!r} in {path} has no messages")
    depth_enc = _first_encoding(path, cfg.depth_topic, depth=True)[0] if cfg.depth_topic else None
    depth_ok = depth_enc in DEPTH_ENCODINGS or "compressedDepth" in (depth_enc or "")
    if cfg.depth_topic and not depth_ok:
        raise FinetuneInputError(
            f"depth topic {cfg.depth_topic!r} in {path} has encoding {depth_enc!r}; supported: "
            "16UC1 or mono16 (millimetres, 0 = invalid) and 32FC1 (metres, NaN = invalid)"
        )
    image_enc, image_wh = _first_encoding(path, cfg.image_topic, depth=False)
    is_raw = topics[cfg.image_topic].msgtype == messages.IMAGE_TYPE
    if is_raw and image_enc not in RGB_ENCODINGS:
        raise FinetuneInputError(
            f"image topic {cfg.image_topic!r} in {path} has encoding {image_enc!r}; supported: "
            f"{', '.join(sorted(RGB_ENCODINGS))}"
        )
    if cfg.depth_topic and not any(j is not None for j in index.match):
        raise FinetuneInputError(
            f"no image/depth pair in {path} within --max-dt {cfg.max_dt_s} s: the nearest "
            f"offset seen is {nearest_offset_s(index):.3f} s ({index.n_frames} images, "
            f"{len(index.depth_stamps)} depth images); raise --max-dt or check the topics"
        )
    return BagScan(path, index, depth_enc, image_enc, image_wh=image_wh)


def _paired(scan: BagScan, cfg: FrameConfig) -> tuple[list[int], np.ndarray]:
    """The images a split places (paired; every image with a teacher) and their stamps."""
    idx = scan.index
    paired = [i for i, j in enumerate(idx.match) if j is not None or cfg.sensor_scores_only]
    return paired, np.asarray([idx.image_stamps[i] for i in paired], dtype=np.int64)


def recordings(
    scans: Sequence[BagScan], cfg: FrameConfig
) -> list[tuple[list[int], tuple[int, int]]]:
    """The bags (indices into `scans`) grouped into recordings, each with its first and last
    paired stamp: bags whose spans overlap or come within `cfg.gap_s` of each other are one
    (chained), since a split of each alone would put neighbouring frames on both sides. With
    `cfg.split` "bag" every bag is its own recording."""
    spans = []
    for b, scan in enumerate(scans):
        _, stamps = _paired(scan, cfg)
        spans.append((int(stamps.min()), int(stamps.max()), b))
    if cfg.split == "bag":
        return [([b], (t0, t1)) for t0, t1, b in spans]
    groups: list[tuple[list[int], tuple[int, int]]] = []
    for t0, t1, b in sorted(spans):
        if groups and t0 <= groups[-1][1][1] + cfg.gap_s * 1e9:
            bags, (g0, g1) = groups[-1]
            groups[-1] = ([*bags, b], (g0, max(g1, t1)))
        else:
            groups.append(([b], (t0, t1)))
    return [(sorted(bags), span) for bags, span in groups]


def split_by_time(scan: BagScan, cfg: FrameConfig, span_ns: tuple[int, int] | None = None) -> None:
    """Fill `scan.block`: per paired image (every image with a teacher) 'train', 'gap' or
    'heldout'; None if unmatched. `span_ns`: the recording's first and last stamp where the bag
    is one of several bags of it (`recordings`), else the bag's own. Images `cfg.stride` leaves
    out are None too; the span is that of every paired image, so the stride moves no frame to
    another block."""
    idx = scan.index
    paired, stamps = _paired(scan, cfg)
    t0, t1 = span_ns if span_ns is not None else (int(stamps.min()), int(stamps.max()))
    cut = t0 + (1.0 - cfg.heldout) * (t1 - t0)
    gap_ns = cfg.gap_s * 1e9
    scan.block = [None] * idx.n_frames
    for i, t in zip(paired, stamps.tolist(), strict=True):
        if not cfg.kept(i):
            continue
        if t >= cut:
            scan.block[i] = "heldout"
        elif t > cut - gap_ns:
            scan.block[i] = "gap"
        else:
            scan.block[i] = "train"


# ------------------------------------------------------------------------------------------------
# Pass 2


@dataclass
class Frame:
    bag: int
    index: int
    stamp_ns: int
    block: str
    rgb: np.ndarray  # HxWx3 uint8
    depth: np.ndarray | None  # HxW float32 metres on the image grid, 0 where invalid
    valid: np.ndarray | None  # HxW bool; both None: a teacher-mode frame without sensor depth


@dataclass
class Counts:
    """Every image of a bag counted once. With a teacher, `paired` counts the images used (each
    paired with its teacher label; none is `unmatched`) and `no_sensor`, by cause, those of them
    without usable sensor depth to score against."""

    images: int = 0
    depth_images: int = 0
    paired: int = 0
    unmatched: int = 0
    rejected: Counter = field(default_factory=Counter)
    blocks: Counter = field(default_factory=Counter)  # paired frames per block
    no_sensor: Counter = field(default_factory=Counter)  # teacher mode: used, no sensor score
    # frames whose sensor depth was mapped onto the image so, by `MAPPINGS` key (decoded
    # frames: one rejected later at the model resolution is still counted here)
    mapping: Counter = field(default_factory=Counter)
    # a bag that gave fewer images than it lists: "read N of M images ..." (`BagIndex`)
    short_bag: str | None = None
    strided: int = 0  # images left out by `FrameConfig.stride`, never decoded

    def to_dict(self) -> dict:
        extra = {"no_sensor": dict(sorted(self.no_sensor.items()))} if self.no_sensor else {}
        extra |= {"short_bag": self.short_bag} if self.short_bag else {}
        extra |= {"strided": self.strided} if self.strided else {}
        return extra | {
            "mapping": {k: self.mapping[k] for k in MAPPINGS if self.mapping.get(k)},
            "images": self.images,
            "depth_images": self.depth_images,
            "paired": self.paired,
            "unmatched": self.unmatched,
            "rejected": dict(sorted(self.rejected.items())),
            "rejected_total": sum(self.rejected.values()),
            "blocks": {k: self.blocks.get(k, 0) for k in ("train", "gap", "heldout")},
        }


# how a depth image is put onto the colour image's grid (`depth_mapping`), in words
MAPPINGS = {
    "same_grid": "used as is (registered, the image's size)",
    "resized": "resized (same aspect ratio, no intrinsics)",
    "reprojected": "reprojected through both cameras' lens models",
    "reprojected_apart": "reprojected through both cameras' lens models, their CameraInfo "
    "frame_ids differing (extrinsics not applied: one optical centre assumed)",
}
# D lengths OpenCV's projection takes per distortion model (`pointcloud.pixel_rays` takes these)
_D_SIZES = {
    "plumb_bob": (4, 5, 8, 12, 14),
    "rational_polynomial": (4, 5, 8, 12, 14),
    "equidistant": (4,),
}


@dataclass(frozen=True)
class Lens:
    """How one image's pixels see rays: K (9 values, row-major, for this image's pixels) and,
    for a raw image, the distortion D under `model` (sensor_msgs/CameraInfo); no D (or an
    all-zero one) is a pinhole."""

    k: tuple[float, ...]
    d: tuple[float, ...] = ()
    model: str = ""

    @classmethod
    def of(cls, K: np.ndarray, d: Sequence[float] = (), model: str = "") -> Lens:
        d = tuple(float(v) for v in d)
        if not any(d):
            d, model = (), ""
        return cls(tuple(float(v) for v in np.asarray(K, dtype=np.float64).reshape(9)), d, model)

    @property
    def K(self) -> np.ndarray:
        return np.asarray(self.k, dtype=np.float64).reshape(3, 3)

    def same(self, other: Lens) -> bool:
        """The same pixels to rays (K equal within float noise, the same distortion)."""
        return np.allclose(self.K, other.K) and (self.d, self.model) == (other.d, other.model)


def rectified_topic(topic: str | None) -> bool:
    """Whether a topic is named as carrying rectified images (image_proc's image_rect,
    image_rect_color; depth_image_proc's image_rect; a RealSense's depth/image_rect_raw): a part
    of its name, split at "/" and "_", starts with "rect"."""
    return any(part.startswith("rect") for part in re.split(r"[/_]", (topic or "").lower()))


def _intrinsics(
    info: object | None, shape: tuple[int, ...], rectified: bool = False
) -> np.ndarray | None:
    """K of an image of `shape` that CameraInfo `info` describes, or P's left 3x3 for a
    rectified image: its binning and ROI applied, a calibration for another size rescaled
    (`rosio.image.image_projection`); None without a usable one."""
    if info is None:
        return None
    k, p = image_projection(info, shape)
    if rectified:
        K = np.asarray(p, dtype=np.float64).reshape(3, 4)[:, :3]
    else:
        K = np.asarray(k, dtype=np.float64).reshape(3, 3)
    return K if K[0, 0] > 0 and K[1, 1] > 0 else None


def lens_of(info: object, shape: tuple[int, ...], rectified: bool) -> tuple[Lens | None, str]:
    """The `Lens` of an image of `shape` that CameraInfo `info` describes, as the node's
    `points.image` reads it: rectified, P with D ignored; raw, K with D and the distortion
    model (D is in normalised coordinates, so binning, ROI and rescaling leave it as is). None
    and why (a one-line cause without the camera's side) where it cannot be used."""
    K = _intrinsics(info, shape, rectified)
    if K is None:
        return None, "uncalibrated (K = 0)"
    if rectified:
        return Lens.of(K), ""
    d = camera_info_field(info, "d").reshape(-1)
    model = str(getattr(info, "distortion_model", "") or "")
    if not d.any():
        return Lens.of(K), ""
    if model not in DISTORTION_MODELS:
        names = ", ".join(DISTORTION_MODELS)
        return None, f"unusable (distortion model {model!r}; supported: {names})"
    if d.size not in _D_SIZES[model]:
        sizes = ", ".join(map(str, _D_SIZES[model]))
        return None, f"unusable ({model} D has {d.size} values, not {sizes})"
    return Lens.of(K, d, model), ""


def _as_lens(K: np.ndarray | Lens | None) -> Lens | None:
    """A bare 3x3 K is a pinhole."""
    return K if K is None or isinstance(K, Lens) else Lens.of(K)


def depth_mapping(
    depth_hw: tuple[int, ...],
    image_hw: tuple[int, int],
    K_image: np.ndarray | Lens | None = None,
    K_depth: np.ndarray | Lens | None = None,
) -> str:
    """How `depth_onto_image` maps a depth image of `depth_hw` onto the image: a `MAPPINGS`
    key (without the "_apart" of differing frame_ids). Raises ValueError (the sizes) when it
    cannot."""
    h, w = image_hw
    dh, dw = int(depth_hw[0]), int(depth_hw[1])
    lens_image, lens_depth = _as_lens(K_image), _as_lens(K_depth)
    both = lens_image is not None and lens_depth is not None
    if (dh, dw) == (h, w) and not (both and not lens_image.same(lens_depth)):
        return "same_grid"  # (a same-size depth with another lens is reprojected)
    if both:
        return "reprojected"
    if abs(dw / dh - w / h) <= 0.01 * w / h:
        return "resized"
    raise ValueError(
        f"depth {dw}x{dh} and image {w}x{h} (WxH) differ in aspect ratio; give "
        "--camera-info-topic and --depth-info-topic so their intrinsics say how to map them"
    )


def depth_onto_image(
    depth: np.ndarray,
    valid: np.ndarray,
    image_hw: tuple[int, int],
    K_image: np.ndarray | Lens | None = None,
    K_depth: np.ndarray | Lens | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Depth (metres, 0 invalid) and mask on the colour image's pixel grid, nearest neighbour.

    With both lenses (a `Lens`, or a bare K for a pinhole), pixel (u, v) of the image looks
    along its ray under the image's lens (`pointcloud.pixel_rays`, undistorted through K and D),
    which the depth camera sees where its lens projects that ray (K and D): a resize, a crop, a
    lens change or all of them, also where the two sizes agree and the lenses do not; the depth
    (REP 118: along the shared optical axis) is kept. Pixels outside the depth image, without a
    ray under the image's lens, or past the fold of the depth lens's model are invalid. Without
    them only a resize to the same aspect ratio (1 %) is done (`depth_mapping`).
    Raises ValueError when neither applies."""
    h, w = image_hw
    how = depth_mapping(depth.shape, image_hw, K_image, K_depth)
    if how == "same_grid":
        return depth, valid
    if how == "reprojected":
        map_x, map_y = _reprojection_map((int(h), int(w)), _as_lens(K_image), _as_lens(K_depth))
        d = np.where(valid, depth, 0).astype(np.float32)
        out = cv2.remap(d, map_x, map_y, cv2.INTER_NEAREST, borderValue=0.0)
        return out, out > 0
    d = np.where(valid, depth, 0).astype(np.float32)
    d = cv2.resize(d, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)  # no blend of depths
    return d, d > 0


@functools.lru_cache(maxsize=4)
def _reprojection_map(
    image_hw: tuple[int, int], image: Lens, depth: Lens
) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap's maps (float32, -1 where no depth pixel applies): for each image pixel, the
    depth image pixel that sees its ray. Cached per size and lens pair (a bag's frames share
    one; undistorting a raw image's pixels takes a second at 1080p)."""
    h, w = image_hw
    rays_n2 = pixel_rays(h, w, image.k, (), image.d, image.model, 1, "raw").reshape(-1, 2)
    px_n2 = _project(rays_n2.astype(np.float64), depth)
    px_n2[~np.isfinite(px_n2).all(axis=1)] = -1.0
    px_hw2 = px_n2.reshape(h, w, 2).astype(np.float32)
    return px_hw2[..., 0].copy(), px_hw2[..., 1].copy()


def _project(rays_n2: np.ndarray, lens: Lens) -> np.ndarray:
    """(n, 2) pixels where `lens` sees the normalised rays (x/z, y/z): K, after D under its
    model; NaN for a non-finite ray and one past the fold of the model's radial curve
    (`pointcloud.project_rays`)."""
    K = lens.K
    if not lens.d:
        px_n2 = rays_n2 * K[[0, 1], [0, 1]] + K[:2, 2]
        px_n2[~np.isfinite(rays_n2).all(axis=1)] = np.nan
        return px_n2
    return project_rays(rays_n2, K, np.asarray(lens.d, dtype=np.float64), lens.model)


def decode_frames(scan: BagScan, bag_id: int, cfg: FrameConfig, counts: Counts) -> Iterator[Frame]:
    """Pass 2: the paired frames of one bag as `Frame`s; everything else counted in `counts`.
    With `cfg.sensor_scores_only` every decodable image is a frame, its depth None where the
    sensor gives none that can be used (the cause counted in `counts.no_sensor`). An image
    `cfg.stride` leaves out is counted under `counts.strided` undecoded, and the depth image
    only it pairs with is not decoded either."""
    idx = scan.index
    counts.images += idx.n_frames
    counts.depth_images += len(idx.depth_stamps)
    counts.short_bag = idx.short_note  # warned by `index_bag`
    rcfg = _replay_config(cfg)
    if cfg.stride > 1:  # the replay's reader decodes the depth of every matched image
        kept = [j if cfg.kept(i) else None for i, j in enumerate(idx.match)]
        idx = replace(idx, match=kept)
    depth_info = (
        InfoTimeline.read(scan.path, cfg.depth_info_topic) if cfg.depth_info_topic else None
    )
    teacher = cfg.sensor_scores_only
    unit_checked = "32FC1" not in (scan.depth_encoding or "")
    apart_warned = False
    for fr in iter_frames(scan.path, rcfg, idx):
        if not cfg.kept(fr.index):
            counts.strided += 1
            continue
        block = scan.block[fr.index]
        if not teacher and fr.gt is None:
            counts.unmatched += 1
            continue
        if not teacher and isinstance(fr.gt, str):
            counts.rejected["depth not decodable"] += 1
            continue
        if not unit_checked and isinstance(fr.gt, tuple):
            unit_checked = _check_metres(fr.gt, scan, cfg)
        try:
            rgb = messages.image_to_rgb(fr.image.msg)
        except ImageDecodeError as exc:
            counts.rejected[f"image not decodable ({exc.cause})"] += 1
            continue
        sensor, why = _sensor_depth(fr, rgb.shape[:2], _depth_stamp(idx, fr.index), depth_info, cfg)
        if why is not None and not teacher:
            counts.rejected[why] += 1
            continue
        if why is not None:
            counts.no_sensor[why] += 1
        elif fr.gt is None and cfg.depth_topic:
            counts.no_sensor[f"no depth stamp within {cfg.max_dt_s} s"] += 1
        counts.paired += 1
        counts.blocks[block] += 1
        depth, valid = None, None
        if sensor is not None:
            depth, valid, how, apart = sensor
            counts.mapping[how] += 1
            if apart is not None and not apart_warned:
                apart_warned = True
                log.warning(
                    "%s: depth camera_info frame_id %r is not the colour camera_info's %r: the "
                    "extrinsics between the cameras are not applied (the depth is assumed to "
                    "share the colour camera's optical centre); register the depth to the colour "
                    "camera for exact training depth",
                    scan.path,
                    apart[1],
                    apart[0],
                )
        yield Frame(bag_id, fr.index, idx.image_stamps[fr.index], block, rgb, depth, valid)


def _depth_stamp(idx: BagIndex, i: int) -> int | None:
    """The header stamp of the depth image paired with image `i`, or None."""
    j = idx.match[i]
    return None if j is None else idx.depth_stamps[j]


def _check_metres(gt: tuple[np.ndarray, np.ndarray], scan: BagScan, cfg: FrameConfig) -> bool:
    """Warn once per bag when 32FC1 depth, metres by REP 117, reads as millimetres (a valid
    median above 100 m: the metric scores would come out 1000x). True once checked."""
    depth, valid = gt
    if not valid.any():
        return False
    median = float(np.median(depth[valid]))
    if median > 100.0:
        log.warning(
            "depth topic %r in %s: 32FC1 with a median of %.1f m; 32FC1 must be metres (REP "
            "117), this looks like millimetres, and the metric scores will be 1000x off",
            cfg.depth_topic,
            scan.path,
            median,
        )
    return True


def _sensor_depth(
    fr: BagFrame,
    image_hw: tuple[int, int],
    depth_stamp: int | None,
    depth_info: InfoTimeline | None,
    cfg: FrameConfig,
) -> tuple[tuple[np.ndarray, np.ndarray, str, tuple[str, str] | None] | None, str | None]:
    """(depth, valid, `MAPPINGS` key, the (colour, depth) CameraInfo frame_ids where they
    differ) on the image grid, or None and why it cannot be used (None: no match)."""
    if fr.gt is None:
        return None, None
    if isinstance(fr.gt, str):
        return None, "depth not decodable"
    depth, valid = fr.gt
    lens_image = lens_depth = apart = None
    if depth_info is not None:  # both calibrations, or the frame is rejected
        lens_image, why = _colour_lens(fr, image_hw, rectified_topic(cfg.image_topic))
        if why is None:
            info, why = depth_info.at(depth_stamp)
            lens_depth, why = (
                _usable_lens(info, depth.shape, "depth", rectified_topic(cfg.depth_topic))
                if why is None
                else (None, why)
            )
        if why is not None:
            return None, why
        ids = (_frame_id(fr.camera_info), _frame_id(info))
        apart = ids if all(ids) and ids[0] != ids[1] else None
    try:
        how = depth_mapping(depth.shape, image_hw, lens_image, lens_depth)
        depth, valid = depth_onto_image(depth, valid, image_hw, lens_image, lens_depth)
    except ValueError:
        sizes = f"{depth.shape[1]}x{depth.shape[0]} -> {image_hw[1]}x{image_hw[0]}"
        return None, f"depth size not mappable onto the image ({sizes})"
    if float(valid.mean()) < cfg.min_valid:
        return None, f"valid depth below {cfg.min_valid:.0%} of the image"
    if apart is not None and how == "reprojected":
        how = "reprojected_apart"
    return (depth, valid, how, apart), None


def _frame_id(info: object) -> str:
    header = getattr(info, "header", None)
    return str(getattr(header, "frame_id", "") or "")


def _colour_lens(
    fr: BagFrame, image_hw: tuple[int, int], rectified: bool
) -> tuple[Lens | None, str | None]:
    """The colour camera's `Lens` for this image (the newest usable calibration received before
    it), or None and why there is none."""
    if fr.camera_info is None:
        if fr.camera_info_ignored is not None:
            return None, _unusable("colour", fr.camera_info_ignored)
        return None, "no colour camera_info received before the image"
    return _usable_lens(fr.camera_info, image_hw, "colour", rectified)


def _usable_lens(
    info: object, shape: tuple[int, ...], side: str, rectified: bool
) -> tuple[Lens | None, str | None]:
    """The `Lens` of an image of `shape` from a calibration already checked by
    `camera_info_problem`, or None and why it cannot describe that image (another aspect ratio,
    no K, a distortion model this cannot project)."""
    mismatch = aspect_problem(info, shape)
    if mismatch is not None:
        w0, h0 = described_size(info)
        return None, f"{side} camera_info for a {w0}x{h0} image, not {shape[1]}x{shape[0]}"
    lens, why = lens_of(info, shape, rectified)
    return (lens, None) if lens is not None else (None, f"{side} camera_info {why}")


def _unusable(side: str, problem: tuple[str, str]) -> str:
    """A rejection cause for a calibration `camera_info_problem` refuses: (cause, text)."""
    cause, text = problem
    if cause == "zero_focal" and "K fx=0 fy=0" in text:
        return f"{side} camera_info uncalibrated (K = 0)"
    return f"{side} camera_info unusable ({text})"


@dataclass
class InfoTimeline:
    """A CameraInfo topic by header stamp: the usable calibrations, and those
    `camera_info_problem` refuses with why; a run of identical messages is kept once (at its
    earliest stamp), so a bag of thousands holds a few."""

    usable_ns: np.ndarray  # sorted int64 stamps
    usable: list[object]
    refused_ns: np.ndarray
    refused: list[str]  # each one's rejection cause
    side: str = "depth"  # which camera, in the causes

    @classmethod
    def read(cls, path: Path, topic: str, side: str = "depth") -> InfoTimeline:
        runs: dict[bool, list[list]] = {True: [], False: []}  # [stamp, key, message or cause]
        for m in bags.iter_messages(path, [topic]):
            problem = camera_info_problem(m.msg)
            ok = problem is None
            key = _calibration_key(m.msg) if ok else problem
            entries = runs[ok]
            if entries and entries[-1][1] == key:
                entries[-1][0] = min(entries[-1][0], m.stamp_ns)
            else:
                entries.append([m.stamp_ns, key, m.msg if ok else _unusable(side, problem)])
        good = sorted(runs[True], key=lambda e: e[0])
        bad = sorted(runs[False], key=lambda e: e[0])
        return cls(
            np.asarray([e[0] for e in good], dtype=np.int64),
            [e[2] for e in good],
            np.asarray([e[0] for e in bad], dtype=np.int64),
            [e[2] for e in bad],
            side,
        )

    def at(self, stamp_ns: int) -> tuple[object | None, str | None]:
        """The newest usable calibration stamped at or before `stamp_ns`, else None and why:
        the newest refused one's cause, or none at all. A topic with one calibration throughout
        (a camera never reconfigured) gives it to every image, also to those recorded before
        its first message (the old reader did; a driver may start the info after the images)."""
        if len(self.usable) == 1:
            return self.usable[0], None
        k = int(np.searchsorted(self.usable_ns, stamp_ns, side="right")) - 1
        if k >= 0:
            return self.usable[k], None
        k = int(np.searchsorted(self.refused_ns, stamp_ns, side="right")) - 1
        if k >= 0:
            return None, self.refused[k]
        return None, f"no {self.side} camera_info stamped at or before the {self.side} image"


def _calibration_key(info: object) -> tuple:
    """What of a CameraInfo the mapping reads: size, binning, ROI, K, P, the distortion model
    and D, and the frame_id."""
    r = info.roi
    return (
        _frame_id(info),
        str(getattr(info, "distortion_model", "") or ""),
        camera_info_field(info, "d").tobytes(),
        int(info.width),
        int(info.height),
        int(info.binning_x),
        int(info.binning_y),
        (int(r.x_offset), int(r.y_offset), int(r.width), int(r.height)),
        camera_info_field(info, "k").tobytes(),
        camera_info_field(info, "p").tobytes(),
    )


def check_split(per_bag: Sequence[Counts], cfg: FrameConfig) -> None:
    """Too few frames in a block: one line naming the counts and what to change."""
    train = sum(c.blocks.get("train", 0) for c in per_bag)
    held = sum(c.blocks.get("heldout", 0) for c in per_bag)
    if train >= cfg.min_train and held >= cfg.min_heldout:
        return
    paired = sum(c.paired for c in per_bag)
    rejected = Counter()
    for c in per_bag:
        rejected.update(c.rejected)
    every = ", ".join(f"{n} {cause}" for cause, n in rejected.most_common())
    why = f"; rejected {sum(rejected.values())}: {every}" if rejected else ""
    strided = sum(c.strided for c in per_bag)
    if strided:
        why += f"; --stride {cfg.stride} left out {strided} images (lower it)"
    unmatched = sum(c.unmatched for c in per_bag)
    if unmatched:
        why += (
            f"; {unmatched} images had no depth stamp within --max-dt {cfg.max_dt_s} s (raise "
            "--max-dt or check the sync)"
        )
    raise FinetuneInputError(
        f"too few paired frames to split: {paired} paired ({train} training, {held} held-out, "
        f"{sum(c.blocks.get('gap', 0) for c in per_bag)} in the {cfg.gap_s} s gap); need at "
        f"least {cfg.min_train} training and {cfg.min_heldout} held-out frames{why}"
    )
