"""Affinity labels from CAMs — confident foreground (its class), confident background (0), unsure
(255) — and how right they are against ground truth.

Two constructions:

- **irn** (``cam_to_ir_label``): [t, CAMs] by argmax, through a label CRF, once with t = conf_fg
  (confident foreground) and once with t = conf_bg (confident background); 255 elsewhere. The two
  thresholds may be absolute (irn: 0.30 / 0.05), **relative** to the seed threshold t* swept on
  train (fg = rel_fg · t*, bg = rel_bg · t*), or per-image **quantiles** of the largest CAM (no
  ground truth at all: fg above the q_fg quantile, bg below the q_bg quantile).
- **psa** (``infer_cls`` + ``AffDataset``): background score (1 − max_c CAM_c)^α next to the CAMs,
  through a soft dense CRF, for a low α (4: strong background) and a high α (32: weak background).
  The low-α labels give the confident foreground; where they say background, unsure; where even
  the high-α labels say background, confident background.

:func:`label_counts` counts, against ground truth, pixel precision (foreground / background right)
and the precision and recall of the pair relations AffinityNet learns (same class / different
class, pairs within a radius at the affinity stride).
"""

from __future__ import annotations

import numpy as np

from wsss_stages.lib.data.artifacts import IGNORE
from wsss_stages.refiners.crf.densecrf import CrfParams, crf_on_labels, crf_on_scores
from wsss_stages.refiners.random_walk.pairs import fitting_offsets, shifted_pair


def confident_labels(cams: np.ndarray, classes: np.ndarray, threshold: float, image: np.ndarray | None) -> np.ndarray:
    """Class map of [threshold, CAMs] by argmax, refined by a label CRF when an image is given."""
    keys = np.concatenate([[0], classes])
    h, w = cams.shape[1:]
    local = np.concatenate([np.full((1, h, w), threshold, np.float32), cams]).argmax(0)
    if image is not None:
        local = crf_on_labels(image, local, len(keys))
    return keys[local]


def combine(fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Foreground where ``fg`` has a class; background where neither map has one; 255 between."""
    labels = fg.astype(np.uint8)
    labels[fg == 0] = IGNORE  # not confidently foreground ...
    labels[(fg == 0) & (bg == 0)] = 0  # ... but confidently background
    return labels


def irn_labels(
    cams: np.ndarray, classes: np.ndarray, conf_fg: float, conf_bg: float, image: np.ndarray | None
) -> np.ndarray:
    """irn's labels at foreground / background thresholds ``conf_fg`` > ``conf_bg``."""
    return combine(confident_labels(cams, classes, conf_fg, image), confident_labels(cams, classes, conf_bg, image))


def quantile_thresholds(cams: np.ndarray, q_fg: float, q_bg: float) -> tuple[float, float]:
    """Per-image thresholds: the q_fg and q_bg quantiles of the largest CAM at each pixel."""
    strongest = cams.max(0) if cams.shape[0] else np.zeros(cams.shape[1:], np.float32)
    return float(np.quantile(strongest, q_fg)), float(np.quantile(strongest, q_bg))


def psa_labels(
    cams: np.ndarray, classes: np.ndarray, alpha_low: float, alpha_high: float, image: np.ndarray, params: CrfParams
) -> np.ndarray:
    """psa's labels from a soft CRF at two background powers."""
    keys = np.concatenate([[0], classes])

    def crf_argmax(alpha: float) -> np.ndarray:
        background = (
            np.power(1.0 - cams.max(0, keepdims=True), alpha) if cams.shape[0] else np.ones((1, *cams.shape[1:]))
        )
        return keys[crf_on_scores(image, np.concatenate([background, cams]), params).argmax(0)]

    low, high = crf_argmax(alpha_low), crf_argmax(alpha_high)
    labels = low.astype(np.uint8)
    labels[low == 0] = IGNORE
    labels[high == 0] = 0
    return labels


COUNTS = (
    "valid",
    "fg_labelled",
    "fg_right",
    "bg_labelled",
    "bg_right",
    "pairs_gt_same",
    "pairs_gt_diff",
    "pairs_same",
    "pairs_same_right",
    "pairs_diff",
    "pairs_diff_right",
)


def label_counts(labels: np.ndarray, gt: np.ndarray, stride: int, radius: int) -> dict[str, int]:
    """Counts of right and wrong affinity labels against ground truth ``gt`` (255 = void).

    Pixels: labelled foreground (and right: its class is the ground truth's), labelled background
    (and right). Pairs: both pixels sampled at ``stride`` (as AffinityNet sees them), within
    ``radius``, both with ground truth; a pair is labelled "same" when both labels are confident
    and equal, "different" when both are confident and differ."""
    valid = gt != IGNORE
    fg, bg = (labels != IGNORE) & (labels > 0) & valid, (labels == 0) & valid
    counts = {
        "valid": int(valid.sum()),
        "fg_labelled": int(fg.sum()),
        "fg_right": int((fg & (labels == gt)).sum()),
        "bg_labelled": int(bg.sum()),
        "bg_right": int((bg & (gt == 0)).sum()),
    }
    small, truth = labels[::stride, ::stride], gt[::stride, ::stride]
    pairs = dict.fromkeys(COUNTS[5:], 0)
    for dy, dx in fitting_offsets(radius, *small.shape):
        la, lb = shifted_pair(small, dy, dx)
        ga, gb = shifted_pair(truth, dy, dx)
        known = (ga != IGNORE) & (gb != IGNORE)
        confident = known & (la != IGNORE) & (lb != IGNORE)
        same_gt, diff_gt = known & (ga == gb), known & (ga != gb)
        same, diff = confident & (la == lb), confident & (la != lb)
        pairs["pairs_gt_same"] += int(same_gt.sum())
        pairs["pairs_gt_diff"] += int(diff_gt.sum())
        pairs["pairs_same"] += int(same.sum())
        pairs["pairs_same_right"] += int((same & same_gt).sum())
        pairs["pairs_diff"] += int(diff.sum())
        pairs["pairs_diff_right"] += int((diff & diff_gt).sum())
    return {**counts, **pairs}


def label_scores(counts: dict[str, int]) -> dict[str, float | None]:
    """Percentages from summed :func:`label_counts`."""

    def pct(a: str, b: str) -> float | None:
        return round(100.0 * counts[a] / counts[b], 2) if counts[b] else None

    return {
        "coverage": round(100.0 * (counts["fg_labelled"] + counts["bg_labelled"]) / max(counts["valid"], 1), 2),
        "fg_precision": pct("fg_right", "fg_labelled"),
        "bg_precision": pct("bg_right", "bg_labelled"),
        "same_pair_precision": pct("pairs_same_right", "pairs_same"),
        "same_pair_recall": pct("pairs_same_right", "pairs_gt_same"),
        "diff_pair_precision": pct("pairs_diff_right", "pairs_diff"),
        "diff_pair_recall": pct("pairs_diff_right", "pairs_gt_diff"),
    }
