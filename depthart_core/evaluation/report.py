"""Evaluation reports: report.json, report.md (tables in the DepthART results-table layout) and
samples.png (RGB | ground truth | prediction | error map, matplotlib's Agg canvas, no display).

The combined table follows the paper's main table (sec. 7): one row per model, for each dataset
its headline metrics (depthart protocol: delta1 (bad-pixel fraction, lower is better) and AbsRel),
and the mean rank over those columns when several models are compared. A dataset none of whose
frames could be read is not scored (runner): its cells are "—" (report.json: null), a section says
why, and the rank is over the columns every model has.

A model with the uncertainty head adds the issue #25 measures (`uncertainty_section`): AbsRel of
all pixels and with each frame's 20 % most uncertain removed, AUSE against a random ranking's,
Spearman per frame and pooled, and the claimed against the observed error per decile of the claim.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from depthart_core.data.benchmarks import DISPLAY_NAMES
from depthart_core.evaluation.protocols import get_protocol, higher_is_better
from depthart_core.fileutil import atomic_write, text_bytes

LABELS = {
    "abs_rel": "AbsRel",
    "sq_rel": "SqRel",
    "rmse": "RMSE",
    "rmse_log": "RMSE-log",
    "log10": "log10",
    "silog": "SILog",
    "mae": "MAE",
    "delta1": "δ1",
    "delta2": "δ2",
    "delta3": "δ3",
    "delta1_bad": "δ1",
}
FOOTNOTES = {
    "delta1_bad": "δ1↓ is the DepthART paper's δ1: the fraction of valid pixels with "
    "max(pred/gt, gt/pred) > 1.25 (lower is better).",
    "delta1": "δ1↑ is the fraction of valid pixels with max(pred/gt, gt/pred) < 1.25.",
}
ERR_VMAX = 0.5  # colour scale of the |pred - gt| / gt error map
MD_UNREADABLE_MAX = 50  # frames that could not be read listed in report.md (report.json: all)


def safe_name(label: str) -> str:
    """A folder name for `label`: letters, digits, '.', '_' and '-' only, never '.' or '..'
    or hidden (leading dots go), never empty."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_").lstrip(".") or "model"


def header(metric: str) -> str:
    return LABELS[metric] + ("↑" if higher_is_better(metric) else "↓")


def _display(dataset: str) -> str:
    return DISPLAY_NAMES.get(dataset, dataset)


def _clean(x):
    """JSON-safe: numpy scalars to Python, non-finite floats to None."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _write_json(path: Path, data: dict) -> None:
    atomic_write(path, (json.dumps(_clean(data), indent=2, allow_nan=False) + "\n").encode())


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _notes(metrics: Sequence[str]) -> list[str]:
    return [FOOTNOTES[m] for m in dict.fromkeys(metrics) if m in FOOTNOTES]


def write_run(run_dir: str | Path, res, model) -> dict:
    """report.json, report.md and samples.png for one model on one dataset; returns the report."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    proto = get_protocol(res.protocol)
    data = {
        "model": model.label,
        "dataset": res.dataset,
        "protocol": proto.name,
        "protocol_description": proto.description,
        "alignment": proto.alignment,
        "checkpoint": model.checkpoint,
        "checkpoint_sha256": model.sha256,
        "backend": model.backend,
        "backend_detail": model.backend_detail,
        "depth_range": list(res.depth_range) if res.depth_range else None,
        "n_images": res.n_images,
        "skipped_empty": res.skipped_empty,
        "skipped_reader": res.skipped_reader,
        "skipped_unreadable": len(res.unreadable),
        "unreadable": res.unreadable,
        "aggregate": res.aggregate,
        "timings": res.timings,
        "uncertainty": res.uncertainty,
        "per_image": res.per_image,
    }
    _write_json(run_dir / "report.json", data)
    cols = [*proto.headline, *(m for m in proto.metrics if m not in proto.headline)]
    ds = _display(res.dataset)
    table = _md_table(
        ["Model", *(f"{ds} {header(m)}" for m in cols)],
        [[model.label, *(f"{res.aggregate[m]:.3f}" for m in cols)]],
    )
    t = res.timings
    md = [
        f"# DepthART evaluation: {ds}, protocol `{proto.name}`",
        "",
        f"- protocol: {proto.description} (alignment `{proto.alignment}`)",
        f"- checkpoint: `{model.checkpoint}` (sha256 `{model.sha256}`), backend "
        f"`{model.backend_detail or model.backend}`",
        f"- images scored: {res.n_images}; skipped with no valid pixel: {res.skipped_empty}; "
        f"skipped by the reader: {res.skipped_reader}; could not be read: {len(res.unreadable)}",
        f"- predict time per image{' (the uncertainty pass)' if res.uncertainty else ''}: "
        f"{t['predict_ms_mean']:.1f} ms mean, {t['predict_ms_median']:.1f} ms median; total "
        f"{t['total_s']:.1f} s",
        *(
            [
                f"- iBims-1 planarity over {res.aggregate['n_planes']} planes: pe-fla "
                f"{res.aggregate['pe_fla']:.2f} cm, pe-ori {res.aggregate['pe_ori']:.2f} deg",
            ]
            if "pe_fla" in res.aggregate
            else []
        ),
        "",
        table,
        "",
        *_notes(cols),
        "",
        *unreadable_section({res.dataset: res.unreadable}),
        *(uncertainty_section(res.uncertainty) if res.uncertainty else []),
        "![samples](samples.png)",
        "",
    ]
    atomic_write(run_dir / "report.md", text_bytes("\n".join(md)))
    render_samples(res.vis, run_dir / "samples.png", f"{model.label} on {ds} ({proto.name})")
    return data


