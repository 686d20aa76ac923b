"""Rosbag replay reports: report.json, report.md, the terminal summary and three pictures.

`summarize` turns a `ReplayRun` (complete or stopped early) into the report dict stored in
report.json; `write_report` writes it with report.md, metrics_over_time.png, latency_hist.png and
samples.png (matplotlib, Agg backend); `format_summary` gives the few lines printed at the end.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from depthart_core.evaluation.protocols import get_protocol
from depthart_core.fileutil import WriteError, atomic_write, text_bytes
from depthart_core.replay.frames import STATUSES, ReplayRun, nearest_offset_s

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# Summary: the report dict, and its terminal form


def summarize(run: ReplayRun) -> dict[str, Any]:
    """Counts, aggregate metrics, latency and throughput of a run, as stored in report.json."""
    rows = run.all_rows()
    counts = Counter(r["status"] for r in rows)
    scored = [r["metrics"] for r in rows if r["status"] == "evaluated"]
    aggregate = {}
    if scored:
        aggregate = {k: float(np.mean([m[k] for m in scored])) for k in scored[0]}
    lat = np.array([r["latency_ms"] for r in rows if r.get("latency_ms") is not None])
    latency = {}
    if lat.size:
        latency = {
            "mean": float(lat.mean()),
            "p50": float(np.percentile(lat, 50)),
            "p90": float(np.percentile(lat, 90)),
            "p99": float(np.percentile(lat, 99)),
            "max": float(lat.max()),
            "n": int(lat.size),
        }
    return {
        "mode": run.mode,
        # a bag that gave fewer images than it lists is no plain "complete" (`BagIndex.short_note`)
        "status": run.status + (", short bag" if run.index.short_note else ""),
        "bag": run.bag,
        "config": asdict(run.cfg),
        "topics": {t: asdict(s) for t, s in run.index.topics.items()},
        "counts": {"frames": len(rows), **{s: counts.get(s, 0) for s in STATUSES}},
        # the image topic's messages in the bag; `frames` counts those replayed (--max-frames)
        "frames_in_bag": _images_in_bag(run),
        **_short_bag(run),
        "headline": list(get_protocol(run.cfg.eval_protocol).headline),
        "aggregate": aggregate,
        "latency_ms": latency,
        "unmatched_frames": [
            {"index": r["index"], "stamp_ns": r["stamp_ns"]}
            for r in rows
            if r["status"] == "unmatched"
        ],
        "rejected_frames": [
            {"index": r["index"], "stamp_ns": r["stamp_ns"], "reason": r["reason"]}
            for r in rows
            if r["status"] == "rejected"
        ],
        **({"ground_plane": ground_plane_summary(run)} if run.ground is not None else {}),
        **_unmatched_hint(run, counts),
        **run.meta,
        "rows": rows,
    }


# issue #26: metres from the floor may cost at most this much AbsRel over per-frame alignment
GROUND_RATIO_BAR = 1.25


def ground_plane_summary(run: ReplayRun) -> dict[str, Any]:
    """The ground_plane protocol's headline: the metric AbsRel with no per-frame alignment over
    the frames the floor scaled, the same predictions median-aligned per frame, their ratio
    (issue #26 bounds it at 1.25), the scales applied and the fallbacks by reason."""
    rows = run.all_rows()
    fitted = [r for r in rows if r.get("ground_plane")]
    ev = [r for r in rows if r["status"] == "evaluated" and "aligned_abs_rel" in r]
    scales = [r["ground_plane"]["scale"] for r in fitted if r["ground_plane"]["scale"] is not None]
    metric, aligned, ratio = _metric_vs_aligned(ev) if ev else (None, None, None)
    fallbacks = Counter(
        r["ground_plane"]["code"] for r in fitted if r["ground_plane"]["scale"] is None
    )
    imu = {}
    if run.cfg.imu_topic or run.cfg.vertical_lines:  # which up each fit used, or why the prior
        ups = Counter(r["ground_plane"].get("up", "prior") for r in fitted)
        imu = {"up_sources": dict(ups), "by_up": _errors_by_up(ev)}
        if run.cfg.imu_topic:
            imu |= {"imu_topic": run.cfg.imu_topic}
            imu |= {"imu_no_orientation": run.index.imu_no_orientation}
        if run.cfg.vertical_lines:
            imu |= {"vertical_lines": True}
    return {
        "camera_height_m": run.cfg.ground_plane.camera_height_m,
        "normal": run.cfg.ground_plane.normal,
        "frames_fitted": len(fitted),
        "frames_scaled": len(scales),
        "frames_scored": len(ev),
        "metric_abs_rel": metric,
        "aligned_abs_rel": aligned,
        "ratio": ratio,
        "ratio_bar": GROUND_RATIO_BAR,
        "scale_median": float(np.median(scales)) if scales else None,
        "scale_p10_p90": [float(np.percentile(scales, q)) for q in (10, 90)] if scales else None,
        "fallbacks": dict(fallbacks),
        # camera_info messages ignored as the node ignores them, by cause: frames kept the
        # newest good one (or fell back, counted in `fallbacks`)
        "camera_info_ignored": dict(run.index.camera_info_ignored),
        **imu,
    }


def _errors_by_up(ev: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The headline split by the up each scored frame was fitted along (an IMU's, the vertical
    lines', or the prior and why): where the metric error comes from. On rendered bags most of the
    lines' excess over an IMU was on the frames they refused (BENCHMARKS 10)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in ev:
        groups.setdefault(r["ground_plane"].get("up", "prior"), []).append(r)
    out = {}
    for up, rs in sorted(groups.items()):
        metric, aligned, ratio = _metric_vs_aligned(rs)
        out[up] = {
            "frames": len(rs),
            "metric_abs_rel": metric,
            "aligned_abs_rel": aligned,
            "ratio": ratio,
        }
    return out


def _metric_vs_aligned(ev: list[dict[str, Any]]) -> tuple[float, float, float | None]:
    """Mean metric AbsRel, mean median-aligned AbsRel of the same scored frames, their ratio."""
    metric = float(np.mean([r["metrics"]["abs_rel"] for r in ev]))
    aligned = float(np.mean([r["aligned_abs_rel"] for r in ev]))
    return metric, aligned, (metric / aligned if aligned else None)


def _images_in_bag(run: Any) -> int:
    if run.index.images_listed is not None:  # fewer could be read than the bag lists
        return run.index.images_read
    topic = run.index.topics.get(run.cfg.image_topic)
    return max(run.index.n_frames, topic.count if topic is not None else 0)


def _short_bag(run: Any) -> dict[str, Any]:
    """Where fewer images were read than the bag lists: how many it lists, and the note."""
    note = run.index.short_note
    return {"frames_listed": run.index.images_listed, "short_bag": note} if note else {}


def _rate(report: dict[str, Any]) -> str:
    """What `fps` is: outputs received per second live, 1000 / the mean predict latency offline
    (the model's rate; reading and scoring the bag are not in it)."""
    if report["mode"] == "live":
        return f"throughput {report['fps']:.2f} frames/s (outputs received per second)"
    return f"predict rate {report['fps']:.2f} frames/s (1000 / mean predict latency)"


def format_summary(report: dict[str, Any], out_dir: str | Path | None = None) -> str:
    """A few lines for the terminal: frames, throughput, latency, headline metrics, outputs."""
    c = report["counts"]
    parts = [f"{k} {c[k]}" for k in STATUSES if c.get(k)]
    lines = [f"{report['mode']} replay of {report['bag']} ({report['status']})"]
    lines.append(f"  frames {c['frames']}: " + (", ".join(parts) or "none processed"))
    if report.get("short_bag"):
        lines.append(f"  short bag: {report['short_bag']}")
    drops = _live_drops(report.get("live") or {})
    if drops:
        lines.append(f"  {drops}")
    if report.get("fps"):
        lines.append(f"  {_rate(report)}")
    lat = report.get("latency_ms") or {}
    if lat:
        what = "end-to-end" if report["mode"] == "live" else "predict"
        lines.append(
            f"  {what} latency ms: mean {lat['mean']:.1f}, p50 {lat['p50']:.1f}, "
            f"p90 {lat['p90']:.1f}, max {lat['max']:.1f}"
        )
    agg = report.get("aggregate") or {}
    if agg:
        keys = [k for k in ("abs_rel", *report["headline"]) if k in agg]
        vals = ", ".join(f"{k} {agg[k]:.4f}" for k in dict.fromkeys(keys))
        lines.append(f"  {report['config']['protocol']} protocol: {vals}")
    gp = report.get("ground_plane")
    if gp:
        lines.append("  " + _ground_plane_line(gp))
        if gp.get("by_up"):
            parts = [
                f"{up} {g['frames']} frames ratio "
                + ("-" if g["ratio"] is None else f"{g['ratio']:.2f}")
                for up, g in gp["by_up"].items()
            ]
            lines.append("    by up: " + "; ".join(parts))
    if out_dir is not None:
        what = "report and pictures" if report.get("pictures") else "report"  # those drawn
        lines.append(f"  {what} in {Path(out_dir).resolve()}/")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# Report: report.json, report.md and three pictures


def write_report(run: ReplayRun, out: Path) -> dict[str, Any]:
    """Write every report file for `run` (complete or partial) under `out`; return the summary."""
    out.mkdir(parents=True, exist_ok=True)
    report = summarize(run)
    pictures = {
        "metrics_over_time": ("metrics_over_time.png", plot_metrics_over_time),
        "latency_hist": ("latency_hist.png", plot_latency_hist),
        "samples": ("samples.png", plot_samples),
    }
    report["pictures"] = {}
    for name, _ in pictures.values():  # an earlier run's pictures must not pass for this one's
        (out / name).unlink(missing_ok=True)

    def save_text() -> None:
        text = json.dumps(report, indent=1, default=_json_default) + "\n"
        atomic_write(out / "report.json", text.encode())
        atomic_write(out / "report.md", text_bytes(markdown_report(report)))

    save_text()  # first: the pictures take seconds, and Ctrl-C there must not cost the report
    if run.cfg.plots:
        for key, (name, plot) in pictures.items():
            try:
                if plot(run, report, out / name):
                    report["pictures"][key] = name
            except WriteError:  # a disk that cannot take a picture cannot take the report
                raise
            except Exception as exc:  # a failed picture must not cost the report
                log.warning("could not draw %s: %s", name, exc)
                report.setdefault("picture_errors", {})[key] = str(exc)
        save_text()  # again, naming the pictures drawn
    return report


def _save(plt: Any, fig: Any, path: Path, dpi: int) -> None:
    """Save a figure atomically and close it, whatever happens."""
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi))
    finally:
        plt.close(fig)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in report.json")


def _ground_plane_line(gp: dict[str, Any]) -> str:
    falls = ", ".join(f"{k} {v}" for k, v in sorted(gp["fallbacks"].items())) or "none"
    up = ""
    if gp.get("imu_topic") or gp.get("vertical_lines"):
        ups = ", ".join(f"{k} {v}" for k, v in sorted(gp["up_sources"].items()))
        where = " and ".join(
            x for x in (gp.get("imu_topic"), gp.get("vertical_lines") and "vertical lines") if x
        )
        up = f", up from {where}: {ups}"
    head = (
        f"ground plane ({gp['camera_height_m']:g} m, normal {gp['normal']}{up}): "
        f"{gp['frames_scaled']}/{gp['frames_fitted']} frames scaled, fallbacks: {falls}"
    )
    if gp.get("camera_info_ignored"):  # broken calibrations, as the node ignores them
        bad = ", ".join(f"{k} {v}" for k, v in sorted(gp["camera_info_ignored"].items()))
        head += f"; camera_info messages ignored: {bad}"
    if gp["ratio"] is None:
        return head + "; no frame scored"
    met = "met" if gp["ratio"] <= gp["ratio_bar"] else "NOT met"
    return (
        f"{head}; metric AbsRel {gp['metric_abs_rel']:.4f} vs median-aligned "
        f"{gp['aligned_abs_rel']:.4f} on the same {gp['frames_scored']} frames: ratio "
        f"{gp['ratio']:.3f} (bar {gp['ratio_bar']:g}: {met})"  # 1.253 is not "1.25: NOT met"
    )


def _model_lines(backend: dict[str, Any]) -> list[str]:
    """The model a replay ran: its checkpoint (and sha256, where recorded), and the ONNX graph
    that ran it, where one did."""
    sha = backend.get("checkpoint_sha256")
    lines = [f"- checkpoint: `{backend.get('checkpoint')}`" + (f" (sha256 `{sha}`)" if sha else "")]
    if backend.get("graph"):
        lines.append(f"- graph: `{backend['graph']}`")
    if backend.get("runs"):
        lines.append(f"- ran as: {backend['runs']}")  # letterboxing named there
    if backend.get("node_args"):
        lines.append(f"- node arguments: `{' '.join(backend['node_args'])}`")
    return lines


def markdown_report(report: dict[str, Any]) -> str:
    cfg, c = report["config"], report["counts"]
    lines = [
        f"# DepthART {report['mode']} replay: {Path(report['bag']).name}",
        "",
        f"- status: **{report['status']}**",
        f"- bag: `{report['bag']}`",
        f"- topics: image `{cfg['image_topic']}`, GT depth `{cfg['depth_topic']}`, "
        f"camera info `{cfg['camera_info_topic']}`",
        f"- protocol: `{cfg['protocol']}`, stamp tolerance {cfg['max_dt_s'] * 1e3:g} ms",
        *_model_lines(report.get("backend") or {}),
        "",
        "## Frames",
        "",
        "| " + " | ".join(["frames", *STATUSES]) + " |",
        "|" + "---|" * (len(STATUSES) + 1),
        "| " + " | ".join(str(c.get(k, 0)) for k in ["frames", *STATUSES]) + " |",
        "",
    ]
    if report.get("short_bag"):
        lines += [f"**Short bag:** {report['short_bag']}", ""]
    if report["aggregate"]:
        n = c["evaluated"]
        lines += [f"## Metrics (mean over {n} frames)", "", "| metric | value |", "|---|---|"]
        head = report["headline"]
        for k in [*head, *(k for k in report["aggregate"] if k not in head)]:
            lines.append(f"| {k} | {report['aggregate'][k]:.4f} |")
        lines.append("")
    if report.get("ground_plane"):
        gp = report["ground_plane"]
        lines += ["## Ground-plane scale", "", _ground_plane_line(gp), ""]
        if gp.get("by_up"):
            lines += [
                "By the up each frame's floor was measured along:",
                "",
                "| up | frames | metric AbsRel | median-aligned | ratio |",
                "|---|---|---|---|---|",
            ]
            for up, g in gp["by_up"].items():
                ratio = "-" if g["ratio"] is None else f"{g['ratio']:.2f}"
                lines.append(
                    f"| {up} | {g['frames']} | {g['metric_abs_rel']:.4f} | "
                    f"{g['aligned_abs_rel']:.4f} | {ratio} |"
                )
            lines.append("")
    lat = report["latency_ms"]
    if lat:
        what = "end-to-end (publish -> output received)" if report["mode"] == "live" else "predict"
        lines += [f"## Latency, {what}", ""]
        stats = ("mean", "p50", "p90", "p99", "max")
        lines.append(", ".join(f"{k} {lat[k]:.1f} ms" for k in stats))
        if report.get("fps"):
            lines.append(f"\n{_rate(report)}")
        lines.append("")
    if report.get("live"):
        lv = report["live"]
        keys = ("published", "returned", "dropped", "warmup_published", "unexpected_outputs")
        lines += ["## Live", "", ", ".join(f"{k} {lv[k]}" for k in keys)]
        drops = _live_drops(lv)
        if drops:
            lines.append(f"\n{drops[0].upper()}{drops[1:]}")
        if lv.get("lost_before_node"):
            base = lv.get("node_frames_baseline") or 0
            measured = lv["node_frames"]["received"] - base
            lines.append(
                f"\n**Transport loss:** {lv['lost_before_node']} of {lv['published']} frames never "
                f"reached the node (its diagnostics, after the last frame was published, count "
                f"{measured} of them received, past the {base} warm-up images it had received): "
                "they were lost in DDS transport between the replay and the node, not dropped by "
                "the node, and the latency and throughput above are of the frames that came "
                'through. See README, "Large images and DDS".'
            )
        lines += [f"\nnode: `{' '.join(lv['node_cmd'])}` (log `{lv['node_log']}`)", ""]
    for key, title in (("unmatched_frames", "Unmatched"), ("rejected_frames", "Rejected")):
        items = report[key]
        if items:
            lines += [f"## {title} frames ({len(items)})", ""]
            for it in items[:50]:
                lines.append(
                    f"- frame {it['index']} (stamp {it['stamp_ns']})"
                    + (f": {it['reason']}" if "reason" in it else "")
                )
            lines += ["- ..." if len(items) > 50 else "", ""]
    for name in report.get("pictures", {}).values():
        lines += [f"![{name}]({name})", ""]
    return "\n".join(lines)


def _live_drops(lv: dict[str, Any]) -> str | None:
    """Where a live run's dropped frames went: lost before the node (it never received them) or
    dropped by the node (received, no output), as the node's diagnostics tell them apart."""
    if not lv.get("dropped"):
        return None
    if lv.get("lost_before_node") is None:
        why = lv.get("split_not_known") or "the node's diagnostics gave no frames_received"
        return f"dropped {lv['dropped']}: lost before the node or by it is not known ({why})"
    return (
        f"dropped {lv['dropped']}: {lv['lost_before_node']} lost before the node (never "
        f"received: DDS transport), {lv['dropped_by_node']} by the node (received, no output)"
    )


def _pyplot() -> Any:
    # pyplot only after choosing the Agg backend, so plotting never needs a display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metrics_over_time(run: ReplayRun, report: dict[str, Any], path: Path) -> bool:
    rows = report["rows"]
    if not rows:
        return False
    plt = _pyplot()
    t0 = rows[0]["stamp_ns"]
    t = np.array([(r["stamp_ns"] - t0) / 1e9 for r in rows])
    keys = [k for k in dict.fromkeys(["abs_rel", *report["headline"]]) if k in report["aggregate"]]
    panels = [*keys, "latency_ms"]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 1.9 * len(panels) + 0.6), sharex=True)
    for ax, key in zip(np.atleast_1d(axes), panels, strict=True):
        if key == "latency_ms":
            y = np.array([r.get("latency_ms", np.nan) or np.nan for r in rows], dtype=float)
        else:
            y = np.array([(r.get("metrics") or {}).get(key, np.nan) for r in rows], dtype=float)
        ax.plot(t, y, ".-", ms=3, lw=0.8)
        missing = [r["status"] != "evaluated" for r in rows] if key != "latency_ms" else []
        for tt in t[np.array(missing, dtype=bool)] if missing else []:
            ax.axvline(tt, color="0.85", lw=0.8, zorder=0)
        ax.set_ylabel(key.replace("_ms", " [ms]"))
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[-1].set_xlabel("time since first frame [s] (grey: frame not scored)")
    fig.suptitle(f"{report['mode']} replay, protocol {report['config']['protocol']}")
    fig.tight_layout()
    _save(plt, fig, path, dpi=100)
    return True


