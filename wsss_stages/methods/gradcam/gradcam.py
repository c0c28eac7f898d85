"""Grad-CAM's maps from a trained classifier (the gradients live in :mod:`wsss_stages.lib.nets.cams`)."""

from __future__ import annotations


def maps_function(model, options: dict, classes):
    """``maps(x) -> [B, C, h, w]`` computing Grad-CAM at ``options["layer"]`` for ``classes`` (0-based)."""
    from wsss_stages.lib.nets.cams import gradcam_function

    return gradcam_function(model, options["layer"], classes)
