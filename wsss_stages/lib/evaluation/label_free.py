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

``benchmarks/label_free_thresholds.py`` scores each rule against the sweep on data with masks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from wsss_stages.lib.evaluation.thresholds import strongest

RULES = ("otsu", "stability")


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
