"""Hide-and-Seek (Singh & Lee, ICCV 2017): random grid patches of each training image are hidden
(filled with the dataset's mean colour, so train- and test-time activations share statistics),
so the classifier must find more than the most discriminative part. The loss is CAM's.

The grid size is drawn per image from the authors' set 0/16/32/44/56 (kkanshul/Hide-and-Seek,
``hide_patch.py``), where 0 means the image is shown whole: a fifth of the images are never hidden.
Without the 0 no image is ever seen whole, and lite0's classifier does not rise above the label prior."""

from __future__ import annotations

from wsss_stages.lib.plan.declare import ClassifierMethod, register_method

SCHEMA = {
    "patch_sizes": {
        "type": "array",
        "items": {"type": "integer", "minimum": 0},
        "minItems": 1,
        "default": [0, 16, 32, 44, 56],
        "description": "grid sizes in pixels at the training scale, one drawn per image; 0 shows the image whole "
        "(the authors' set 0/16/32/44/56: without 0 no image is ever seen whole, and lite0 does not learn)",
    },
    "prob": {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "default": 0.5,
        "description": "probability of hiding each patch",
    },
}


register_method(
    ClassifierMethod(
        "hide_and_seek",
        impl="wsss_stages.methods.hide_and_seek.hide_and_seek:HideAndSeekMethod",
        schema=SCHEMA,
        label=lambda o: f"Hide-and-Seek ({'/'.join(map(str, o['patch_sizes']))} px, p {o['prob']:g})",
        description="Hide-and-Seek: grid patches hidden during training",
    )
)
