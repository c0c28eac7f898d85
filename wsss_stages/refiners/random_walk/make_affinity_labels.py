"""Stage make_affinity_labels: confident foreground / background / unsure labels from the seed CAMs,
for AffinityNet, and how right they are (``diagnostics.json``).

The constructions (irn with absolute, relative or quantile thresholds; psa's two background
powers) are in :mod:`wsss_stages.refiners.random_walk.affinity_labels`.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import atomic_dir, load_cams, read_manifest, save_mask, write_json, write_manifest
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.thresholds import resolve_threshold
from wsss_stages.lib.nets.parallel import parallel_map
from wsss_stages.refiners.crf.densecrf import CrfParams
from wsss_stages.refiners.random_walk.affinity_labels import (
    COUNTS,
    irn_labels,
    label_counts,
    label_scores,
    psa_labels,
    quantile_thresholds,
)

log = logging.getLogger(__name__)


def labels_for(
    cams: np.ndarray, classes: np.ndarray, image: np.ndarray, method: str, options: dict, seed_threshold: float | None
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """The affinity labels of one image, and the (fg, bg) thresholds used (None for psa)."""
    if method == "psa":
        return psa_labels(cams, classes, options["alpha_low"], options["alpha_high"], image, CrfParams()), None
    mode = options["thresholds"]
    if mode == "relative":
        fg, bg = min(1.0, options["relative_fg"] * seed_threshold), options["relative_bg"] * seed_threshold
    elif mode == "quantile":
        fg, bg = quantile_thresholds(cams, options["quantile_fg"], options["quantile_bg"])
    else:
        fg, bg = options["conf_fg"], options["conf_bg"]
    return irn_labels(cams, classes, fg, bg, image if options["crf"] else None), (fg, bg)


def _one(
    image_id: str,
    *,
    dataset: VOCDataset,
    cams_dir: Path,
    out_dir: Path,
    method: str,
    options: dict,
    seed_threshold,
    scored: frozenset,
    stride: int,
    radius: int,
):
    cams, classes = load_cams(cams_dir / f"{image_id}.npz")
    labels, used = labels_for(cams, classes, dataset.load_image(image_id), method, options, seed_threshold)
    save_mask(out_dir / f"{image_id}.png", labels)
    counts = label_counts(labels, dataset.load_mask(image_id), stride, radius) if image_id in scored else None
    return counts, used


def make_affinity_labels(
    *,
    cams: Path,
    data_root: Path,
    out_dir: Path,
    out_diagnostics: Path,
    method: str,
    options: dict,
    split: str,
    mask_folder: str | None,
    pair_stride: int,
    pair_radius: int,
    seed_threshold: float | None,
    seed_threshold_sweep: Path | None,
    threads: int = 1,
) -> None:
    """Write affinity labels (palette PNG, 255 = unsure) for every image of a CAM folder, and their
    precision and recall against the ground truth of ``split``.

    Args:
        cams: CAM folder (the seeds)
        data_root: VOC2012-layout root (images for the CRFs, masks for the diagnostics)
        out_dir: output folder of <id>.png label maps
        out_diagnostics: JSON: coverage, foreground / background precision, same / different pair precision and recall
        method: irn or psa
        options: the method's settings (config section make_affinity_labels, the keys that method reads)
        split: split whose masks score the labels (the seed split)
        mask_folder: SegmentationClass or SegmentationClassAug (None: whichever exists)
        pair_stride: stride at which AffinityNet sees the labels (pairs are scored there)
        pair_radius: radius of AffinityNet's training pairs
        seed_threshold: the seeds' background threshold, for relative thresholds (None: from seed_threshold_sweep)
        seed_threshold_sweep: eval_cams' best.json on the seeds, when the config says "auto"
        threads: worker processes
    """
    if method not in ("irn", "psa"):
        raise WsssError(f"make_affinity_labels.method must be irn or psa, not {method!r}")
    threshold = resolve_threshold(seed_threshold, seed_threshold_sweep, "cam_bg_threshold")
    if method == "irn" and options["thresholds"] == "relative" and threshold is None:
        raise WsssError(
            "relative affinity thresholds need the seed threshold (config key: make_affinity_labels.thresholds)"
        )
    if (
        method == "irn"
        and options["thresholds"] == "absolute"
        and not 0 <= options["conf_bg"] <= options["conf_fg"] <= 1
    ):
        raise WsssError(
            f"need 0 <= conf_bg ({options['conf_bg']}) <= conf_fg ({options['conf_fg']}) <= 1 (config: "
            f"make_affinity_labels)"
        )
    ids = read_manifest(cams, "cams")["ids"]
    dataset = VOCDataset(data_root, mask_folder)
    scored = frozenset(i for i in dataset.split_ids(split) if dataset.has_mask(i))
    with atomic_dir(out_dir) as tmp:
        work = functools.partial(
            _one,
            dataset=dataset,
            cams_dir=Path(cams),
            out_dir=tmp,
            method=method,
            options=options,
            seed_threshold=threshold,
            scored=scored,
            stride=pair_stride,
            radius=pair_radius,
        )
        results = parallel_map(work, ids, threads, desc="make_affinity_labels")
        write_manifest(
            tmp,
            "masks",
            ids,
            method=method,
            options=options,
            seed_threshold=threshold,
            bg_threshold=None,
            source=str(cams),
        )
    totals = {key: sum(r[0][key] for r in results if r[0]) for key in COUNTS}
    used = [r[1] for r in results if r[1]]
    report = {
        "method": method,
        "options": options,
        "split": split,
        "images": sum(1 for r in results if r[0]),
        "pair_stride": pair_stride,
        "pair_radius": pair_radius,
        **label_scores(totals),
        "counts": totals,
        "mean_thresholds": [float(np.mean([u[0] for u in used])), float(np.mean([u[1] for u in used]))]
        if used
        else None,
    }
    write_json(out_diagnostics, report)
    log.info(
        "affinity labels for %d images (%s); on %d images of '%s': coverage %.1f %%, fg right %s %%, bg right %s %%, "
        "same-pair precision %s %%",
        len(ids),
        method,
        report["images"],
        split,
        report["coverage"],
        report["fg_precision"],
        report["bg_precision"],
        report["same_pair_precision"],
    )
