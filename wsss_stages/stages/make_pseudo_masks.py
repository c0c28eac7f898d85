"""Stage make_pseudo_masks: score maps (or thresholded CAMs) → palette-PNG pseudo-masks, with an optional 255 band."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import (
    IGNORE,
    atomic_dir,
    load_score_like,
    read_maps_manifest,
    save_mask,
    write_manifest,
)
from wsss_stages.lib.evaluation.thresholds import resolve_threshold
from wsss_stages.lib.nets.parallel import parallel_map
from wsss_stages.lib.plan.shards import Shard

log = logging.getLogger(__name__)


def scores_to_mask(
    scores: np.ndarray, classes: np.ndarray, ignore_band: tuple[float, float] | None = None
) -> np.ndarray:
    """Label map from score maps ``[1+K, H, W]`` (channel 0 = background).

    Without a band every pixel takes its argmax class. With ``(bg_below, fg_above)`` the
    largest foreground score decides: below ``bg_below`` → background, at or above ``fg_above``
    → the strongest foreground class, in between → 255 (ignored by the segmentation loss).
    """
    if ignore_band is None:
        return classes[scores.argmax(0)].astype(np.uint8)
    bg_below, fg_above = ignore_band
    fg = scores[1:]
    if fg.shape[0] == 0:
        return np.zeros(scores.shape[1:], np.uint8)
    strongest = classes[1:][fg.argmax(0)]
    value = fg.max(0)
    mask = np.full(scores.shape[1:], IGNORE, np.uint8)
    mask[value < bg_below] = 0
    confident = value >= fg_above
    mask[confident] = strongest[confident]
    return mask


def _write_one(image_id: str, *, source: Path, kind: str, threshold: float | None, band, out_dir: Path) -> None:
    scores, classes = load_score_like(source, image_id, kind, threshold)
    save_mask(out_dir / f"{image_id}.png", scores_to_mask(scores, classes, band))


def make_pseudo_masks(
    *,
    scores: Path,
    out_dir: Path,
    ignore_band: list[float] | None,
    bg_threshold: float | None,
    bg_threshold_sweep: Path | None,
    shard: str = "0/1",
    threads: int = 1,
) -> None:
    """Write one palette PNG per image (255 = ignore) from a make_cams or refiner folder.

    Args:
        scores: folder of score maps (refine_*) or CAMs (make_cams)
        out_dir: output folder of <id>.png masks and manifest.json
        ignore_band: two numbers [bg_below, fg_above]: pixels in between become 255
        bg_threshold: background threshold for a CAM folder (None: taken from bg_threshold_sweep)
        bg_threshold_sweep: the best.json of the threshold's sweep on the seed split, when the config says "auto"
        shard: k/N, the slice of the images to process (0/1, the default: all; see lib/plan/shards.py)
        threads: worker processes
    """
    manifest, kind = read_maps_manifest(scores, "pseudo-masks need")
    threshold = resolve_threshold(bg_threshold, bg_threshold_sweep) if kind == "cams" else None
    if kind == "cams" and threshold is None:
        raise WsssError(f"{scores} holds CAMs: pseudo-masks need a background threshold")
    band = None
    if ignore_band is not None:
        if len(ignore_band) != 2 or not 0 <= ignore_band[0] <= ignore_band[1] <= 1:
            raise WsssError(
                f"ignore band {ignore_band} must be two numbers 0 <= low <= high <= 1 (config key: "
                f"make_pseudo_masks.ignore_band)"
            )
        band = (float(ignore_band[0]), float(ignore_band[1]))
    part = Shard.parse(shard)
    ids = part.take(manifest["ids"])
    with atomic_dir(out_dir) as tmp:
        work = functools.partial(
            _write_one, source=Path(scores), kind=kind, threshold=threshold, band=band, out_dir=tmp
        )
        parallel_map(work, ids, threads, desc="make_pseudo_masks")
        write_manifest(
            tmp,
            "masks",
            ids,
            source=str(scores),
            bg_threshold=threshold,
            ignore_band=band,
            **part.manifest_fields(manifest["ids"]),
        )
    log.info("wrote %d pseudo-masks from %s (%s)", len(ids), scores, kind)
