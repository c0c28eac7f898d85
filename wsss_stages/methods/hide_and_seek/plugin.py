"""Hide-and-Seek (Singh & Lee, ICCV 2017): random grid patches of each training image are hidden
(filled with the dataset's mean colour, so train- and test-time activations share statistics),
so the classifier must find more than the most discriminative part. The loss is CAM's.

The grid size is drawn per image from the authors' set 0/16/32/44/56 (kkanshul/Hide-and-Seek,
``hide_patch.py``), where 0 means the image is shown whole: a fifth of the images are never hidden.
This project's first default left the 0 out, and on the VOC subset the classifier then never rose
above the label prior (train mAP 24 % against CAM's 87 %); with the 0 it learns (docs/methods.md)."""

from __future__ import annotations

from wsss_stages.lib.plan.declare import ClassifierMethod, register_method
from wsss_stages.methods.cam.plugin import CamMethod

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


class HideAndSeekMethod(CamMethod):
    def augment(self, augment):
        from wsss_stages.lib.nets.seed_methods import HideAndSeek, normalised_fill

        mean_rgb = self.context.mean_rgb
        self.context.log.info(
            "Hide-and-Seek: patches %s px, p=%.2f, filled with the dataset mean RGB %s",
            list(self.options["patch_sizes"]),
            self.options["prob"],
            [round(v, 1) for v in mean_rgb],
        )
        fill = normalised_fill(mean_rgb, self.context.mean, self.context.std)
        return HideAndSeek(augment, self.options["patch_sizes"], self.options["prob"], fill, self.context.seed)


register_method(
    ClassifierMethod(
        "hide_and_seek",
        impl=f"{__name__}:HideAndSeekMethod",
        schema=SCHEMA,
        label=lambda o: f"Hide-and-Seek ({'/'.join(map(str, o['patch_sizes']))} px, p {o['prob']:g})",
        description="Hide-and-Seek: grid patches hidden during training",
    )
)
