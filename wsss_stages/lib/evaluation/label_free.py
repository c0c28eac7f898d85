"""Background thresholds chosen without ground truth: from CAM-format maps and the image labels alone.

Every ``auto`` threshold of the pipeline is the best of a sweep against the masks of the seed split,
as the papers tune it. A run whose images carry labels and no masks needs a rule that reads only
the maps. The rules here take the per-image maps (``[K, H, W]`` of the labelled classes, each
peaking at 1) and return one threshold for the run:

- ``otsu``: for each image and labelled class, the threshold that best splits that class's map into
  two groups of values (Otsu's between-class variance); the run's threshold is their median. A class
  map of a sharp object has two clear groups (the object, the rest); the rule needs no candidate grid.
- ``stability``: over a grid of candidates, the threshold at which the label maps change least when
  it moves by one step: a plateau of the masks, where few pixels lie near the threshold.

A third rule, ``agreement``, serves the dense CRF's background score (stage tune_crf): of the
candidate scores, the one whose CRF masks agree best (mIoU) with the seeds thresholded by the rule
above; the CRF should snap the seeds to the image's edges, not grow or shrink them.

Without masks nothing here gives an mIoU; :class:`LabelAgreement` gives what a labels-only run can
say of a set of label maps: each class's share of the pixels, how often a map misses a class its
image is labelled with, and how often it shows a class the image is not labelled with.

``benchmarks/label_free_thresholds.py`` scores each rule against the sweep on data with masks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from wsss_stages.lib.evaluation.thresholds import strongest

RULES = ("otsu", "stability")
GROUND_TRUTH = "sweep"  # the best of a sweep against the seed split's masks
DEFAULT_RULE = "otsu"  # what "auto" means on a split without masks (closest to the sweep on the VOC subset)


def rule_for(rule: str, has_masks: bool) -> str:
    """The rule an ``auto`` threshold follows: the sweep where the split has masks, ``otsu`` where it has none."""
    if rule == "auto":
        return GROUND_TRUTH if has_masks else DEFAULT_RULE
    if rule == GROUND_TRUTH and not has_masks:
        raise ValueError(
            "the threshold rule 'sweep' scores thresholds against masks and this split has none: "
            f"use a rule that needs no masks ({', '.join(RULES)}) or 'auto'"
        )
    if rule not in (GROUND_TRUTH, *RULES):
        raise ValueError(f"unknown threshold rule {rule!r} (known: auto, {GROUND_TRUTH}, {', '.join(RULES)})")
    return rule


def otsu(values: np.ndarray, bins: int = 100) -> float | None:
    """Otsu's threshold of ``values`` in [0, 1] (None when they take a single value)."""
    hist, edges = np.histogram(np.clip(values, 0, 1), bins=bins, range=(0.0, 1.0))
    weights = hist.astype(np.float64)
    if weights.sum() == 0 or np.count_nonzero(weights) < 2:
        return None
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(weights)
    above = weights.sum() - below
    mean_below = np.cumsum(weights * centres) / np.maximum(below, 1e-12)
    mean_above = ((weights * centres).sum() - np.cumsum(weights * centres)) / np.maximum(above, 1e-12)
    between = (below * above * (mean_below - mean_above) ** 2)[:-1]
    best = np.flatnonzero(between >= between.max() * (1 - 1e-9))  # a gap between the groups is a plateau:
    return float(edges[1:][best[len(best) // 2]])  # take its middle, not its lower edge


def otsu_rule(maps: Iterable[tuple[np.ndarray, np.ndarray]]) -> float:
    """The median over images and labelled classes of each class map's Otsu threshold."""
    found = [t for cams, _ in maps for cam in cams if (t := otsu(cam.ravel())) is not None]
    if not found:
        raise ValueError("no class map with two groups of values: the otsu rule has nothing to split")
    return float(np.median(found))


def stability_rule(maps: Iterable[tuple[np.ndarray, np.ndarray]], thresholds: Sequence[float]) -> float:
    """The candidate after which one step up the grid relabels the fewest pixels (per unit of threshold)."""
    grid = sorted(float(t) for t in thresholds)
    if len(grid) < 2:
        raise ValueError("the stability rule needs at least two candidate thresholds")
    changed = np.zeros(len(grid) - 1)
    for cams, classes in maps:
        label, value = strongest(cams, classes)
        labels = [np.where(value > t, label, 0) for t in grid]
        changed += [np.count_nonzero(a != b) / a.size for a, b in zip(labels, labels[1:])]
    per_unit = changed / np.diff(grid)
    return grid[int(np.argmin(per_unit))]


def choose_threshold(rule: str, maps: Iterable[tuple[np.ndarray, np.ndarray]], thresholds: Sequence[float]) -> float:
    """The threshold ``rule`` picks for ``maps`` (``thresholds``: the candidates, for the rules that use a grid)."""
    if rule == "otsu":
        return otsu_rule(maps)
    if rule == "stability":
        return stability_rule(maps, thresholds)
    raise ValueError(f"unknown threshold rule {rule!r} (known: {', '.join(RULES)})")


@dataclass
class LabelAgreement:
    """What label maps say against their images' labels, without masks (accumulated image by image)."""

    num_classes: int
    pixels: np.ndarray = field(init=False)
    labelled: np.ndarray = field(init=False)  # images labelled with each class
    missed: np.ndarray = field(init=False)  # … whose map has no pixel of it
    extra: np.ndarray = field(init=False)  # images not labelled with a class whose map shows it
    images: int = 0

    def __post_init__(self) -> None:
        self.pixels = np.zeros(self.num_classes, np.int64)
        self.labelled = np.zeros(self.num_classes, np.int64)
        self.missed = np.zeros(self.num_classes, np.int64)
        self.extra = np.zeros(self.num_classes, np.int64)

    def add(self, label_map: np.ndarray, labels: np.ndarray) -> None:
        """One image's label map (class indices, 255 = ignore) and its labels (foreground class indices)."""
        counts = np.bincount(label_map[label_map < self.num_classes].ravel(), minlength=self.num_classes)
        shown = counts > 0
        shown[0] = False
        wanted = np.zeros(self.num_classes, bool)
        wanted[np.asarray(labels, np.int64)] = True
        self.pixels += counts[: self.num_classes]
        self.labelled += wanted
        self.missed += wanted & ~shown
        self.extra += shown & ~wanted
        self.images += 1

    def __iadd__(self, other: LabelAgreement) -> LabelAgreement:
        for name in ("pixels", "labelled", "missed", "extra"):
            getattr(self, name).__iadd__(getattr(other, name))
        self.images += other.images
        return self

    def summary(self, class_names: Sequence[str]) -> dict:
        """Foreground share, missed and extra labels (% of labelled / of shown image-class pairs), per class."""
        total = max(int(self.pixels.sum()), 1)
        shown_pairs = self.labelled - self.missed + self.extra
        return {
            "images": self.images,
            "foreground_share": round(100.0 * float(self.pixels[1:].sum()) / total, 3),
            "missed_labels": round(100.0 * float(self.missed.sum()) / max(int(self.labelled.sum()), 1), 3),
            "extra_labels": round(100.0 * float(self.extra.sum()) / max(int(shown_pairs[1:].sum()), 1), 3),
            "per_class": {
                name: {
                    "pixel_share": round(100.0 * float(self.pixels[c]) / total, 3),
                    "images_labelled": int(self.labelled[c]),
                    "images_missed": int(self.missed[c]),
                    "images_extra": int(self.extra[c]),
                }
                for c, name in enumerate(class_names)
            },
        }
