"""RecurSeed with EdgePredictMix (Jo, Yu & Kim, "RecurSeed and EdgePredictMix: Pseudo-Label Refinement
Learning for Weakly Supervised Semantic Segmentation across Single- and Multi-Stage Frameworks"): one
network, a CAM head and a DeepLab v3+ decoder on one backbone, trained single-stage on its own
recursively refined seeds M_rs = PAMR(SCG(M_cam)), with EdgePredictMix (or CutMix, ClassMix) after a
warm-up. Its CAMs are a CAM source like any classifier's (make_cams and every refiner read them).

The authors published inference code only: δ_fg, δ_bg, the warm-up, the Canny thresholds and the
reconstruction target's resolution are choices of ours (defaults below, docs/methods.md).
"""

from __future__ import annotations

from wsss_stages.lib.plan.declare import ClassifierMethod, register_method

SCHEMA = {
    "mix": {
        "enum": ["none", "epm", "cutmix", "classmix"],
        "default": "epm",
        "description": "the mixed batch after the warm-up: EdgePredictMix (epm), CutMix, ClassMix, or none (RS alone)",
    },
    "warmup": {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "default": 0.25,
        "description": "share of the training steps before any mixing (the decoder's masks are noise at first); "
        "our choice",
    },
    "delta_fg": {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "default": 0.4,
        "description": "CF and EP: a class score above it makes a pixel that class (our choice; SCG + PAMR maps of "
        "the preset's CAMs are best thresholded near 0.35)",
    },
    "delta_bg": {
        "type": "number",
        "minimum": 0,
        "maximum": 1,
        "default": 0.2,
        "description": "CF: every class score below it makes a pixel background; between δ_bg and δ_fg it is "
        "ignored (our choice)",
    },
    "canny": {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": 255},
        "minItems": 2,
        "maxItems": 2,
        "default": [50, 100],
        "description": "EP: Canny's low and high hysteresis thresholds on probabilities scaled to 0..255",
    },
    "monitor": {
        "type": "boolean",
        "default": False,
        "description": "diagnostics: score M_seg against the training images' masks each step (precision and "
        "coverage per epoch in train_classifier's model.json); nothing trains on them",
    },
    "decoder_width": {
        "type": "integer",
        "minimum": 0,
        "default": 128,
        "description": "channels of the DeepLab v3+ decoder (0: the backbone's default, 256 for ResNets)",
    },
    "scg": {
        "type": "object",
        "additionalProperties": False,
        "default": {},
        "description": "SCG inside the training step (refine_scg's keys and defaults)",
        "properties": {
            "variant": {"enum": ["authors", "averaged"], "default": "averaged", "description": "refine_scg.variant"},
            "first_threshold": {"type": "number", "default": 0.5, "description": "first-order correlations kept"},
            "second_threshold": {"type": "number", "default": 0.1, "description": "second-order (× 1/n) kept"},
            "fg": {"type": "number", "default": 0.3, "description": "CAM score of a class's confident pixels"},
            "bg": {"type": "number", "default": 0.05, "description": "CAM score of its confident background"},
        },
    },
    "pamr": {
        "type": "object",
        "additionalProperties": False,
        "default": {},
        "description": "PAMR inside the training step (refine_pamr's defaults)",
        "properties": {
            "iterations": {"type": "integer", "minimum": 1, "default": 10, "description": "propagation steps"},
            "stride": {"type": "integer", "minimum": 1, "default": 4, "description": "resolution 1/stride of the crop"},
        },
    },
}


def label(options: dict) -> str:
    mix = {"none": "", "epm": " + EPM", "cutmix": " + CutMix", "classmix": " + ClassMix"}[options["mix"]]
    return f"RecurSeed{mix}"


def check(options: dict, section: dict) -> list[str]:
    problems = []
    if options["delta_bg"] > options["delta_fg"]:
        problems.append(
            "config key 'train_classifier.recurseed.delta_bg' must not exceed delta_fg "
            f"({options['delta_bg']} > {options['delta_fg']})"
        )
    if options["mix"] != "none" and section["training"]["batch_size"] < 2:
        problems.append("config key 'train_classifier.training.batch_size': mixing needs at least 2 images a batch")
    return problems


register_method(
    ClassifierMethod(
        "recurseed",
        impl="wsss_stages.methods.recurseed.recurseed:RecurSeed",
        label=label,
        schema=SCHEMA,
        check=check,
        description="RecurSeed: CAM head + decoder trained on PAMR(SCG(CAM)), with EdgePredictMix / CutMix / ClassMix",
    )
)
