"""Stage train_acr: ACR's classifier C trained against its reconstructor R (see ``acr.py``).

Enabled by ``acr.enabled``; its C takes the place of train_classifier's model for every later stage
(make_cams, score_classifier, …), so ACR's CAMs are a CAM source like any classifier's. Both networks
and both optimisers are in one checkpoint under ``.checkpoints/train_acr/`` (resumed when the settings
are unchanged); the final C is written atomically.
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path

import numpy as np
import torch

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import write_json
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.nets.models import CamClassifier, backbone_from_config, load_model, model_meta
from wsss_stages.lib.nets.runtime import device_name, pick_device, set_threads, training_dtype
from wsss_stages.lib.nets.training import (
    Augment,
    EpochDataset,
    TrainLoop,
    files_fingerprint,
    make_optimizer,
    save_model,
    seed_everything,
)
from wsss_stages.methods.acr.acr import ACRPair, ACRUpdate, OptimizerPair, Reconstructor, unet_levels

log = logging.getLogger(__name__)


def _starting_classifier(classifier: Path | None, backbone: dict, num_classes: int) -> CamClassifier:
    """C from ImageNet weights (adversarial), or train_classifier's model (pretrained)."""
    if classifier is None:
        return CamClassifier(backbone_from_config(backbone), num_classes)
    net, meta = load_model(classifier, ("classifier",))
    if type(net) is not CamClassifier or meta.get("background"):
        raise WsssError(
            f"{classifier}: acr.strategy 'pretrained' starts from a plain CAM classifier, not a "
            f"'{meta.get('method')}' one (set train_classifier.method: cam)"
        )
    if backbone["frozen_stages"]:
        net.backbone.freeze_stages(backbone["frozen_stages"])
    return net


def _term_history(terms: list[dict], steps_per_epoch: int) -> dict[str, list[float]]:
    """Per loss term, its mean over each epoch (of the steps run in this process)."""
    names = sorted({k for t in terms for k in t})
    history = {}
    for name in names:
        values = [t.get(name, np.nan) for t in terms]
        chunks = [values[i : i + steps_per_epoch] for i in range(0, len(values), steps_per_epoch)]
        history[name] = [float(np.nanmean(c)) if not np.isnan(c).all() else None for c in chunks]
    return history


