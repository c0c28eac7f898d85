"""Stage refine_pamr: pixel-adaptive mask refinement (PAMR) of a chain's maps, by colour affinities
of the image (pamr.py beside it). CAM-format maps stay CAM-format (their background threshold is applied,
and can be swept, downstream), score maps stay score maps."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
import torch

from wsss_stages.lib.data.artifacts import (
    atomic_dir,
    load_cams,
    load_scores,
    read_maps_manifest,
    save_cams,
    save_scores,
    write_manifest,
)
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.nets.parallel import parallel_map
from wsss_stages.lib.plan.shards import Shard
from wsss_stages.refiners.pamr.pamr import pamr_at_stride

log = logging.getLogger(__name__)


def _refine_one(
    image_id: str,
    *,
    dataset: VOCDataset,
    source: Path,
    kind: str,
    out_dir: Path,
    stride: int,
    iterations: int,
    dilations: list[int],
) -> None:
    torch.set_num_threads(1)  # one image per process
    load, save = (load_cams, save_cams) if kind == "cams" else (load_scores, save_scores)
    maps, classes = load(source / f"{image_id}.npz")
    image = torch.from_numpy(dataset.load_image(image_id).astype(np.float32) / 255.0).permute(2, 0, 1)
    with torch.inference_mode():
        refined = pamr_at_stride(image, torch.from_numpy(maps), stride, iterations, dilations)
    save(out_dir / f"{image_id}.npz", refined.clamp(0, 1).numpy(), classes.tolist())


def refine_pamr(
    *,
    scores: Path,
    data_root: Path,
    out_dir: Path,
    iterations: int,
    dilations: list[int],
    stride: int,
    shard: str = "0/1",
    threads: int = 1,
) -> None:
    """Refine every image of a CAM or score-map folder with PAMR.

    Args:
        scores: CAM folder (make_cams, random_walk) or score-map folder (refine_crf, psa's walk)
        data_root: VOC2012-layout root (for the RGB images)
        out_dir: output folder of <id>.npz maps of the same kind as the input
        iterations: propagation steps (10 in the reference)
        dilations: neighbourhood dilations in pixels at the refinement's resolution (1, 2, 4, 8, 12, 24)
        stride: refine at 1/stride of the image resolution, then upsample (the reference runs at stride 4)
        shard: k/N, the slice of the images to process (0/1, the default: all; see lib/plan/shards.py)
        threads: worker processes
    """
    manifest, kind = read_maps_manifest(scores, "PAMR refines")
    part = Shard.parse(shard)
    ids = part.take(manifest["ids"])
    dataset = VOCDataset(data_root)
    with atomic_dir(out_dir) as tmp:
        work = functools.partial(
            _refine_one,
            dataset=dataset,
            source=Path(scores),
            kind=kind,
            out_dir=tmp,
            stride=stride,
            iterations=iterations,
            dilations=list(dilations),
        )
        parallel_map(work, ids, threads, desc="refine_pamr")
        write_manifest(
            tmp,
            kind,
            ids,
            refinement="pamr",
            source=str(scores),
            iterations=iterations,
            dilations=list(dilations),
            stride=stride,
            bg_threshold=manifest.get("bg_threshold"),
            **part.manifest_fields(manifest["ids"]),
        )
    log.info("refined %d images with PAMR (%s, %d iterations, stride %d)", len(ids), kind, iterations, stride)
