"""How sure a difference is: mean ± std over repeats, paired t-intervals, paired per-image bootstraps.

- Repeats (training seeds): the difference between two experiments is taken per repeat index
  (both trained with the same seed), and its 95 % interval is the t-interval of those paired
  differences, mean ± t(0.975, n−1) · sd / √n. With 3 repeats t is 4.30, so the interval is
  wide; a difference below :data:`NOISE` points is also marked "within noise" whatever its interval.
- No retraining (two refinements of the same CAMs): images are resampled with replacement, the
  same resample for both, and the mIoU of each is recomputed from the summed per-image
  confusion matrices; the interval is the 2.5–97.5 % range of the differences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

NOISE = 2.0  # mIoU points: smaller differences are "within noise" on data of this size


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None with fewer than two values)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), (float(np.std(values, ddof=1)) if len(values) > 1 else None)


def paired_t_interval(
    a: Sequence[float], b: Sequence[float], level: float = 0.95
) -> tuple[float, float | None, float | None]:
    """Mean of the paired differences a_i − b_i and its t-interval (None bounds with one pair)."""
    from scipy.stats import t

    diffs = np.asarray(a, float) - np.asarray(b, float)
    mean = float(diffs.mean())
    if diffs.size < 2:
        return mean, None, None
    half = float(t.ppf(0.5 + level / 2, diffs.size - 1)) * float(diffs.std(ddof=1)) / math.sqrt(diffs.size)
    return mean, mean - half, mean + half


def miou_of(confusion: np.ndarray) -> float:
    """mIoU (%) over the classes present in ground truth or prediction."""
    tp = np.diag(confusion).astype(float)
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    return float((tp[present] / union[present]).mean() * 100.0) if present.any() else float("nan")


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, iterations: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """mIoU(a) − mIoU(b) and its bootstrap interval from per-image confusion matrices ``[N, C, C]``
    of the same N images."""
    if a.shape != b.shape:
        raise ValueError(f"per-image confusions of different shapes: {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    diffs = np.empty(iterations)
    for i in range(iterations):
        pick = rng.integers(0, a.shape[0], a.shape[0])
        diffs[i] = miou_of(a[pick].sum(0)) - miou_of(b[pick].sum(0))
    lo, hi = np.percentile(diffs, [50 * (1 - level), 50 * (1 + level)])
    return miou_of(a.sum(0)) - miou_of(b.sum(0)), float(lo), float(hi)


def paired_difference(a: tuple[list[str], np.ndarray], b: tuple[list[str], np.ndarray]) -> tuple[float, float, float]:
    """mIoU(a) − mIoU(b) with its paired bootstrap interval, on the images both scored; ``a`` and ``b``
    are (ids, per-image confusions) as :func:`~wsss_stages.lib.data.artifacts.load_confusions` reads them."""
    index_b = {image_id: n for n, image_id in enumerate(b[0])}
    common = [(n, index_b[i]) for n, i in enumerate(a[0]) if i in index_b]
    if not common:
        raise ValueError("the two sets of per-image scores share no image")
    rows_a, rows_b = zip(*common)
    return paired_bootstrap(a[1][list(rows_a)], b[1][list(rows_b)])


def describe_difference(mean: float | None, lo: float | None, hi: float | None) -> str:
    """ "+1.50 [-2.00, +5.00] within noise"-style text: "within noise" below :data:`NOISE` points,
    "spans 0" when the interval holds no sign."""
    if mean is None:
        return "—"
    text = f"{mean:+.2f}" + (f" [{lo:+.2f}, {hi:+.2f}]" if lo is not None else " (one repeat)")
    if abs(mean) < NOISE:
        return text + " within noise"
    return text + (" spans 0" if lo is not None and lo <= 0 <= hi else "")


def auc_from_histograms(positive: np.ndarray, negative: np.ndarray) -> float | None:
    """ROC-AUC, P(score of a positive > score of a negative) + ½ P(tie), from two histograms over the
    same bins (the Mann–Whitney statistic; ties within a bin count half)."""
    positive, negative = np.asarray(positive, float), np.asarray(negative, float)
    if positive.sum() == 0 or negative.sum() == 0:
        return None
    below = np.cumsum(negative) - negative  # negatives in lower bins
    return float((positive * (below + 0.5 * negative)).sum() / (positive.sum() * negative.sum()))


def affinity_report(same: np.ndarray, diff: np.ndarray, beta: float, images: int, radius: int) -> dict:
    """How well learned affinities separate ground-truth same-class from different-class pairs, from
    histograms of the pairs' affinities over equal bins of [0, 1] (kept in the report, so that the
    reports of several shards merge exactly: :func:`merge_affinity_reports`)."""
    same, diff = np.asarray(same, np.int64), np.asarray(diff, np.int64)
    centres = np.linspace(0.0, 1.0, len(same))

    def mean(hist: np.ndarray, power: float = 1.0) -> float | None:
        return float((hist * centres**power).sum() / hist.sum()) if hist.sum() else None

    return {
        "images": images,
        "radius": radius,
        "pairs_same": int(same.sum()),
        "pairs_different": int(diff.sum()),
        "roc_auc": auc_from_histograms(same, diff),
        "mean_affinity_same": mean(same),
        "mean_affinity_different": mean(diff),
        "mean_affinity_same_after_beta": mean(same, beta),
        "mean_affinity_different_after_beta": mean(diff, beta),
        "beta": beta,
        "histogram_same": same.tolist(),
        "histogram_different": diff.tolist(),
    }


def merge_affinity_reports(reports: list[dict]) -> dict:
    """The report of all images from those of disjoint shards (histograms and image counts summed)."""
    for key in ("beta", "radius"):
        if len({r[key] for r in reports}) != 1:
            raise ValueError(f"affinity reports disagree on {key}")
    same = np.sum([r["histogram_same"] for r in reports], axis=0)
    diff = np.sum([r["histogram_different"] for r in reports], axis=0)
    return affinity_report(same, diff, reports[0]["beta"], sum(r["images"] for r in reports), reports[0]["radius"])
