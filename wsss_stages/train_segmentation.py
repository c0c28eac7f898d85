"""Stage train_segmentation: DeepLab (v3+ or v2-ASPP) on pseudo-masks with cross-entropy (255 ignored)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch.nn.functional as F

from wsss_stages import WsssError
from wsss_stages.lib.artifacts import IGNORE, load_mask
from wsss_stages.lib.models import DeepLabV2, DeepLabV3Plus, build_backbone, model_meta
from wsss_stages.lib.runtime import pick_device, set_threads, training_dtype
from wsss_stages.lib.training import (Augment, EpochDataset, TrainLoop, checkpoint_dir_for, files_fingerprint, ids_with_label_maps, make_optimizer,
                                      save_model, seed_everything)  # fmt: skip
from wsss_stages.lib.voc import VOCDataset

log = logging.getLogger(__name__)


def train_segmentation(*, masks: Path | None, data_root: Path, out_model: Path, split: str, mask_folder: str | None, head: str,
                       head_width: int, backbone: dict, training: dict, seed: int, device: str, threads: int = 1) -> None:
    """Train the segmentation network on (pseudo-)masks, resumable; final weights written atomically.

    Args:
        masks: folder of <id>.png pseudo-masks; None: the dataset's ground-truth masks (the fully-supervised upper bound)
        data_root: VOC2012-layout root (images)
        out_model: final weights file (.pt)
        split: training split; its images need a mask in `masks`
        mask_folder: ground-truth folder when masks is None: SegmentationClass or SegmentationClassAug (None: whichever exists)
        head: deeplabv3plus or deeplabv2
        head_width: channels of the v3+ ASPP and decoder (0 = the backbone's default, 256 for ImageNet backbones)
        backbone: the config section train_segmentation.backbone (name, weights, output_stride, freeze_bn)
        training: the config section train_segmentation.training (epochs, batch_size, crop_size, lr …)
        seed: random seed
        device: auto, cpu or cuda
        threads: CPU threads to use
    """
    set_threads(threads)
    seed_everything(seed)
    dataset = VOCDataset(data_root, mask_folder)
    batch_size = training["batch_size"]
    if masks is None:
        mask_paths = {i: dataset.mask_path(i) for i in dataset.split_ids(split) if dataset.has_mask(i)}
        if len(mask_paths) < batch_size:
            raise WsssError(f"only {len(mask_paths)} images of split '{split}' have ground-truth masks (batch_size {batch_size})")
    else:
        mask_paths = {i: Path(masks) / f"{i}.png" for i in ids_with_label_maps(dataset, split, Path(masks), batch_size)}
    ids = list(mask_paths)
    features = build_backbone(backbone["name"], backbone["weights"], backbone["output_stride"])
    if head == "deeplabv3plus":
        net = DeepLabV3Plus(features, dataset.num_classes, head_width)
    else:
        net = DeepLabV2(features, dataset.num_classes)
    augment = Augment(training["crop_size"], tuple(training["scale_range"]), net.backbone.mean, net.backbone.std, seed)

    def load(index: int):
        image_id = ids[index]
        image, mask = dataset.load_image(image_id), load_mask(mask_paths[image_id])
        if mask.shape != image.shape[:2]:
            raise WsssError(f"mask {mask_paths[image_id]} is {mask.shape}, its image {image.shape[:2]}")
        return image, {"mask": mask}, {}

    device = pick_device(device)
    source = "ground-truth" if masks is None else "pseudo-"
    log.info("training %s/%s on %d %smasks of '%s' on %s", head, backbone["name"], len(ids), source, split, device)
    optimizer = make_optimizer(net, net.head_parameters(), training["lr"], training["head_lr_mult"], training["weight_decay"],
                               training["momentum"])  # fmt: skip
    signature = {"data_root": str(Path(data_root).resolve()), "split": split, "masks": str(mask_paths[ids[0]].parent.resolve()), "ids": len(ids),
                 "head": head, "head_width": head_width, "backbone": backbone, "seed": seed,
                 "training": {k: v for k, v in training.items() if k not in ("workers", "checkpoint_every", "checkpoint_steps")},
                 "inputs": files_fingerprint(mask_paths.values())}  # fmt: skip
    loop = TrainLoop(net, optimizer, EpochDataset(len(ids), load, augment), batch_size, training["epochs"], device,
                     checkpoint_dir_for(out_model), signature, backbone["freeze_bn"], training["workers"], training["checkpoint_every"], seed,
                     training_dtype(training["precision"], device), training["checkpoint_steps"])  # fmt: skip
    history = loop.run(lambda model, x, targets: F.cross_entropy(model(x), targets["mask"], ignore_index=IGNORE))
    meta = model_meta(head, backbone["name"], backbone["output_stride"], dataset.num_classes, dataset.class_names, head_width=head_width,
                      mean=list(net.backbone.mean), std=list(net.backbone.std), loss_history=history)
    save_model(Path(out_model), net, meta)
    log.info("saved %s", out_model)
