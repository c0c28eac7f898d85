"""Puzzle-CAM (Jo & Yu, ICIP 2021): each image also split into 2x2 tiles whose merged features give
reconstructed class maps; L = L_cls + L_p-cls + α L_re, α ramped up over the first half of training.
The tensor pieces live in :mod:`wsss_stages.lib.nets.seed_methods`."""

from __future__ import annotations

from wsss_stages.lib.plan.declare import ClassifierMethod, register_method

TERMS = ("cls", "pcls", "re")
SCHEMA = {
    "alpha": {
        "type": "number",
        "minimum": 0,
        "default": 4.0,
        "description": "weight of the reconstruction loss, reached linearly over the first half of training (the "
        "authors' best 4)",
    },
    "terms": {
        "type": "array",
        "items": {"type": "string", "enum": list(TERMS)},
        "minItems": 1,
        "uniqueItems": True,
        "default": list(TERMS),
        "description": "loss terms (L_cls full image, L_p-cls merged tiles, L_re reconstruction); the ablation drops "
        "some",
    },
    "alpha_schedule": {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "default": 0.5,
        "description": "fraction of training over which α ramps up from 0 (0: α from the start)",
    },
    "level": {
        "type": "string",
        "enum": ["feature", "cam"],
        "default": "feature",
        "description": "L_re compares the raw class maps (feature, the authors' default) or the ReLU'd, max-normalised "
        "CAMs (cam: independent of the maps' magnitude, e.g. lite0's, ~5x ResNet-50's)",
    },
    "re_loss": {
        "type": "string",
        "enum": ["l1", "l2"],
        "default": "l1",
        "description": "element-wise distance of L_re",
    },
    "re_loss_option": {
        "type": "string",
        "enum": ["masking", "selection", "none"],
        "default": "masking",
        "description": "which maps L_re averages: the image's classes over every element (masking, the "
        "authors' best), per image over its classes (selection), or all (none)",
    },
}
RE_OPTIONS = ("alpha", "alpha_schedule", "level", "re_loss", "re_loss_option")


def check(options: dict, section: dict) -> list[str]:
    stride, crop = section["backbone"]["output_stride"], section["training"]["crop_size"]
    if crop % (2 * stride):
        return [
            f"config key 'train_classifier.training.crop_size': Puzzle-CAM needs it divisible by 2 x output_stride "
            f"({2 * stride}), not {crop}"
        ]
    return []


def label(options: dict) -> str:
    if "re" not in options["terms"]:  # α and the L_re options weigh nothing then
        return f"Puzzle-CAM ({'+'.join(options['terms'])})"
    level = ", CAM level" if options.get("level") == "cam" else ""
    return f"Puzzle-CAM ({'+'.join(options['terms'])}, α {options['alpha']:g}{level})"


def relevant(options: dict) -> dict:
    """The L_re options change nothing when L_re is off: leave them out of the signature, so no retraining."""
    return options if "re" in options["terms"] else {k: v for k, v in options.items() if k not in RE_OPTIONS}


register_method(
    ClassifierMethod(
        "puzzle",
        impl="wsss_stages.methods.puzzle.puzzle:PuzzleCam",
        label=label,
        schema=SCHEMA,
        check=check,
        relevant=relevant,
        description="Puzzle-CAM: tile merging and reconstruction losses",
    )
)