def unreadable_section(frames: dict[str, list[dict]]) -> list[str]:
    """report.md lines listing, per dataset, the frames that could not be read; none: []."""
    lines = []
    for dataset, bad in frames.items():
        if not bad:
            continue
        lines += [
            f"**{_display(dataset)}: {len(bad)} frame(s) could not be read** and are not scored "
            "(the metrics are over the frames scored):",
            "",
            *(f"- frame {b['index']}: {b['error']}" for b in bad[:MD_UNREADABLE_MAX]),
            *(
                [f"- ... and {len(bad) - MD_UNREADABLE_MAX} more (report.json lists all)"]
                if len(bad) > MD_UNREADABLE_MAX
                else []
            ),
            "",
        ]
    return lines


UNCERTAINTY_HEAD = [  # (column, issue #25's bar)
    "AbsRel↓ (median scale)",
    "AbsRel↓, 20 % most uncertain removed",
    "drop↑ (bar ≥ 30 %; oracle)",
    "AUSE / random↓ (bar ≤ 0.5)",
    "Spearman↑ per frame / pooled (bar ≥ 0.4)",
    "worst decile gap↓ (bar ≤ 25 %)",
]


def _fmt(x, spec: str = ".3f") -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, spec)


def uncertainty_row(u: dict) -> list[str]:
    """The uncertainty summary's headline numbers, in the order of UNCERTAINTY_HEAD."""
    return [
        _fmt(u["abs_rel"], ".4f"),
        _fmt(u["abs_rel_after"], ".4f"),
        f"{_fmt(100 * u['drop'], '.1f')} % ({_fmt(100 * u['oracle_drop'], '.1f')} %)",
        _fmt(u["ause_ratio"]),
        f"{_fmt(u['spearman_per_frame'])} / {_fmt(u['spearman_pooled'])}",
        f"{_fmt(100 * u['worst_decile_gap'], '.0f')} %",
    ]


def uncertainty_section(u: dict) -> list[str]:
    """report.md lines for `UncertaintyTally.summary` (runner): the table and the deciles."""
    deciles = u["deciles"]
    return [
        "## Uncertainty",
        "",
        "The checkpoint's uncertainty head claims each pixel's expected relative error "
        "(0.1: off by about 10 %). Observed errors are |s d - g| / g with each frame's median "
        f"scale s, over its valid pixels at the ground truth's resolution ({u['frames']} frames; "
        f"pooled measures on {u['pooled_pixels']} pixels"
        + (
            f", a uniform sample of {u['pooled_of']}"
            if u.get("pooled_of", 0) > u["pooled_pixels"]
            else ""
        )
        + ").",
        *(
            [
                "",
                f"**{u['nonfinite_pixels']} valid pixels had a non-finite uncertainty** and are "
                "left out of these measures (the node marks them NaN in depth/filtered).",
            ]
            if u.get("nonfinite_pixels")
            else []
        ),
        *(
            [
                "",
                f"**Spearman per frame leaves out {u['spearman_undefined_frames']} of "
                f"{u['frames']} frames** whose map (or error) is constant: no ranking there.",
            ]
            if u.get("spearman_undefined_frames")
            else []
        ),
        "",
        _md_table(UNCERTAINTY_HEAD, [uncertainty_row(u)]),
        "",
        "Claimed and observed error by decile of the claim (lowest claim first):",
        "",
        _md_table(
            ["", *(str(i + 1) for i in range(len(deciles)))],
            [
                ["claimed", *(f"{c:.4f}" for c, _, _ in deciles)],
                ["observed", *(f"{o:.4f}" for _, o, _ in deciles)],
            ],
        ),
        "",
        *_threshold_lines(u.get("thresholds", [])),
    ]


