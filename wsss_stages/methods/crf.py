"""Dense CRF (Krähenbühl & Koltun, NeurIPS 2011) as a refiner, with psa / Puzzle-CAM's parameters.

Stages: ``tune_crf`` sweeps the background score given to the CRF next to the seeds on the seed
split (train); ``refine_crf`` runs the CRF on a chain's maps (the seeds, or e.g. walked CAMs) and
writes score maps that carry their own background.
"""

from __future__ import annotations

import yaml

from wsss_stages.lib.declare import Derived, Output, Ref, Refiner, Stage, Threshold, lookup, register_refiner
from wsss_stages.lib.pipeline import SEEDS, chain_kind, chain_ref, chain_threshold, seeds

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
      constant background score given to the CRF next to the seed CAMs; "auto" takes the best of
      the tune_crf sweep on the seed split (train). It differs from cam_bg_threshold: the CRF's
      colour terms shrink objects, so its best background score is lower. On another refiner's
      CAM-format maps (e.g. rw+crf) the CRF uses that refiner's threshold
  thresholds:
    type: array
    items: {$ref: "#/$defs/unit_interval"}
    minItems: 1
    default: [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4]
    description: background scores tried by tune_crf (used when bg_threshold is auto)
  iterations: {type: integer, minimum: 1, default: 10, description: mean-field iterations}
  gaussian_sxy: {type: number, exclusiveMinimum: 0, default: 3, description: smoothness kernel width (px)}
  gaussian_compat: {type: number, minimum: 0, default: 3, description: smoothness kernel weight}
  bilateral_sxy: {type: number, exclusiveMinimum: 0, default: 80, description: appearance kernel spatial width (px)}
  bilateral_srgb: {type: number, exclusiveMinimum: 0, default: 13, description: appearance kernel colour width}
  bilateral_compat: {type: number, minimum: 0, default: 10, description: appearance kernel weight}
""")

CRF = Derived(tuple(f"refine_crf.{k}" for k in PARAMETERS), lambda cfg, variant: {k: lookup(cfg, f"refine_crf.{k}") for k in PARAMETERS})


def background(cfg: dict, source: str) -> dict:
    """On the seeds: the CRF's own background score (tune_crf); on another refiner's CAM-format maps:
    that refiner's threshold; on score maps: none (they carry their background)."""
    if source == SEEDS:
        return {"bg_threshold": Threshold(cfg["refine_crf"]["bg_threshold"], Ref("tune_crf", "out_best"), "refine_crf.bg_threshold")}
    return {"bg_threshold": chain_threshold(cfg, source) if chain_kind(cfg, source) == "cams" else None}


TUNE = Stage(
    "tune_crf", "sweep the CRF background score next to the seed CAMs on the seed split",
    inputs=lambda cfg, v: {"cams": seeds(cfg)}, input_args=("cams",),
    outputs={"out_csv": Output("sweep.csv"), "out_best": Output("best.json"), "out_per_class": Output("per_class.csv"),
             "out_plot": Output("sweep.png")},
    params={"split": "splits.seeds", "thresholds": "refine_crf.thresholds", "crf": CRF, "mask_folder": "mask_folder"},
    threads="all", mem_mb=4000, runtime=240, module="wsss_stages.tune_crf",
)
REFINE = Stage(
    "refine_crf", "dense CRF on a chain's maps (CAMs with a background score, or score maps)",
    inputs=lambda cfg, source: {"scores": chain_ref(cfg, source)}, input_args=("scores",),
    outputs={"out_dir": Output("{source}/scores", directory=True)},
    params={"crf": CRF}, thresholds=background, threshold_args=("bg_threshold",),
    variant="source", threads="all", mem_mb=4000, runtime=240, module="wsss_stages.refine_crf", shardable=True,
)

register_refiner(Refiner("crf", "dense CRF", stages=(TUNE, REFINE), apply="refine_crf", artifact="out_dir", output="scores",
                         accepts=("cams", "scores"), sections={"refine_crf": SECTION}))
