"""Segmentation metrics from a confusion matrix (rows = ground truth, columns = prediction).

Pixels whose ground truth is 255 (void) are ignored. IoU_c = TP / (TP + FP + FN); the mean is
taken over classes that occur in the ground truth or the prediction (a class absent from
both has no IoU), which for full VOC val/train is all 21 classes.
"""

from __future__ import annotations

import numpy as np

from wsss_stages.lib.data.artifacts import IGNORE


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``[C, C]`` int64 counts; gt==255 ignored; predictions of 255 count as background.

    A pseudo-mask that says "ignore" at a pixel gives no label there; scoring it as background
    (as the reference evaluators do for their ignore labels) keeps every valid pixel counted.
    """
    if gt.shape != pred.shape:
        raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
    valid = gt != IGNORE
    g = gt[valid].astype(np.int64)
    p = pred[valid].astype(np.int64)
    p[p == IGNORE] = 0
    if g.size and (g.max() >= num_classes or p.max() >= num_classes):
        raise ValueError(f"labels exceed num_classes={num_classes}")
    return np.bincount(g * num_classes + p, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores_from_confusion(conf: np.ndarray, class_names: tuple[str, ...] | list[str]) -> dict:
    """mIoU, per-class IoU, precision, recall and the FP/FN shares, all in percent."""
    conf = conf.astype(np.float64)
    tp = np.diag(conf)
    fp = conf.sum(0) - tp
    fn = conf.sum(1) - tp
    union = tp + fp + fn
    present = union > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(present, tp / union, np.nan)
        precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        fp_rate = np.where(present, fp / union, np.nan)  # share of each class's union lost to FP
        fn_rate = np.where(present, fn / union, np.nan)
    pct = lambda values: _nanmean(values) * 100.0  # noqa: E731
    total = conf.sum()
    return {
        "miou": pct(iou),
        "precision": pct(precision),
        "recall": pct(recall),
        "fp_rate": pct(fp_rate),
        "fn_rate": pct(fn_rate),
        "pixel_accuracy": float(tp.sum() / total * 100.0) if total else float("nan"),
        "per_class_iou": {name: _round(v * 100.0) for name, v in zip(class_names, iou)},
        "per_class_precision": {name: _round(v * 100.0) for name, v in zip(class_names, precision)},
        "per_class_recall": {name: _round(v * 100.0) for name, v in zip(class_names, recall)},
    }


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _round(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 3)
