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
        impl="wsss_stages.methods.eps.eps:EpsMethod",
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
        impl="wsss_stages.methods.eps.eps:eps_maps",
        label=lambda o: None,
        check=check_source,
        description="EPS: softmax over the foreground and background maps, background dropped",
    )
)