def plot_latency_hist(run: ReplayRun, report: dict[str, Any], path: Path) -> bool:
    lat = np.array([r["latency_ms"] for r in report["rows"] if r.get("latency_ms") is not None])
    if not lat.size:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(lat, bins=min(40, max(5, lat.size // 2)), color="tab:blue", alpha=0.8)
    for q, style in ((50, "-"), (90, "--"), (99, ":")):
        v = float(np.percentile(lat, q))
        ax.axvline(v, color="k", ls=style, lw=1, label=f"p{q} {v:.1f} ms")
    what = "end-to-end latency" if report["mode"] == "live" else "predict latency"
    ax.set_xlabel(f"{what} [ms]")
    ax.set_ylabel("frames")
    ax.legend()
    fig.tight_layout()
    _save(plt, fig, path, dpi=100)
    return True


def plot_samples(run: ReplayRun, report: dict[str, Any], path: Path) -> bool:
    samples = sorted(run.samples, key=lambda s: s["index"])
    if not samples:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(len(samples), 3, figsize=(9, 2.6 * len(samples)), squeeze=False)
    for row_axes, s in zip(axes, samples, strict=True):
        gt = None if s["gt"] is None else np.where(s["gt"][1], s["gt"][0], np.nan)
        panels = (("RGB", s["rgb"]), ("GT depth [m]", gt), ("prediction", s["pred"]))
        for ax, (title, img) in zip(row_axes, panels, strict=True):
            ax.set_axis_off()
            ax.set_title(f"{title} (frame {s['index']})" if title == "RGB" else title, fontsize=9)
            if img is None:
                ax.text(0.5, 0.5, "no GT", ha="center", va="center", transform=ax.transAxes)
            elif img.ndim == 3:
                ax.imshow(img)
            else:
                finite = img[np.isfinite(img)]
                lo, hi = np.percentile(finite, (2, 98)) if finite.size else (0.0, 1.0)
                im = ax.imshow(img, cmap="turbo_r", vmin=lo, vmax=max(hi, lo + 1e-6))
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    fig.tight_layout()
    _save(plt, fig, path, dpi=90)
    return True


def _unmatched_hint(run: ReplayRun, counts: Counter) -> dict[str, float]:
    """With unmatched frames: how near the nearest depth stamp came to an image (beside
    `config.max_dt_s`, it says whether a larger tolerance would pair them)."""
    if not counts.get("unmatched") or not run.index.depth_stamps:
        return {}
    return {"nearest_depth_offset_s": nearest_offset_s(run.index)}
