"""Stage refine_scg: self-correlation maps (SCG, RecurSeed) from the classifier's multi-level features
and a chain's CAM-format maps (scg.py beside it); writes CAM-format maps whose background threshold is
applied, and swept, downstream."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from wsss_stages.lib.data.artifacts import atomic_dir, load_cams, read_manifest, save_cams, write_manifest
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.nets.models import load_model, to_tensor
from wsss_stages.lib.nets.runtime import pick_device, progress, set_threads
from wsss_stages.lib.plan.shards import Shard
from wsss_stages.refiners.scg.scg import high_order_correlation, scg_maps

log = logging.getLogger(__name__)


def refine_scg(
    *,
    model: Path,
    cams: Path,
    data_root: Path,
    out_dir: Path,
    variant: str,
    first_threshold: float,
    second_threshold: float,
    fg_threshold: float,
    bg_threshold_seeds: float,
    device: str,
    shard: str = "0/1",
    threads: int = 1,
) -> None:
    """Self-correlation maps of every image of a CAM folder.

    Args:
        model: classifier weights (train_classifier), whose backbone levels give the features
        cams: CAM-format maps (the seeds, or another refiner's) that pick each class's confident pixels
        data_root: VOC2012-layout root
        out_dir: output folder of <id>.npz CAM-format maps
        variant: authors (the RecurSeed code's computation) or averaged (see scg.py)
        first_threshold: first-order correlations below it are zeroed (0.50)
        second_threshold: second-order correlations below it / n are zeroed (0.10)
        fg_threshold: CAM score from which a pixel is a class's confident foreground (0.30)
        bg_threshold_seeds: CAM score up to which a pixel is its confident background (0.05)
        device: auto, cpu or cuda
        shard: k/N, the slice of the images to process (0/1, the default: all; see lib/plan/shards.py)
        threads: CPU threads to use
    """
    set_threads(threads)
    device = pick_device(device)
    net, meta = load_model(model, ("classifier",))
    backbone = net.backbone.to(device).eval()
    manifest = read_manifest(cams, "cams")
    part = Shard.parse(shard)
    ids = part.take(manifest["ids"])
    dataset = VOCDataset(data_root)
    with atomic_dir(out_dir) as tmp, torch.inference_mode():
        for image_id in progress(ids, desc="refine_scg"):
            image = dataset.load_image(image_id)
            levels = backbone(to_tensor(image, meta["mean"], meta["std"])[None].to(device))
            grid = tuple(levels["high"].shape[-2:])
            hsc = high_order_correlation(
                [levels["low"][0], levels["high"][0]], grid, first_threshold, second_threshold, variant
            ).cpu()
            maps, classes = load_cams(Path(cams) / f"{image_id}.npz")
            small = F.adaptive_avg_pool2d(torch.from_numpy(maps)[None], grid)[0]
            small = (
                small / small.flatten(1).max(1).values.clamp_min(1e-5)[:, None, None]
            )  # peaks at 1 again after pooling
            refined = scg_maps(hsc, small, fg_threshold, bg_threshold_seeds, variant)
            full = F.interpolate(refined[None], size=image.shape[:2], mode="bilinear", align_corners=False)[0].clamp(
                0, 1
            )
            save_cams(tmp / f"{image_id}.npz", full.numpy(), classes.tolist())
        write_manifest(
            tmp,
            "cams",
            ids,
            refinement="scg",
            variant=variant,
            source=str(cams),
            model=str(model),
            first_threshold=first_threshold,
            second_threshold=second_threshold,
            fg_threshold=fg_threshold,
            bg_threshold_seeds=bg_threshold_seeds,
            **part.manifest_fields(manifest["ids"]),
        )
    log.info("self-correlation maps (%s) of %d images", variant, len(ids))
