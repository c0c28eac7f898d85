"""RecurSeed with EdgePredictMix (Jo, Yu & Kim): one network, trained single-stage (see plugin.py).

Each step, for a batch of crops ``x`` with labels ``Y`` and with no gradient through the targets:

- ``M_cam``: the CAMs of the labelled classes, each max-normalised;
- ``M_rs = PAMR(SCG(M_cam))``: SCG on the backbone's own levels (``refiners/scg/scg.py``), then PAMR on
  the crop at 1/4 of its resolution (``refiners/pamr/pamr.py``), each map divided by its maximum like
  M_cam (PAMR flattens peaks, and L_rec compares M_rs with max-normalised CAMs), the recursion's target;
- ``M_seg = CF(M_rs)``: the strongest class where its score exceeds δ_fg, background below δ_bg,
  ignored (255) between.

L = L_cls (multi-label soft margin of the pooled maps) + L_seg (cross-entropy of the decoder on
M_seg) + L_rec (L1 between M_cam, with gradient, and M_rs), weights 1. After the warm-up a second,
mixed batch adds its L_seg and L_rec: each crop i is pasted onto a partner j ≠ i through a mask, and
the image, M_seg and M_rs are mixed by the same mask. EdgePredictMix takes the mask and M_seg from EP
(:func:`edge_predict`) of the decoder's PAMR-refined softmax; CutMix pastes a random box, ClassMix
the pixels of half of i's classes in M_seg.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from wsss_stages.lib.data.artifacts import IGNORE
from wsss_stages.refiners.pamr.pamr import DILATIONS, pamr_at_stride
from wsss_stages.refiners.scg.scg import high_order_correlation, scg_maps

MIXES = ("none", "epm", "cutmix", "classmix")


# ============================================================================ targets
def normalised_cams(maps: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """ReLU'd maps ``[B, C, h, w]`` of the labelled classes, each divided by its maximum (others 0)."""
    cams = F.relu(maps.float()) * labels[:, :, None, None]
    return cams / cams.flatten(2).max(-1).values.clamp_min(1e-5)[:, :, None, None]


