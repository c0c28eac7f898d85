"""Stage train_affinitynet: train AffinityNet on affinity labels (pixel pairs within a radius, losses balanced per
group)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import load_mask
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.nets.models import load_model, model_meta
from wsss_stages.lib.nets.runtime import pick_device, set_threads, training_dtype
from wsss_stages.lib.nets.training import (
    Augment,
    EpochDataset,
    TrainLoop,
    checkpoint_dir_for,
    files_fingerprint,
    ids_with_label_maps,
    make_optimizer,
    save_model,
    seed_everything,
)
from wsss_stages.refiners.random_walk.affinity import (
    AffinityNet,
    BoundaryNet,
    boundary_affinity,
    downsample_labels,
    embedding_affinity,
    pair_loss,
)

log = logging.getLogger(__name__)


def train_affinitynet(
    *,
    classifier: Path,
    labels: Path,
    data_root: Path,
    out_model: Path,
    network: str,
    boundary_levels: str,
    split: str,
    stride: int,
    radius: int,
    dim: int,
    freeze_backbone: bool,
    epochs: int,
    batch_size: int,
    crop_size: int,
    scale_range: list[float],
    lr: float,
    weight_decay: float,
    momentum: float,
    workers: int,
    precision: str,
    seed: int,
    device: str,
    threads: int = 1,
) -> None:
    """Train the network whose pair affinities the walk uses, on the classifier's backbone (resumable):
    psa's AffinityNet embedding, or irn's class-boundary branch (affinity = 1 − max boundary on the
    path). Both learn from the same affinity labels with the same balanced pair loss.

    Args:
        classifier: classifier weights (its backbone is reused, frozen)
        labels: affinity labels from make_affinity_labels
        data_root: VOC2012-layout root
        split: training split (its images need affinity labels)
        out_model: final weights file (.pt)
        network: embedding (AffinityNet) or boundary (irn's class-boundary branch, always at stride 4)
        boundary_levels: the boundary branch reads all backbone stages (all) or two (two); n/a for the embedding
        stride: feature stride of the embedding (4 or 8)
        radius: pairs within this radius (feature pixels) are trained
        dim: embedding channels
        freeze_backbone: train only the embedding head (else the backbone too, at a tenth of the head's rate)
        epochs: passes over the split
        batch_size: images per step
        crop_size: square crop side
        scale_range: random rescale range (two numbers)
        lr: learning rate of the embedding head (the backbone gets lr / 10)
        weight_decay: SGD weight decay
        momentum: SGD momentum
        workers: DataLoader workers
        precision: training arithmetic: auto, fp32, bf16 or fp16 (CUDA)
        seed: random seed
        device: auto, cpu or cuda
        threads: CPU threads to use
    """
    set_threads(threads)
    seed_everything(seed)
    dataset = VOCDataset(data_root)
    labels = Path(labels)
    ids = ids_with_label_maps(dataset, split, labels, batch_size)
    cls, cls_meta = load_model(classifier, ("classifier",))
    if network not in ("embedding", "boundary"):
        raise WsssError(f"the pair network must be embedding or boundary, not {network!r}")
    net = (
        BoundaryNet(cls.backbone, boundary_levels)
        if network == "boundary"
        else AffinityNet(cls.backbone, stride, dim, freeze_backbone)
    )
    augment = Augment(crop_size, tuple(scale_range), cls_meta["mean"], cls_meta["std"], seed)

    def load(index: int):
        image_id = ids[index]
        return dataset.load_image(image_id), {"mask": load_mask(labels / f"{image_id}.png")}, {}

    def loss_fn(model, x, targets):
        out = model(x)
        labels = downsample_labels(targets["mask"], out.shape[-2:])
        affinity = boundary_affinity(torch.sigmoid(out[:, 0])) if network == "boundary" else embedding_affinity(out)
        return pair_loss(affinity, labels, radius)[0]

    device = pick_device(device)
    log.info(
        "training the %s network (stride %d, radius %d) on %d images of '%s' on %s",
        network,
        BoundaryNet.stride if network == "boundary" else stride,
        radius,
        len(ids),
        split,
        device,
    )
    optimizer = make_optimizer(net, net.head_parameters(), lr / 10, 10.0, weight_decay, momentum)
    signature = {
        "classifier": files_fingerprint([classifier]),
        "labels": files_fingerprint([labels / f"{i}.png" for i in ids]),
        "stride": stride,
        "radius": radius,
        "dim": dim,
        "freeze_backbone": freeze_backbone,
        "epochs": epochs,
        "batch_size": batch_size,
        "crop_size": crop_size,
        "scale_range": list(scale_range),
        "lr": lr,
        "weight_decay": weight_decay,
        "momentum": momentum,
        "seed": seed,
        "precision": precision,
        "network": network,
        "boundary_levels": boundary_levels,
    }
    loop = TrainLoop(
        net,
        optimizer,
        EpochDataset(len(ids), load, augment),
        batch_size,
        epochs,
        device,
        checkpoint_dir_for(out_model),
        signature,
        freeze_bn=True,
        workers=workers,
        seed=seed,
        dtype=training_dtype(precision, device),
    )
    history = loop.run(loss_fn)
    meta = model_meta(
        "boundarynet" if network == "boundary" else "affinitynet",
        cls_meta["backbone"],
        cls_meta["output_stride"],
        cls_meta["num_classes"],
        cls_meta["class_names"],
        mean=cls_meta["mean"],
        std=cls_meta["std"],
        stride=BoundaryNet.stride if network == "boundary" else stride,
        dim=dim,
        loss_history=history,
        **({"boundary_levels": boundary_levels} if network == "boundary" else {}),
    )
    save_model(Path(out_model), net, meta)
    log.info("saved %s", out_model)
