"""ACR (Kweon, Yoon & Yoon, CVPR 2023) as the stage ``train_acr``.

Enabled by ``acr.enabled``: its classifier C, trained against a reconstructor R, takes the place of
train_classifier's model, so make_cams, every refiner and the reports read its CAMs unchanged. The
``pretrained`` strategy starts C from train_classifier's model (shared with a CAM experiment of the
same seed); ``adversarial`` needs no classifier trained before it.
"""

from __future__ import annotations

from wsss_stages.lib.plan.core_stages import CLASSIFIER_RECIPE
from wsss_stages.lib.plan.declare import Derived, Output, Ref, Stage, register_stage


def _inputs(cfg: dict, variant: str) -> dict:
    pretrained = cfg["acr"]["strategy"] == "pretrained"
    return {"classifier": Ref("train_classifier", "out_model") if pretrained else None}


register_stage(
    Stage(
        "train_acr",
        "ACR: the classifier trained against an inpainting reconstructor (two networks, resumable)",
        inputs=_inputs,
        input_args=("classifier",),
        outputs={"out_model": Output("model.pt"), "out_info": Output("model.json")},
        params={
            "split": "splits.classifier",
            **{k: f"acr.{k}" for k in ("strategy", "epochs")},
            **{k: Derived((f"acr.{k}",), lambda cfg, v, k=k: dict(cfg["acr"][k])) for k in ("srf", "weights")},
            "reconstructor": Derived(("acr.reconstructor",), lambda cfg, v: dict(cfg["acr"]["reconstructor"])),
            "backbone": CLASSIFIER_RECIPE["backbone"],
            "training": CLASSIFIER_RECIPE["training"],
            "seed": "seed",
            "device": "device",
        },
        threads="heavy",
        mem_mb=12000,
        runtime=1440,
        gpu=True,
        module="wsss_stages.methods.acr.train_acr",
    )
)
