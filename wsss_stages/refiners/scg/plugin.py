"""SCG (self-correlation map generation; SPOL, as RecurSeed uses it) as a refiner of CAM-format maps.

One stage, ``refine_scg``: the classifier's two backbone levels (stride 4 and the last), resized to
the last level's grid, give the high-order self-correlation; each class's confident CAM pixels pick
what correlates with them. CAM-format output: its background threshold (``refine_scg.bg_threshold``,
"auto" = chosen by eval_cams on train, by ``threshold_rule``) is applied by the next stage.
"""

from __future__ import annotations

import yaml

from wsss_stages.lib.plan.declare import Output, Refiner, Stage, register_refiner
from wsss_stages.lib.plan.pipeline import chain_ref, classifier

SECTION = yaml.safe_load("""
type: object
additionalProperties: false
default: {}
description: self-correlation maps from the classifier's features (RecurSeed's SCG thresholds)
properties:
  variant:
    enum: [authors, averaged]
    default: averaged
    description: >
      authors: the RecurSeed code's computation (each level's correlations column-normalised and summed,
      the second order from the first with its diagonal zeroed, each confident column min-max normalised);
      averaged: the levels averaged, the diagonal zeroed after squaring, confident columns summed as they are
      (docs/methods.md; better on lite0's CAMs, docs/results.md)
  first_threshold: {$ref: "#/$defs/unit_interval", default: 0.5, description: first-order cosine correlations below it
      are zeroed}
  second_threshold: {type: number, minimum: 0, default: 0.1, description: "second-order correlations below it / (h·w)
      are zeroed"}
  fg_threshold: {$ref: "#/$defs/unit_interval", default: 0.3, description: CAM score from which a pixel is a class's
      confident foreground}
  bg_threshold_seeds: {$ref: "#/$defs/unit_interval", default: 0.05, description: CAM score up to which a pixel is the
      class's confident background}
  bg_threshold:
    $ref: "#/$defs/threshold_or_auto"
    default: auto
    description: background threshold of the SCG maps; "auto" has eval_cams choose it on train (threshold_rule)
""")

KEYS = ("variant", "first_threshold", "second_threshold", "fg_threshold", "bg_threshold_seeds")

REFINE = Stage(
    "refine_scg",
    "self-correlation maps (SCG) from the classifier's features and a chain's CAMs",
    inputs=lambda cfg, source: {"model": classifier(cfg), "cams": chain_ref(cfg, source)},
    input_args=("model", "cams"),
    outputs={"out_dir": Output("{source}/maps", directory=True)},
    params={**{k: f"refine_scg.{k}" for k in KEYS}, "device": "device"},
    variant="source",
    threads="heavy",
    mem_mb=4000,
    runtime=120,
    gpu=True,
    module="wsss_stages.refiners.scg.refine_scg",
    shardable=True,
)

register_refiner(
    Refiner(
        "scg",
        "SCG",
        stages=(REFINE,),
        apply="refine_scg",
        artifact="out_dir",
        output="cams",
        threshold="refine_scg.bg_threshold",
        accepts=("cams",),
        sections={"refine_scg": SECTION},
    )
)
