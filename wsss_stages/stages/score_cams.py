"""Stage score_cams: the seed CAMs of another split (val) scored at the threshold tuned on the seed split.

Thresholds are never tuned here: the value comes from the eval_cams sweep on train (or the
config), so val only measures. It doubles the images a seed comparison rests on for the cost of
extracting their CAMs.
"""

from __future__ import annotations

from pathlib import Path

from wsss_stages import WsssError
from wsss_stages.lib.data.artifacts import load_cams, read_manifest
from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.evaluation.evaluation import score_predictions, scoring_ids
from wsss_stages.lib.evaluation.thresholds import cam_labels, resolve_threshold


def score_cams(
    *,
    cams: Path,
    data_root: Path,
    out_json: Path,
    out_csv: Path,
    out_per_image: Path,
    split: str,
    mask_folder: str | None,
    bg_threshold: float | None,
    bg_threshold_sweep: Path | None,
    threads: int = 1,
) -> None:
    """Score CAMs thresholded at a fixed background threshold on a split with masks.

    Args:
        cams: CAM folder (make_cams' val CAMs)
        data_root: VOC2012-layout root
        out_json: metrics JSON (with the threshold used)
        out_csv: per-class CSV
        out_per_image: per-image confusion matrices (npz)
        split: split with ground-truth masks (val)
        mask_folder: SegmentationClass or SegmentationClassAug (None: whichever exists)
        bg_threshold: the background threshold (None: taken from bg_threshold_sweep)
        bg_threshold_sweep: the best.json of the sweep on the seed split, when the config says "auto"
        threads: unused (one process)
    """
    threshold = resolve_threshold(bg_threshold, bg_threshold_sweep, "cam_bg_threshold")
    if threshold is None:
        raise WsssError("score_cams needs a background threshold (config key: cam_bg_threshold)")
    dataset = VOCDataset(data_root, mask_folder)
    cams = Path(cams)
    ids, with_masks = scoring_ids(dataset, split, set(read_manifest(cams, "cams")["ids"]))
    score_predictions(
        dataset=dataset,
        ids=ids,
        predict=lambda i: cam_labels(*load_cams(cams / f"{i}.npz"), threshold).astype("uint8"),
        split=split,
        out_json=out_json,
        out_csv=out_csv,
        out_per_image=out_per_image,
        what=f"CAMs at background threshold {threshold:.2f}",
        masks=with_masks,
    )
