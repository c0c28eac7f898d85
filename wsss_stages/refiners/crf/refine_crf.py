"""Stage refine_crf: dense CRF on CAM scores: background score = the CAM background threshold, then mean field."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import atomic_dir, load_score_like, read_maps_manifest, save_scores, write_manifest
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.thresholds import resolve_threshold
from wsss_stages.lib.nets.parallel import parallel_map
from wsss_stages.lib.plan.shards import Shard
from wsss_stages.refiners.crf.densecrf import CrfParams, crf_on_scores

log = logging.getLogger(__name__)


def _refine_one(
    image_id: str,
    *,
    dataset: VOCDataset,
    source: Path,
    kind: str,
    out_dir: Path,
    threshold: float | None,
    params: CrfParams,
) -> None:
    scores, classes = load_score_like(source, image_id, kind, threshold)
    probs = crf_on_scores(dataset.load_image(image_id), scores, params)
    save_scores(out_dir / f"{image_id}.npz", probs, classes.tolist())


def refine_crf(
    *,
    scores: Path,
    data_root: Path,
    out_dir: Path,
    crf: dict,
    bg_threshold: float | None,
    bg_threshold_sweep: Path | None,
    shard: str = "0/1",
    threads: int = 1,
) -> None:
    """Dense CRF on [threshold, CAMs] (a make_cams folder) or on score maps (e.g. random_walk); writes score maps.

    Args:
        scores: CAM folder from make_cams, or a score-map folder (random_walk)
        data_root: VOC2012-layout root (for the RGB images)
        out_dir: output folder of <id>.npz score maps
        crf: CRF parameters (iterations, gaussian_sxy, gaussian_compat, bilateral_sxy, bilateral_srgb, bilateral_compat)
        bg_threshold: constant background score given to CAMs (CAM input only; None: taken from bg_threshold_sweep)
        bg_threshold_sweep: the best.json of tune_crf's sweep, when the config says "auto"
        shard: k/N, the slice of the images to process (0/1, the default: all; see lib/plan/shards.py)
        threads: worker processes
    """
    manifest, kind = read_maps_manifest(scores, "the CRF refines")
    if kind == "cams":
        threshold = resolve_threshold(bg_threshold, bg_threshold_sweep, "refine_crf.bg_threshold")
        if threshold is None:
            raise WsssError(f"{scores} holds CAMs: the CRF needs a background threshold")
    else:  # score maps carry their own background channel
        threshold = manifest.get("bg_threshold")
    params = CrfParams(**crf)
    part = Shard.parse(shard)
    ids = part.take(manifest["ids"])
    dataset = VOCDataset(data_root)
    with atomic_dir(out_dir) as tmp:
        work = functools.partial(
            _refine_one,
            dataset=dataset,
            source=Path(scores),
            kind=kind,
            out_dir=tmp,
            threshold=threshold,
            params=params,
        )
        parallel_map(work, ids, threads, desc="refine_crf")
        write_manifest(
            tmp,
            "scores",
            ids,
            refinement="crf",
            source=str(scores),
            bg_threshold=threshold,
            crf=params.__dict__,
            **part.manifest_fields(manifest["ids"]),
        )
    log.info("refined %d images with dense CRF (%d processes)", len(ids), threads)
