"""Dense CRF on CAM scores: background score = the CAM background threshold, then mean field."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from wsss_stages import WsssError
from wsss_stages.artifacts import atomic_dir, load_score_like, read_json, read_manifest, save_scores, write_manifest
from wsss_stages.crf import CrfParams, crf_on_scores
from wsss_stages.parallel import parallel_map
from wsss_stages.voc import VOCDataset

log = logging.getLogger(__name__)


def resolve_bg_threshold(bg_threshold: float | None, bg_threshold_from: Path | None) -> float:
    """A fixed threshold, or the best one of an eval_cams sweep (``best.json``)."""
    if (bg_threshold is None) == (bg_threshold_from is None):
        raise WsssError("give exactly one of --bg-threshold and --bg-threshold-from")
    if bg_threshold_from is not None:
        value = read_json(bg_threshold_from)["best_threshold"]
        log.info("background threshold %.3f from %s", value, bg_threshold_from)
        return float(value)
    if not 0.0 <= bg_threshold <= 1.0:
        raise WsssError(f"background threshold {bg_threshold} is outside [0, 1] (config key: cam_bg_threshold)")
    return bg_threshold


def _refine_one(image_id: str, *, dataset: VOCDataset, source: Path, kind: str, out_dir: Path, threshold: float | None,
                params: CrfParams) -> None:
    scores, classes = load_score_like(source, image_id, kind, threshold)
    probs = crf_on_scores(dataset.load_image(image_id), scores, params)
    save_scores(out_dir / f"{image_id}.npz", probs, classes.tolist())


def refine_crf(*, scores: Path, data_root: Path, out_dir: Path, bg_threshold: float | None = None,
               bg_threshold_from: Path | None = None, iterations: int = 10, gaussian_sxy: float = 3.0,
               gaussian_compat: float = 3.0, bilateral_sxy: float = 80.0, bilateral_srgb: float = 13.0,
               bilateral_compat: float = 10.0, threads: int = 1) -> None:
    """Dense CRF on [threshold, CAMs] (a make_cams folder) or on score maps (e.g. random_walk); writes score maps.

    Args:
        scores: CAM folder from make_cams, or a score-map folder (random_walk)
        data_root: VOC2012-layout root (for the RGB images)
        out_dir: output folder of <id>.npz score maps
        bg_threshold: constant background score given to CAMs (CAM input only)
        bg_threshold_from: best.json of tune_crf (instead of bg_threshold)
        iterations: mean-field iterations
        gaussian_sxy: smoothness kernel width
        gaussian_compat: smoothness kernel weight
        bilateral_sxy: appearance kernel spatial width
        bilateral_srgb: appearance kernel colour width
        bilateral_compat: appearance kernel weight
        threads: worker processes
    """
    manifest = read_manifest(scores)
    kind = manifest.get("kind")
    if kind not in ("cams", "scores"):
        raise WsssError(f"{scores} holds '{kind}' artifacts; the CRF refines CAMs or score maps")
    if kind == "cams":
        threshold = resolve_bg_threshold(bg_threshold, bg_threshold_from)
    else:  # score maps carry their own background channel
        threshold = manifest.get("bg_threshold")
    params = CrfParams(iterations, gaussian_sxy, gaussian_compat, bilateral_sxy, bilateral_srgb, bilateral_compat)
    ids = manifest["ids"]
    dataset = VOCDataset(data_root)
    with atomic_dir(out_dir) as tmp:
        work = functools.partial(_refine_one, dataset=dataset, source=Path(scores), kind=kind, out_dir=tmp,
                                 threshold=threshold, params=params)  # fmt: skip
        parallel_map(work, ids, threads, desc="refine_crf")
        write_manifest(tmp, "scores", ids, refinement="crf", source=str(scores), bg_threshold=threshold, crf=params.__dict__)
    log.info("refined %d images with dense CRF (%d processes)", len(ids), threads)
