"""Stage random_walk: random-walk propagation of CAMs on learned affinities (memory-bounded).

Per image: affinities at the network's stride → sparse transition matrix T (affinity^beta within
``radius``, row-normalised) → maps at that stride propagated 2^exp_times steps → upsampled.

``method: irn`` (irn's make_sem_seg_labels with its class-boundary network): affinities are 1 − the
largest boundary on the path between two pixels, the CAMs are multiplied by (1 − boundary) before
the walk, at the boundary map's stride 4, and divided by their joint maximum after it. The result
is written as CAMs (same format as ``make_cams``): irn then prepends a constant background score
(``sem_seg_bg_thres`` 0.25) and takes the argmax, which is exactly what ``make_pseudo_masks`` does
with a CAM folder and a background threshold — so the threshold can be swept (``eval_cams``) and
changed without walking again.
``method: psa`` (psa's infer_aff) walks a background channel (1 − max CAM)^bg_power together with the
CAMs (β 8), so the background spreads and competes like a class; the argmax after the walk is the
label, and the maps are written as score maps (background first, normalised per pixel).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import (
    atomic_dir,
    load_cams,
    load_mask,
    read_manifest,
    save_cams,
    save_scores,
    write_json,
    write_manifest,
)
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.figures import colour_labels, save_panel
from wsss_stages.lib.evaluation.stats import affinity_report
from wsss_stages.lib.nets.models import load_model, to_tensor
from wsss_stages.lib.nets.runtime import pick_device, progress, set_threads
from wsss_stages.lib.plan.shards import Shard
from wsss_stages.refiners.random_walk.affinity import (
    boundary_affinity,
    build_affinitynet,
    embedding_affinity,
    pair_affinity_histograms,
    transition_from,
    transition_matrix,
)
from wsss_stages.refiners.random_walk.affinity import random_walk as propagate

log = logging.getLogger(__name__)


def walk_with_boundary(
    boundary: torch.Tensor, cams: torch.Tensor, size: tuple[int, int], *, beta: float, exp_times: int, radius: int
) -> torch.Tensor:
    """irn's walk: the CAMs at the boundary map's stride, multiplied by (1 − boundary), walked on the
    path-max affinities, upsampled and divided by their joint maximum (CAM format)."""
    small = F.adaptive_avg_pool2d(cams[None], boundary.shape[-2:])[0] * (1.0 - boundary)
    transition = transition_from(
        boundary_affinity(boundary), *boundary.shape[-2:], radius=radius, beta=beta, device=boundary.device
    )
    walked = propagate(small, transition, 2**exp_times)
    up = F.interpolate(walked[None], size=size, mode="bilinear", align_corners=False)[0].clamp_min(0)
    return up / up.max().clamp_min(1e-5)


def walk_with_background(
    embedding: torch.Tensor,
    cams: torch.Tensor,
    size: tuple[int, int],
    *,
    beta: float,
    exp_times: int,
    radius: int,
    bg_power: float,
) -> torch.Tensor:
    """psa's walk: score maps ``[1 + K, H, W]`` (background first, summing to 1 per pixel) from the CAMs
    ``[K, H, W]`` and a background channel (1 − max CAM)^bg_power walked together; argmax = class."""
    background = (
        (1.0 - cams.max(0, keepdim=True).values).clamp_min(0) ** bg_power
        if cams.shape[0]
        else torch.ones_like(cams[:1])
    )
    small = F.adaptive_avg_pool2d(torch.cat([background, cams])[None], embedding.shape[-2:])[0]
    walked = propagate(small, transition_matrix(embedding, radius, beta), 2**exp_times)
    up = F.interpolate(walked[None], size=size, mode="bilinear", align_corners=False)[0].clamp_min(0)
    return up / up.sum(0, keepdim=True).clamp_min(1e-8)


def pair_map(affinity, size: tuple[int, int]) -> torch.Tensor:
    """1 − the mean affinity of each pixel to its right and lower neighbours: where the walk is cut."""
    h, w = size
    right, down = torch.zeros(h, w), torch.zeros(h, w)
    right[:, : w - 1] = affinity(0, 1).cpu().float()
    down[: h - 1, :] = affinity(1, 0).cpu().float()
    return 1.0 - (right + down) / 2


def save_figure(path: Path, image_id: str, image, cam, labels, cut, walked, truth, method: str) -> None:
    """image | strongest CAM | affinity labels | boundary (or 1 − affinity) | walked result | ground truth."""
    strongest = walked[1:].max(0) if method == "psa" else walked.max(0)
    save_panel(
        path,
        f"{image_id}: random walk ({method})",
        [
            ("image", image),
            ("strongest CAM", cam.max(0) if cam.shape[0] else np.zeros(image.shape[:2])),
            ("affinity labels (white: unsure)", colour_labels(labels)),
            ("boundary" if method == "irn" else "1 - affinity to neighbours", cut),
            ("walked, strongest class" if method != "psa" else "walked, strongest class (bg walked)", strongest),
            ("ground truth", colour_labels(truth)),
        ],
    )


def random_walk(
    *,
    model: Path,
    cams: Path,
    labels: Path,
    data_root: Path,
    out_dir: Path,
    out_diagnostics: Path,
    out_figures: Path,
    method: str,
    beta: float,
    exp_times: int,
    radius: int,
    bg_power: float | None,
    split: str,
    mask_folder: str | None,
    figures: int,
    device: str,
    shard: str = "0/1",
    threads: int = 1,
) -> None:
    """Refine every image of a CAM folder by a random walk on AffinityNet affinities.

    Args:
        model: AffinityNet weights from train_affinitynet
        cams: CAM-format maps to walk (the seeds, or another refiner's)
        labels: the affinity labels the network learnt from (for the figures)
        data_root: VOC2012-layout root
        out_dir: output folder of <id>.npz maps: walked CAMs (irn: CAM format, the background threshold is applied
            downstream) or score maps with a walked background channel (psa)
        method: irn (boundary network, path-max affinities, CAMs times 1 - boundary) or psa (AffinityNet affinities,
            a walked background channel)
        beta: power applied to affinities (irn 10, psa 8)
        exp_times: the walk takes 2^exp_times steps (8 in both)
        radius: neighbourhood radius in feature pixels (5 in both)
        bg_power: psa's power of the background channel (1 - max CAM)^bg_power (16); None for irn
        out_diagnostics: JSON: ROC-AUC of the learned affinities for ground-truth same- vs different-class pairs
            within the radius, and their mean affinities before and after the power β, on the masks of split
        out_figures: folder of <id>.png panels for the first `figures` scored images
        split: split whose masks score the affinities (the seed split)
        mask_folder: SegmentationClass or SegmentationClassAug (None: whichever exists)
        figures: how many scored images get a figure
        device: auto, cpu or cuda
        shard: k/N, the slice of the images to process (0/1, the default: all; see lib/plan/shards.py)
        threads: CPU threads to use
    """
    if method not in ("irn", "psa") or (method == "psa" and bg_power is None):
        raise WsssError(f"random_walk.method must be irn, or psa with a bg_power; got {method!r}, {bg_power!r}")
    set_threads(threads)
    device = pick_device(device)
    net, meta = load_model(model, ("boundarynet",) if method == "irn" else ("affinitynet",), build_affinitynet)
    net.to(device).eval()
    dataset = VOCDataset(data_root, mask_folder)
    all_ids = read_manifest(cams, "cams")["ids"]
    scored = {i for i in dataset.split_ids(split) if dataset.has_mask(i)}
    pictured = set([i for i in all_ids if i in scored][:figures])
    part = Shard.parse(shard)
    ids = part.take(all_ids)
    same, diff = torch.zeros(1000, dtype=torch.float64), torch.zeros(1000, dtype=torch.float64)
    seconds = []
    with atomic_dir(out_dir) as tmp, atomic_dir(out_figures) as pictures, torch.inference_mode():
        for image_id in progress(ids, desc="random_walk"):
            start = time.perf_counter()
            image = dataset.load_image(image_id)
            cam, classes = load_cams(Path(cams) / f"{image_id}.npz")
            x = to_tensor(image, meta["mean"], meta["std"])[None].to(device)
            if method == "irn":
                boundary = net.boundary(x).float()
                grid, affinity = boundary.shape[-2:], boundary_affinity(boundary)
            else:
                embedding = net(x)[0].float()
                grid, affinity = embedding.shape[-2:], embedding_affinity(embedding)
            if image_id in scored:
                truth = torch.from_numpy(dataset.load_mask(image_id))[None, None].float()
                truth = F.interpolate(truth, size=grid, mode="nearest")[0, 0].to(torch.uint8).to(device)
                counts = pair_affinity_histograms(affinity, truth, radius)
                same, diff = same + counts[0], diff + counts[1]
            maps = torch.from_numpy(cam).to(device)
            if method == "irn":
                walked = walk_with_boundary(
                    boundary, maps, image.shape[:2], beta=beta, exp_times=exp_times, radius=radius
                )
                save_cams(tmp / f"{image_id}.npz", walked.cpu().numpy(), classes.tolist())
            else:
                walked = walk_with_background(
                    embedding, maps, image.shape[:2], beta=beta, exp_times=exp_times, radius=radius, bg_power=bg_power
                )
                save_scores(tmp / f"{image_id}.npz", walked.cpu().numpy(), [0, *classes.tolist()])
            if image_id in pictured:
                cut = boundary.cpu().float() if method == "irn" else pair_map(affinity, grid)
                save_figure(
                    pictures / f"{image_id}.png",
                    image_id,
                    image,
                    cam,
                    load_mask(Path(labels) / f"{image_id}.png"),
                    cut.numpy(),
                    walked.cpu().numpy(),
                    dataset.load_mask(image_id),
                    method,
                )
            seconds.append(time.perf_counter() - start)
        write_manifest(
            tmp,
            "scores" if method == "psa" else "cams",
            ids,
            refinement="rw",
            method=method,
            beta=beta,
            exp_times=exp_times,
            radius=radius,
            bg_power=bg_power,
            seconds_per_image=float(np.mean(seconds)) if seconds else None,
            **part.manifest_fields(all_ids),
        )
    report = affinity_report(same.numpy(), diff.numpy(), beta, len(scored & set(ids)), radius)
    write_json(out_diagnostics, report)
    log.info(
        "random walk on %d images, %.3f s per image; affinity ROC-AUC %s on %d images of '%s'",
        len(ids),
        float(np.mean(seconds)) if seconds else 0.0,
        report["roc_auc"],
        report["images"],
        split,
    )
