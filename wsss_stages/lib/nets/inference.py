"""Segmentation inference shared by predict_segmentation (a split), predict (a folder of new images) and predict_sec."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from wsss_stages import WsssError
from wsss_stages.lib.nets.models import load_model, to_tensor
from wsss_stages.lib.nets.runtime import for_inference, inference_dtype
from wsss_stages.refiners.crf.densecrf import DEEPLAB_CRF, crf_on_scores


def load_segmentation_net(
    model, device: torch.device, precision: str
) -> tuple[torch.nn.Module, dict, torch.dtype | None]:
    """A trained segmentation network (DeepLab v3+ or v2, or a RecurSeed classifier's decoder) ready for
    inference on ``device``, its metadata and the autocast dtype that ``precision`` gives there."""
    net, meta = load_model(model, ("deeplabv3plus", "deeplabv2", "classifier"))
    if meta["kind"] == "classifier":
        if not hasattr(net, "segmenter"):
            raise WsssError(f"{model} is a classifier without a segmentation decoder (only RecurSeed's has one)")
        net = net.segmenter
    return for_inference(net, device), meta, inference_dtype(precision, device)


def predict_probs(net: torch.nn.Module, image: torch.Tensor, scales: Sequence[float], flip: bool) -> torch.Tensor:
    """Softmax ``[C, H, W]`` averaged over scales (and flips) for one normalised image ``[3, H, W]``."""
    _, h, w = image.shape
    total = 0
    for scale in scales:
        x = (
            image[None]
            if scale == 1.0
            else F.interpolate(image[None], scale_factor=scale, mode="bilinear", align_corners=False)
        )
        batch = (torch.cat([x, x.flip(-1)]) if flip else x).contiguous(memory_format=torch.channels_last)
        logits = F.interpolate(net(batch).float(), size=(h, w), mode="bilinear", align_corners=False)
        probs = logits.softmax(1)
        total = total + (probs[0] + probs[1].flip(-1) if flip else probs[0])
    return total / (len(scales) * (2 if flip else 1))


def predict_mask(
    net: torch.nn.Module,
    meta: dict,
    image: np.ndarray,
    device: torch.device,
    scales: Sequence[float],
    flip: bool,
    crf: bool = False,
) -> np.ndarray:
    """Class-index mask ``[H, W]`` of one RGB image: softmax over scales (and flips), optionally a dense CRF."""
    probs = (
        predict_probs(net, to_tensor(image, meta["mean"], meta["std"]).to(device), scales, flip).float().cpu().numpy()
    )
    if crf:
        probs = crf_on_scores(image, probs, DEEPLAB_CRF)
    return probs.argmax(0).astype(np.uint8)
