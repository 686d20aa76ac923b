"""Rosbag replay evaluation: a recorded camera stream through the depth model, scored against GT.

Offline mode (deterministic): every image of `image_topic` goes through `Backend.predict`, the same
call the node makes; it is matched to the ground-truth depth with the nearest header stamp within
`max_dt_s` and scored per frame under an evaluation protocol (`depthart_core.evaluation`).
Live mode: the real node runs as a separate process, the bag's images and camera info are played
into it at the recorded rate (restamped with the wall clock at publish time, as a live camera
sends them, unless `restamp=False`), its `depth` outputs (header copied from the input) are
matched back to the frames by stamp for end-to-end latency and drops, and the frames that came
back are scored by the same pass as offline.

Every frame ends in exactly one status, so frames = the sum of the `STATUSES` counts:
    evaluated   prediction scored against matched GT depth
    predicted   prediction made, but no depth topic was given (nothing to score)
    unmatched   no GT depth within the stamp tolerance (listed in the report)
    rejected    undecodable image or GT, size mismatch, no valid GT pixel (reason in the report)
    dropped     live only: published, but no output came back
    not_played  live only: never published (time limit or interruption)

Live mode is `depthart_ros.replay`; both share `depthart_core.replay.frames` and `.report`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from depthart_core.checkpoint_file import file_sha256
from depthart_core.replay.frames import (
    Frame,
    PredictionStore,
    ReplayConfig,
    ReplayRun,
    check_write_bag,
    index_bag,
    iter_frames,
    new_row,
    reject,
    score_frame,
    write_prediction_bag,
)
from depthart_core.replay.report import write_report
from depthart_core.rosio import messages


def describe_backend(backend: Any, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """The model a replay ran, as live replay and eval name it: `checkpoint` (the file the caller
    built `backend` from: the CLI's --checkpoint, or the default it resolved) and its sha256, else
    the checkpoint a torch backend loaded; `graph` the exported graph ONNX Runtime or TensorRT
    ran, on its own (None for torch)."""
    info = getattr(backend, "info", {}) or {}  # torch: the checkpoint it loaded
    graph = getattr(backend, "onnx_path", None)  # ONNX Runtime / TensorRT: the graph it runs
    if checkpoint is not None:
        path, sha = str(checkpoint), file_sha256(checkpoint)
    else:  # an exported graph carries its checkpoint's sha256 in its metadata
        path = info.get("path")
        sha = info.get("sha256") or getattr(backend, "checkpoint_sha256", None)
    return {
        "name": getattr(backend, "name", type(backend).__name__),
        "checkpoint": path,
        "checkpoint_sha256": sha or None,
        "graph": str(graph) if graph else None,
        "image_size": getattr(backend, "image_size", None),
        # how it decodes: the sampling (torch; a graph's is its own), flip averaging, letterbox
        "runs": backend.describe() if hasattr(backend, "describe") else None,
        "letterbox": bool(getattr(backend, "letterbox", False)),
    }


def replay_offline(
    bag: str | Path,
    out_dir: str | Path,
    cfg: ReplayConfig,
    backend: Any,
    write_bag: str | Path | None = None,
    progress: bool = False,
    checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """Predict every image with `backend.predict`, score it, write the report; return it.
    `checkpoint`: the file `backend` was built from, named in the report (`describe_backend`).

    The report (with whatever frames were done) is written on every exit path, including
    KeyboardInterrupt and bag errors met half-way; the exception is then re-raised.
    """
    bag, out = Path(bag), Path(out_dir)
    index = index_bag(bag, cfg)
    if write_bag is not None:
        check_write_bag(write_bag, index, cfg.pred_topic, bag)
    run = ReplayRun("offline", str(bag), cfg, index)
    run.meta["backend"] = describe_backend(backend, checkpoint)
    metric = cfg.protocol in ("metric", "ground_plane")  # a frame without a scale: relative
    store = PredictionStore(out, units_known=metric) if write_bag is not None else None
    t_start = time.perf_counter()
    try:
        frames = iter_frames(bag, cfg, index)
        if progress:
            frames = tqdm(frames, total=index.n_frames, unit="frame")
        for frame in frames:
            _offline_frame(run, frame, backend, store)
        if store is not None:
            run.meta["write_bag"] = write_prediction_bag(bag, write_bag, cfg, index, store)
        run.status = "complete"
    except KeyboardInterrupt:
        run.status = "interrupted"
        raise
    except Exception as exc:
        run.status = f"error: {exc}"
        raise
    finally:
        wall = time.perf_counter() - t_start
        lat = [r["latency_ms"] for r in run.rows.values() if r.get("latency_ms") is not None]
        run.meta.update(wall_s=wall, fps=len(lat) / (sum(lat) / 1e3) if lat else None)
        if store is not None:
            store.close()
        report = write_report(run, out)
    return report


def _offline_frame(
    run: ReplayRun, frame: Frame, backend: Any, store: PredictionStore | None
) -> None:
    """Predict and score one frame; its row joins the report only once it is complete."""
    row = new_row(run.index, frame.index)
    try:
        rgb = messages.image_to_rgb(frame.image.msg)
    except ValueError as exc:
        reject(row, f"image not decodable: {exc}")
        run.rows[frame.index] = row
        return
    if not run.meta.get("warmed_up"):  # first-call costs (allocation, lazy init) stay untimed
        backend.predict(rgb)
        run.meta["warmed_up"] = True
    t0 = time.perf_counter()
    pred = backend.predict(rgb)
    row["latency_ms"] = (time.perf_counter() - t0) * 1e3
    scored = score_frame(row, pred, frame, run.cfg, run.ground)
    run.keep_sample(frame, rgb, pred if scored is None else scored)
    if store is not None:  # no metric scale: the relative prediction, as the node falls back
        store.put(frame.index, pred if scored is None else scored, relative=scored is None)
    run.rows[frame.index] = row
