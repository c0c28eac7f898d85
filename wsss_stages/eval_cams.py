"""Background-threshold sweep of CAMs on a split with masks (tune on train, never on val)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wsss_stages.artifacts import atomic_path, load_cams, read_manifest, write_csv, write_json
from wsss_stages.evaluation import ids_with_masks, per_class_rows, summary
from wsss_stages.metrics import confusion_matrix, scores_from_confusion
from wsss_stages.training import progress
from wsss_stages.voc import VOCDataset

log = logging.getLogger(__name__)


def cam_labels(cams: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: the strongest class and its CAM value (background wins wherever value <= t)."""
    strongest = cams.argmax(axis=0)
    return classes[strongest], cams.max(axis=0)


def sweep_confusions(dataset: VOCDataset, cams_dir: Path, ids: list[str], thresholds: list[float]) -> np.ndarray:
    """Confusion matrices ``[T, C, C]``, one per threshold, reading each CAM file once."""
    conf = np.zeros((len(thresholds), dataset.num_classes, dataset.num_classes), np.int64)
    for image_id in progress(ids, desc="eval_cams"):
        cams, classes = load_cams(cams_dir / f"{image_id}.npz")
        gt = dataset.load_mask(image_id)
        label, value = cam_labels(cams, classes)
        for t, threshold in enumerate(thresholds):
            conf[t] += confusion_matrix(gt, np.where(value > threshold, label, 0), dataset.num_classes)
    return conf


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


def write_sweep(conf: np.ndarray, thresholds: list[float], class_names, split: str, n_images: int, *, out_csv: Path,
                out_best: Path, out_per_class: Path, out_plot: Path, title: str) -> dict:
    """Write a threshold sweep (table, best.json, per-class table at the best, figure); return best.json."""
    results = [scores_from_confusion(c, class_names) for c in conf]
    rows = [{"threshold": t, **summary(r)} for t, r in zip(thresholds, results)]
    best = int(np.nanargmax([r["miou"] for r in results]))
    write_csv(out_csv, rows)
    write_csv(out_per_class, per_class_rows(results[best]))
    best_json = {"split": split, "images": n_images, "best_threshold": thresholds[best], **rows[best],
                 "per_class_iou": results[best]["per_class_iou"]}  # fmt: skip
    write_json(out_best, best_json)
    plot_sweep(rows, out_plot, f"{title} sweep on {split} ({n_images} images)")
    return best_json


def eval_cams(*, cams: Path, data_root: Path, split: str, out_csv: Path, out_best: Path, out_per_class: Path,
              out_plot: Path, thresholds: list[float] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3), mask_folder: str | None = None) -> None:
    """Sweep the CAM background threshold; write the sweep table, the best threshold and per-class scores.

    Args:
        cams: folder of CAM files from make_cams
        data_root: VOC2012-layout root
        split: split with ground-truth masks (train in the standard protocol)
        out_csv: sweep table (threshold, miou, precision, recall, fp_rate, fn_rate, pixel_accuracy)
        out_best: JSON with the best threshold and its scores
        out_per_class: per-class IoU / precision / recall CSV at the best threshold
        out_plot: PNG figure of the sweep
        thresholds: background thresholds to try
        mask_folder: SegmentationClass or SegmentationClassAug (default: whichever exists)
    """
    dataset = VOCDataset(data_root, mask_folder)
    cams = Path(cams)
    ids = ids_with_masks(dataset, split, set(read_manifest(cams, "cams")["ids"]))
    conf = sweep_confusions(dataset, cams, ids, list(thresholds))
    best = write_sweep(conf, list(thresholds), dataset.class_names, split, len(ids), out_csv=out_csv, out_best=out_best,
                       out_per_class=out_per_class, out_plot=out_plot, title="CAM background threshold")
    log.info("best CAM background threshold %.2f: mIoU %.2f on %d images of '%s'", best["best_threshold"], best["miou"], len(ids), split)
