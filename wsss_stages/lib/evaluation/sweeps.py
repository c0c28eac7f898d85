"""Threshold sweeps on the seed split: one confusion matrix per threshold → table, best.json, figure.

Shared by eval_cams (CAM background threshold) and tune_crf (CRF background score). best.json's
``best_threshold`` is what the stages downstream use: the sweep's best against the masks, or the
threshold a rule chose without them (``rule``; the sweep's own best is then kept beside it as
``sweep_best_threshold`` / ``sweep_best_miou`` where masks exist). On a split without masks the table
holds each threshold's foreground share and missed / extra labels instead of scores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import atomic_path, load_cams, read_manifest, write_csv, write_json
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.evaluation import labels_only_rows, per_class_rows, scoring_ids, summary
from wsss_stages.lib.evaluation.label_free import GROUND_TRUTH, choose_threshold, rule_for
from wsss_stages.lib.evaluation.metrics import scores_from_confusion
from wsss_stages.lib.nets.runtime import progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeedSplit:
    """How a stage chooses a threshold of a folder of maps on the seed split."""

    ids: list[str]  # the images it scores: those with masks, or every image where the split has none
    with_masks: bool
    rule: str  # "sweep" or a rule that reads no mask (``auto`` resolved)
    threshold: float | None  # where that rule puts the maps' threshold (None for the sweep)


def seed_split(dataset: VOCDataset, split: str, maps: Path, rule: str, candidates: list[float]) -> SeedSplit:
    """The images to score and, for a rule without masks, its threshold from the maps of every image."""
    available = set(read_manifest(maps, "cams")["ids"])
    ids, with_masks = scoring_ids(dataset, split, available)
    try:
        rule = rule_for(rule, with_masks)
    except ValueError as error:
        raise WsssError(f"split '{split}': {error} (config key: threshold_rule)") from None
    if rule == GROUND_TRUTH:
        return SeedSplit(ids, with_masks, rule, None)
    every = [i for i in dataset.split_ids(split) if i in available]
    found = (load_cams(Path(maps) / f"{i}.npz") for i in progress(every, desc=f"rule {rule}"))
    try:
        threshold = round(choose_threshold(rule, found, candidates), 4)
    except ValueError as error:
        raise WsssError(f"{maps}: {error} (config key: threshold_rule)") from None
    return SeedSplit(ids, with_masks, rule, threshold)


def plot_sweep(
    rows: list[dict],
    path: Path,
    title: str,
    keys: tuple[str, ...] = ("miou", "precision", "recall"),
    chosen: float | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    t = [r["threshold"] for r in rows]
    for key in keys:
        ax.plot(t, [r[key] for r in rows], marker="o", ms=3, label=key)
    if chosen is not None:
        ax.axvline(chosen, color="grey", ls="--", lw=1, label=f"chosen {chosen:.2f}")
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
    chosen: float | None = None,
    rule: str = "sweep",
) -> dict:
    """Write a threshold sweep (table, best.json, per-class table at the best, figure); return best.json.
    ``chosen``: a threshold a rule picked without masks (one of ``thresholds``), reported instead of the best."""
    results = [scores_from_confusion(c, class_names) for c in conf]
    rows = [{"threshold": t, **summary(r)} for t, r in zip(thresholds, results)]
    best = int(np.nanargmax([r["miou"] for r in results]))
    at_edge = len(thresholds) > 1 and thresholds[best] in (min(thresholds), max(thresholds))
    if at_edge and chosen is None:
        log.warning(
            "%s: the best threshold %.2f is at the edge of the sweep %s; a wider sweep may find a better one",
            title,
            thresholds[best],
            list(thresholds),
        )
    used = best if chosen is None else thresholds.index(chosen)
    write_csv(out_csv, rows)
    write_csv(out_per_class, per_class_rows(results[used]))
    best_json = {
        "split": split,
        "images": n_images,
        "rule": rule,
        "best_threshold": thresholds[used],
        "at_edge_of_sweep": at_edge,
        **rows[used],
        "per_class_iou": results[used]["per_class_iou"],
        "sweep_best_threshold": thresholds[best],
        "sweep_best_miou": rows[best]["miou"],
    }
    write_json(out_best, best_json)
    plot_sweep(rows, out_plot, f"{title} sweep on {split} ({n_images} images)", chosen=chosen)
    return best_json


def write_label_sweep(
    agreements: list[dict],
    thresholds: list[float],
    split: str,
    *,
    chosen: float,
    rule: str,
    out_csv: Path,
    out_best: Path,
    out_per_class: Path,
    out_plot: Path,
    title: str,
) -> dict:
    """The sweep of a split without masks: each threshold's foreground share and missed / extra labels
    (:class:`~wsss_stages.lib.evaluation.label_free.LabelAgreement` summaries); the rule's choice as the best."""
    scalars = ("foreground_share", "missed_labels", "extra_labels")
    rows = [{"threshold": t, **{k: a[k] for k in scalars}} for t, a in zip(thresholds, agreements)]
    used = thresholds.index(chosen)
    write_csv(out_csv, rows)
    write_csv(out_per_class, labels_only_rows(agreements[used]))
    best_json = {
        "split": split,
        "images": agreements[used]["images"],
        "rule": rule,
        "labels_only": True,
        "best_threshold": chosen,
        "miou": None,
        **rows[used],
    }
    write_json(out_best, best_json)
    plot_sweep(rows, out_plot, f"{title} on {split} (no masks, rule {rule})", keys=scalars, chosen=chosen)
    return best_json
