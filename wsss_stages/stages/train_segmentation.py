"""Stage train_segmentation: DeepLab (v3+ or v2-ASPP) on pseudo-masks with cross-entropy (255 ignored)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch.nn.functional as F

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import IGNORE, load_mask
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.nets.runtime import pick_device, set_threads
from wsss_stages.lib.nets.segmentation import build_segmentation_net, fit_segmentation
from wsss_stages.lib.nets.training import files_fingerprint, ids_with_label_maps, seed_everything

log = logging.getLogger(__name__)


def train_segmentation(
    *,
    masks: Path | None,
    data_root: Path,
    out_model: Path,
    split: str,
    mask_folder: str | None,
    head: str,
    head_width: int,
    backbone: dict,
    training: dict,
    seed: int,
    device: str,
    threads: int = 1,
) -> None:
    """Train the segmentation network on (pseudo-)masks, resumable; final weights written atomically.

    Args:
        masks: folder of <id>.png pseudo-masks; None: the dataset's ground-truth masks (the fully-supervised upper
            bound)
        data_root: VOC2012-layout root (images)
        out_model: final weights file (.pt)
        split: training split; its images need a mask in `masks`
        mask_folder: ground-truth folder when masks is None: SegmentationClass or SegmentationClassAug (None: whichever
            exists)
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
            raise WsssError(
                f"only {len(mask_paths)} images of split '{split}' have ground-truth masks (batch_size {batch_size})"
            )
    else:
        mask_paths = {i: Path(masks) / f"{i}.png" for i in ids_with_label_maps(dataset, split, Path(masks), batch_size)}
    ids = list(mask_paths)
    net = build_segmentation_net(head, head_width, backbone, dataset.num_classes)

    def load(index: int):
        image_id = ids[index]
        image, mask = dataset.load_image(image_id), load_mask(mask_paths[image_id])
        if mask.shape != image.shape[:2]:
            raise WsssError(f"mask {mask_paths[image_id]} is {mask.shape}, its image {image.shape[:2]}")
        return image, {"mask": mask}, {}

    device = pick_device(device)
    source = "ground-truth" if masks is None else "pseudo-"
    log.info("training %s/%s on %d %smasks of '%s' on %s", head, backbone["name"], len(ids), source, split, device)
    signature = {
        "data_root": str(Path(data_root).resolve()),
        "split": split,
        "masks": str(mask_paths[ids[0]].parent.resolve()),
        "ids": len(ids),
        "inputs": files_fingerprint(mask_paths.values()),
    }
    fit_segmentation(
        net,
        count=len(ids),
        load=load,
        loss=lambda model, x, targets: F.cross_entropy(model(x), targets["mask"], ignore_index=IGNORE),
        out_model=out_model,
        head=head,
        head_width=head_width,
        backbone=backbone,
        training=training,
        seed=seed,
        device=device,
        signature=signature,
        class_names=dataset.class_names,
    )
