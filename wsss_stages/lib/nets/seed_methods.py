"""Seed methods that change how the classifier is trained or how its maps are read.

- Grad-CAM (Selvaraju et al., 2017): class maps from gradients at a chosen feature layer.
- Puzzle-CAM (Jo & Yu, ICIP 2021): 2×2 tiles through the same encoder, merged back, and an L1
  reconstruction loss between the full-image CAMs and the merged-tile CAMs.
- Hide-and-Seek (Singh & Lee, ICCV 2017): random grid patches hidden during training, filled with
  the dataset's mean colour so that train- and test-time activations have the same statistics.
- Adversarial erasing (AE-PSL, Wei et al., CVPR 2017): regions already mined are erased (set to
  the dataset mean) before the next classifier is trained.

The functions are small and pure so that tests can check them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from wsss_stages.lib.data.artifacts import load_mask, read_manifest


# ============================================================================ dataset mean colour
def dataset_mean_rgb(load_image, ids: Sequence[str], max_images: int = 500) -> tuple[float, float, float]:
    """Mean RGB (0–255) of the training images (at most ``max_images``, evenly spread)."""
    step = max(1, len(ids) // max_images)
    total, count = np.zeros(3), 0
    for image_id in ids[::step]:
        image = load_image(image_id)
        total += image.reshape(-1, 3).sum(0)
        count += image.shape[0] * image.shape[1]
    return tuple(float(v) for v in total / max(count, 1))


def normalised_fill(mean_rgb: Sequence[float], mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """The dataset mean colour in the network's normalised input space, ``[3, 1, 1]``."""
    rgb = torch.tensor(mean_rgb, dtype=torch.float32) / 255.0
    return ((rgb - torch.tensor(mean)) / torch.tensor(std)).view(3, 1, 1)


