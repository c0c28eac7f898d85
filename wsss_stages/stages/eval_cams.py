"""Stage eval_cams: background-threshold sweep of CAM-format maps on a split with masks.

Thresholds are tuned on train, never on val."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wsss_stages.lib.data.artifacts import load_cams, read_manifest
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.evaluation import ids_with_masks
from wsss_stages.lib.evaluation.metrics import confusion_matrix
from wsss_stages.lib.evaluation.sweeps import write_sweep
from wsss_stages.lib.evaluation.thresholds import strongest
from wsss_stages.lib.nets.runtime import progress

log = logging.getLogger(__name__)


def sweep_confusions(dataset: VOCDataset, cams_dir: Path, ids: list[str], thresholds: list[float]) -> np.ndarray:
    """Confusion matrices ``[T, C, C]``, one per threshold, reading each CAM file once."""
    conf = np.zeros((len(thresholds), dataset.num_classes, dataset.num_classes), np.int64)
    for image_id in progress(ids, desc="eval_cams"):
        cams, classes = load_cams(cams_dir / f"{image_id}.npz")
        gt = dataset.load_mask(image_id)
        label, value = strongest(cams, classes)
        for t, threshold in enumerate(thresholds):
            conf[t] += confusion_matrix(gt, np.where(value > threshold, label, 0), dataset.num_classes)
    return conf


def eval_cams(
    *,
    cams: Path,
    data_root: Path,
    out_csv: Path,
    out_best: Path,
    out_per_class: Path,
    out_plot: Path,
    split: str,
    thresholds: list[float],
    mask_folder: str | None,
    threads: int = 1,
) -> None:
    """Sweep the CAM background threshold; write the sweep table, the best threshold and per-class scores.

    Args:
        cams: folder of CAM-format maps (make_cams, train_erasing or a refiner such as random_walk)
        data_root: VOC2012-layout root
        out_csv: sweep table (threshold, miou, precision, recall, fp_rate, fn_rate, pixel_accuracy)
        out_best: JSON with the best threshold and its scores
        out_per_class: per-class IoU / precision / recall CSV at the best threshold
        out_plot: PNG figure of the sweep
        split: split with ground-truth masks (train in the standard protocol)
        thresholds: background thresholds to try
        mask_folder: SegmentationClass or SegmentationClassAug (None: whichever exists)
        threads: unused (one process)
    """
    dataset = VOCDataset(data_root, mask_folder)
    cams = Path(cams)
    ids = ids_with_masks(dataset, split, set(read_manifest(cams, "cams")["ids"]))
    conf = sweep_confusions(dataset, cams, ids, list(thresholds))
    best = write_sweep(
        conf,
        list(thresholds),
        dataset.class_names,
        split,
        len(ids),
        out_csv=out_csv,
        out_best=out_best,
        out_per_class=out_per_class,
        out_plot=out_plot,
        title="CAM background threshold",
    )
    log.info(
        "best CAM background threshold %.2f: mIoU %.2f on %d images of '%s'",
        best["best_threshold"],
        best["miou"],
        len(ids),
        split,
    )
