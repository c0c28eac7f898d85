"""Stage train_classifier: the multi-label classifier whose class maps are the CAMs.

How it is trained (loss, extra targets, sample changes) is the chosen classifier method, a
registered plug-in (CAM, Puzzle-CAM, Hide-and-Seek …, see :mod:`wsss_stages.methods`).
"""

from __future__ import annotations

from pathlib import Path

from wsss_stages.lib.nets.classifier import train_cam_classifier
from wsss_stages.lib.nets.runtime import set_threads


def train_classifier(
    *,
    data_root: Path,
    out_model: Path,
    out_info: Path,
    split: str,
    backbone: dict,
    training: dict,
    method: str,
    method_options: dict,
    seed: int,
    device: str,
    threads: int = 1,
) -> None:
    """Train a CAM classifier with the chosen method (poly LR, 10x LR on the head), resumable.

    Checkpoints go to results/<experiment>/.checkpoints/train_classifier/ and are resumed when the
    arguments are unchanged; the final weights are written atomically.

    Args:
        data_root: VOC2012-layout root
        out_model: final weights file (.pt)
        out_info: JSON record of the settings and the loss history
        split: training split (image-level labels only are used)
        backbone: the config section train_classifier.backbone (name, weights, output_stride, freeze_bn)
        training: the config section train_classifier.training (epochs, batch_size, crop_size, lr …)
        method: a registered classifier method (cam, puzzle, hide_and_seek, …)
        method_options: that method's options (its config section train_classifier.<method>)
        seed: random seed
        device: auto, cpu or cuda
        threads: CPU threads to use
    """
    set_threads(threads)
    train_cam_classifier(
        data_root=data_root,
        split=split,
        out_model=out_model,
        out_info=out_info,
        backbone=backbone,
        training=training,
        method=method,
        method_options=method_options,
        seed=seed,
        device=device,
    )
