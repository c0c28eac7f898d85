"""SEC (Kolesnikov & Lampert, ECCV 2016): seed, expand and constrain, the pieces shared by its stages.

- **Cues** (:func:`localization_cues`): foreground of class c where its CAM > 0.2 · its maximum
  (the reference's foreground cue); background on the least salient 10 % of the pixels. The
  reference ranks a gradient saliency map of a classifier; we rank the data tree's saliency maps
  (an accepted substitute), ties (saliency maps are often exactly 0 over large areas) broken by
  the weaker largest CAM. Overlaps, which the reference code leaves to its precomputed cue file:
  between foreground classes the smaller cue region wins (a small object usually lies in front of
  a large one); a pixel that is both a foreground and a background cue gets no cue.
- **Losses** (:func:`sec_losses`), weight 1 each as in the reference's ``train.prototxt``, on a
  grid at 1/8 of the crop (the reference's 41 × 41 scores for 321-px images):
  seeding = −Σ_cues log f / (number of cue cells), averaged over the images;
  expansion = −mean over present classes of log GWRP(f_c, d+) − mean over absent classes of
  log(1 − max f_c) − log GWRP(f_bg, d−);
  constrain = mean over cells of KL(Q ‖ f), Q the dense CRF of f on the image at the grid's size,
  a constant (no gradient through the CRF).
  Probabilities are softmax + 10⁻⁴, renormalised, as the reference's softmax layer.

Where we differ, and why:
- the ranks of global weighted rank pooling decay as d^(r · 41² / n) for a grid of n cells, so
  that the weights fall with the *fraction* of the image ranked, as the reference's d^r on its
  41² grid (identical there); the reference's d on a 32 × 32 grid would pool 1.6 × more of the image;
- cells outside the image (the crop's padding) take part in no loss and in no ranking; the
  reference resizes every image to 321² and never pads;
- the cues are made at full resolution and follow the image through rescaling, flipping and
  cropping (the reference's cue file is fixed at 41 × 41 and allows only the resize).
"""

from __future__ import annotations

import numpy as np

from wsss_stages.lib.data.artifacts import IGNORE
from wsss_stages.refiners.crf.densecrf import CrfParams, crf_on_scores

MIN_PROB = 1e-4  # the reference softmax layer's floor
REFERENCE_CELLS = 41 * 41  # the reference's score grid (321-px images at stride 8)
GRID_STRIDE = 8


def sec_crf_params(scale_factor: float = 12.0) -> CrfParams:
    """The reference's constrain-to-boundary CRF (krahenbuhl2013.CRF): bilateral w 10, xy 80 / scale,
    rgb 13; Gaussian w 3, xy 3 / scale; 10 iterations; the image at the score grid's size."""
    return CrfParams(
        iterations=10,
        gaussian_sxy=3.0 / scale_factor,
        gaussian_compat=3.0,
        bilateral_sxy=80.0 / scale_factor,
        bilateral_srgb=13.0,
        bilateral_compat=10.0,
    )


# ============================================================================ cues
def localization_cues(
    cams: np.ndarray, classes: np.ndarray, saliency: np.ndarray, fg_fraction: float = 0.2, bg_fraction: float = 0.1
) -> np.ndarray:
    """Cue map ``[H, W]`` (uint8): a class index, 0 for background, 255 for no cue.

    Args:
        cams: CAM-format maps ``[K, H, W]`` of the image's labelled classes
        classes: their dataset class indices (>= 1)
        saliency: saliency ``[H, W]`` in [0, 1] (larger: more salient)
        fg_fraction: a class's cue is where its map exceeds this fraction of its maximum
        bg_fraction: the least salient fraction of the pixels is the background cue
    """
    h, w = saliency.shape
    cues = np.full((h, w), IGNORE, np.uint8)
    regions = [(cam > fg_fraction * cam.max()) if cam.max() > 0 else np.zeros((h, w), bool) for cam in cams]
    claimed = np.zeros((h, w), bool)
    for index in sorted(range(len(regions)), key=lambda k: regions[k].sum()):  # smaller regions first: they win
        region = regions[index] & ~claimed
        cues[region] = classes[index]
        claimed |= region
    count = int(round(bg_fraction * h * w))
    if count:
        strongest = cams.max(0) if len(cams) else np.zeros((h, w), np.float32)
        order = np.lexsort((strongest.ravel(), saliency.ravel()))[:count]  # by saliency, ties by the weaker CAM
        background = np.zeros(h * w, bool)
        background[order] = True
        background = background.reshape(h, w)
        cues[background & ~claimed] = 0
        cues[background & claimed] = IGNORE
    return cues


# ============================================================================ losses
def rank_weights(n: int, decay: float, reference_cells: int = REFERENCE_CELLS):
    """GWRP weights ``[n]`` for ranks 0..n-1 (largest value first): decay^(r · reference / n)."""
    import torch

    exponent = torch.arange(n, dtype=torch.float64) * (reference_cells / n)
    return torch.as_tensor(decay, dtype=torch.float64).pow(exponent).float()


