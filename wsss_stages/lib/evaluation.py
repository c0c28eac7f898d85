"""Scoring helpers shared by the eval_* stages: mask folders against ground truth, report files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wsss_stages import WsssError
from wsss_stages.lib.artifacts import load_mask, read_manifest, write_csv, write_json
from wsss_stages.lib.metrics import confusion_matrix, scores_from_confusion
from wsss_stages.lib.runtime import progress
from wsss_stages.lib.voc import VOCDataset

log = logging.getLogger(__name__)


def ids_with_masks(dataset: VOCDataset, split: str, available: set[str] | None = None) -> list[str]:
    """Ids of ``split`` that have a ground-truth mask (and, if given, an artifact)."""
    ids = [i for i in dataset.split_ids(split) if dataset.has_mask(i)]
    if available is not None:
        ids = [i for i in ids if i in available]
    if not ids:
        raise WsssError(f"split '{split}' of {dataset.root} has no image with both a mask and a prediction to score")
    return ids


def per_class_rows(scores: dict) -> list[dict]:
    return [
        {"class": name, "iou": iou, "precision": scores["per_class_precision"][name],
         "recall": scores["per_class_recall"][name]}
        for name, iou in scores["per_class_iou"].items()
    ]  # fmt: skip


def summary(scores: dict) -> dict:
    """The scalar entries of a score dict, rounded for reports."""
    return {k: round(v, 3) for k, v in scores.items() if isinstance(v, float)}


def evaluate_mask_folder(*, masks: Path, data_root: Path, split: str, out_json: Path, out_csv: Path,
                         mask_folder: str | None = None) -> dict:
    """Score ``<id>.png`` masks of ``split`` against the ground truth; write JSON + per-class CSV."""
    dataset = VOCDataset(data_root, mask_folder)
    manifest = read_manifest(masks, "masks")
    ids = ids_with_masks(dataset, split, set(manifest["ids"]))
    conf = np.zeros((dataset.num_classes,) * 2, np.int64)
    for image_id in progress(ids, desc=f"score {split}"):
        gt = dataset.load_mask(image_id)
        pred = load_mask(Path(masks) / f"{image_id}.png")
        if pred.shape != gt.shape:
            raise WsssError(f"{Path(masks) / (image_id + '.png')} is {pred.shape}, its ground truth {gt.shape}")
        conf += confusion_matrix(gt, pred, dataset.num_classes)
    scores = scores_from_confusion(conf, dataset.class_names)
    write_json(out_json, {"split": split, "images": len(ids), **summary(scores),
                          "per_class_iou": scores["per_class_iou"], "confusion_matrix": conf.tolist()})  # fmt: skip
    write_csv(out_csv, per_class_rows(scores))
    log.info("%s: mIoU %.2f on %d images of '%s'", masks, scores["miou"], len(ids), split)
    return scores
