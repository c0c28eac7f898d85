"""The decoder of a RecurSeed classifier as a refinement: its softmax on the seed split, restricted to
each image's labelled classes, as score maps with their own background (``make_pseudo_masks.refinement:
decoder``, chainable as ``decoder+crf``). Stage ``predict_decoder``; the same decoder on val is scored as
a segmentation network by ``predict_segmentation`` / ``eval_segmentation`` (wildcard ``decoder_net``)."""

from __future__ import annotations

import yaml

from wsss_stages.lib.plan.declare import Output, Refiner, Stage, register_refiner
from wsss_stages.lib.plan.pipeline import chain_links, chain_ref, classifier, reported_refinements

SECTION = yaml.safe_load("""
type: object
additionalProperties: false
default: {}
description: the RecurSeed decoder's pseudo-masks (refinement decoder)
properties:
  scales:
    type: array
    items: {type: number, exclusiveMinimum: 0}
    minItems: 1
    default: [1.0, 0.5, 1.5, 2.0]
    description: test-time scales (softmax averaged), make_cams' by default
  flip: {type: boolean, default: true, description: also average the flipped prediction}
  precision: {$ref: "#/$defs/precision", default: auto}
""")


def check(cfg: dict) -> list[str]:
    used = any("decoder" in chain_links(r) for r in reported_refinements(cfg))
    if used and cfg["train_classifier"]["method"] != "recurseed":
        return [
            "config key 'make_pseudo_masks': the refinement 'decoder' reads the decoder that only RecurSeed "
            "trains (train_classifier.method: recurseed)"
        ]
    return []


PREDICT = Stage(
    "predict_decoder",
    "a RecurSeed classifier's decoder on the seed split: score maps of the labelled classes",
    inputs=lambda cfg, source: {"model": classifier(cfg), "cams": chain_ref(cfg, source)},
    input_args=("model", "cams"),
    outputs={"out_dir": Output("{source}/scores", directory=True)},
    params={
        "scales": "predict_decoder.scales",
        "flip": "predict_decoder.flip",
        "precision": "predict_decoder.precision",
        "device": "device",
    },
    variant="source",
    threads="heavy",
    mem_mb=8000,
    runtime=120,
    gpu=True,
    module="wsss_stages.refiners.decoder.predict_decoder",
    shardable=True,
)

register_refiner(
    Refiner(
        "decoder",
        "RecurSeed's decoder",
        stages=(PREDICT,),
        apply="predict_decoder",
        artifact="out_dir",
        output="scores",
        accepts=("cams",),
        sections={"predict_decoder": SECTION},
        check=check,
    )
)
