"""EPS's loss, its training targets (saliency maps) and its CAM source (see plugin.py for the method)."""

from __future__ import annotations

import numpy as np

PAD = 255  # value of padded saliency pixels after the crop: saliency is stored 0..254


def eps_loss(maps, labels, saliency, tau: float, lam: float, naive: bool = False):
    """EPS's loss from the head's maps ``[B, C+1, h, w]`` (background last), multi-hot ``labels`` ``[B, C]``
    and ``saliency`` ``[B, H, W]`` (0..254 = 0..1, 255 = padding); returns (total, terms)."""
    import torch
    import torch.nn.functional as F

    c = labels.shape[1]
    probs = maps.float().softmax(1)
    target = F.interpolate(saliency[:, None].float(), size=maps.shape[-2:], mode="nearest")[:, 0]
    valid = target != PAD
    target = (target / (PAD - 1)).clamp(0, 1)
    present = labels > 0.5
    with torch.no_grad():
        predicted = (probs[:, :c] > 0.5) & valid[:, None]  # padding takes part in no overlap
        salient = ((target > 0.5) & valid)[:, None]
        overlap = (predicted & salient).flatten(2).sum(-1) / predicted.flatten(2).sum(-1).clamp_min(1)
        foreground = present if naive else present & (overlap > tau)
        background = present & ~foreground
    fg_map = (probs[:, :c] * foreground[:, :, None, None]).sum(1)
    bg_map = (probs[:, :c] * background[:, :, None, None]).sum(1) + probs[:, c]
    estimate = lam * fg_map + (1 - lam) * (1 - bg_map)
    saliency_loss = ((estimate - target) ** 2 * valid).sum() / valid.sum().clamp_min(1)
    classification = F.multilabel_soft_margin_loss(maps[:, :c].mean((2, 3)), labels)
    return classification + saliency_loss, {"cls": classification, "sal": saliency_loss, "foreground": foreground}


class EpsMethod:
    def __init__(self, options: dict, context) -> None:
        self.options, self.context = options, context
        self.folder = context.dataset.root / options["saliency_folder"]

    def build(self, backbone, num_classes: int):
        from wsss_stages.lib.nets.models import CamClassifier

        return CamClassifier(backbone, num_classes, background=True)

    def targets(self, image_id: str) -> dict[str, np.ndarray]:
        """The saliency map, stored 0..254 so that the crop's padding (255) stays apart."""
        from PIL import Image

        from wsss_stages import WsssError

        path = self.folder / f"{image_id}.png"
        if not path.is_file():
            raise WsssError(
                f"EPS needs a saliency map for every training image: {path} is missing "
                "(config key: train_classifier.eps.saliency_folder)"
            )
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"), dtype=np.float32)
        return {"saliency": np.round(grey / 255.0 * (PAD - 1)).astype(np.uint8)}

    def loss(self, model, x, targets: dict, progress: float):
        o = self.options
        total, _ = eps_loss(
            model.class_maps(x), targets["labels"], targets["saliency"], o["tau"], o["lam"], o["assignment"] == "naive"
        )
        return total


def eps_maps(model, options: dict, classes):
    """The EPS CAM source: softmax over the C + 1 maps, the background dropped."""
    return lambda x: model.class_maps(x).float().softmax(1)[:, : model.num_classes]