def _threshold_lines(rows: list) -> list[str]:
    """What the node's `uncertainty.max` would do on these frames (pooled pixels)."""
    if not rows:
        return []
    return [
        "What `uncertainty.max` (the node's depth/filtered) would drop on these frames:",
        "",
        _md_table(
            ["uncertainty.max", "pixels dropped", "error of the kept", "error of the dropped"],
            [[f"{t:g}", f"{100 * f:.1f} %", _fmt(k, ".4f"), _fmt(d, ".4f")] for t, f, k, d in rows],
        ),
        "",
    ]


def mean_ranks(values: list[list[float]], higher_better: list[bool]) -> list[float]:
    """values[model][column] -> each model's rank (1 = best, ties share the mean) averaged over
    columns, as the paper's "Rank" column."""
    v = np.asarray(values, dtype=np.float64)
    ranks = np.zeros_like(v)
    for c in range(v.shape[1]):
        col = -v[:, c] if higher_better[c] else v[:, c]
        for i in range(v.shape[0]):
            ranks[i, c] = 1 + np.sum(col < col[i]) + 0.5 * (np.sum(col == col[i]) - 1)
    return ranks.mean(axis=1).tolist()


NOT_SCORED = "—"  # report.md's cell of a model on a dataset not scored (report.json: null)


def _scored(v) -> bool:
    return v is not None and math.isfinite(v)


def write_combined(
    out: str | Path,
    runs: list[dict],
    datasets: list[str],
    protocol: str,
    not_scored: Sequence[dict] = (),
) -> dict:
    """The combined results table over models x datasets: report.json and report.md in `out`.

    `not_scored`: the cells (runner: {"model", "dataset", "reason", "unreadable", ...}) of a
    dataset none of whose frames could be read: null in report.json's results, "—" in report.md,
    listed with why in both; their frames count as unreadable. The mean rank is over the columns
    every model has a value in (none such: no rank)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    proto = get_protocol(protocol)
    columns = [(d, m) for d in datasets for m in proto.headline]
    models: dict[str, dict] = {}
    for r in [*runs, *not_scored]:
        entry = models.setdefault(
            r["model"],
            {
                "model": r["model"],
                "checkpoint": r.get("checkpoint"),
                "checkpoint_sha256": r.get("checkpoint_sha256"),
                "backend": r.get("backend"),
                "results": {},
                "uncertainty": {},
            },
        )
        entry["results"][r["dataset"]] = r.get("aggregate")  # not scored: None
        if r.get("uncertainty"):
            entry["uncertainty"][r["dataset"]] = r["uncertainty"]
    rows = list(models.values())
    for row in rows:  # in the order of `datasets`
        row["results"] = {d: row["results"][d] for d in datasets if d in row["results"]}
    by_index: dict[str, dict[int, dict]] = {}  # per dataset, each frame once (all models' runs)
    for r in [*runs, *not_scored]:
        frames = by_index.setdefault(r["dataset"], {})
        for b in r.get("unreadable", []):
            frames.setdefault(b["index"], b)
    unreadable = {d: [f[i] for i in sorted(f)] for d, f in by_index.items() if f}
    values = [[(row["results"].get(d) or {}).get(m) for d, m in columns] for row in rows]
    # a column missing a model's value is left out of every model's rank, never ranked as a value
    ranked = [c for c in range(len(columns)) if all(_scored(vals[c]) for vals in values)]
    ranks = None
    if len(rows) > 1 and ranked:
        ranks = mean_ranks(
            [[vals[c] for c in ranked] for vals in values],
            [higher_is_better(columns[c][1]) for c in ranked],
        )
    for i, row in enumerate(rows):
        row["rank"] = ranks[i] if ranks else None
    head = ["Model", *(f"{_display(d)} {header(m)}" for d, m in columns)]
    body = [
        [row["model"], *(NOT_SCORED if v is None else f"{v:.3f}" for v in vals)]
        for row, vals in zip(rows, values, strict=True)
    ]
    if ranks:
        head.append("Rank↓")
        for b, r in zip(body, ranks, strict=True):
            b.append(f"{r:.1f}")
    cells = [
        {
            "model": n["model"],
            "dataset": n["dataset"],
            "reason": n["reason"],
            "frames": len(n.get("unreadable", [])),
        }
        for n in not_scored
    ]
    data = {
        "protocol": proto.name,
        "protocol_description": proto.description,
        "datasets": list(datasets),
        "columns": [{"dataset": d, "metric": m} for d, m in columns],
        "rank_columns": [{"dataset": d, "metric": m} for d, m in (columns[c] for c in ranked)]
        if ranks
        else [],
        "models": rows,
        "not_scored": cells,
        "skipped_unreadable": sum(len(b) for b in unreadable.values()),
        "unreadable": unreadable,
        "runs": [
            r.get("path") or f"{safe_name(r['model'])}/{r['dataset']}/report.json" for r in runs
        ],
    }
    _write_json(out / "report.json", data)
    gone = {c["dataset"] for c in cells}  # their frames: in the not-scored section instead
    md = [
        f"# DepthART evaluation, protocol `{proto.name}`",
        "",
        f"{proto.description}.",
        "",
        _md_table(head, body),
        "",
        *_notes(proto.headline),
        *_rank_note(len(rows), columns, ranked, ranks is not None),
        "",
        *not_scored_section(cells, [row["model"] for row in rows]),
        *unreadable_section({d: b for d, b in unreadable.items() if d not in gone}),
        *_model_paths(rows),
    ]
    unc_rows = [
        [row["model"], _display(d), *uncertainty_row(u)]
        for row in rows
        for d, u in row["uncertainty"].items()
    ]
    if unc_rows:
        md += [
            "Uncertainty (models with the head; each run's report.md has the deciles):",
            "",
            _md_table(["Model", "Dataset", *UNCERTAINTY_HEAD], unc_rows),
            "",
        ]
    md += [
        f"- [{r['model']} on {_display(r['dataset'])}]({p})"
        for r, p in zip(runs, data["runs"], strict=True)
    ]
    atomic_write(out / "report.md", text_bytes("\n".join(md) + "\n"))
    return data


def _rank_note(n_models: int, columns: list, ranked: list[int], ranks: bool) -> list[str]:
    """How the rank was taken when a column lacks a model's value; [] when every column counts."""
    if n_models < 2 or len(ranked) == len(columns):
        return []
    if not ranks:
        return ["No rank: no column has a value for every model (see Not scored)."]
    left = dict.fromkeys(_display(columns[c][0]) for c in range(len(columns)) if c not in ranked)
    return [
        f"Rank↓ is the mean rank over the {len(ranked)} of {len(columns)} columns every model "
        f"has a value in; left out: {', '.join(left)} (a model's value missing)."
    ]