def gwrp(values, valid, decay: float, reference_cells: int = REFERENCE_CELLS):
    """Global weighted rank pooling of ``values`` ``[B, K, N]`` (in [0, 1]) over the ``valid`` cells
    ``[B, N]`` → ``[B, K]``: Σ_r w_r v_(r) / Σ_r w_r over the valid cells sorted in decreasing order.
    decay → 0 is max pooling, decay = 1 average pooling."""
    n = values.shape[-1]
    weights = rank_weights(n, decay, reference_cells).to(values.device)
    ranked = (values * valid[:, None]).sort(dim=-1, descending=True).values  # invalid cells (0) rank last
    norm = weights.cumsum(0)[valid.sum(-1).long().clamp_min(1) - 1]  # Σ of the weights of each image's valid ranks
    return (ranked * weights).sum(-1) / norm[:, None]


def sec_probabilities(logits):
    """Softmax with the reference's floor: softmax + 10⁻⁴, renormalised."""
    probs = logits.float().softmax(1) + MIN_PROB
    return probs / probs.sum(1, keepdim=True)


def seeding_loss(log_probs, cues, valid):
    """−mean over images of Σ_cues log f / (cue count); images without cues do not count."""
    import torch

    has_cue = (cues != IGNORE) & valid
    target = torch.where(has_cue, cues, torch.zeros_like(cues)).long()
    picked = log_probs.gather(1, target[:, None])[:, 0] * has_cue
    counts = has_cue.flatten(1).sum(-1)
    per_image = -picked.flatten(1).sum(-1) / counts.clamp_min(1)
    keep = counts > 0
    return per_image[keep].mean() if keep.any() else log_probs.sum() * 0


def expansion_loss(probs, labels, valid, d_fg: float, d_bg: float, reference_cells: int = REFERENCE_CELLS):
    """Present classes: −log GWRP(d+); absent classes: −log(1 − max); background: −log GWRP(d−)."""
    b, k = probs.shape[:2]
    flat = probs.flatten(2)
    cells = valid.flatten(1).float()
    present = labels > 0.5
    fg = gwrp(flat[:, 1:], cells, d_fg, reference_cells).clamp_min(MIN_PROB)
    bg = gwrp(flat[:, :1], cells, d_bg, reference_cells)[:, 0].clamp_min(MIN_PROB)
    peak = (flat[:, 1:] * cells[:, None]).max(-1).values.clamp_max(1 - MIN_PROB)
    present_term = -(fg.log() * present).sum(1) / present.sum(1).clamp_min(1)
    absent_term = -((1 - peak).log() * ~present).sum(1) / (~present).sum(1).clamp_min(1)
    return (present_term + absent_term - bg.log()).mean()


def crf_targets(probs, images: np.ndarray, params: CrfParams):
    """The dense CRF of each image's probabilities ``[B, K, h, w]`` on its RGB ``images`` ``[B, h, w, 3]``
    (uint8), floored and renormalised as the reference: a constant target."""
    import torch

    out = np.stack([crf_on_scores(image, p, params) for image, p in zip(images, probs.detach().float().cpu().numpy())])
    out = np.clip(out, MIN_PROB, None)
    return torch.from_numpy(out / out.sum(1, keepdims=True)).to(probs.device)


def constrain_loss(probs, targets, valid):
    """mean over valid cells of KL(targets ‖ probs) = Σ_c Q (log Q − log f)."""
    kl = (targets * (targets.log() - probs.log())).sum(1)
    return (kl * valid).sum() / valid.sum().clamp_min(1)


def to_grid(logits, x, cues, valid, mean, std, stride: int = GRID_STRIDE):
    """The loss grid at 1/``stride`` of the crop: averaged logits, the cue and validity of each cell's
    centre pixel, and the image averaged to the grid as uint8 RGB (for the CRF)."""
    import torch
    import torch.nn.functional as F

    grid_logits = F.avg_pool2d(logits.float(), stride)
    h, w = grid_logits.shape[-2:]
    centre = stride // 2
    grid_cues = cues[:, centre::stride, centre::stride][:, :h, :w]
    grid_valid = valid[:, centre::stride, centre::stride][:, :h, :w]
    rgb = x.float() * torch.tensor(std, device=x.device).view(1, 3, 1, 1) + torch.tensor(mean, device=x.device).view(
        1, 3, 1, 1
    )
    images = (F.avg_pool2d(rgb, stride).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return grid_logits, grid_cues, grid_valid, images


def sec_losses(
    logits, x, cues, valid, labels, *, mean, std, d_fg: float = 0.996, d_bg: float = 0.999, crf: CrfParams | None = None
) -> dict:
    """SEC's three losses for a batch: network ``logits`` ``[B, C+1, H, W]`` at the crop's resolution,
    the normalised crop ``x``, its ``cues`` ``[B, H, W]`` (255: none), ``valid`` ``[B, H, W]`` (bool: inside
    the image) and multi-hot foreground ``labels`` ``[B, C]``."""
    grid_logits, grid_cues, grid_valid, images = to_grid(logits, x, cues, valid, mean, std)
    probs = sec_probabilities(grid_logits)
    log_probs = probs.log()
    targets = crf_targets(probs, images, crf or sec_crf_params())
    return {
        "seed": seeding_loss(log_probs, grid_cues, grid_valid),
        "expand": expansion_loss(probs, labels, grid_valid, d_fg, d_bg),
        "constrain": constrain_loss(probs, targets, grid_valid.float()),
    }
