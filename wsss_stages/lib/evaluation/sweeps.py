"""Threshold sweeps on the seed split: one confusion matrix per threshold → table, best.json, figure.

Shared by eval_cams (CAM background threshold) and tune_crf (CRF background score).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wsss_stages.lib.data.artifacts import atomic_path, write_csv, write_json
from wsss_stages.lib.evaluation.evaluation import per_class_rows, summary
from wsss_stages.lib.evaluation.metrics import scores_from_confusion

log = logging.getLogger(__name__)


def plot_sweep(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    t = [r["threshold"] for r in rows]
    for key in ("miou", "precision", "recall"):
        ax.plot(t, [r[key] for r in rows], marker="o", ms=3, label=key)
    ax.set_xlabel("background threshold")
    ax.set_ylabel("%")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def write_sweep(
    conf: np.ndarray,
    thresholds: list[float],
    class_names,
    split: str,
    n_images: int,
    *,
    out_csv: Path,
    out_best: Path,
    out_per_class: Path,
    out_plot: Path,
    title: str,
) -> dict:
    """Write a threshold sweep (table, best.json, per-class table at the best, figure); return best.json."""
    results = [scores_from_confusion(c, class_names) for c in conf]
    rows = [{"threshold": t, **summary(r)} for t, r in zip(thresholds, results)]
    best = int(np.nanargmax([r["miou"] for r in results]))
    at_edge = len(thresholds) > 1 and thresholds[best] in (min(thresholds), max(thresholds))
    if at_edge:
        log.warning(
            "%s: the best threshold %.2f is at the edge of the sweep %s; a wider sweep may find a better one",
            title,
            thresholds[best],
            list(thresholds),
        )
    write_csv(out_csv, rows)
    write_csv(out_per_class, per_class_rows(results[best]))
    best_json = {
        "split": split,
        "images": n_images,
        "best_threshold": thresholds[best],
        "at_edge_of_sweep": at_edge,
        **rows[best],
        "per_class_iou": results[best]["per_class_iou"],
    }
    write_json(out_best, best_json)
    plot_sweep(rows, out_plot, f"{title} sweep on {split} ({n_images} images)")
    return best_json
