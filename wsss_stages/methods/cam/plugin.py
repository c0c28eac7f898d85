"""CAM (Zhou et al., CVPR 2016): the GAP classifier and its own class maps.

As a classifier method: multilabel soft-margin loss on the globally pooled class maps. As a CAM
source: CAM_c = ReLU(w_c · f), the classifier's class maps themselves.
"""

from __future__ import annotations

from wsss_stages.lib.plan.declare import CamSource, ClassifierMethod, register_cam_source, register_method

register_method(
    ClassifierMethod(
        "cam",
        impl="wsss_stages.methods.cam.cam:CamMethod",
        label=lambda options: "CAM",
        description="the GAP classifier (multilabel soft-margin loss)",
    )
)
register_cam_source(CamSource("cam", label=lambda options: None, description="class activation maps ReLU(w_c · f)"))
