"""Adversarial erasing (AE-PSL, Wei et al., CVPR 2017): classifiers trained on ever more erased images.

Step 1 is the ordinary classifier (``train_classifier``'s model). At step t its CAMs are computed,
the regions above ``delta`` of each image class are *mined* and added to that image's mined set,
and the classifier of step t+1 is trained on the images with every mined pixel set to the
dataset mean colour, so it must find the object's other parts. The walk stops after ``steps``
steps, or earlier when a classifier's mean average precision on its (erased) training images
falls below ``map_floor``: the objects are then mostly erased and its maps would mine background.

The seed map written for later stages is CAM-format: for each class, the largest of the steps'
normalised CAMs, so thresholding it at ``delta`` gives exactly the union of mined regions.
Each step's classifier, CAMs and mined masks live under ``.checkpoints/train_erasing/`` and are
reused when the run is repeated with the same settings.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import (
    atomic_dir,
    load_cams,
    load_mask,
    read_manifest,
    save_cams,
    save_mask,
    write_json,
    write_manifest,
)
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.thresholds import cam_labels
from wsss_stages.lib.nets.cams import write_cams
from wsss_stages.lib.nets.classification import classification_map
from wsss_stages.lib.nets.classifier import train_cam_classifier
from wsss_stages.lib.nets.runtime import pick_device, set_threads
from wsss_stages.lib.nets.seed_methods import dataset_mean_rgb, erasing_loader
from wsss_stages.lib.nets.training import checkpoint_dir_for

log = logging.getLogger(__name__)


def mine(cams: np.ndarray, classes: np.ndarray, delta: float) -> np.ndarray:
    """Label map of the pixels above ``delta``: the strongest class there, 0 elsewhere."""
    return cam_labels(cams, classes, delta).astype(np.uint8)


def update_mined(cams_dir: Path, previous: Path | None, out_dir: Path, delta: float) -> float:
    """Mined masks of this step (previous ∪ new); returns the mean mined fraction of the pixels."""
    ids = read_manifest(cams_dir, "cams")["ids"]
    fractions = []
    with atomic_dir(out_dir) as tmp:
        for image_id in ids:
            cams, classes = load_cams(cams_dir / f"{image_id}.npz")
            mask = mine(cams.astype(np.float32), classes, delta)
            if previous is not None:
                before = load_mask(previous / f"{image_id}.png")
                mask = np.where(before > 0, before, mask)
            save_mask(tmp / f"{image_id}.png", mask)
            fractions.append(float((mask > 0).mean()))
        write_manifest(tmp, "masks", ids, delta=delta)
    return float(np.mean(fractions)) if fractions else 0.0


def fuse_steps(step_cams: list[Path], out_dir: Path) -> None:
    """CAM-format seeds: per class, the maximum over the steps' normalised CAMs."""
    ids = read_manifest(step_cams[0], "cams")["ids"]
    with atomic_dir(out_dir) as tmp:
        for image_id in ids:
            fused, classes = load_cams(step_cams[0] / f"{image_id}.npz")
            fused = fused.astype(np.float32)
            for folder in step_cams[1:]:
                cams, _ = load_cams(folder / f"{image_id}.npz")
                fused = np.maximum(fused, cams.astype(np.float32))
            save_cams(tmp / f"{image_id}.npz", fused, classes.tolist())
        write_manifest(tmp, "cams", ids, method="ae_psl", steps=len(step_cams), sources=[str(p) for p in step_cams])


def train_erasing(
    *,
    classifier: Path,
    data_root: Path,
    out_dir: Path,
    out_report: Path,
    split: str,
    cam_splits: list[str],
    steps: int,
    delta: float,
    map_floor: float,
    scales: list[float],
    flip: bool,
    precision: str,
    backbone: dict,
    training: dict,
    method: str,
    method_options: dict,
    seed: int,
    device: str,
    threads: int = 1,
) -> None:
    """Run adversarial erasing and write its fused seed CAMs and a per-step report.

    Steps 2..T train exactly as step 1 (train_classifier) was trained: the same method and recipe.

    Args:
        classifier: the step-1 classifier (train_classifier's model)
        data_root: VOC2012-layout root
        out_dir: output folder of fused CAM-format seeds
        out_report: JSON report: per step the training mAP, the mined fraction and whether it was kept
        split: classifier training split
        cam_splits: splits whose images get seeds (as make_cams)
        steps: maximum number of erasing steps T (the paper uses 3)
        delta: CAM threshold above which regions are mined
        map_floor: stop when a new classifier's training mAP (%) is below this
        scales: CAM scales
        flip: CAM flip
        precision: CAM inference precision (auto, fp32, bf16)
        backbone: the classifier's config section train_classifier.backbone
        training: the classifier's config section train_classifier.training
        method: the classifier method
        method_options: its options
        seed: random seed
        device: auto, cpu or cuda
        threads: CPU threads to use
    """
    if steps < 1:
        raise WsssError(f"adversarial_erasing.steps must be at least 1, not {steps}")
    if not 0.0 < delta < 1.0:
        raise WsssError(f"adversarial_erasing.delta must be in (0, 1), not {delta}")
    set_threads(threads)
    dataset = VOCDataset(data_root)
    work = checkpoint_dir_for(Path(out_dir))
    train_ids = dataset.split_ids(split)
    mean_rgb = dataset_mean_rgb(dataset.load_image, train_ids)
    torch_device = pick_device(device)
    recipe = {"backbone": backbone, "training": training, "method": method, "method_options": method_options}
    cam_ids = list(dict.fromkeys(i for s in cam_splits for i in dataset.split_ids(s)))
    cam_kwargs = {
        "dataset": dataset,
        "ids": cam_ids,
        "scales": scales,
        "flip": flip,
        "precision": precision,
        "device": device,
        "log": log,
    }
    report, kept, mined, model = [], [], None, Path(classifier)
    for step in range(1, steps + 1):
        step_dir = work / f"step{step}"
        if step > 1:
            model = step_dir / "model.pt"  # resumes from its own checkpoint when the settings are unchanged
            train_cam_classifier(
                data_root=data_root,
                split=split,
                out_model=model,
                out_info=model.with_suffix(".json"),
                erase_masks=mined,
                seed=seed + step,
                device=device,
                **recipe,
            )
        # on its training images erased as it saw them, in fp32 at full size
        score = classification_map(
            model, dataset, train_ids, torch_device, load_image=erasing_loader(dataset.load_image, mined, mean_rgb)
        )
        log.info("step %d: training mAP %.2f %%", step, score)
        if step > 1 and score < map_floor:
            report.append({"step": step, "training_map": score, "kept": False})
            log.info("step %d: mAP below the floor %.2f: stopping", step, map_floor)
            break
        cams = step_dir / "cams"  # regions are mined from the images as this step's classifier saw them
        write_cams(
            model=model,
            out_dir=cams,
            load_image=erasing_loader(dataset.load_image, mined, mean_rgb),
            erased=mined is not None,
            **cam_kwargs,
        )
        fraction = update_mined(cams, mined, step_dir / "mined", delta)
        mined = step_dir / "mined"
        kept.append(cams)
        report.append({"step": step, "training_map": score, "mined_fraction": fraction, "kept": True})
        log.info("step %d: %.1f %% of the pixels mined so far", step, 100 * fraction)
    fuse_steps(kept, Path(out_dir))
    write_json(Path(out_report), {"steps": report, "delta": delta, "map_floor": map_floor, "mean_rgb": list(mean_rgb)})
    log.info("adversarial erasing: %d steps kept", len(kept))
