"""PAMR (pixel-adaptive mask refinement; Araslanov & Roth, CVPR 2020; RecurSeed's refiner) as a refiner.

One stage, ``refine_pamr``; chainable before or after the others (``pamr+crf``, ``rw+pamr`` …). It
writes maps of the kind it reads: on CAM-format maps the background threshold
(``refine_pamr.bg_threshold``, "auto" = chosen by eval_cams on train, by ``threshold_rule``) is applied by the
next stage, so changing it never refines again.
"""

from __future__ import annotations

import yaml

from wsss_stages.lib.plan.declare import Output, Refiner, Stage, register_refiner
from wsss_stages.lib.plan.pipeline import chain_ref

SECTION = yaml.safe_load("""
type: object
additionalProperties: false
default: {}
description: pixel-adaptive mask refinement (visinf/1-stage-wseg's pamr.py defaults, not the RecurSeed copy's 1
    iteration and dilation 1)
properties:
  iterations: {type: integer, minimum: 1, default: 10, description: propagation steps}
  dilations:
    type: array
    items: {type: integer, minimum: 1}
    minItems: 1
    default: [1, 2, 4, 8, 12, 24]
    description: neighbourhood dilations in pixels, at the refinement's resolution
  stride:
    type: integer
    minimum: 1
    default: 4
    description: >
      refine at 1/stride of the image resolution and upsample (the reference runs at its masks'
      stride 4, where the dilations reach 4x as far as at full resolution; 1 refines at full resolution)
  bg_threshold:
    $ref: "#/$defs/threshold_or_auto"
    default: auto
    description: background threshold of refined CAM-format maps; "auto" has eval_cams choose it on train
""")

REFINE = Stage(
    "refine_pamr",
    "PAMR on a chain's maps (CAMs stay CAMs, score maps stay score maps)",
    inputs=lambda cfg, source: {"scores": chain_ref(cfg, source)},
    input_args=("scores",),
    outputs={"out_dir": Output("{source}/maps", directory=True)},
    params={
        "iterations": "refine_pamr.iterations",
        "dilations": "refine_pamr.dilations",
        "stride": "refine_pamr.stride",
    },
    variant="source",
    threads="all",
    mem_mb=4000,
    runtime=120,
    module="wsss_stages.refiners.pamr.refine_pamr",
    shardable=True,
)

register_refiner(
    Refiner(
        "pamr",
        "PAMR",
        stages=(REFINE,),
        apply="refine_pamr",
        artifact="out_dir",
        output="same",
        threshold="refine_pamr.bg_threshold",
        accepts=("cams", "scores"),
        sections={"refine_pamr": SECTION},
    )
)
