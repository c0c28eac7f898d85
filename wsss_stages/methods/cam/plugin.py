"""CAM (Zhou et al., CVPR 2016): the GAP classifier and its own class maps.

As a classifier method: multilabel soft-margin loss on the globally pooled class maps. As a CAM
source: CAM_c = ReLU(w_c · f), the classifier's class maps themselves.
"""

from __future__ import annotations

from wsss_stages.lib.plan.declare import CamSource, ClassifierMethod, register_cam_source, register_method


class CamMethod:
    """The plain classifier: no extra targets, no change to the samples."""

    def __init__(self, options: dict, context) -> None:
        self.options, self.context = options, context

    def loss(self, model, x, targets: dict, progress: float):
        import torch.nn.functional as F

        return F.multilabel_soft_margin_loss(model(x), targets["labels"])


register_method(
    ClassifierMethod(
        "cam",
        impl=f"{__name__}:CamMethod",
        label=lambda options: "CAM",
        description="the GAP classifier (multilabel soft-margin loss)",
    )
)
register_cam_source(CamSource("cam", label=lambda options: None, description="class activation maps ReLU(w_c · f)"))
