"""The leaderboard of a run with several experiments: results/<leaderboard>.md, .csv and .png.

One row per experiment, from its metrics.json: CAM seed mIoU (seed split, best threshold),
pseudo-mask mIoU after its refinement, final val mIoU, and the wall time of every job the
experiment needs (shared jobs counted in each experiment that reads them, and apart, the jobs
built in the experiment's own folder), and their CPU time, from Snakemake's benchmark files.
CPU time does not grow when other work shares the machine; wall time does.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

from wsss_stages.lib.artifacts import atomic_path, read_json, write_csv
from wsss_stages.lib.reports import fmt, read_job_time

log = logging.getLogger(__name__)


def _pairs(items: list[str], what: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--{what} takes name=value items, not {item!r}")
        pairs.append((name, value))
    return pairs


def job_times(jobs: list[tuple[str, str]]) -> dict[str, dict[str, float | None]]:
    """experiment → summed wall seconds of its jobs, of those built in its own folder, and their CPU seconds."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: {"seconds": 0.0, "own_seconds": 0.0, "cpu_seconds": 0.0, "missing": 0})
    for name, tsv in jobs:
        row, entry = read_job_time(Path(tsv)), totals[name]
        if row is None or row["seconds"] is None:
            entry["missing"] += 1
            continue
        entry["seconds"] += row["seconds"]
        entry["cpu_seconds"] += row["cpu_seconds"] or 0.0
        if Path(tsv).parent.parent.name == name:
            entry["own_seconds"] += row["seconds"]
    return totals


def leaderboard_rows(summaries: list[tuple[str, str]], labels: dict[str, str], times: dict) -> list[dict]:
    rows = []
    for name, path in summaries:
        metrics = read_json(Path(path))
        cost = times.get(name, {"seconds": None, "own_seconds": None, "cpu_seconds": None, "missing": 0})
        rows.append({"experiment": name, "method": labels.get(name, ""), "refinement": metrics["refinement"],
                     "cam_miou": metrics["cam_miou"], "cam_bg_threshold": metrics["cam_bg_threshold_best"],
                     "pseudo_mask_miou": metrics["pseudo_mask_miou"], "val_miou": metrics["segmentation_miou"],
                     "seed_split": metrics["seed_split"], "val_split": metrics["val_split"],
                     "wall_seconds": cost["seconds"], "own_wall_seconds": cost["own_seconds"], "cpu_seconds": cost["cpu_seconds"],
                     "jobs_unmeasured": cost["missing"]})  # fmt: skip
    return rows


def render_markdown(rows: list[dict]) -> str:
    best = {key: max((r[key] for r in rows if r[key] is not None), default=None) for key in ("cam_miou", "pseudo_mask_miou", "val_miou")}

    def cell(row, key):
        text = fmt(row[key])
        return f"**{text}**" if row[key] is not None and row[key] == best[key] and len(rows) > 1 else text

    seed_split = rows[0]["seed_split"]
    val_split = next((r["val_split"] for r in rows if r["val_split"]), "val")
    lines = ["# Leaderboard", "",
             f"mIoU in %: CAM seeds at their best background threshold and pseudo-masks on `{seed_split}` (thresholds "
             f"swept there), the DeepLab trained on the pseudo-masks on `{val_split}`. Wall time: every job the "
             "experiment needs, shared ones included; *own*: the jobs built in its own folder; CPU: all its jobs' CPU time. "
             "Best per column in bold.", "",
             "| experiment | method | refinement | CAM seeds | bg thr | pseudo-masks | final val | wall time (s) | own (s) | CPU (s) |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for row in rows:
        wall = fmt(row["wall_seconds"], 0) + (f" ({row['jobs_unmeasured']} jobs unmeasured)" if row["jobs_unmeasured"] else "")
        lines.append(f"| {row['experiment']} | {row['method']} | {row['refinement']} | {cell(row, 'cam_miou')} | "
                     f"{fmt(row['cam_bg_threshold'])} | {cell(row, 'pseudo_mask_miou')} | {cell(row, 'val_miou')} | "
                     f"{wall} | {fmt(row['own_wall_seconds'], 0)} | {fmt(row['cpu_seconds'], 0)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def plot_leaderboard(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    series = [("cam_miou", "CAM seeds"), ("pseudo_mask_miou", "pseudo-masks"), ("val_miou", "final val")]
    x, width = np.arange(len(rows)), 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(rows)), 3.8), constrained_layout=True)
    for k, (key, label) in enumerate(series):
        values = [row[key] if row[key] is not None else np.nan for row in rows]
        ax.bar(x + (k - 1) * width, values, width, label=label)
    ax.set_xticks(x, [row["experiment"] for row in rows], rotation=20, ha="right")
    ax.set_ylabel("mIoU (%)")
    ax.legend(frameon=False, ncols=3, loc="upper left")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_leaderboard(*, out_md: Path, out_csv: Path, out_plot: Path | None, summaries: list[str], jobs: list[str], labels: list[str],
                      threads: int = 1) -> None:
    """Write the leaderboard of several experiments.

    Args:
        summaries: experiment=metrics.json items, in leaderboard order
        out_md: leaderboard markdown
        out_csv: leaderboard CSV (one row per experiment)
        jobs: experiment=benchmark.tsv items, one per job the experiment needs (wall time)
        labels: experiment=method-name items
        out_plot: bar chart of the three mIoU columns (PNG)
        threads: unused
    """
    times = job_times(_pairs(jobs or [], "jobs"))
    rows = leaderboard_rows(_pairs(summaries, "summaries"), dict(_pairs(labels or [], "labels")), times)
    write_csv(out_csv, rows)
    table = render_markdown(rows)
    with atomic_path(out_md) as tmp:
        tmp.write_text(table)
    if out_plot:
        plot_leaderboard(rows, Path(out_plot))
    print(table, flush=True)
    log.info("wrote %s and %s", out_md, out_csv)