# ============================================================================ Hide-and-Seek
def hide_patches(
    x: torch.Tensor, patch_size: int, prob: float, fill: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hide each cell of a ``patch_size`` grid of ``x [3, H, W]`` with probability ``prob``.

    Returns the image and the hidden-pixel mask ``[H, W]``; pixels outside hidden cells are untouched.
    """
    _, h, w = x.shape
    rows, cols = -(-h // patch_size), -(-w // patch_size)
    hidden_cells = torch.from_numpy(rng.random((rows, cols)) < prob)
    mask = hidden_cells.repeat_interleave(patch_size, 0).repeat_interleave(patch_size, 1)[:h, :w]
    return torch.where(mask, fill.to(x.dtype), x), mask


class HideAndSeek:
    """Wraps an augmentation: after it, hide grid patches (size drawn from ``patch_sizes`` per image)."""

    def __init__(self, augment, patch_sizes: Sequence[int], prob: float, fill: torch.Tensor, seed: int = 0):
        self.augment, self.patch_sizes, self.prob, self.fill, self.seed = augment, list(patch_sizes), prob, fill, seed

    def __call__(self, image, maps, epoch: int, index: int):
        x, maps = self.augment(image, maps, epoch, index)
        rng = np.random.default_rng([self.seed, epoch, index, 7])
        size = int(self.patch_sizes[rng.integers(len(self.patch_sizes))])
        if size:  # 0: this image is shown whole (the authors' grid sizes include 0)
            x, _ = hide_patches(x, size, self.prob, self.fill, rng)
        return x, maps


# ============================================================================ Puzzle-CAM
def tile_image(x: torch.Tensor, n: int = 2) -> torch.Tensor:
    """``[B, C, H, W]`` → ``[n²B, C, H/n, W/n]``, tiles in row-major order (tile-major, then batch)."""
    b, c, h, w = x.shape
    if h % n or w % n:
        raise ValueError(f"image {h}x{w} does not split into {n}x{n} equal tiles")
    tiles = x.view(b, c, n, h // n, n, w // n).permute(2, 4, 0, 1, 3, 5)
    return tiles.reshape(n * n * b, c, h // n, w // n)


def merge_tiles(tiles: torch.Tensor, n: int = 2) -> torch.Tensor:
    """Inverse of :func:`tile_image` on any ``[n²B, C, h, w]`` (e.g. the tiles' feature maps)."""
    nb, c, h, w = tiles.shape
    b = nb // (n * n)
    grid = tiles.view(n, n, b, c, h, w).permute(2, 3, 0, 4, 1, 5)
    return grid.reshape(b, c, n * h, n * w)


def puzzle_alpha(progress: float, target: float, schedule: float = 0.5) -> float:
    """α ramps linearly from 0 to ``target`` over the first ``schedule`` of training, then stays
    (``schedule`` 0: ``target`` from the start), as the authors' ``alpha_schedule``."""
    if schedule <= 0:
        return target
    return target * min(1.0, max(0.0, progress) / schedule)


def max_normalised(maps: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """ReLU, then each map ``[B, C, h, w]`` divided by its own maximum: CAMs in [0, 1] whatever the
    magnitude of the backbone's class maps (the authors' ``make_cam``, their ``level cam``)."""
    maps = F.relu(maps)
    return F.relu(maps - eps) / (maps.flatten(2).max(-1).values[:, :, None, None] + eps)


def puzzle_losses(
    model,
    x: torch.Tensor,
    labels: torch.Tensor,
    n: int = 2,
    level: str = "feature",
    distance: str = "l1",
    reduction: str = "masking",
) -> dict[str, torch.Tensor]:
    """L_cls (full image), L_p-cls (merged tiles) and L_re (between the full image's and the merged
    tiles' class maps), with the authors' options:

    - ``level``: "feature" compares the raw class maps (their default), "cam" the max-normalised
      CAMs of :func:`max_normalised`, which makes L_re independent of the maps' magnitude;
    - ``distance``: "l1" or "l2", element-wise;
    - ``reduction``: "masking" (maps of the image's classes, averaged over every element B·C·H·W,
      as their best setting), "selection" (per image, the mean over its classes' maps; then the
      batch mean) or "none" (every map).
    """
    full = model.class_maps(x)
    merged = model.classifier(merge_tiles(model.backbone(tile_image(x, n))["high"], n))
    if merged.shape[-2:] != full.shape[-2:]:  # odd feature sizes: compare on the full image's grid
        merged = F.interpolate(merged, size=full.shape[-2:], mode="bilinear", align_corners=False)
    terms = {
        "cls": F.multilabel_soft_margin_loss(full.mean((2, 3)), labels),
        "pcls": F.multilabel_soft_margin_loss(merged.mean((2, 3)), labels),
    }
    a, b = (max_normalised(full), max_normalised(merged)) if level == "cam" else (full, merged)
    gap = (a - b).abs() if distance == "l1" else (a - b) ** 2
    if reduction == "masking":
        # averaged over every element, not over the class pixels: that would make α ~C/k times
        # stronger and, measured on VOC with raw lite0 maps, collapses the CAMs (seed mIoU 3.2)
        terms["re"] = (gap * labels[:, :, None, None]).mean()
    elif reduction == "selection":
        per_map = gap.mean((2, 3))
        per_image = (per_map * labels).sum(1) / labels.sum(1).clamp_min(1)
        terms["re"] = per_image.mean()
    else:
        terms["re"] = gap.mean()
    return terms


# ============================================================================ Grad-CAM
def gradcam_maps(model, x: torch.Tensor, classes: Sequence[int], layer: str = "high") -> torch.Tensor:
    """Grad-CAM ``[B, len(classes), h, w]`` at backbone feature ``layer`` ("high" or "low").

    For class c: α_k = spatial mean of ∂y_c/∂A_k, map = ReLU(Σ_k α_k A_k), where y_c is the
    classifier's score. Gradients of different images never mix (BatchNorm is in eval mode), so
    one backward per class serves the whole batch. With a GAP-linear head and layer "high" this
    equals CAM up to a constant factor (1 / number of feature pixels).
    """
    if layer not in ("high", "low"):
        raise ValueError(f"Grad-CAM layer must be 'high' or 'low', not {layer!r}")
    with torch.enable_grad():
        if layer == "high":  # only the head needs differentiating: no graph through the backbone
            with torch.no_grad():
                high = model.backbone(x)["high"]
            feature = high.detach().requires_grad_(True)
            scores = model.classifier(feature).mean((2, 3))
        else:
            feats = model.backbone(x)
            feature = feats["low"]
            scores = model.classifier(feats["high"]).mean((2, 3))
        maps = []
        for i, c in enumerate(classes):
            (grad,) = torch.autograd.grad(scores[:, c].sum(), feature, retain_graph=i + 1 < len(classes))
            weights = grad.mean((2, 3), keepdim=True)
            maps.append(F.relu((weights * feature).sum(1)).detach())
    return torch.stack(maps, 1)


# ============================================================================ adversarial erasing
def erase(image: np.ndarray, mined: np.ndarray, mean_rgb: Sequence[float]) -> np.ndarray:
    """Copy of ``image [H, W, 3]`` with the ``mined`` pixels set to the dataset mean colour."""
    out = image.copy()
    out[mined] = np.round(np.asarray(mean_rgb)).astype(np.uint8)
    return out


def erasing_loader(load_image, masks: Path | None, mean_rgb: Sequence[float]):
    """``load(image_id)`` that sets the mined pixels (nonzero in ``masks/<id>.png``) to the mean colour;
    images not in the masks folder's manifest, or every image when ``masks`` is None, load unchanged."""
    mined = set(read_manifest(masks, "masks")["ids"]) if masks else set()

    def load(image_id: str) -> np.ndarray:
        image = load_image(image_id)
        return erase(image, load_mask(Path(masks) / f"{image_id}.png") > 0, mean_rgb) if image_id in mined else image

    return load


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes (with at least one positive) of the average precision of ``scores [N, C]``."""
    aps = []
    for c in range(scores.shape[1]):
        positives = targets[:, c] > 0
        if not positives.any():
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        hits = positives[order]
        precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
        aps.append(float((precision * hits).sum() / hits.sum()))
    return 100.0 * float(np.mean(aps)) if aps else 0.0