def train_acr(
    *,
    data_root: Path,
    classifier: Path | None,
    out_model: Path,
    out_info: Path,
    split: str,
    strategy: str,
    srf: dict,
    weights: dict,
    reconstructor: dict,
    epochs: int,
    backbone: dict,
    training: dict,
    seed: int,
    device: str,
    threads: int = 1,
) -> None:
    """Train ACR's C and R with alternating updates (or the three-phase pretrained variant), resumable.

    Args:
        data_root: VOC2012-layout root
        classifier: train_classifier's model, the starting C of the pretrained strategy (None: adversarial)
        out_model: C's final weights (a classifier model file, read by make_cams)
        out_info: JSON record: settings, per-epoch loss terms, timing, peak memory
        split: training split (image-level labels only)
        strategy: adversarial (C and R from ImageNet weights, R's then C's update every step) or pretrained
            (C = train_classifier's; R alone for ``epochs``, then C alone for ``epochs``)
        srf: stochastic random feeding: enabled, grid (cells per side), start and end probability
        weights: loss weights r_cls, r_full, r_target, r_other (R) and c_target, c_other (C)
        reconstructor: R's sizes: feature_dim, reduce (two channel counts), width, levels, scale (of the crop)
        epochs: epochs of each phase (0: train_classifier.training.epochs)
        backbone: the config section train_classifier.backbone (C and R each get one)
        training: the config section train_classifier.training (batch, crop, rates, precision …)
        seed: random seed
        device: auto, cpu or cuda
        threads: CPU threads to use
    """
    set_threads(threads)
    seed_everything(seed)
    side = round(training["crop_size"] * reconstructor["scale"])
    levels = unet_levels(side, reconstructor["levels"])
    if levels < 2:
        raise WsssError(
            f"config key 'acr.reconstructor.scale': the rebuilt crop ({side} px) must be divisible by 4 for a U-Net"
        )
    if (classifier is None) != (strategy == "adversarial"):
        raise WsssError(f"acr.strategy '{strategy}': train_classifier's model is needed by 'pretrained' only")
    dataset = VOCDataset(data_root)
    ids = dataset.split_ids(split)
    if len(ids) < training["batch_size"]:
        raise WsssError(f"split '{split}' has {len(ids)} images, fewer than batch_size={training['batch_size']}")
    num_classes = dataset.num_classes - 1
    c = _starting_classifier(classifier, backbone, num_classes)
    r_backbone = backbone_from_config(backbone)
    r = Reconstructor(
        r_backbone, num_classes, reconstructor["feature_dim"], reconstructor["reduce"], reconstructor["width"], levels
    )
    pair = ACRPair(c, r)
    rates = (training["lr"], training["head_lr_mult"], training["weight_decay"], training["momentum"])
    optimizers = OptimizerPair(
        make_optimizer(c, c.head_parameters(), *rates), make_optimizer(r, r.head_parameters(), *rates)
    )
    epochs = epochs or training["epochs"]
    phase_epochs = epochs if strategy == "adversarial" else 2 * epochs
    steps_per_epoch = max(1, len(ids) // training["batch_size"])
    update = ACRUpdate(
        optimizers,
        strategy,
        weights,
        srf,
        tuple(r_backbone.mean),
        tuple(r_backbone.std),
        steps_per_epoch * phase_epochs,
        reconstructor["scale"],
        seed,
        backbone["freeze_bn"],
    )
    augment = Augment(training["crop_size"], tuple(training["scale_range"]), r_backbone.mean, r_backbone.std, seed)

    def load(index: int):
        image_id = ids[index]
        return dataset.load_image(image_id), {}, {"labels": torch.from_numpy(dataset.label_vector(image_id))}

    torch_device = pick_device(device)
    dtype = training_dtype(training["precision"], torch_device)
    signature = {
        "data_root": str(Path(data_root).resolve()),
        "split": split,
        "ids": len(ids),
        "strategy": strategy,
        "srf": srf,
        "weights": weights,
        "reconstructor": reconstructor,
        "epochs": epochs,
        "backbone": backbone,
        "training": {k: v for k, v in training.items() if k not in ("workers", "checkpoint_every", "checkpoint_steps")},
        "seed": seed,
        "classifier": files_fingerprint([classifier]) if classifier else None,
        "inputs": files_fingerprint([dataset.image_path(i) for i in ids]),
    }
    log.info(
        "training ACR (%s, SRF %s, %d-level reconstructor at %d px) on %d images of '%s' on %s: %d epochs of %d steps",
        strategy,
        "on" if srf["enabled"] else "off",
        levels,
        side,
        len(ids),
        split,
        torch_device,
        phase_epochs,
        steps_per_epoch,
    )
    loop = TrainLoop.from_recipe(
        pair,
        optimizers,
        EpochDataset(len(ids), load, augment),
        training,
        backbone,
        torch_device,
        Path(out_model),
        signature,
        seed,
        phase_epochs,
        update,
    )
    history = loop.run(None)
    meta = model_meta(
        "classifier",
        backbone["name"],
        backbone["output_stride"],
        num_classes,
        dataset.class_names,
        mean=list(r_backbone.mean),
        std=list(r_backbone.std),
        loss_history=history,
        method="acr",
    )
    save_model(Path(out_model), c, meta)
    write_json(
        Path(out_info),
        {
            "split": split,
            "images": len(ids),
            **signature,
            "loss_history": history,
            "loss_terms": _term_history(update.terms, steps_per_epoch),
            "timing": loop.timing,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "weights_source": r_backbone.weights_source,
            "precision_used": str(dtype or torch.float32),
            "device_used": device_name(torch_device),
        },
    )
    log.info("saved %s", out_model)
