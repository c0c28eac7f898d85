"""Stage predict_decoder: a RecurSeed classifier's decoder on the images of a CAM folder, as score maps.

The decoder's softmax (averaged over scales and flips) keeps the background and the image's labelled
classes, renormalised: like every refiner's maps it never shows a class the image is not labelled with.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from wsss_stages.lib.data.artifacts import atomic_dir, load_cams, read_manifest, save_scores, write_manifest
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.nets.inference import load_segmentation_net, predict_probs
from wsss_stages.lib.nets.models import to_tensor
from wsss_stages.lib.nets.runtime import autocast, pick_device, progress, set_threads
from wsss_stages.lib.plan.shards import Shard

log = logging.getLogger(__name__)


def labelled_scores(probs: torch.Tensor, classes) -> torch.Tensor:
    """The background and the labelled classes' channels of a softmax ``[C + 1, H, W]``, summing to 1 again."""
    kept = probs[[0, *[int(c) for c in classes]]]
    return kept / kept.sum(0, keepdim=True).clamp_min(1e-8)


def predict_decoder(
    *,
    model: Path,
    cams: Path,
    data_root: Path,
    out_dir: Path,
    scales: list[float],
    flip: bool,
    precision: str,
    device: str,
    shard: str = "0/1",
    threads: int = 1,
) -> None:
    """Write the decoder's score maps of every image of a CAM folder (its labelled classes).

    Args:
        model: a RecurSeed classifier (train_classifier with method recurseed)
        cams: the seeds (their manifest lists the images, each file its labelled classes)
        data_root: VOC2012-layout root
        out_dir: output folder of <id>.npz score maps
        scales: test-time scales (softmax averaged)
        flip: also average the flipped prediction
        precision: auto (bf16 autocast where the hardware runs it natively), fp32 or bf16
        device: auto, cpu or cuda
        shard: k/N, the slice of the images to process (0/1, the default: all; see lib/plan/shards.py)
        threads: CPU threads to use
    """
    set_threads(threads)
    device = pick_device(device)
    net, meta, dtype = load_segmentation_net(model, device, precision)
    manifest = read_manifest(cams, "cams")
    part = Shard.parse(shard)
    ids = part.take(manifest["ids"])
    dataset = VOCDataset(data_root)
    with atomic_dir(out_dir) as tmp, torch.inference_mode(), autocast(device, dtype):
        for image_id in progress(ids, desc="predict_decoder"):
            _, classes = load_cams(Path(cams) / f"{image_id}.npz")
            image = to_tensor(dataset.load_image(image_id), meta["mean"], meta["std"]).to(device)
            probs = predict_probs(net, image, scales, flip).float().cpu()
            save_scores(tmp / f"{image_id}.npz", labelled_scores(probs, classes).numpy(), [0, *classes.tolist()])
        write_manifest(
            tmp,
            "scores",
            ids,
            refinement="decoder",
            model=str(model),
            source=str(cams),
            scales=list(scales),
            flip=flip,
            dtype=str(dtype or torch.float32),
            **part.manifest_fields(manifest["ids"]),
        )
    log.info("decoder score maps of %d images", len(ids))
