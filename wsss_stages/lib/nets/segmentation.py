"""Training a segmentation network (DeepLab v3+ or v2 on a backbone), shared by the stages that do:
train_segmentation (cross-entropy on pseudo-masks) and train_sec (SEC's losses on cues)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from wsss_stages.lib.nets.models import DeepLabV2, DeepLabV3Plus, backbone_from_config, model_meta
from wsss_stages.lib.nets.training import (
    Augment,
    EpochDataset,
    TrainLoop,
    make_optimizer,
    save_model,
)

log = logging.getLogger(__name__)

RUN_ONLY = (
    "workers",
    "checkpoint_every",
    "checkpoint_steps",
)  # training settings that change how, not what, is trained


def build_segmentation_net(head: str, head_width: int, backbone: dict, num_classes: int):
    """DeepLab v3+ (``head_width`` channels; 0: the backbone's default) or v2-ASPP on ``backbone``
    (the config section: name, weights, output_stride)."""
    features = backbone_from_config(backbone)
    if head == "deeplabv3plus":
        return DeepLabV3Plus(features, num_classes, head_width)
    return DeepLabV2(features, num_classes)


def fit_segmentation(
    net,
    *,
    count: int,
    load: Callable,
    loss: Callable,
    out_model: Path,
    head: str,
    head_width: int,
    backbone: dict,
    training: dict,
    seed: int,
    device,
    signature: dict,
    class_names,
    **meta,
) -> list:
    """Train ``net`` on ``count`` samples of ``load(index) -> (image, maps, targets)`` with
    ``loss(model, x, targets)``, resumable from checkpoints beside ``out_model`` (not a declared
    output) when ``signature`` matches; the final weights and their metadata written atomically."""
    augment = Augment(training["crop_size"], tuple(training["scale_range"]), net.backbone.mean, net.backbone.std, seed)
    optimizer = make_optimizer(
        net,
        net.head_parameters(),
        training["lr"],
        training["head_lr_mult"],
        training["weight_decay"],
        training["momentum"],
    )
    signature = {
        **signature,
        "head": head,
        "head_width": head_width,
        "backbone": backbone,
        "seed": seed,
        "training": {k: v for k, v in training.items() if k not in RUN_ONLY},
    }
    loop = TrainLoop.from_recipe(
        net, optimizer, EpochDataset(count, load, augment), training, backbone, device, Path(out_model), signature, seed
    )
    history = loop.run(loss)
    save_model(
        Path(out_model),
        net,
        model_meta(
            head,
            backbone["name"],
            backbone["output_stride"],
            len(class_names),
            class_names,
            head_width=head_width,
            mean=list(net.backbone.mean),
            std=list(net.backbone.std),
            loss_history=history,
            **meta,
        ),
    )
    log.info("saved %s", out_model)
    return history
