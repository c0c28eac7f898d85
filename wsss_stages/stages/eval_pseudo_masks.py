"""Score pseudo-masks against the ground truth of the seed split (train)."""

from __future__ import annotations

from pathlib import Path

from wsss_stages.lib.evaluation.evaluation import evaluate_mask_folder


def eval_pseudo_masks(
    *,
    masks: Path,
    data_root: Path,
    out_json: Path,
    out_csv: Path,
    out_per_image: Path,
    split: str,
    mask_folder: str | None,
    threads: int = 1,
) -> None:
    """mIoU, per-class IoU, precision and recall of pseudo-masks on a split with masks.

    Args:
        masks: folder of pseudo-masks from make_pseudo_masks
        data_root: VOC2012-layout root
        split: split with ground truth (train in the standard protocol)
        out_json: metrics JSON
        out_csv: per-class CSV
        out_per_image: per-image confusion matrices (npz)
        mask_folder: SegmentationClass or SegmentationClassAug (None: whichever exists)
        threads: unused (one process)
    """
    evaluate_mask_folder(
        masks=masks,
        data_root=data_root,
        split=split,
        out_json=out_json,
        out_csv=out_csv,
        out_per_image=out_per_image,
        mask_folder=mask_folder,
    )
