"""Stage tune_crf: the background score of the dense CRF, chosen on the seed split (train).

The CRF needs its own threshold: its pairwise terms already pull uncertain pixels towards
colour-coherent regions, so the CAM's best threshold makes it shrink objects to their most
distinctive part. Chosen on train, never on val, like the CAM threshold, and once per kind of maps
the CRF refines: the seeds, and each refiner's CAM-format maps it follows (walked maps are fuller
than the seeds, so their best score differs again). By the sweep against the masks, or, by a rule that
needs none (``threshold_rule``), as the candidate whose CRF masks agree best (mIoU) with the maps
thresholded where that rule puts their threshold.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from wsss_stages.lib.data.artifacts import cams_to_scores, load_cams
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.label_free import LabelAgreement
from wsss_stages.lib.evaluation.metrics import confusion_matrix, scores_from_confusion
from wsss_stages.lib.evaluation.sweeps import seed_split, write_label_sweep, write_sweep
from wsss_stages.lib.evaluation.thresholds import cam_labels
from wsss_stages.lib.nets.parallel import parallel_map
from wsss_stages.refiners.crf.densecrf import CrfParams, crf_on_scores

log = logging.getLogger(__name__)


def _sweep_one(
    image_id: str,
    *,
    dataset: VOCDataset,
    cams_dir: Path,
    thresholds: list[float],
    params: CrfParams,
    with_masks: bool,
    reference: float | None,
) -> dict:
    """One image's CRF labels at each score, against its mask, the seeds at ``reference`` and its labels."""
    cams, classes = load_cams(cams_dir / f"{image_id}.npz")
    image = dataset.load_image(image_id)
    gt = dataset.load_mask(image_id) if with_masks else None
    seeds = cam_labels(cams, classes, reference) if reference is not None else None
    labels = np.concatenate([[0], classes])
    n, c = len(thresholds), dataset.num_classes
    out = {"gt": np.zeros((n, c, c), np.int64), "ref": np.zeros((n, c, c), np.int64), "labels": []}
    for t, threshold in enumerate(thresholds):
        crf = labels[crf_on_scores(image, cams_to_scores(cams, threshold), params).argmax(0)]
        if gt is not None:
            out["gt"][t] = confusion_matrix(gt, crf, c)
        if seeds is not None:
            out["ref"][t] = confusion_matrix(seeds, crf, c)
        if gt is None:  # only a split without masks reports the labels' view
            agreement = LabelAgreement(c)
            agreement.add(crf, dataset.labels(image_id))
            out["labels"].append(agreement)
    return out


def _summed(results: list[dict], num_classes: int, n: int) -> dict:
    total = {"gt": sum(r["gt"] for r in results), "ref": sum(r["ref"] for r in results)}
    agreements = [LabelAgreement(num_classes) for _ in range(n)]
    for r in results:
        for mine, theirs in zip(agreements, r["labels"]):
            mine += theirs
    total["labels"] = agreements
    return total


def tune_crf(
    *,
    cams: Path,
    data_root: Path,
    out_csv: Path,
    out_best: Path,
    out_per_class: Path,
    out_plot: Path,
    split: str,
    thresholds: list[float],
    crf: dict,
    rule: str,
    cam_thresholds: list[float],
    mask_folder: str | None,
    threads: int = 1,
) -> None:
    """Run the CRF on the CAMs at each background score; keep the best against the masks, or the rule's.

    Args:
        cams: folder of CAM-format maps (make_cams, or a refiner's such as the random walk's)
        data_root: VOC2012-layout root
        split: the seed split (train in the standard protocol)
        out_csv: sweep table
        out_best: JSON with the chosen score (consumed by refine_crf)
        out_per_class: per-class scores at the chosen score
        out_plot: PNG figure of the sweep
        thresholds: background scores to try
        crf: CRF parameters (iterations, gaussian_sxy, gaussian_compat, bilateral_sxy, bilateral_srgb, bilateral_compat)
        rule: sweep, otsu, stability or auto (sweep where the split has masks, otsu where it has none)
        cam_thresholds: the candidates of the maps' own threshold (eval_cams.thresholds), for the stability rule
        mask_folder: SegmentationClass or SegmentationClassAug (default: whichever exists)
        threads: worker processes
    """
    dataset = VOCDataset(data_root, mask_folder)
    cams = Path(cams)
    chosen_by = seed_split(dataset, split, cams, rule, list(cam_thresholds))
    ids, with_masks, rule, reference = chosen_by.ids, chosen_by.with_masks, chosen_by.rule, chosen_by.threshold
    work = functools.partial(
        _sweep_one,
        dataset=dataset,
        cams_dir=cams,
        thresholds=list(thresholds),
        params=CrfParams(**crf),
        with_masks=with_masks,
        reference=reference,
    )
    total = _summed(parallel_map(work, ids, threads, desc="tune_crf"), dataset.num_classes, len(thresholds))
    chosen = None
    if reference is not None:
        agreement = [scores_from_confusion(c, dataset.class_names)["miou"] for c in total["ref"]]
        chosen = list(thresholds)[int(np.nanargmax(agreement))]
        log.info("rule %s: the maps' threshold %.3f; CRF agreement with it per score %s", rule, reference, agreement)
    outputs = {"out_csv": out_csv, "out_best": out_best, "out_per_class": out_per_class, "out_plot": out_plot}
    title = "CRF background score"
    if with_masks:
        best = write_sweep(
            total["gt"],
            list(thresholds),
            dataset.class_names,
            split,
            len(ids),
            title=title,
            chosen=chosen,
            rule=rule,
            **outputs,
        )
        log.info(
            "CRF background score %.2f (rule %s): mIoU %.2f on %d images of '%s'",
            best["best_threshold"],
            rule,
            best["miou"],
            len(ids),
            split,
        )
        return
    summaries = [a.summary(dataset.class_names) for a in total["labels"]]
    write_label_sweep(summaries, list(thresholds), split, chosen=chosen, rule=rule, title=title, **outputs)
    log.info("CRF background score %.2f (rule %s, no masks)", chosen, rule)
