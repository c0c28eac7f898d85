"""Stage eval_cams: the background threshold of CAM-format maps, chosen on the seed split.

By the sweep against the split's masks (the papers' protocol; tuned on train, never on val), or by a
rule that reads only the maps and the labels (``threshold_rule``; :mod:`wsss_stages.lib.evaluation.label_free`),
which is what ``auto`` means on a split without masks. Where masks exist every rule's choice is also scored."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wsss_stages.lib.data.artifacts import load_cams
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.label_free import LabelAgreement
from wsss_stages.lib.evaluation.metrics import confusion_matrix
from wsss_stages.lib.evaluation.sweeps import seed_split, write_label_sweep, write_sweep
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


def sweep_agreements(dataset: VOCDataset, cams_dir: Path, ids: list[str], thresholds: list[float]) -> list[dict]:
    """Per threshold, what the thresholded maps say against the images' labels (no masks needed)."""
    found = [LabelAgreement(dataset.num_classes) for _ in thresholds]
    for image_id in progress(ids, desc="eval_cams (labels)"):
        label, value = strongest(*load_cams(cams_dir / f"{image_id}.npz"))
        for agreement, threshold in zip(found, thresholds):
            agreement.add(np.where(value > threshold, label, 0), dataset.labels(image_id))
    return [a.summary(dataset.class_names) for a in found]


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
    rule: str,
    mask_folder: str | None,
    threads: int = 1,
) -> None:
    """Choose the CAM background threshold; write the sweep table, the chosen threshold and per-class scores.

    Args:
        cams: folder of CAM-format maps (make_cams, train_erasing or a refiner such as random_walk)
        data_root: VOC2012-layout root
        out_csv: sweep table (threshold, miou, precision, recall, …; without masks: foreground share,
            missed and extra labels)
        out_best: JSON with the chosen threshold (``best_threshold``), its rule and its scores
        out_per_class: per-class IoU / precision / recall CSV at the chosen threshold (without masks: pixel shares)
        out_plot: PNG figure of the sweep
        split: the seed split (train in the standard protocol)
        thresholds: background thresholds to try
        rule: sweep (best against the masks), otsu or stability (from the maps alone), or auto (sweep
            where the split has masks, otsu where it has none)
        mask_folder: SegmentationClass or SegmentationClassAug (None: whichever exists)
        threads: unused (one process)
    """
    dataset = VOCDataset(data_root, mask_folder)
    cams = Path(cams)
    chosen_by = seed_split(dataset, split, cams, rule, list(thresholds))
    ids, rule, chosen = chosen_by.ids, chosen_by.rule, chosen_by.threshold
    grid = sorted(set(thresholds) | ({chosen} if chosen is not None else set()))
    if chosen_by.with_masks:
        best = write_sweep(
            sweep_confusions(dataset, cams, ids, grid),
            grid,
            dataset.class_names,
            split,
            len(ids),
            out_csv=out_csv,
            out_best=out_best,
            out_per_class=out_per_class,
            out_plot=out_plot,
            title="CAM background threshold",
            chosen=chosen,
            rule=rule,
        )
        log.info(
            "CAM background threshold %.3f (rule %s): mIoU %.2f on %d images of '%s' (the sweep's best: %.2f at %.2f)",
            best["best_threshold"],
            rule,
            best["miou"],
            len(ids),
            split,
            best["sweep_best_miou"],
            best["sweep_best_threshold"],
        )
        return
    best = write_label_sweep(
        sweep_agreements(dataset, cams, ids, grid),
        grid,
        split,
        chosen=chosen,
        rule=rule,
        out_csv=out_csv,
        out_best=out_best,
        out_per_class=out_per_class,
        out_plot=out_plot,
        title="CAM background threshold",
    )
    log.info(
        "CAM background threshold %.3f (rule %s, no masks): foreground %.1f %% of the pixels, %.1f %% of labels missed",
        chosen,
        rule,
        best["foreground_share"],
        best["missed_labels"],
    )
