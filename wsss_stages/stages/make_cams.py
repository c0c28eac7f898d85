"""Stage make_cams: multi-scale + flip class maps of the chosen CAM source for every labelled image.

The extraction loop lives in :mod:`wsss_stages.lib.nets.cams`; the CAM source (CAM, Grad-CAM, …) is a
registered plug-in (:mod:`wsss_stages.methods`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from wsss_stages import WsssError
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.nets.cams import write_cams
from wsss_stages.lib.nets.runtime import set_threads
from wsss_stages.lib.plan.registry import load_plugins
from wsss_stages.lib.plan.shards import Shard

log = logging.getLogger(__name__)


def make_cams(
    *,
    model: Path,
    data_root: Path,
    out_dir: Path,
    out_val_dir: Path,
    splits: list[str],
    val_split: str | None,
    scales: list[float],
    flip: bool,
    precision: str,
    cam_type: str,
    cam_options: dict,
    device: str,
    shard: str = "0/1",
    threads: int = 1,
) -> None:
    """Compute normalised multi-scale CAMs for every labelled image of the given splits.

    Args:
        model: classifier weights from train_classifier
        data_root: VOC2012-layout root
        out_dir: output folder of <id>.npz CAM files and manifest.json
        out_val_dir: the same for the images of val_split only (scored, never refined)
        splits: splits whose images get CAMs (union, each image once)
        val_split: a split whose CAMs go to out_val_dir (None: that folder stays empty)
        scales: inference scales
        flip: add horizontally flipped inputs
        precision: auto (bf16 autocast where the hardware runs it natively), fp32 or bf16
        cam_type: a registered CAM source (cam, gradcam, …)
        cam_options: that source's options (its config section make_cams.<cam_type>)
        device: auto, cpu or cuda
        shard: k/N, the slice of the images to process (0/1, the default: all; see lib/plan/shards.py)
        threads: CPU threads to use
    """
    set_threads(threads)
    source = load_plugins().cam_sources.get(cam_type)
    if source is None:
        raise WsssError(f"unknown CAM source {cam_type!r} (config key: make_cams.cam_type)")
    dataset = VOCDataset(data_root)
    ids = list(dict.fromkeys(i for split in splits for i in dataset.split_ids(split)))
    for folder, wanted in ((out_dir, ids), (out_val_dir, dataset.split_ids(val_split) if val_split else [])):
        written = write_cams(
            model=model,
            dataset=dataset,
            ids=wanted,
            out_dir=folder,
            scales=scales,
            flip=flip,
            precision=precision,
            device=device,
            source=source,
            options=cam_options,
            log=log,
            shard=Shard.parse(shard),
        )
        log.info("wrote %d CAM files to %s", len(written), folder)
