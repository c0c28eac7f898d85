"""Scoring helpers shared by the eval_* stages: mask folders against ground truth, report files.

On a split where no image has a mask (a labels-only run) the same stages score label maps against
the images' labels instead (:class:`~wsss_stages.lib.evaluation.label_free.LabelAgreement`) and
write ``"miou": null``: nothing invents an mIoU.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import load_mask, read_manifest, save_confusions, write_csv, write_json
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.label_free import LabelAgreement
from wsss_stages.lib.evaluation.metrics import confusion_matrix, scores_from_confusion
from wsss_stages.lib.nets.runtime import progress

log = logging.getLogger(__name__)


def ids_without_masks(dataset: VOCDataset, split: str) -> list[str]:
    """Ids of ``split`` with no ground-truth mask (check_data lets them through only when allowed)."""
    return [i for i in dataset.split_ids(split) if not dataset.has_mask(i)]


def ids_with_masks(dataset: VOCDataset, split: str, available: set[str] | None = None) -> list[str]:
    """Ids of ``split`` that have a ground-truth mask (and, if given, an artifact); those without one are logged."""
    missing = ids_without_masks(dataset, split)
    if missing:
        log.warning("%d image(s) of '%s' have no mask and are not scored, first: %s", len(missing), split, missing[:5])
    ids = [i for i in dataset.split_ids(split) if dataset.has_mask(i)]
    if available is not None:
        ids = [i for i in ids if i in available]
    if not ids:
        raise WsssError(f"split '{split}' of {dataset.root} has no image with both a mask and a prediction to score")
    return ids


def scoring_ids(dataset: VOCDataset, split: str, available: set[str] | None = None) -> tuple[list[str], bool]:
    """The ids to score and whether against masks: the split's images with a mask (and an artifact), or,
    where no image of the split has a mask (a labels-only run), every image with an artifact."""
    if any(dataset.has_mask(i) for i in dataset.split_ids(split)):
        return ids_with_masks(dataset, split, available), True
    ids = [i for i in dataset.split_ids(split) if available is None or i in available]
    if not ids:
        raise WsssError(f"split '{split}' of {dataset.root} has no image with a prediction to score")
    log.info("no image of '%s' has a mask: %d image(s) scored against their labels only", split, len(ids))
    return ids, False


def labels_only_rows(agreement: dict) -> list[dict]:
    return [{"class": name, **values} for name, values in agreement["per_class"].items()]


def per_class_rows(scores: dict) -> list[dict]:
    return [
        {
            "class": name,
            "iou": iou,
            "precision": scores["per_class_precision"][name],
            "recall": scores["per_class_recall"][name],
        }
        for name, iou in scores["per_class_iou"].items()
    ]


def summary(scores: dict) -> dict:
    """The scalar entries of a score dict, rounded for reports."""
    return {k: round(v, 3) for k, v in scores.items() if isinstance(v, float)}


def score_predictions(
    *,
    dataset: VOCDataset,
    ids: list[str],
    predict,
    split: str,
    out_json: Path,
    out_csv: Path,
    out_per_image: Path,
    what: str,
    masks: bool = True,
) -> dict:
    """Score ``predict(image_id) -> label map`` on ``ids`` against the ground truth; write the metrics JSON,
    the per-class CSV and the per-image confusion matrices (for paired bootstrap intervals). Without
    ``masks``, against the images' labels (no mIoU; no per-image confusions)."""
    if not masks:
        return score_against_labels(
            dataset=dataset,
            ids=ids,
            predict=predict,
            split=split,
            out_json=out_json,
            out_csv=out_csv,
            out_per_image=out_per_image,
            what=what,
        )
    per_image = np.zeros((len(ids), dataset.num_classes, dataset.num_classes), np.int64)
    for n, image_id in enumerate(progress(ids, desc=f"score {split}")):
        gt, pred = dataset.load_mask(image_id), predict(image_id)
        if pred.shape != gt.shape:
            raise WsssError(f"{what}: the prediction for {image_id} is {pred.shape}, its ground truth {gt.shape}")
        per_image[n] = confusion_matrix(gt, pred, dataset.num_classes)
    conf = per_image.sum(0)
    scores = scores_from_confusion(conf, dataset.class_names)
    missing = ids_without_masks(dataset, split)
    write_json(
        out_json,
        {
            "split": split,
            "images": len(ids),
            "images_without_masks": {"count": len(missing), "first": missing[:10]},
            **summary(scores),
            "per_class_iou": scores["per_class_iou"],
            "confusion_matrix": conf.tolist(),
        },
    )
    write_csv(out_csv, per_class_rows(scores))
    save_confusions(out_per_image, ids, per_image)
    log.info("%s: mIoU %.2f on %d images of '%s'", what, scores["miou"], len(ids), split)
    return scores


def score_against_labels(
    *,
    dataset: VOCDataset,
    ids: list[str],
    predict,
    split: str,
    out_json: Path,
    out_csv: Path,
    out_per_image: Path,
    what: str,
) -> dict:
    """The labels-only report of ``predict(image_id) -> label map``: foreground share, missed and extra labels."""
    agreement = LabelAgreement(dataset.num_classes)
    for image_id in progress(ids, desc=f"labels {split}"):
        agreement.add(predict(image_id), dataset.labels(image_id))
    result = agreement.summary(dataset.class_names)
    write_json(out_json, {"split": split, "labels_only": True, "miou": None, **result})
    write_csv(out_csv, labels_only_rows(result))
    save_confusions(out_per_image, [], np.zeros((0, dataset.num_classes, dataset.num_classes), np.int64))
    log.info(
        "%s on '%s' (no masks): foreground %.1f %% of the pixels, %.1f %% of the labels missed, %.1f %% extra",
        what,
        split,
        result["foreground_share"],
        result["missed_labels"],
        result["extra_labels"],
    )
    return result


def evaluate_mask_folder(
    *,
    masks: Path,
    data_root: Path,
    split: str,
    out_json: Path,
    out_csv: Path,
    out_per_image: Path,
    mask_folder: str | None = None,
) -> dict:
    """Score ``<id>.png`` masks of ``split`` against the ground truth."""
    dataset = VOCDataset(data_root, mask_folder)
    ids, with_masks = scoring_ids(dataset, split, set(read_manifest(masks, "masks")["ids"]))
    return score_predictions(
        dataset=dataset,
        ids=ids,
        predict=lambda i: load_mask(Path(masks) / f"{i}.png"),
        split=split,
        out_json=out_json,
        out_csv=out_csv,
        out_per_image=out_per_image,
        what=str(masks),
        masks=with_masks,
    )
