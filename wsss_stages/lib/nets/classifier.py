"""Training a CAM classifier with a registered classifier method (train_classifier, and every step of
adversarial erasing).

A method's implementation (``ClassifierMethod.impl``) is a class built as ``impl(options, context)``
with a :class:`MethodContext`; it must have ``loss(model, x, targets, progress) -> Tensor`` and may have
``build(backbone, num_classes) -> nn.Module`` (default: :class:`~wsss_stages.lib.nets.models.CamClassifier`),
``augment(augment) -> augment`` (wrap the sample augmentation) and ``targets(image_id) -> dict`` of
per-pixel uint8 maps (saliency, edges …) that are rescaled, flipped and cropped with the image, and
``report(epochs) -> dict`` of diagnostics for train_classifier's record.
``targets`` in ``loss`` is a dict of batched tensors: "labels" (multi-hot, always) plus those maps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import write_json
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.nets import distributed
from wsss_stages.lib.nets.models import CamClassifier, backbone_from_config, model_meta
from wsss_stages.lib.nets.runtime import device_name, pick_device, training_dtype
from wsss_stages.lib.nets.seed_methods import dataset_mean_rgb, erasing_loader
from wsss_stages.lib.nets.training import (
    Augment,
    EpochDataset,
    TrainLoop,
    files_fingerprint,
    make_optimizer,
    save_model,
    seed_everything,
)
from wsss_stages.lib.plan.registry import import_object, load_plugins

log = logging.getLogger(__name__)


@dataclass
class MethodContext:
    """What a method may need about its training run."""

    dataset: VOCDataset
    ids: Sequence[str]
    mean: Sequence[float]  # the backbone's input normalisation
    std: Sequence[float]
    seed: int
    log: logging.Logger = field(default=log)

    @cached_property
    def mean_rgb(self) -> tuple[float, float, float]:
        """The training images' mean colour (0–255), e.g. to fill hidden or erased pixels."""
        return dataset_mean_rgb(self.dataset.load_image, list(self.ids))


def method_implementation(method: str, options: dict, context: MethodContext):
    registered = load_plugins().methods.get(method)
    if registered is None:
        raise WsssError(f"unknown classifier method {method!r} (config key: train_classifier.method)")
    return import_object(registered.impl)(options, context)


def train_cam_classifier(
    *,
    data_root: Path,
    split: str,
    out_model: Path,
    out_info: Path,
    backbone: dict,
    training: dict,
    method: str,
    method_options: dict,
    seed: int,
    device: str,
    erase_masks: Path | None = None,
) -> None:
    """Train a classifier (poly LR, 10x LR on the new head), resumable; final weights written atomically.

    ``backbone`` and ``training`` are the config sections of that name; ``erase_masks``: a folder of
    <id>.png masks whose nonzero pixels are set to the dataset mean first (adversarial erasing).
    """
    seed_everything(seed)
    dataset = VOCDataset(data_root)
    ids = dataset.split_ids(split)
    negatives = sum(1 for i in ids if not dataset.labels(i).size)
    if negatives:  # no class at all: still a valid all-negative training example
        log.info("%d of %d training images hold no class (all-negative examples)", negatives, len(ids))
    if len(ids) < training["batch_size"]:
        raise WsssError(
            f"split '{split}' has {len(ids)} labelled images, fewer than batch_size={training['batch_size']}"
        )
    features = backbone_from_config(backbone)
    context = MethodContext(dataset, ids, features.mean, features.std, seed)
    impl = method_implementation(method, method_options, context)
    build = getattr(impl, "build", None)
    net = build(features, dataset.num_classes - 1) if build else CamClassifier(features, dataset.num_classes - 1)
    augment = Augment(training["crop_size"], tuple(training["scale_range"]), features.mean, features.std, seed)
    if hasattr(impl, "augment"):
        augment = impl.augment(augment)
    load_image = erasing_loader(dataset.load_image, erase_masks, context.mean_rgb if erase_masks else None)
    extra_targets = getattr(impl, "targets", None)

    def load(index: int):
        image_id = ids[index]
        maps = extra_targets(image_id) if extra_targets else {}
        return load_image(image_id), maps, {"labels": torch.from_numpy(dataset.label_vector(image_id))}

    torch_device = pick_device(device)
    log.info(
        "training %s classifier (%s) on %d images of '%s' (%d classes) on %s",
        backbone["name"],
        method,
        len(ids),
        split,
        dataset.num_classes - 1,
        torch_device,
    )
    optimizer = make_optimizer(
        net,
        net.head_parameters(),
        training["lr"],
        training["head_lr_mult"],
        training["weight_decay"],
        training["momentum"],
    )
    signature = {
        "data_root": str(Path(data_root).resolve()),
        "split": split,
        "ids": len(ids),
        "backbone": backbone,
        "training": {k: v for k, v in training.items() if k not in ("workers", "checkpoint_every", "checkpoint_steps")},
        "seed": seed,
        "method": method,
        "method_options": method_options,
        "erase_masks": files_fingerprint(sorted(Path(erase_masks).glob("*.png"))) if erase_masks else None,
        "inputs": files_fingerprint([dataset.image_path(i) for i in ids]),
    }
    loop = TrainLoop.from_recipe(
        net,
        optimizer,
        EpochDataset(len(ids), load, augment),
        training,
        backbone,
        torch_device,
        Path(out_model),
        signature,
        seed,
    )
    history = loop.run(lambda model, x, targets: impl.loss(model, x, targets, loop.progress))
    meta = model_meta(
        "classifier",
        backbone["name"],
        backbone["output_stride"],
        dataset.num_classes - 1,
        dataset.class_names,
        mean=list(features.mean),
        std=list(features.std),
        loss_history=history,
        method=method,
        background=getattr(net, "background", False),
        decoder_width=getattr(net, "decoder_width", None),  # RecurSeed's decoder
    )
    save_model(Path(out_model), net, meta)
    dtype = training_dtype(training["precision"], torch_device)
    if not distributed.current().main:
        return
    write_json(
        Path(out_info),
        {
            "split": split,
            "images": len(ids),
            **signature,
            "loss_history": history,
            **(impl.report(len(history)) if hasattr(impl, "report") else {}),  # a method's own diagnostics
            "timing": loop.timing,
            "weights_source": features.weights_source,
            "precision_used": str(dtype or torch.float32),
            "device_used": device_name(torch_device),
        },
    )
    log.info("saved %s", out_model)
