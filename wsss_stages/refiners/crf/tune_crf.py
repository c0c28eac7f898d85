"""Stage tune_crf: sweep the background score of the dense CRF on the seed split (train) and keep the best.

The CRF needs its own threshold: its pairwise terms already pull uncertain pixels towards
colour-coherent regions, so the CAM's best threshold makes it shrink objects to their most
distinctive part. Tuned on train, never on val, like the CAM threshold, and once per kind of maps
the CRF refines: the seeds, and each refiner's CAM-format maps it follows (walked maps are fuller
than the seeds, so their best score differs again).
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from wsss_stages.lib.data.artifacts import cams_to_scores, load_cams, read_manifest
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.evaluation import ids_with_masks
from wsss_stages.lib.evaluation.metrics import confusion_matrix
from wsss_stages.lib.evaluation.sweeps import write_sweep
from wsss_stages.lib.nets.parallel import parallel_map
from wsss_stages.refiners.crf.densecrf import CrfParams, crf_on_scores

log = logging.getLogger(__name__)


def _confusions_one(
    image_id: str, *, dataset: VOCDataset, cams_dir: Path, thresholds: list[float], params: CrfParams
) -> np.ndarray:
    cams, classes = load_cams(cams_dir / f"{image_id}.npz")
    image, gt = dataset.load_image(image_id), dataset.load_mask(image_id)
    labels = np.concatenate([[0], classes])
    out = np.zeros((len(thresholds), dataset.num_classes, dataset.num_classes), np.int64)
    for t, threshold in enumerate(thresholds):
        probs = crf_on_scores(image, cams_to_scores(cams, threshold), params)
        out[t] = confusion_matrix(gt, labels[probs.argmax(0)], dataset.num_classes)
    return out


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
    mask_folder: str | None,
    threads: int = 1,
) -> None:
    """Score the CRF-refined CAMs at each background threshold on a split with masks.

    Args:
        cams: folder of CAM-format maps (make_cams, or a refiner's such as the random walk's)
        data_root: VOC2012-layout root
        split: split with ground truth (train in the standard protocol)
        out_csv: sweep table
        out_best: JSON with the best threshold (consumed by refine_crf)
        out_per_class: per-class scores at the best threshold
        out_plot: PNG figure of the sweep
        thresholds: background scores to try
        crf: CRF parameters (iterations, gaussian_sxy, gaussian_compat, bilateral_sxy, bilateral_srgb, bilateral_compat)
        mask_folder: SegmentationClass or SegmentationClassAug (default: whichever exists)
        threads: worker processes
    """
    dataset = VOCDataset(data_root, mask_folder)
    cams = Path(cams)
    ids = ids_with_masks(dataset, split, set(read_manifest(cams, "cams")["ids"]))
    params = CrfParams(**crf)
    work = functools.partial(
        _confusions_one, dataset=dataset, cams_dir=cams, thresholds=list(thresholds), params=params
    )
    conf = np.sum(parallel_map(work, ids, threads, desc="tune_crf"), axis=0)
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
        title="CRF background score",
    )
    log.info(
        "best CRF background score %.2f: mIoU %.2f on %d images of '%s'",
        best["best_threshold"],
        best["miou"],
        len(ids),
        split,
    )
