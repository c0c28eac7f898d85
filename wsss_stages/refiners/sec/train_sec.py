"""Stage train_sec: a segmentation network trained directly from SEC's localisation cues with SEC's
seeding, expansion and constrain-to-boundary losses (sec.py beside it), resumable."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import IGNORE, load_mask
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.nets.runtime import pick_device, set_threads
from wsss_stages.lib.nets.segmentation import build_segmentation_net, fit_segmentation
from wsss_stages.lib.nets.training import files_fingerprint, ids_with_label_maps, seed_everything
from wsss_stages.refiners.sec.sec import sec_crf_params, sec_losses

log = logging.getLogger(__name__)


def train_sec(
    *,
    cues: Path,
    data_root: Path,
    out_model: Path,
    split: str,
    head: str,
    head_width: int,
    backbone: dict,
    training: dict,
    d_fg: float,
    d_bg: float,
    crf_scale: float,
    seed: int,
    device: str,
    threads: int = 1,
) -> None:
    """Train the SEC segmentation network on the cues of a split.

    Args:
        cues: folder of <id>.png cue maps from make_sec_cues
        data_root: VOC2012-layout root (images, image-level labels)
        out_model: final weights file (.pt)
        split: training split (its images with cues)
        head: deeplabv3plus or deeplabv2
        head_width: channels of the v3+ ASPP and decoder (0 = the backbone's default)
        backbone: the config section train_sec.backbone (name, weights, output_stride, freeze_bn)
        training: the config section train_sec.training (epochs, batch_size, crop_size, lr …)
        d_fg: rank-pooling decay of the present classes (SEC d+ 0.996)
        d_bg: rank-pooling decay of the background (SEC d− 0.999)
        crf_scale: the constrain loss's CRF widths are SEC's (xy 80 and 3) divided by this (SEC 12)
        seed: random seed
        device: auto, cpu or cuda
        threads: CPU threads to use
    """
    set_threads(threads)
    seed_everything(seed)
    dataset = VOCDataset(data_root)
    ids = ids_with_label_maps(dataset, split, Path(cues), training["batch_size"])
    paths = {i: Path(cues) / f"{i}.png" for i in ids}
    net = build_segmentation_net(head, head_width, backbone, dataset.num_classes)
    mean, std = list(net.backbone.mean), list(net.backbone.std)
    crf = sec_crf_params(crf_scale)

    def load(index: int):
        image_id = ids[index]
        image, cue = dataset.load_image(image_id), load_mask(paths[image_id])
        if cue.shape != image.shape[:2]:
            raise WsssError(f"cue map {paths[image_id]} is {cue.shape}, its image {image.shape[:2]}")
        inside = np.zeros(cue.shape, np.uint8)  # the crop pads maps with 255: outside the image
        return image, {"cues": cue, "inside": inside}, {"labels": torch.from_numpy(dataset.label_vector(image_id))}

    def loss(model, x, targets):
        terms = sec_losses(
            model(x),
            x,
            targets["cues"],
            targets["inside"] != IGNORE,
            targets["labels"],
            mean=mean,
            std=std,
            d_fg=d_fg,
            d_bg=d_bg,
            crf=crf,
        )
        return terms["seed"] + terms["expand"] + terms["constrain"]

    device = pick_device(device)
    log.info(
        "training SEC (%s/%s) on the cues of %d images of '%s' on %s", head, backbone["name"], len(ids), split, device
    )
    signature = {
        "data_root": str(Path(data_root).resolve()),
        "split": split,
        "cues": str(Path(cues).resolve()),
        "ids": len(ids),
        "d_fg": d_fg,
        "d_bg": d_bg,
        "crf_scale": crf_scale,
        "inputs": files_fingerprint(paths.values()),
    }
    fit_segmentation(
        net,
        count=len(ids),
        load=load,
        loss=loss,
        out_model=out_model,
        head=head,
        head_width=head_width,
        backbone=backbone,
        training=training,
        seed=seed,
        device=device,
        signature=signature,
        class_names=dataset.class_names,
        method="sec",
    )
