"""Stage write_gallery: what a researcher looks at first, for one experiment (and the HTML report).

- ``gallery/<id>.png`` for a fixed sample of the seed split (the first ``images`` ids, those with
  masks first, in split order): the image, its ground truth, the strongest seed CAM as a heat map, the
  pseudo-mask of every reported refinement, and the DeepLab prediction where the image has one;
- ``curves.png``: the training loss per epoch of the classifier (and DeepLab when it was trained);
- ``per_class.png``: per-class IoU of the seeds' and each refinement's pseudo-masks.

``snakemake --cores all report_figures`` builds these for every experiment, and
``snakemake --report report.html report_figures`` puts them, with the sweeps, the walk's figures
and the leaderboard, into Snakemake's HTML report.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from wsss_stages.lib.data.artifacts import (
    atomic_dir,
    atomic_path,
    load_cams,
    load_mask,
    named_items,
    read_json,
    read_manifest,
)
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.figures import colour_labels, sample_ids, save_panel

log = logging.getLogger(__name__)


def plot_curves(histories: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), constrained_layout=True)
    for name, losses in histories.items():
        ax.plot(range(1, len(losses) + 1), losses, marker="o", ms=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss")
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def plot_per_class(tables: dict[str, Path], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {name: list(csv.DictReader(Path(table).open())) for name, table in tables.items()}
    first = next(iter(rows.values()))
    classes = [r["class"] for r in first]
    column = "iou" if "iou" in first[0] else "pixel_share"  # labels-only runs: each class's share of the pixels
    x, width = np.arange(len(classes)), 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(classes)), 3.4), constrained_layout=True)
    for k, (name, table) in enumerate(rows.items()):
        values = [float(r[column]) if r[column] not in ("", "None") else np.nan for r in table]
        ax.bar(x + (k - (len(rows) - 1) / 2) * width, values, width, label=name)
    ax.set_xticks(x, classes, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("IoU (%)" if column == "iou" else "share of the pixels (%), no masks")
    ax.legend(frameon=False, fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def deeplab_masks(
    model: Path, dataset: VOCDataset, ids: list[str], threads: int
) -> tuple[dict[str, np.ndarray], list[float]]:
    """The segmentation network's masks for the sample (single scale, flip) and its loss history."""
    import torch

    from wsss_stages.lib.nets.inference import predict_mask
    from wsss_stages.lib.nets.models import load_model
    from wsss_stages.lib.nets.runtime import for_inference, set_threads

    set_threads(threads)
    cpu = torch.device("cpu")
    net, meta = load_model(model, ("deeplabv3plus", "deeplabv2"))
    net = for_inference(net, cpu)
    with torch.inference_mode():
        masks = {i: predict_mask(net, meta, dataset.load_image(i), cpu, [1.0], True) for i in ids}
    return masks, meta["loss_history"]


def write_gallery(
    *,
    cams: Path,
    pseudo_masks: list[str],
    per_class: list[str],
    classifier_info: Path,
    segmentation_model: Path | None,
    data_root: Path,
    out_dir: Path,
    out_curves: Path,
    out_per_class: Path,
    split: str,
    mask_folder: str | None,
    images: int,
    threads: int = 1,
) -> None:
    """Write the gallery, the training curves and the per-class IoU bars of one experiment.

    Args:
        cams: the seed CAM folder
        pseudo_masks: refinement=masks-folder items, in report order
        per_class: refinement=per_class.csv items (eval_pseudo_masks)
        classifier_info: train_classifier's record (its loss history)
        segmentation_model: the DeepLab weights (its masks of the sample and its loss history), or None
        data_root: VOC2012-layout root
        out_dir: folder of <id>.png panels
        out_curves: training-loss figure
        out_per_class: per-class IoU figure
        split: the seed split the sample is drawn from
        mask_folder: SegmentationClass or SegmentationClassAug (None: whichever exists)
        images: how many images the gallery shows
        threads: unused
    """
    dataset = VOCDataset(data_root, mask_folder)
    available = set(read_manifest(cams, "cams")["ids"])
    sample = sample_ids(dataset, split, available, images)
    folders = named_items(pseudo_masks, "pseudo-masks")
    histories = {"classifier": read_json(classifier_info)["loss_history"]}
    predicted = {}
    if segmentation_model:
        predicted, histories["DeepLab"] = deeplab_masks(Path(segmentation_model), dataset, sample, threads)
    with atomic_dir(out_dir) as tmp:
        for image_id in sample:
            maps, _ = load_cams(Path(cams) / f"{image_id}.npz")
            panels = [("image", dataset.load_image(image_id))]
            if dataset.has_mask(image_id):
                panels.append(("ground truth", colour_labels(dataset.load_mask(image_id))))
            panels.append(("strongest seed CAM", maps.max(0) if maps.shape[0] else np.zeros(maps.shape[1:])))
            panels += [
                (f"pseudo-mask: {name}", colour_labels(load_mask(Path(folder) / f"{image_id}.png")))
                for name, folder in folders
            ]
            if image_id in predicted:
                panels.append(("DeepLab", colour_labels(predicted[image_id])))
            save_panel(tmp / f"{image_id}.png", image_id, panels)
    plot_curves(histories, Path(out_curves))
    plot_per_class(dict(named_items(per_class, "per-class")), Path(out_per_class))
    log.info("gallery of %d images, training curves and per-class IoU written", len(sample))
