"""Train DeepLab (v3+ or v2-ASPP) on pseudo-masks with cross-entropy (255 ignored)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch.nn.functional as F

from wsss_stages import WsssError
from wsss_stages.artifacts import IGNORE, load_mask
from wsss_stages.models import DeepLabV2, DeepLabV3Plus, build_backbone, model_meta
from wsss_stages.training import (Augment, EpochDataset, TrainLoop, checkpoint_dir_for, files_fingerprint, ids_with_label_maps, make_optimizer, pick_device,
                                  save_model, seed_everything, set_threads)  # fmt: skip
from wsss_stages.voc import VOCDataset

log = logging.getLogger(__name__)


def train_segmentation(*, data_root: Path, split: str, out_model: Path, masks: Path | None = None, mask_folder: str | None = None, head: str = "deeplabv3plus", head_width: int = 0,
                       backbone: str = "tiny", weights: str = "none", output_stride: int = 16, freeze_bn: bool = False,
                       epochs: int = 5, batch_size: int = 16, crop_size: int = 512, scale_range: list[float] = (0.5, 1.5),
                       lr: float = 0.01, head_lr_mult: float = 10.0, weight_decay: float = 1e-4, momentum: float = 0.9,
                       workers: int = 0, checkpoint_every: int = 1, seed: int = 0, device: str = "auto", threads: int = 1) -> None:
    """Train the segmentation network on (pseudo-)masks, resumable; final weights written atomically.

    Args:
        data_root: VOC2012-layout root (images)
        split: training split; its images need a mask in `masks`
        masks: folder of <id>.png pseudo-masks; omitted: the dataset's ground-truth masks (the fully-supervised upper bound)
        mask_folder: ground-truth folder when masks is omitted: SegmentationClass or SegmentationClassAug (default: whichever exists)
        out_model: final weights file (.pt)
        head: deeplabv3plus or deeplabv2
        head_width: channels of the v3+ ASPP and decoder (0 = the backbone's default, 256 for ImageNet backbones)
        backbone: backbone name
        weights: none, imagenet or a state-dict path
        output_stride: backbone output stride
        freeze_bn: keep BatchNorm layers frozen
        epochs: passes over the split
        batch_size: images per step
        crop_size: square crop side
        scale_range: random rescale range (two numbers)
        lr: backbone learning rate
        head_lr_mult: learning-rate multiplier of the head
        weight_decay: SGD weight decay
        momentum: SGD momentum
        workers: DataLoader workers
        checkpoint_every: checkpoint period in epochs
        seed: random seed
        device: auto, cpu or cuda
        threads: CPU threads to use
    """
    set_threads(threads)
    seed_everything(seed)
    dataset = VOCDataset(data_root, mask_folder)
    if masks is None:
        mask_paths = {i: dataset.mask_path(i) for i in dataset.split_ids(split) if dataset.has_mask(i)}
        if len(mask_paths) < batch_size:
            raise WsssError(f"only {len(mask_paths)} images of split '{split}' have ground-truth masks (batch_size {batch_size})")
    else:
        mask_paths = {i: Path(masks) / f"{i}.png" for i in ids_with_label_maps(dataset, split, Path(masks), batch_size)}
    ids = list(mask_paths)
    if head == "deeplabv3plus":
        net = DeepLabV3Plus(build_backbone(backbone, weights, output_stride), dataset.num_classes, head_width)
    else:
        net = DeepLabV2(build_backbone(backbone, weights, output_stride), dataset.num_classes)
    augment = Augment(crop_size, tuple(scale_range), net.backbone.mean, net.backbone.std, seed)

    def load(index: int):
        image_id = ids[index]
        image, mask = dataset.load_image(image_id), load_mask(mask_paths[image_id])
        if mask.shape != image.shape[:2]:
            raise WsssError(f"mask {mask_paths[image_id]} is {mask.shape}, its image {image.shape[:2]}")
        return image, mask, None

    device = pick_device(device)
    source = "ground-truth" if masks is None else "pseudo-"
    log.info("training %s/%s on %d %smasks of '%s' on %s", head, backbone, len(ids), source, split, device)
    optimizer = make_optimizer(net, net.head_parameters(), lr, head_lr_mult, weight_decay, momentum)
    signature = {"data_root": str(Path(data_root).resolve()), "split": split, "masks": str(mask_paths[ids[0]].parent.resolve()), "ids": len(ids),
                 "head": head, "head_width": head_width, "backbone": backbone, "weights": weights, "output_stride": output_stride,
                 "freeze_bn": freeze_bn, "epochs": epochs, "batch_size": batch_size, "crop_size": crop_size,
                 "scale_range": list(scale_range), "lr": lr, "head_lr_mult": head_lr_mult,
                 "weight_decay": weight_decay, "momentum": momentum, "seed": seed,
                 "inputs": files_fingerprint(mask_paths.values())}  # fmt: skip
    loop = TrainLoop(net, optimizer, EpochDataset(len(ids), load, augment), batch_size, epochs, device,
                     checkpoint_dir_for(out_model), signature, freeze_bn, workers, checkpoint_every, seed)  # fmt: skip
    history = loop.run(lambda model, x, y: F.cross_entropy(model(x), y, ignore_index=IGNORE))
    meta = model_meta(head, backbone, output_stride, dataset.num_classes, dataset.class_names, head_width=head_width,
                      mean=list(net.backbone.mean), std=list(net.backbone.std), loss_history=history)
    save_model(Path(out_model), net, meta)
    log.info("saved %s", out_model)