def not_scored_section(cells: Sequence[dict], models: Sequence[str]) -> list[str]:
    """report.md lines naming each dataset not scored (no frame could be read) and why; none: []."""
    by_dataset: dict[str, list[dict]] = {}
    for c in cells:
        by_dataset.setdefault(c["dataset"], []).append(c)
    if not by_dataset:
        return []
    lines = [f"**Not scored** ({NOT_SCORED} in the table, null in report.json):", ""]
    for dataset, cs in by_dataset.items():
        who = [c["model"] for c in cs]
        whom = "" if set(who) >= set(models) else f" for {', '.join(who)}"
        lines.append(f"- {_display(dataset)}{whom}: {cs[0]['reason']}")
    return [*lines, ""]


def _model_paths(rows: list[dict]) -> list[str]:
    """Each checkpoint model's name and the file it names, then a blank line; none without."""
    lines = [
        f"- {row['model']}: `{row['checkpoint']}` (sha256 `{row['checkpoint_sha256']}`)"
        for row in rows
        if row.get("checkpoint")
    ]
    return ["Models:", "", *lines, ""] if lines else []


def render_samples(vis: Sequence, path: str | Path, title: str) -> None:
    """Rows of RGB | ground truth | aligned prediction | AbsRel error map, with colour bars."""
    n = max(1, len(vis))
    fig = Figure(figsize=(14, 2.8 * n + 0.4))
    fig.subplots_adjust(
        left=0.01, right=0.97, bottom=0.02, top=1 - 0.4 / (2.8 * n + 0.4), wspace=0.2, hspace=0.15
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 4, squeeze=False)
    for row, v in zip(axes, vis, strict=False):
        g = np.where(v.valid, v.gt, np.nan)
        lo, hi = np.percentile(v.gt[v.valid], [2, 98]) if v.valid.any() else (0.0, 1.0)
        err = np.where(v.valid, np.abs(v.pred - v.gt) / np.maximum(v.gt, 1e-6), np.nan)
        row[0].imshow(v.rgb)
        row[0].set_title(v.name, fontsize=8)
        row[1].imshow(g, cmap="Spectral_r", vmin=lo, vmax=hi)
        row[1].set_title("ground truth (m)", fontsize=8)
        im = row[2].imshow(v.pred, cmap="Spectral_r", vmin=lo, vmax=hi)
        row[2].set_title("prediction, aligned (m)", fontsize=8)
        fig.colorbar(im, ax=row[2], fraction=0.046)
        im = row[3].imshow(err, cmap="magma", vmin=0.0, vmax=ERR_VMAX)
        row[3].set_title("|pred - gt| / gt", fontsize=8)
        fig.colorbar(im, ax=row[3], fraction=0.046)
    for ax in axes.ravel():
        ax.set_axis_off()
    if not vis:
        axes[0, 0].text(0, 0.5, "no image was scored", fontsize=12)
    fig.suptitle(title, fontsize=10)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=80))
