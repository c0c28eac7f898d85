"""Dense CRF (Krähenbühl & Koltun, NeurIPS 2011) as a refiner: psa / Puzzle-CAM's parameters on the
seeds, DeepLab's post-processing CRF after another refiner (``refine_crf.chained``).

Stages: ``tune_crf`` sweeps the background score given to the CRF next to CAM-format maps on the
seed split (train): the seeds, and every chain the CRF follows (``rw`` in ``rw+crf``), each its own
sweep; ``refine_crf`` runs the CRF on a chain's maps (the seeds, or e.g. walked CAMs) and writes
score maps that carry their own background.
"""

from __future__ import annotations

import yaml

from wsss_stages import WsssError
from wsss_stages.lib.plan.declare import Derived, Output, Ref, Refiner, Stage, Threshold, lookup, register_refiner
from wsss_stages.lib.plan.pipeline import SEEDS, chain_kind, chain_ref, chain_threshold
from wsss_stages.refiners.crf.densecrf import DEEPLAB_CRF

PARAMETERS = ("iterations", "gaussian_sxy", "gaussian_compat", "bilateral_sxy", "bilateral_srgb", "bilateral_compat")

SECTION = yaml.safe_load("""
type: object
additionalProperties: false
default: {}
description: dense CRF on soft CAM scores (psa / Puzzle-CAM defaults)
properties:
  bg_threshold:
    $ref: "#/$defs/threshold_or_auto"
    default: auto
    description: >
      constant background score given to the CRF next to the seed CAMs; "auto" (or a rule's name)
      has tune_crf choose it on the seed split (train) by threshold_rule. It differs from cam_bg_threshold: the CRF's
      colour terms shrink objects, so its best background score is lower
  thresholds:
    type: array
    items: {$ref: "#/$defs/unit_interval"}
    minItems: 1
    default: [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4]
    description: background scores tried by tune_crf next to the seeds (when bg_threshold is auto)
  iterations: {type: integer, minimum: 1, default: 10, description: mean-field iterations}
  gaussian_sxy: {type: number, exclusiveMinimum: 0, default: 3, description: smoothness kernel width (px)}
  gaussian_compat: {type: number, minimum: 0, default: 3, description: smoothness kernel weight}
  bilateral_sxy: {type: number, exclusiveMinimum: 0, default: 80, description: appearance kernel spatial width (px)}
  bilateral_srgb: {type: number, exclusiveMinimum: 0, default: 13, description: appearance kernel colour width}
  bilateral_compat: {type: number, minimum: 0, default: 10, description: appearance kernel weight}
  chained:
    type: object
    additionalProperties: false
    default: {}
    description: >
      the CRF after another refiner (rw+crf, pamr+crf, scg+crf …): DeepLab's post-processing CRF
      (bilateral w 4, xy 67, rgb 3; Gaussian w 3, xy 1) instead of the seeds' psa CRF, which
      over-smooths maps that a refiner has already propagated (VOC subset, irn-walked maps: psa's CRF
      34.6 against the walk's 37.9; docs/methods.md)
    properties:
      bg_threshold:
        oneOf:
          - $ref: "#/$defs/threshold_or_auto"
          - {const: inherit}
        default: auto
        description: >
          background score next to another refiner's CAM-format maps (e.g. the walked maps of
          rw+crf): "auto" has tune_crf choose it on those maps (seed split, threshold_rule), "inherit" takes that
          refiner's own threshold, a number fixes it
      thresholds:
        type: array
        items: {$ref: "#/$defs/unit_interval"}
        minItems: 1
        default: [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
        description: >
          background scores tried by tune_crf next to a refiner's maps (when bg_threshold is auto); up
          to 0.5 because the irn walk's maps of the current CPU preset are best at 0.45 on their own, and
          the sweep to 0.4 stopped at its edge there
""")
# the chained CRF's parameters: the same keys as the seeds' CRF, with DeepLab's values as defaults
SECTION["properties"]["chained"]["properties"].update(
    {k: {**SECTION["properties"][k], "default": getattr(DEEPLAB_CRF, k)} for k in PARAMETERS}
)


