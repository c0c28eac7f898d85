"""Stage predict_sec: the SEC network as a refiner. Its softmax, restricted to the background and each
image's labelled classes, becomes the score maps of every image the chain's maps cover (the seed split's
pseudo-masks); and the network on its own, without labels, is scored on the val split, as a
segmentation network is."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from wsss_stages.lib.data.artifacts import atomic_dir, load_cams, read_manifest, save_scores, write_manifest
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.evaluation import ids_with_masks, score_predictions
from wsss_stages.lib.nets.inference import load_segmentation_net, predict_probs
from wsss_stages.lib.nets.models import to_tensor
from wsss_stages.lib.nets.runtime import autocast, pick_device, progress, set_threads

log = logging.getLogger(__name__)


def labelled_scores(probs: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The background and the labelled ``classes`` of a softmax ``[C+1, H, W]``, renormalised."""
    kept = probs[np.concatenate([[0], classes])]
    return kept / np.clip(kept.sum(0, keepdims=True), 1e-8, None)


def predict_sec(
    *,
    model: Path,
    cams: Path,
    data_root: Path,
    out_dir: Path,
    out_val_json: Path,
    out_val_csv: Path,
    out_val_per_image: Path,
    val_split: str,
    mask_folder: str | None,
    scales: list[float],
    flip: bool,
    precision: str,
    device: str,
    threads: int = 1,
) -> None:
    """Score maps of the SEC network for the images of a chain's maps, and its val mIoU.

    Args:
        model: SEC weights from train_sec
        cams: the chain's CAM-format maps that the cues came from (which images, and their labels)
        data_root: VOC2012-layout root
        out_dir: folder of <id>.npz score maps (background + labelled classes) and manifest.json
        out_val_json: val metrics of the network's own predictions (no image labels)
        out_val_csv: their per-class table
        out_val_per_image: their per-image confusion matrices
        val_split: split scored as a segmentation network (val)
        mask_folder: SegmentationClass or SegmentationClassAug (default: whichever exists)
        scales: test-time scales (softmax averaged)
        flip: also average the flipped prediction
        precision: auto (bf16 autocast where the hardware runs it natively), fp32 or bf16
        device: auto, cpu or cuda
        threads: CPU threads to use
    """
    set_threads(threads)
    device = pick_device(device)
    net, meta, dtype = load_segmentation_net(model, device, precision)
    dataset = VOCDataset(data_root, mask_folder)
    ids = read_manifest(cams, "cams")["ids"]
    val_ids = ids_with_masks(dataset, val_split)
    val_masks: dict[str, np.ndarray] = {}
    todo = list(dict.fromkeys([*ids, *val_ids]))
    covered, wanted = set(ids), set(val_ids)
    with atomic_dir(out_dir) as tmp, torch.inference_mode(), autocast(device, dtype):
        for image_id in progress(todo, desc="predict_sec"):
            image = to_tensor(dataset.load_image(image_id), meta["mean"], meta["std"]).to(device)
            probs = predict_probs(net, image, scales, flip).float().cpu().numpy()
            if image_id in covered:
                _, classes = load_cams(Path(cams) / f"{image_id}.npz")
                save_scores(tmp / f"{image_id}.npz", labelled_scores(probs, classes), [0, *classes.tolist()])
            if image_id in wanted:
                val_masks[image_id] = probs.argmax(0).astype(np.uint8)
        write_manifest(
            tmp,
            "scores",
            ids,
            refinement="sec",
            model=str(model),
            scales=list(scales),
            flip=flip,
            dtype=str(dtype or torch.float32),
        )
    score_predictions(
        dataset=dataset,
        ids=val_ids,
        predict=val_masks.__getitem__,
        split=val_split,
        out_json=out_val_json,
        out_csv=out_val_csv,
        out_per_image=out_val_per_image,
        what="SEC network",
    )
    log.info(
        "SEC score maps for %d images; its own predictions scored on %d images of '%s'",
        len(ids),
        len(val_ids),
        val_split,
    )
