"""Figures a person would rather look at than read: panels of one image's maps side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wsss_stages.lib.data.artifacts import atomic_path, voc_palette
from wsss_stages.lib.data.voc import VOCDataset

_PALETTE = np.array(voc_palette(), np.uint8).reshape(256, 3)


def colour_labels(labels: np.ndarray) -> np.ndarray:
    """A label map (255 = unsure/void, shown white) in the VOC colours."""
    rgb = _PALETTE[labels]
    rgb[labels == 255] = 255
    return rgb


def sample_ids(dataset: VOCDataset, split: str, available: set[str], count: int) -> list[str]:
    """The first ``count`` ids of the split with maps, those with a mask first (in split order)."""
    ids = [i for i in dataset.split_ids(split) if i in available]
    return sorted(ids, key=lambda i: not dataset.has_mask(i))[:count]


def save_panel(path: Path, title: str, panels: list[tuple[str, np.ndarray]]) -> None:
    """One row of images (RGB uint8, or float maps in [0, 1] shown as heat maps) with captions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.4), constrained_layout=True)
    for ax, (caption, picture) in zip(np.atleast_1d(axes), panels):
        if picture.ndim == 2:
            ax.imshow(picture, cmap="jet", vmin=0.0, vmax=1.0, interpolation="nearest")
        else:
            ax.imshow(picture, interpolation="nearest")
        ax.set_title(caption, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