def settings(cfg: dict, source: str) -> dict:
    """The CRF's section for the maps it refines: the seeds' (psa's CRF), or ``chained`` after another refiner."""
    return cfg["refine_crf"] if source == SEEDS else cfg["refine_crf"]["chained"]


def setting_keys(name: str) -> tuple[str, str]:
    return (f"refine_crf.{name}", f"refine_crf.chained.{name}")


CRF = Derived(
    tuple(k for name in PARAMETERS for k in setting_keys(name)),
    lambda cfg, source: {k: settings(cfg, source)[k] for k in PARAMETERS},
)
THRESHOLDS = Derived(setting_keys("thresholds"), lambda cfg, source: list(settings(cfg, source)["thresholds"]))


def background(cfg: dict, source: str) -> dict:
    """The CRF's own background score next to CAM-format maps (the seeds' or another refiner's), swept
    by tune_crf on those maps, or that refiner's threshold ("inherit"); none on score maps (they carry
    their background)."""
    if chain_kind(cfg, source) != "cams":
        return {"bg_threshold": None}
    key = "refine_crf.bg_threshold" if source == SEEDS else "refine_crf.chained.bg_threshold"
    value = lookup(cfg, key)
    if value == "inherit":
        return {"bg_threshold": chain_threshold(cfg, source)}
    return {"bg_threshold": Threshold(value, Ref("tune_crf", "out_best", source), key)}


def background_rule(cfg: dict, source: str) -> str:
    """How tune_crf chooses the score: the rule its key names, else threshold_rule."""
    value = lookup(cfg, setting_keys("bg_threshold")[source != SEEDS])
    return value if value in ("sweep", "otsu", "stability") else cfg["threshold_rule"]


RULE = Derived(("threshold_rule", *setting_keys("bg_threshold")), background_rule)


def tunable(cfg: dict, source: str) -> dict:
    if chain_kind(cfg, source) != "cams":
        raise WsssError(f"tune_crf sweeps a background score for CAM-format maps; '{source}' gives score maps")
    return {"cams": chain_ref(cfg, source)}


TUNE = Stage(
    "tune_crf",
    "sweep the CRF background score next to a chain's CAM-format maps on the seed split",
    inputs=tunable,
    input_args=("cams",),
    outputs={
        "out_csv": Output("{source}/sweep.csv"),
        "out_best": Output("{source}/best.json"),
        "out_per_class": Output("{source}/per_class.csv"),
        "out_plot": Output("{source}/sweep.png"),
    },
    params={
        "split": "splits.seeds",
        "thresholds": THRESHOLDS,
        "crf": CRF,
        "rule": RULE,
        "cam_thresholds": "eval_cams.thresholds",
        "mask_folder": "mask_folder",
    },
    variant="source",
    threads="all",
    mem_mb=4000,
    runtime=240,
    module="wsss_stages.refiners.crf.tune_crf",
)
REFINE = Stage(
    "refine_crf",
    "dense CRF on a chain's maps (CAMs with a background score, or score maps)",
    inputs=lambda cfg, source: {"scores": chain_ref(cfg, source)},
    input_args=("scores",),
    outputs={"out_dir": Output("{source}/scores", directory=True)},
    params={"crf": CRF},
    thresholds=background,
    threshold_args=("bg_threshold",),
    variant="source",
    threads="all",
    mem_mb=4000,
    runtime=240,
    module="wsss_stages.refiners.crf.refine_crf",
    shardable=True,
)

register_refiner(
    Refiner(
        "crf",
        "dense CRF",
        stages=(TUNE, REFINE),
        apply="refine_crf",
        artifact="out_dir",
        output="scores",
        accepts=("cams", "scores"),
        sections={"refine_crf": SECTION},
    )
)
