"""Grad-CAM (Selvaraju et al., ICCV 2017) as a CAM source: gradients of the class score at a layer."""

from __future__ import annotations

from wsss_stages.lib.plan.declare import CamSource, register_cam_source

SCHEMA = {
    "layer": {
        "type": "string",
        "enum": ["high", "low"],
        "default": "high",
        "description": "feature layer: the last backbone stage (high) or the stride-4 features (low)",
    },
}


register_cam_source(
    CamSource(
        "gradcam",
        impl="wsss_stages.methods.gradcam.gradcam:maps_function",
        needs_grad=True,
        schema=SCHEMA,
        label=lambda options: "Grad-CAM" + (" (low layer)" if options.get("layer") == "low" else ""),
        description="Grad-CAM at make_cams.gradcam.layer, from the same classifier",
    )
)
