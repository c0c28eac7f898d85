"""Why does multi-scale Grad-CAM score below CAM with the same classifier? The scale weighting, measured.

With a GAP-linear head, Grad-CAM at the last backbone stage is, at each inference scale s, CAM_s
divided by n_s, the number of feature pixels at that scale (the gradient of a spatial mean). Summed
over scales 1.0/0.5/1.5/2.0, the 0.5 scale then weighs 16x more than the 2.0 scale, relative to
CAM. This script computes, for one classifier and the images of a split with masks, the per-scale
maps once and scores (background-threshold sweep, best mIoU) these sums of them:

- ``cam``: sum of CAM_s (what make_cams writes);
- ``cam / n_s``: sum of CAM_s / n_s, the predicted Grad-CAM;
- ``gradcam``: sum of Grad-CAM_s, computed with gradients as make_cams does;
- ``cam, scales normalised`` and ``gradcam, scales normalised``: each scale's map divided by its
  own maximum before the sum, which makes the two methods equal.

    python benchmarks/gradcam_scales.py results/voc12_cpu/train_classifier/model.pt \
        --data-root ../shared/data/voc2012-subset --split train
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.evaluation import ids_with_masks
from wsss_stages.lib.evaluation.metrics import confusion_matrix, scores_from_confusion
from wsss_stages.lib.evaluation.reports import markdown_table
from wsss_stages.lib.evaluation.thresholds import strongest as cam_labels
from wsss_stages.lib.nets.cams import (
    CPU_MAX_PIXELS,
    batches_by_size,
    class_maps_multiscale,
    gradcam_function,
    normalise_cams,
)
from wsss_stages.lib.nets.models import load_model, to_tensor
from wsss_stages.lib.nets.runtime import autocast, for_inference, inference_dtype, pick_device, progress, set_threads

VARIANTS = ("cam", "cam / n_s", "gradcam", "cam, scales normalised", "gradcam, scales normalised")


def per_scale_maps(net, images: torch.Tensor, scales, maps_fn, max_pixels) -> torch.Tensor:
    """``[S, B, C, H, W]``: one entry per scale (flips summed, upsampled to the input size)."""
    return torch.stack([class_maps_multiscale(net, images, [scale], True, max_pixels, maps_fn) for scale in scales])


def sizes_per_scale(net, images: torch.Tensor, scales) -> list[int]:
    """Feature pixels of one image at each scale (what Grad-CAM's spatial mean divides by)."""
    sizes = []
    with torch.no_grad():
        for scale in scales:
            x = torch.nn.functional.interpolate(
                images[:1], scale_factor=scale, mode="bilinear", align_corners=False, recompute_scale_factor=False
            )
            h, w = net.class_maps(x).shape[-2:]
            sizes.append(h * w)
    return sizes


def combine(maps: torch.Tensor, weights: torch.Tensor | None, per_scale_max: bool) -> torch.Tensor:
    """Sum ``[S, K, H, W]`` over scales, each scale weighted or divided by its own per-class maximum."""
    if per_scale_max:
        maps = maps / maps.flatten(2).max(-1).values.clamp_min(1e-5)[..., None, None]
    if weights is not None:
        maps = maps * weights[:, None, None, None]
    return normalise_cams(maps.sum(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="classifier weights from train_classifier")
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--split", default="train", help="split with masks (tune on train, never on val)")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.5, 1.5, 2.0])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[round(0.05 * i, 2) for i in range(1, 13)])
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    set_threads(args.threads)
    device = pick_device("auto")
    net, meta = load_model(args.model, ("classifier",))
    net = for_inference(net, device)
    dataset = VOCDataset(args.data_root)
    ids = [i for i in ids_with_masks(dataset, args.split) if len(dataset.labels(i))][: args.limit]
    max_pixels = None if device.type == "cuda" else CPU_MAX_PIXELS
    conf = {v: np.zeros((len(args.thresholds), dataset.num_classes, dataset.num_classes), np.int64) for v in VARIANTS}
    with torch.no_grad(), autocast(device, inference_dtype("auto", device)):
        for batch_ids in progress(list(batches_by_size(dataset, ids, 4)), desc="gradcam_scales", unit="batch"):
            images = torch.stack([to_tensor(dataset.load_image(i), meta["mean"], meta["std"]) for i in batch_ids]).to(
                device
            )
            wanted = [c - 1 for i in batch_ids for c in dataset.labels(i)]
            cams = per_scale_maps(net, images, args.scales, net.class_maps, max_pixels)
            grads = per_scale_maps(net, images, args.scales, gradcam_function(net, "high", wanted), max_pixels)
            inverse = 1.0 / torch.tensor(
                sizes_per_scale(net, images, args.scales), dtype=torch.float32, device=cams.device
            )
            for b, image_id in enumerate(batch_ids):
                classes = dataset.labels(image_id)
                pick = torch.as_tensor(classes - 1, device=cams.device)
                c, g = cams[:, b][:, pick], grads[:, b][:, pick]
                maps = {
                    "cam": combine(c, None, False),
                    "cam / n_s": combine(c, inverse, False),
                    "gradcam": combine(g, None, False),
                    "cam, scales normalised": combine(c, None, True),
                    "gradcam, scales normalised": combine(g, None, True),
                }
                gt = dataset.load_mask(image_id)
                for name, m in maps.items():
                    label, value = cam_labels(m.cpu().numpy(), classes)
                    for t, threshold in enumerate(args.thresholds):
                        conf[name][t] += confusion_matrix(
                            gt, np.where(value > threshold, label, 0), dataset.num_classes
                        )

    print(f"\nSeed mIoU on {len(ids)} images of '{args.split}', best background threshold ({args.model}):\n")
    cells = []
    for name in VARIANTS:
        mious = [scores_from_confusion(c, dataset.class_names)["miou"] for c in conf[name]]
        best = int(np.nanargmax(mious))
        cells.append([name, f"{mious[best]:.2f}", f"{args.thresholds[best]:.2f}"])
    print("\n".join(markdown_table(["maps", "best mIoU", "threshold"], cells, right={"best mIoU", "threshold"})))


if __name__ == "__main__":
    main()
