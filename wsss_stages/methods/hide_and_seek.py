"""Hide-and-Seek (Singh & Lee, ICCV 2017): random grid patches of each training image are hidden
(filled with the dataset's mean colour, so train- and test-time activations share statistics),
so the classifier must find more than the most discriminative part. The loss is CAM's."""

from __future__ import annotations

from wsss_stages.lib.declare import ClassifierMethod, register_method
from wsss_stages.methods.cam import CamMethod

SCHEMA = {
    "patch_sizes": {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1, "default": [16, 32, 44, 56],
                    "description": "grid sizes in pixels at the training scale, one drawn per image (the paper's 16/32/44/56)"},
    "prob": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5, "description": "probability of hiding each patch"},
}  # fmt: skip


class HideAndSeekMethod(CamMethod):
    def augment(self, augment):
        from wsss_stages.lib.seed_methods import HideAndSeek, normalised_fill

        mean_rgb = self.context.mean_rgb
        self.context.log.info("Hide-and-Seek: patches %s px, p=%.2f, filled with the dataset mean RGB %s",
                              list(self.options["patch_sizes"]), self.options["prob"], [round(v, 1) for v in mean_rgb])
        fill = normalised_fill(mean_rgb, self.context.mean, self.context.std)
        return HideAndSeek(augment, self.options["patch_sizes"], self.options["prob"], fill, self.context.seed)


register_method(ClassifierMethod(
    "hide_and_seek", impl=f"{__name__}:HideAndSeekMethod", schema=SCHEMA,
    label=lambda o: f"Hide-and-Seek ({'/'.join(map(str, o['patch_sizes']))} px, p {o['prob']:g})",
    description="Hide-and-Seek: grid patches hidden during training",
))
