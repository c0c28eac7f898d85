"""How well a trained classifier classifies: multi-label mAP over a set of images (score_classifier,
and each step of adversarial erasing). Kept apart from :mod:`wsss_stages.lib.nets.classifier` so that its
edits never rerun classifier training."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from wsss_stages.lib.data.voc import VOCDataset
from wsss_stages.lib.nets.models import load_model, to_tensor
from wsss_stages.lib.nets.runtime import autocast, for_inference, inference_dtype, progress
from wsss_stages.lib.nets.seed_methods import average_precision
from wsss_stages.lib.nets.training import resize_with_maps


def classification_map(
    model: Path,
    dataset: VOCDataset,
    ids: Sequence[str],
    device: torch.device,
    *,
    precision: str = "fp32",
    size: int | None = None,
    load_image: Callable[[str], np.ndarray] | None = None,
) -> float:
    """Multi-label mAP (%, background excluded) of a classifier on ``ids``, one forward per image: the
    image as ``load_image`` gives it (the dataset's own by default), its longer side resized to ``size``
    (None: as it is). A classifier that does not classify gives weak CAMs whatever comes after."""
    net, meta = load_model(model, ("classifier",))
    net = for_inference(net, device)
    load_image = load_image or dataset.load_image
    scores, targets = [], []
    with torch.inference_mode(), autocast(device, inference_dtype(precision, device)):
        for image_id in progress(ids, desc="classification mAP", leave=False):
            image = load_image(image_id)
            if size:
                image, _ = resize_with_maps(image, {}, size / max(image.shape[:2]))
            x = (
                to_tensor(image, meta["mean"], meta["std"])[None]
                .to(device)
                .contiguous(memory_format=torch.channels_last)
            )
            scores.append(net(x)[0].float().cpu().numpy())
            targets.append(dataset.label_vector(image_id))
    return average_precision(np.stack(scores), np.stack(targets))
