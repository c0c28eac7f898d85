"""Train the multi-label GAP classifier whose class maps are the CAMs.

Variants (seed methods, see :mod:`wsss_stages.seed_methods`): Puzzle-CAM's tile losses
(``method: puzzle``), Hide-and-Seek (``hide_patch_sizes``), and training on images whose mined
regions are erased (``erase_masks``, one step of adversarial erasing).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from wsss_stages import WsssError
from wsss_stages.artifacts import write_json
from wsss_stages.models import CamClassifier, build_backbone, model_meta
from wsss_stages.training import (Augment, EpochDataset, TrainLoop, checkpoint_dir_for, files_fingerprint, make_optimizer, pick_device,
                                  save_model, seed_everything, set_threads)  # fmt: skip
from wsss_stages.seed_methods import HideAndSeek, dataset_mean_rgb, erasing_loader, normalised_fill, puzzle_alpha, puzzle_losses
from wsss_stages.voc import VOCDataset

PUZZLE_TERMS = ("cls", "pcls", "re")

log = logging.getLogger(__name__)


def train_classifier(*, data_root: Path, split: str, out_model: Path, backbone: str = "tiny", weights: str = "none",
                     output_stride: int = 16, freeze_bn: bool = False, epochs: int = 5, batch_size: int = 16,
                     crop_size: int = 512, scale_range: list[float] = (0.5, 1.5), lr: float = 0.1,
                     head_lr_mult: float = 10.0, weight_decay: float = 1e-4, momentum: float = 0.9, workers: int = 0,
                     checkpoint_every: int = 1, method: str = "cam", puzzle_alpha_target: float = 4.0,
                     puzzle_terms: list[str] = PUZZLE_TERMS, hide_patch_sizes: list[int] = (), hide_prob: float = 0.5,
                     erase_masks: Path | None = None, seed: int = 0, device: str = "auto", threads: int = 1) -> None:
    """Train a CAM classifier (multilabel soft-margin loss, poly LR, 10x LR on the new head), resumable.

    Checkpoints go to results/<experiment>/.checkpoints/train_classifier/ and are resumed when the
    arguments are unchanged; the final weights are written atomically.

    Args:
        data_root: VOC2012-layout root
        split: training split (image-level labels only are used)
        out_model: final weights file (.pt)
        backbone: backbone name (tiny, a timm name, or torchvision:resnet50)
        weights: none, imagenet or a state-dict path
        output_stride: output stride of the feature map (8, 16 or 32)
        freeze_bn: keep BatchNorm layers frozen
        epochs: passes over the split
        batch_size: images per step
        crop_size: square crop side
        scale_range: random rescale range (two numbers)
        lr: backbone learning rate
        head_lr_mult: learning-rate multiplier of the classifier head
        weight_decay: SGD weight decay
        momentum: SGD momentum
        workers: DataLoader workers
        checkpoint_every: checkpoint period in epochs
        method: cam (GAP classifier) or puzzle (Puzzle-CAM: also 2x2 tiles merged, plus reconstruction loss)
        puzzle_alpha_target: Puzzle-CAM reconstruction weight reached at half of training (the authors' best: 4)
        puzzle_terms: Puzzle-CAM loss terms to use, of cls, pcls and re (an ablation drops some)
        hide_patch_sizes: Hide-and-Seek grid sizes in pixels at the training scale, one drawn per image (empty: off)
        hide_prob: Hide-and-Seek probability of hiding each patch
        erase_masks: folder of <id>.png masks (nonzero = mined) erased to the dataset mean before training (adversarial erasing)
        seed: random seed
        device: auto, cpu or cuda
        threads: CPU threads to use
    """
    set_threads(threads)
    seed_everything(seed)
    dataset = VOCDataset(data_root)
    ids = dataset.split_ids(split)
    negatives = sum(1 for i in ids if not dataset.labels(i).size)
    if negatives:  # no class at all: still a valid all-negative training example
        log.info("%d of %d training images hold no class (all-negative examples)", negatives, len(ids))
    if len(ids) < batch_size:
        raise WsssError(f"split '{split}' has {len(ids)} labelled images, fewer than batch_size={batch_size}")
    check_method(method, puzzle_terms, crop_size, output_stride)
    net = CamClassifier(build_backbone(backbone, weights, output_stride), dataset.num_classes - 1)
    augment = Augment(crop_size, tuple(scale_range), net.backbone.mean, net.backbone.std, seed)
    mean_rgb = dataset_mean_rgb(dataset.load_image, ids) if hide_patch_sizes or erase_masks else None
    if hide_patch_sizes:
        log.info("Hide-and-Seek: patches %s px, p=%.2f, filled with the dataset mean RGB %s", list(hide_patch_sizes),
                 hide_prob, [round(v, 1) for v in mean_rgb])  # fmt: skip
        augment = HideAndSeek(augment, hide_patch_sizes, hide_prob, normalised_fill(mean_rgb, net.backbone.mean, net.backbone.std), seed)
    load_image = erasing_loader(dataset.load_image, erase_masks, mean_rgb)

    def load(index: int):
        image_id = ids[index]
        return load_image(image_id), None, torch.from_numpy(dataset.label_vector(image_id))

    device = pick_device(device)
    log.info("training %s classifier on %d images of '%s' (%d classes) on %s", backbone, len(ids), split,
             dataset.num_classes - 1, device)
    optimizer = make_optimizer(net, net.head_parameters(), lr, head_lr_mult, weight_decay, momentum)
    signature = {"data_root": str(Path(data_root).resolve()), "split": split, "ids": len(ids), "backbone": backbone,
                 "weights": weights, "output_stride": output_stride, "freeze_bn": freeze_bn, "epochs": epochs,
                 "batch_size": batch_size, "crop_size": crop_size, "scale_range": list(scale_range), "lr": lr,
                 "head_lr_mult": head_lr_mult, "weight_decay": weight_decay, "momentum": momentum, "seed": seed,
                 "method": method, "puzzle_alpha_target": puzzle_alpha_target, "puzzle_terms": list(puzzle_terms),
                 "hide_patch_sizes": list(hide_patch_sizes), "hide_prob": hide_prob,
                 "erase_masks": files_fingerprint(sorted(Path(erase_masks).glob("*.png"))) if erase_masks else None,
                 "inputs": files_fingerprint([dataset.image_path(i) for i in ids])}  # fmt: skip
    loop = TrainLoop(net, optimizer, EpochDataset(len(ids), load, augment), batch_size, epochs, device,
                     checkpoint_dir_for(out_model), signature, freeze_bn, workers, checkpoint_every, seed)  # fmt: skip
    if method == "puzzle":
        def loss_fn(model, x, y):
            terms = puzzle_losses(model, x, y)
            alpha = puzzle_alpha(loop.progress, puzzle_alpha_target)
            return sum((alpha if name == "re" else 1.0) * terms[name] for name in puzzle_terms)
    else:
        def loss_fn(model, x, y):
            return F.multilabel_soft_margin_loss(model(x), y)
    history = loop.run(loss_fn)
    meta = model_meta("classifier", backbone, output_stride, dataset.num_classes - 1, dataset.class_names,
                      mean=list(net.backbone.mean), std=list(net.backbone.std), loss_history=history, method=method)
    save_model(Path(out_model), net, meta)
    write_json(Path(out_model).with_suffix(".json"), {"split": split, "images": len(ids), **signature, "loss_history": history})
    log.info("saved %s", out_model)


def check_method(method: str, puzzle_terms, crop_size: int, output_stride: int) -> None:
    """Reject settings that cannot work, naming the config key."""
    if method not in ("cam", "puzzle"):
        raise WsssError(f"train_classifier.method must be cam or puzzle, not {method!r}")
    if method == "puzzle":
        unknown = set(puzzle_terms) - set(PUZZLE_TERMS)
        if unknown or not puzzle_terms:
            raise WsssError(f"train_classifier.puzzle.terms must be a non-empty subset of {list(PUZZLE_TERMS)}, not {list(puzzle_terms)}")
        if crop_size % (2 * output_stride):
            raise WsssError(f"Puzzle-CAM needs crop_size divisible by 2 x output_stride ({2 * output_stride}); "
                            f"train_classifier.training.crop_size is {crop_size}")