def recursive_seeds(
    cams: torch.Tensor,
    levels: list[torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    scg: dict,
    pamr: dict,
) -> torch.Tensor:
    """M_rs ``[B, C, H, W]`` at the crop's size: SCG of each image's labelled CAMs ``[B, C, h, w]`` on its
    backbone ``levels`` (``[B, D_l, h_l, w_l]`` each), then PAMR with the ``images`` ``[B, 3, H, W]`` in [0, 1]."""
    out = torch.zeros(cams.shape[0], cams.shape[1], *images.shape[-2:])
    grid = tuple(cams.shape[-2:])
    for b in range(cams.shape[0]):
        present = labels[b].nonzero().flatten()
        if not len(present):
            continue
        hsc = high_order_correlation(
            [level[b].float().cpu() for level in levels],
            grid,
            scg["first_threshold"],
            scg["second_threshold"],
            scg["variant"],
        )
        seeds = scg_maps(hsc, cams[b, present].float().cpu(), scg["fg"], scg["bg"], scg["variant"])
        full = F.interpolate(seeds[None], size=images.shape[-2:], mode="bilinear", align_corners=False)[0]
        refined = pamr_at_stride(images[b].float().cpu(), full, pamr["stride"], pamr["iterations"], DILATIONS)
        # PAMR averages each peak with its neighbourhood; M_rs is the next step's M_cam, so it peaks at 1 as well
        out[b, present] = refined.clamp_min(0) / refined.flatten(1).max(1).values.clamp_min(1e-5)[:, None, None]
    return out.to(cams.device)


def confidence_split(scores: torch.Tensor, delta_fg: float, delta_bg: float) -> torch.Tensor:
    """CF: labels ``[B, H, W]`` from class scores ``[B, C, H, W]``: 1 + the strongest class where its score
    exceeds ``delta_fg``, background (0) where it is below ``delta_bg``, ignore (255) between."""
    value, index = scores.max(1)
    labels = torch.full_like(index, IGNORE)
    labels[value > delta_fg] = index[value > delta_fg] + 1
    labels[value < delta_bg] = 0
    return labels


# ============================================================================ EdgePredict
def edge_predict(probs: np.ndarray, canny: tuple[int, int] = (50, 100)) -> tuple[np.ndarray, np.ndarray]:
    """EP of one image's per-pixel class probabilities ``[K, H, W]`` (background first).

    Edges: Canny on each class's probability map (relative differences of neighbouring values), their
    union. Super-pixels: the connected components of the pixels off every edge. Each super-pixel keeps
    only its dominant class (the largest mean probability, an absolute value), at that mean; an edge
    pixel keeps its own strongest class at its own probability. Returns (refined ``[K, H, W]``,
    super-pixel index ``[H, W]``, 0 on edges).
    """
    import cv2

    k, h, w = probs.shape
    edges = np.zeros((h, w), bool)
    for channel in probs:
        edges |= cv2.Canny(np.round(np.clip(channel, 0, 1) * 255).astype(np.uint8), *canny) > 0
    count, pieces = cv2.connectedComponents((~edges).astype(np.uint8), connectivity=4)
    flat = pieces.ravel()
    sizes = np.bincount(flat, minlength=count).clip(min=1)
    means = np.stack([np.bincount(flat, weights=p.ravel(), minlength=count) for p in probs]) / sizes
    dominant = means.argmax(0)
    refined = np.zeros_like(probs, dtype=np.float32)
    rows, cols = np.indices((h, w))
    cls = dominant[pieces]
    refined[cls, rows, cols] = means[cls, pieces]
    on_edge = edges
    own = probs.argmax(0)
    refined[:, on_edge] = 0
    refined[own[on_edge], rows[on_edge], cols[on_edge]] = probs[own[on_edge], rows[on_edge], cols[on_edge]]
    return refined, np.where(edges, 0, pieces)


def labelled_probs(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The softmax ``[B, C + 1, H, W]`` kept to the background and each image's labelled classes, renormalised."""
    keep = torch.cat([torch.ones_like(labels[:, :1]), labels], 1)[:, :, None, None]
    kept = probs * keep
    return kept / kept.sum(1, keepdim=True).clamp_min(1e-8)


def ep_targets(
    probs: torch.Tensor, images: torch.Tensor, pamr: dict, delta_fg: float, canny: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """EP of the decoder's softmax ``[B, K, H, W]`` after PAMR: (foreground masks ``[B, H, W]``, the union
    of the classes above ``delta_fg``; labels ``[B, H, W]``, each pixel's class above ``delta_fg``, else 255)."""
    masks, labels = [], []
    for b in range(probs.shape[0]):
        refined = pamr_at_stride(
            images[b].float().cpu(), probs[b].float().cpu(), pamr["stride"], pamr["iterations"], DILATIONS
        )
        ep, _ = edge_predict(refined.numpy(), canny)
        ep = torch.from_numpy(ep)
        value, index = ep.max(0)
        label = torch.where(value > delta_fg, index, torch.full_like(index, IGNORE))
        masks.append((ep[1:] > delta_fg).any(0))
        labels.append(label)
    return torch.stack(masks).to(probs.device), torch.stack(labels).to(probs.device)


# ============================================================================ mixing
def partners(batch: int, rng: np.random.Generator) -> torch.Tensor:
    """For each i a partner j drawn uniformly from the other images of the batch."""
    if batch < 2:
        return torch.zeros(batch, dtype=torch.long)
    shift = rng.integers(1, batch, size=batch)
    return torch.from_numpy((np.arange(batch) + shift) % batch).long()


def mix_batch(
    x: torch.Tensor, seg: torch.Tensor, rs: torch.Tensor, masks: torch.Tensor, partner: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """I_{i→j} = I_i ⊙ M_i + I_j ⊙ (1 − M_i), and M_seg, M_rs mixed by the same masks ``[B, H, W]``."""
    m = masks.bool()
    x_mix = torch.where(m[:, None], x, x[partner])
    seg_mix = torch.where(m, seg, seg[partner])
    rs_mix = torch.where(m[:, None], rs, rs[partner])
    return x_mix, seg_mix, rs_mix


def cutmix_masks(batch: int, size: tuple[int, int], rng: np.random.Generator) -> torch.Tensor:
    """CutMix's boxes: area ratio ~ U(0, 1), centred uniformly, clipped to the crop."""
    h, w = size
    masks = torch.zeros(batch, h, w, dtype=torch.bool)
    for b in range(batch):
        ratio = math.sqrt(float(rng.uniform()))
        bh, bw = int(round(h * ratio)), int(round(w * ratio))
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        masks[b, max(cy - bh // 2, 0) : min(cy + bh // 2, h), max(cx - bw // 2, 0) : min(cx + bw // 2, w)] = True
    return masks


def classmix_masks(seg: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """ClassMix's masks: the pixels of a random half (at least one) of the classes present in each M_seg."""
    masks = torch.zeros(seg.shape, dtype=torch.bool, device=seg.device)
    for b in range(seg.shape[0]):
        present = [c for c in seg[b].unique().tolist() if c not in (0, IGNORE)]
        if not present:
            continue
        chosen = rng.choice(present, size=max(1, len(present) // 2), replace=False)
        masks[b] = torch.isin(seg[b], torch.as_tensor(chosen, device=seg.device))
    return masks


def mixing_on(progress: float, warmup: float) -> bool:
    """Mixing starts once a ``warmup`` share of the training steps is done."""
    return progress >= warmup - 1e-12


# ============================================================================ the method
def segmentation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the pixels that are not ignored (0, not NaN, when every pixel is)."""
    per_pixel = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE, reduction="none")
    return per_pixel.sum() / (labels != IGNORE).sum().clamp_min(1)


def reconstruction_loss(cams: torch.Tensor, rs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L1 between the normalised CAMs ``[B, C, h, w]`` and M_rs pooled to their grid, over the labelled maps."""
    target = F.adaptive_avg_pool2d(rs, cams.shape[-2:])
    per_map = (cams - target).abs().mean((2, 3))
    return (per_map * labels).sum() / labels.sum().clamp_min(1)


class RecurSeed:
    """The training of ``train_classifier.method: recurseed`` (options: its config section)."""

    def __init__(self, options: dict, context) -> None:
        self.options, self.context = options, context
        self.mean = torch.tensor(context.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(context.std).view(1, 3, 1, 1)
        self.watched: list[tuple[int, int, int]] = []  # per step: M_seg's decided, right and labelled pixels

    def build(self, backbone, num_classes: int):
        from wsss_stages.lib.nets.models import RecurSeedNet

        return RecurSeedNet(backbone, num_classes, self.options["decoder_width"])

    def targets(self, image_id: str) -> dict:
        """With ``monitor``: the image's ground-truth mask (all ignore where it has none), cropped with it."""
        if not self.options["monitor"]:
            return {}
        dataset = self.context.dataset
        if dataset.has_mask(image_id):
            return {"gt": dataset.load_mask(image_id)}
        return {"gt": np.full(dataset.image_size(image_id), IGNORE, np.uint8)}

    def _watch(self, seg: torch.Tensor, gt: torch.Tensor | None) -> None:
        """Count M_seg against the masks (diagnostics only; nothing trains on them)."""
        if gt is None:
            return
        labelled = gt.cpu() != IGNORE
        decided = labelled & (seg.cpu() != IGNORE)
        self.watched.append((int(decided.sum()), int((decided & (seg.cpu() == gt.cpu())).sum()), int(labelled.sum())))

    def report(self, epochs: int) -> dict:
        """Per epoch, M_seg's precision (right labels among the pixels it decides) and coverage (share of
        the labelled pixels it decides), in %, against the ground truth (``monitor`` only)."""
        if not self.watched or not epochs:
            return {}
        per_epoch = max(1, len(self.watched) // epochs)
        chunks = [self.watched[i : i + per_epoch] for i in range(0, per_epoch * epochs, per_epoch)]
        sums = [np.sum(chunk, axis=0) for chunk in chunks if chunk]
        return {
            "mseg_precision": [100.0 * right / max(decided, 1) for decided, right, _ in sums],
            "mseg_coverage": [100.0 * decided / max(labelled, 1) for decided, _, labelled in sums],
        }

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """The crops in [0, 1] (PAMR's colour affinities)."""
        return (x.float().cpu() * self.std + self.mean).clamp(0, 1)

    def loss(self, model, x, targets: dict, progress: float):
        o = self.options
        labels = targets["labels"].float()
        maps, logits, feats = model.maps_and_logits(x)
        cams = normalised_cams(maps, labels)
        images = self.images(x)
        with torch.no_grad():
            levels = [feats["low"].detach(), feats["high"].detach()]
            rs = recursive_seeds(cams.detach(), levels, images, labels, o["scg"], o["pamr"])
            seg = confidence_split(rs, o["delta_fg"], o["delta_bg"])
            self._watch(seg, targets.get("gt"))
        total = (
            F.multilabel_soft_margin_loss(maps.float().mean((2, 3)), labels)
            + segmentation_loss(logits, seg)
            + reconstruction_loss(cams, rs, labels)
        )
        if o["mix"] != "none" and mixing_on(progress, o["warmup"]) and x.shape[0] > 1:
            total = total + self.mixed_loss(model, x, images, logits.detach(), seg, rs, labels, progress)
        return total

    def mixed_loss(self, model, x, images, logits, seg, rs, labels, progress: float):
        o = self.options
        rng = np.random.default_rng([self.context.seed, int(round(progress * 1e9))])
        with torch.no_grad():
            if o["mix"] == "epm":
                probs = labelled_probs(logits.float().softmax(1), labels)
                masks, seg = ep_targets(probs, images, o["pamr"], o["delta_fg"], tuple(o["canny"]))
            elif o["mix"] == "cutmix":
                masks = cutmix_masks(x.shape[0], tuple(x.shape[-2:]), rng).to(x.device)
            else:
                masks = classmix_masks(seg, rng)
            partner = partners(x.shape[0], rng).to(x.device)
            x_mix, seg_mix, rs_mix = mix_batch(x, seg, rs, masks, partner)
            labels_mix = torch.maximum(labels, labels[partner])
        maps, mixed_logits, _ = model.maps_and_logits(x_mix.contiguous(memory_format=torch.channels_last))
        return segmentation_loss(mixed_logits, seg_mix) + reconstruction_loss(
            normalised_cams(maps, labels_mix), rs_mix, labels_mix
        )
