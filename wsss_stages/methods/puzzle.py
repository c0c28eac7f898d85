"""Puzzle-CAM (Jo & Yu, ICIP 2021): each image also split into 2x2 tiles whose merged features give
reconstructed class maps; L = L_cls + L_p-cls + α L_re, α ramped up over the first half of training.
The tensor pieces live in :mod:`wsss_stages.lib.seed_methods`."""

from __future__ import annotations

from wsss_stages.lib.declare import ClassifierMethod, register_method

TERMS = ("cls", "pcls", "re")
SCHEMA = {
    "alpha": {"type": "number", "minimum": 0, "default": 4.0,
              "description": "weight of the reconstruction loss, reached linearly over the first half of training (the authors' best 4)"},
    "terms": {"type": "array", "items": {"type": "string", "enum": list(TERMS)}, "minItems": 1, "uniqueItems": True,
              "default": list(TERMS),
              "description": "loss terms (L_cls full image, L_p-cls merged tiles, L_re reconstruction); the ablation drops some"},
}  # fmt: skip


class PuzzleCam:
    def __init__(self, options: dict, context) -> None:
        self.alpha, self.terms = options["alpha"], list(options["terms"])

    def loss(self, model, x, targets: dict, progress: float):
        from wsss_stages.lib.seed_methods import puzzle_alpha, puzzle_losses

        terms = puzzle_losses(model, x, targets["labels"])
        alpha = puzzle_alpha(progress, self.alpha)
        return sum((alpha if name == "re" else 1.0) * terms[name] for name in self.terms)


def check(options: dict, section: dict) -> list[str]:
    stride, crop = section["backbone"]["output_stride"], section["training"]["crop_size"]
    if crop % (2 * stride):
        return [f"config key 'train_classifier.training.crop_size': Puzzle-CAM needs it divisible by 2 x output_stride ({2 * stride}), not {crop}"]
    return []


def label(options: dict) -> str:
    alpha = f", α {options['alpha']:g}" if "re" in options["terms"] else ""  # α weighs L_re only
    return f"Puzzle-CAM ({'+'.join(options['terms'])}{alpha})"


def relevant(options: dict) -> dict:
    """α changes nothing when L_re is off: leave it out of the signature, so no retraining."""
    return options if "re" in options["terms"] else {k: v for k, v in options.items() if k != "alpha"}


register_method(ClassifierMethod("puzzle", impl=f"{__name__}:PuzzleCam", label=label, schema=SCHEMA, check=check,
                                 relevant=relevant, description="Puzzle-CAM: tile merging and reconstruction losses"))
