"""Stage explore_thresholds: pick a background threshold by eye.

For a fixed sample of the seed split (the first ``images`` ids, those with masks first), one row per
image: the photo, its ground truth where it has one, then the label map of a chain's CAM-format maps
at each candidate threshold around the one in use (marked). ``snakemake --cores all threshold_explorer``
draws it for the seeds and for every reported refinement with CAM-format maps; a value picked here
goes into the config (``--config cam_bg_threshold=0.3``, ``refine_pamr='{bg_threshold: 0.3}'`` …) and
reruns only the stages after that threshold.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wsss_stages.lib.data.artifacts import atomic_path, load_cams, read_json, read_manifest
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.figures import colour_labels, sample_ids
from wsss_stages.lib.evaluation.thresholds import cam_labels, resolve_threshold

log = logging.getLogger(__name__)


def candidate_window(candidates: list[float], in_use: float, columns: int) -> list[float]:
    """``columns`` thresholds centred on the one in use (added to the candidates when it is not one of them)."""
    grid = sorted(set(candidates) | {in_use})
    centre = grid.index(in_use)
    start = max(0, min(centre - columns // 2, len(grid) - columns))
    return grid[start : start + columns]


def draw(path: Path, title: str, rows: list[tuple[str, list[tuple[str, np.ndarray]]]], legend: dict) -> None:
    """Rows of captioned panels; ``legend``: class name → RGB colour of the classes shown."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    width = max(len(panels) for _, panels in rows)
    fig, axes = plt.subplots(
        len(rows), width, figsize=(1.9 * width, 1.9 * len(rows) + 0.4), squeeze=False, constrained_layout=True
    )
    for r, (image_id, panels) in enumerate(rows):
        for c in range(width):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(panels):
                caption, picture = panels[c]
                ax.imshow(picture, interpolation="nearest")
                ax.set_title(image_id if c == 0 else caption, fontsize=7)
    fig.suptitle(title, fontsize=9)
    handles = [Patch(color=np.asarray(rgb) / 255, label=name) for name, rgb in legend.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 8), fontsize=7, frameon=False)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


def how_chosen(sweep: Path | None) -> str:
    """How the threshold in use was chosen: by the rule in eval_cams' best.json, or set in the config."""
    if sweep is None:
        return "set in the config"
    rule = read_json(Path(sweep)).get("rule", "sweep")
    return "best of the sweep against masks" if rule == "sweep" else f"{rule} rule, no masks read"


def explore_thresholds(
    *,
    cams: Path,
    data_root: Path,
    out_png: Path,
    split: str,
    mask_folder: str | None,
    candidates: list[float],
    images: int,
    columns: int,
    bg_threshold: float | None,
    bg_threshold_sweep: Path | None,
    threads: int = 1,
) -> None:
    """Draw the label maps of a sample at each candidate threshold around the one in use.

    Args:
        cams: CAM-format maps (the seeds, or a refiner's)
        data_root: VOC2012-layout root
        out_png: the figure
        split: the seed split the sample is drawn from
        mask_folder: SegmentationClass or SegmentationClassAug (None: whichever exists)
        candidates: the thresholds eval_cams tries (eval_cams.thresholds)
        images: rows (images) of the figure
        columns: candidate thresholds shown per image
        bg_threshold: the threshold in use, when the config fixes it
        bg_threshold_sweep: eval_cams' best.json, when the config chooses it ("auto" or a rule)
        threads: unused
    """
    dataset = VOCDataset(data_root, mask_folder)
    in_use = resolve_threshold(bg_threshold, bg_threshold_sweep)
    how = how_chosen(bg_threshold_sweep)
    shown = candidate_window(list(candidates), in_use, columns)
    sample = sample_ids(dataset, split, set(read_manifest(cams, "cams")["ids"]), images)
    rows, shown_classes = [], {0}
    for image_id in sample:
        maps, classes = load_cams(Path(cams) / f"{image_id}.npz")
        panels = [("image", dataset.load_image(image_id))]
        if dataset.has_mask(image_id):
            panels.append(("ground truth", colour_labels(dataset.load_mask(image_id))))
        for t in shown:
            caption = f"{t:.2f} (in use)" if t == in_use else f"{t:.2f}"
            panels.append((caption, colour_labels(cam_labels(maps, classes, t).astype(np.uint8))))
        rows.append((image_id, panels))
        shown_classes |= set(classes.tolist())
    legend = {dataset.class_names[c]: colour_labels(np.array([c]))[0] for c in sorted(shown_classes)}
    maps_name = "seeds" if Path(out_png).stem == "cams" else Path(out_png).stem
    title = f"{maps_name}: background threshold {in_use:.2f} ({how}); candidates of eval_cams.thresholds"
    draw(Path(out_png), title, rows, legend)
    log.info("%d images at %d thresholds around %.2f (%s) drawn to %s", len(sample), len(shown), in_use, how, out_png)
