"""AE-PSL (adversarial erasing; Wei et al., CVPR 2017) as the stage ``train_erasing``.

Enabled by ``adversarial_erasing.enabled``: it takes the place of the classifier's CAMs, training a
classifier on ever more erased images and fusing the seeds of every step.
"""

from __future__ import annotations

from wsss_stages.lib.plan.core_stages import CAM_INFERENCE, CLASSIFIER_RECIPE, cam_splits, code_of_method
from wsss_stages.lib.plan.declare import Derived, Output, Stage, register_stage
from wsss_stages.lib.plan.pipeline import classifier

register_stage(
    Stage(
        "train_erasing",
        "adversarial erasing (AE-PSL): classifiers on ever more erased images, fused seeds",
        inputs=lambda cfg, v: {"classifier": classifier(cfg)},
        input_args=("classifier",),
        outputs={"out_dir": Output("cams", directory=True), "out_report": Output("steps.json")},
        params={
            "split": "splits.classifier",
            "cam_splits": Derived(("splits.seeds", "splits.segmentation"), cam_splits),
            "steps": "adversarial_erasing.steps",
            "delta": "adversarial_erasing.delta",
            "map_floor": "adversarial_erasing.map_floor",
            **CAM_INFERENCE,
            **CLASSIFIER_RECIPE,
            "seed": "seed",
            "device": "device",
        },
        threads="heavy",
        mem_mb=8000,
        runtime=1440,
        gpu=True,
        code=code_of_method,
        module="wsss_stages.methods.aepsl.train_erasing",
    )
)
