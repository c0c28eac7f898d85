"""EPS (Lee et al., CVPR 2021, "Railroad is not a train"): saliency maps as pseudo-pixel supervision.

The classifier has C + 1 maps (the last for the background, bias-free 1×1 head); the image's class
logits pool only the C foreground maps. With P the softmax over the C + 1 maps at feature
resolution and M_s the saliency map resized to it, each labelled class i is assigned to the
foreground set F when its rounded map overlaps the rounded saliency by more than τ
(O_i = |round(P_i) ∧ round(M_s)| / |round(P_i)|, no gradient), else to the background set B
(which also holds the background map). The loss is the multilabel soft margin of the logits plus
mean((M̂_s − M_s)²), M̂_s = λ Σ_{i∈F} P_i + (1 − λ)(1 − Σ_{i∈B} P_i). τ 0.4 and λ 0.5 follow the
authors' training script (its argument defaults differ). The "naive" assignment puts every
labelled class in F (no overlap test), the paper's ablation of the adaptive assignment.

Saliency maps come from ``<data_root>/<saliency_folder>/<id>.png`` (8-bit grey, continuous values).
Pseudo-masks use the CAM source ``eps``: the softmax over the C + 1 maps, background dropped, then
the usual multi-scale + flip sum and max normalisation, against a background threshold swept on
train (the authors fix 0.20). Where we differ: their poly optimiser passes weight decay as
momentum; ours uses real momentum (``training.momentum``).
"""

from __future__ import annotations

import numpy as np

from wsss_stages.lib.plan.declare import CamSource, ClassifierMethod, register_cam_source, register_method

SCHEMA = {
    "tau": {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "default": 0.4,
        "description": "overlap ratio above which a labelled class's map counts as salient foreground (τ)",
    },
    "lam": {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "default": 0.5,
        "description": "weight of the foreground maps against the background maps in the estimated saliency (λ)",
    },
    "assignment": {
        "type": "string",
        "enum": ["adaptive", "naive"],
        "default": "adaptive",
        "description": "adaptive: classes enter F by their overlap with the saliency; naive: every labelled class is "
        "foreground (the ablation)",
    },
    "saliency_folder": {
        "type": "string",
        "default": "SaliencyMaps",
        "description": "folder of the data tree with <id>.png saliency maps",
    },
}
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


def check_source(cfg: dict) -> list[str]:
    if cfg["train_classifier"]["method"] != "eps":
        return [
            "config key 'make_cams.cam_type': eps reads a classifier with a background map (train_classifier.method: "
            "eps)"
        ]
    return []


register_method(
    ClassifierMethod(
        "eps",
        impl=f"{__name__}:EpsMethod",
        schema=SCHEMA,
        label=lambda o: (
            f"EPS (τ {o['tau']:g}, λ {o['lam']:g})" if o["assignment"] == "adaptive" else "EPS, naive saliency"
        ),
        description="EPS: a background map and saliency supervision",
    )
)
register_cam_source(
    CamSource(
        "eps",
        impl=f"{__name__}:eps_maps",
        label=lambda o: None,
        check=check_source,
        description="EPS: softmax over the foreground and background maps, background dropped",
    )
)
