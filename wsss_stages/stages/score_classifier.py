"""Stage score_classifier: does the classifier still classify? Its multi-label mAP on the scored splits.

A seed method that changes the classifier's training (Hide-and-Seek, Puzzle-CAM, EPS …) can leave it
unable to classify in the given schedule, and its CAMs are then weak whatever the refinement: the
mAP tells that apart from a method that classifies well but localises badly. One forward per image
(no flips, no scales), the longer side resized to ``size``, near the scale the classifier was trained at;
the background is not a class here.
"""

from __future__ import annotations

import logging
from pathlib import Path

from wsss_stages.lib.data.artifacts import write_json
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.nets.classification import classification_map
from wsss_stages.lib.nets.runtime import inference_dtype, pick_device, set_threads

log = logging.getLogger(__name__)


def score_classifier(
    *,
    model: Path,
    data_root: Path,
    out_json: Path,
    splits: list[str],
    size: int,
    precision: str,
    device: str,
    threads: int = 1,
) -> None:
    """Write the classification mAP of a classifier on each split's labelled images.

    Args:
        model: classifier weights from train_classifier
        data_root: VOC2012-layout root
        out_json: {"size", "precision", "splits": {split: {"map", "images"}}}, mAP in percent
        splits: splits to score (the seed split, where the classifier was fitted, and val)
        size: longer image side in pixels
        precision: auto (bf16 autocast where native), fp32 or bf16
        device: auto, cpu or cuda
        threads: CPU threads to use
    """
    set_threads(threads)
    dataset, torch_device = VOCDataset(data_root), pick_device(device)
    scores = {}
    for split in splits:
        ids = [i for i in dataset.split_ids(split) if dataset.labels(i).size]
        scores[split] = {
            "map": classification_map(model, dataset, ids, torch_device, precision=precision, size=size),
            "images": len(ids),
        }
        log.info("%s: classification mAP %.2f %% on %d images", split, scores[split]["map"], len(ids))
    dtype = inference_dtype(precision, torch_device)
    write_json(out_json, {"size": size, "precision": str(dtype or "torch.float32"), "splits": scores})
