"""Stage make_sec_cues: SEC's localisation cues from a chain's CAM-format maps and the data tree's
saliency maps (sec.py beside it), one palette PNG per image (a class, 0 = background, 255 = no cue), and
how right they are against the ground truth of the seed split."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import (
    IGNORE,
    atomic_dir,
    load_cams,
    read_manifest,
    save_mask,
    write_json,
    write_manifest,
)
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.nets.parallel import parallel_map
from wsss_stages.refiners.sec.sec import localization_cues

log = logging.getLogger(__name__)


def load_saliency(path: Path) -> np.ndarray:
    """An 8-bit saliency map as values in [0, 1]; a missing one is an error naming the file."""
    if not path.is_file():
        raise WsssError(
            f"SEC's background cue needs a saliency map for every image: {path} is missing "
            "(config key: make_sec_cues.saliency_folder)"
        )
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _cues_one(
    image_id: str,
    *,
    dataset: VOCDataset,
    cams_dir: Path,
    saliency_dir: Path,
    out_dir: Path,
    fg_fraction: float,
    bg_fraction: float,
    scored: frozenset,
) -> np.ndarray | None:
    cams, classes = load_cams(cams_dir / f"{image_id}.npz")
    saliency = load_saliency(saliency_dir / f"{image_id}.png")
    if saliency.shape != cams.shape[1:]:
        raise WsssError(
            f"saliency map {saliency_dir / (image_id + '.png')} is {saliency.shape}, its CAMs {cams.shape[1:]}"
        )
    cues = localization_cues(cams, classes, saliency, fg_fraction, bg_fraction)
    save_mask(out_dir / f"{image_id}.png", cues)
    if image_id not in scored:
        return None
    gt = dataset.load_mask(image_id)
    known = gt != IGNORE
    stats = []
    for part in (cues == 0, (cues != 0) & (cues != IGNORE)):  # background cues, foreground cues
        stats += [int((part & known).sum()), int((part & known & (cues == gt)).sum())]
    return np.array([*stats, int(known.sum())], np.int64)


def cue_report(stats: np.ndarray, images: int) -> dict:
    """Coverage and precision of the background and foreground cues over the scored pixels."""
    bg, bg_right, fg, fg_right, known = (int(v) for v in stats)
    percent = lambda a, b: round(100.0 * a / b, 2) if b else None  # noqa: E731
    return {
        "images_scored": images,
        "cue_pixels_percent": percent(bg + fg, known),
        "background_cue_percent": percent(bg, known),
        "foreground_cue_percent": percent(fg, known),
        "background_precision": percent(bg_right, bg),
        "foreground_precision": percent(fg_right, fg),
        "precision": percent(bg_right + fg_right, bg + fg),
    }


def make_sec_cues(
    *,
    cams: Path,
    data_root: Path,
    out_dir: Path,
    out_diagnostics: Path,
    split: str,
    mask_folder: str | None,
    fg_fraction: float,
    bg_fraction: float,
    saliency_folder: str,
    threads: int = 1,
) -> None:
    """Write SEC's cues for every image of a CAM-format folder.

    Args:
        cams: CAM-format maps (make_cams, or a refiner's such as the walk's)
        data_root: VOC2012-layout root (saliency maps, and masks for the diagnostics)
        out_dir: folder of <id>.png cue maps (class index, 0 background, 255 no cue) and manifest.json
        out_diagnostics: JSON with the cues' coverage and precision on the split's ground truth
        split: split with ground truth for the diagnostics (the seed split, train)
        mask_folder: SegmentationClass or SegmentationClassAug (default: whichever exists)
        fg_fraction: a class's cue is where its map exceeds this fraction of its maximum (SEC 0.2)
        bg_fraction: the least salient fraction of each image is the background cue (SEC 0.1)
        saliency_folder: folder of the data tree with <id>.png saliency maps
        threads: worker processes
    """
    dataset = VOCDataset(data_root, mask_folder)
    ids = read_manifest(cams, "cams")["ids"]
    scored = frozenset(i for i in dataset.split_ids(split) if dataset.has_mask(i)) & frozenset(ids)
    with atomic_dir(out_dir) as tmp:
        work = functools.partial(
            _cues_one,
            dataset=dataset,
            cams_dir=Path(cams),
            saliency_dir=dataset.root / saliency_folder,
            out_dir=tmp,
            fg_fraction=fg_fraction,
            bg_fraction=bg_fraction,
            scored=scored,
        )
        results = parallel_map(work, ids, threads, desc="make_sec_cues")
        write_manifest(tmp, "cues", ids, source=str(cams), fg_fraction=fg_fraction, bg_fraction=bg_fraction)
    stats = [r for r in results if r is not None]
    report = cue_report(np.sum(stats, axis=0) if stats else np.zeros(5, np.int64), len(stats))
    write_json(out_diagnostics, {"split": split, **report})
    log.info(
        "SEC cues for %d images; on %d scored images of '%s': %s%% of the pixels cued, foreground right %s%%, "
        "background right %s%%",
        len(ids),
        len(stats),
        split,
        report["cue_pixels_percent"],
        report["foreground_precision"],
        report["background_precision"],
    )
