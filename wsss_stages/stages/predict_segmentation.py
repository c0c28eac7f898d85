"""Stage predict_segmentation: predict masks with the trained segmentation network.

Multi-scale + flip, optional dense CRF."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from wsss_stages.lib.data.artifacts import atomic_dir, save_mask, write_manifest
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.nets.inference import load_segmentation_net, predict_mask
from wsss_stages.lib.nets.runtime import autocast, pick_device, progress, set_threads
from wsss_stages.lib.plan.shards import Shard

log = logging.getLogger(__name__)


def predict_segmentation(
    *,
    model: Path,
    data_root: Path,
    out_dir: Path,
    split: str,
    scales: list[float],
    flip: bool,
    crf: bool,
    precision: str,
    device: str,
    shard: str = "0/1",
    threads: int = 1,
) -> None:
    """Write one palette-PNG prediction per image of the split.

    Args:
        model: segmentation weights from train_segmentation
        data_root: VOC2012-layout root
        split: split to predict (val in the standard protocol)
        out_dir: output folder of <id>.png masks and manifest.json
        scales: test-time scales (softmax averaged)
        flip: also average the flipped prediction
        crf: dense-CRF post-processing with the DeepLab parameters
        precision: auto (bf16 autocast where the hardware runs it natively), fp32 or bf16
        device: auto, cpu or cuda
        shard: k/N, the slice of the images to process (0/1, the default: all; see lib/plan/shards.py)
        threads: CPU threads to use
    """
    set_threads(threads)
    device = pick_device(device)
    net, meta, dtype = load_segmentation_net(model, device, precision)
    dataset = VOCDataset(data_root)
    part = Shard.parse(shard)
    all_ids = dataset.split_ids(split)
    ids = part.take(all_ids)
    with atomic_dir(out_dir) as tmp, torch.inference_mode(), autocast(device, dtype):
        for image_id in progress(ids, desc="predict_segmentation"):
            save_mask(
                tmp / f"{image_id}.png",
                predict_mask(net, meta, dataset.load_image(image_id), device, scales, flip, crf),
            )
        write_manifest(
            tmp,
            "masks",
            ids,
            model=str(model),
            scales=list(scales),
            flip=flip,
            crf=crf,
            dtype=str(dtype or torch.float32),
            **part.manifest_fields(all_ids),
        )
    log.info("predicted %d masks of '%s'", len(ids), split)
