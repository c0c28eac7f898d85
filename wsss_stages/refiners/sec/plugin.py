"""SEC (Kolesnikov & Lampert, ECCV 2016: seed, expand and constrain) as a refiner: a segmentation
network trained directly from localisation cues, whose predictions are the pseudo-masks.

Stages: ``make_sec_cues`` (cues from a chain's CAM-format maps and the saliency maps),
``train_sec`` (the network of ``train_segmentation`` — backbone, head — trained with SEC's three
losses, sec.py) and ``predict_sec`` (its softmax over the background and each image's labels as
score maps, and its own val mIoU without labels). Chainable: ``sec`` refines the seeds,
``sec+crf`` adds the dense CRF, ``scg+sec`` takes its cues from SCG's maps.

Where we differ from kolesman/SEC (DeepLab-LargeFOV on VGG-16, Caffe): the network is our
segmentation network; poly learning-rate decay instead of steps of 0.1 every 2000 of 8000
iterations; random rescale, flip and crop instead of a fixed 321² resize; the saliency maps of the
data tree instead of a gradient saliency map for the background cue (sec.py says more).
"""

from __future__ import annotations

import yaml

from wsss_stages.lib.plan.config import core_definition
from wsss_stages.lib.plan.declare import Output, Ref, Refiner, Stage, register_refiner, section
from wsss_stages.lib.plan.pipeline import chain_ref

SECTIONS = yaml.safe_load("""
make_sec_cues:
  type: object
  additionalProperties: false
  default: {}
  description: SEC's localisation cues from CAM-format maps and saliency maps (sec.py beside it)
  properties:
    fg_fraction: {$ref: "#/$defs/unit_interval", default: 0.2, description: "a class's cue is where its map exceeds this
        fraction of its maximum (SEC 0.2)"}
    bg_fraction: {$ref: "#/$defs/unit_interval", default: 0.1, description: "the least salient fraction of each image is
        the background cue (SEC 10 %)"}
    saliency_folder: {type: string, default: SaliencyMaps, description: "folder of the data tree with <id>.png saliency
        maps (8-bit grey)"}
train_sec:
  type: object
  additionalProperties: false
  default: {}
  description: >
    the SEC network: train_segmentation's backbone and head, trained from the cues with SEC's
    seeding, expansion (global weighted rank pooling) and constrain-to-boundary losses, weight 1 each
  properties:
    d_fg: {type: number, exclusiveMinimum: 0, maximum: 1, default: 0.996, description: "rank-pooling decay of the
        present classes (SEC d+)"}
    d_bg: {type: number, exclusiveMinimum: 0, maximum: 1, default: 0.999, description: "rank-pooling decay of the
        background (SEC d-)"}
    crf_scale: {type: number, exclusiveMinimum: 0, default: 12, description: "the constrain loss's CRF widths (xy 80 and
        3) are divided by this (SEC 12, for its 41 x 41 grid)"}
predict_sec:
  type: object
  additionalProperties: false
  default: {}
  description: the SEC network's predictions (score maps for the pseudo-masks, and its own val mIoU)
  properties:
    scales:
      type: array
      items: {type: number, exclusiveMinimum: 0}
      minItems: 1
      default: [1.0]
      description: test-time scales (softmax averaged; SEC predicts at one)
    flip: {type: boolean, default: false, description: also average the flipped prediction}
    precision: {$ref: "#/$defs/precision", default: auto}
""")
# SEC's solver: lr 0.001 (the new layer x10), momentum 0.9, weight decay 0.0005, batches of 15 images
# of 321 px; 8000 iterations = about 11 passes over VOC's 10,582 train_aug images
SECTIONS["train_sec"]["properties"]["training"] = core_definition(
    "training",
    epochs=12,
    batch_size=15,
    crop_size=321,
    scale_range=[0.7, 1.0],
    lr=0.001,
    head_lr_mult=10,
    weight_decay=0.0005,
)
CUES = Stage(
    "make_sec_cues",
    "SEC's localisation cues (foreground from a chain's CAMs, background from saliency) and their precision",
    inputs=lambda cfg, source: {"cams": chain_ref(cfg, source)},
    input_args=("cams",),
    outputs={
        "out_dir": Output("{source}/cues", directory=True),
        "out_diagnostics": Output("{source}/diagnostics.json"),
    },
    params={
        "split": "splits.seeds",
        "mask_folder": "mask_folder",
        **{k: f"make_sec_cues.{k}" for k in ("fg_fraction", "bg_fraction", "saliency_folder")},
    },
    variant="source",
    threads="all",
    mem_mb=4000,
    runtime=60,
    module="wsss_stages.refiners.sec.make_sec_cues",
)
TRAIN = Stage(
    "train_sec",
    "train the SEC segmentation network from the cues (resumable)",
    inputs=lambda cfg, source: {"cues": Ref("make_sec_cues", "out_dir", source)},
    input_args=("cues",),
    outputs={"out_model": Output("{source}/model.pt")},
    params={
        "split": "splits.segmentation",
        "head": "train_segmentation.head",
        "head_width": "train_segmentation.head_width",
        "backbone": section("train_segmentation.backbone"),
        "training": section("train_sec.training"),
        **{k: f"train_sec.{k}" for k in ("d_fg", "d_bg", "crf_scale")},
        "seed": "seed",
        "device": "device",
    },
    variant="source",
    threads="heavy",
    mem_mb=8000,
    runtime=600,
    gpu=True,
    module="wsss_stages.refiners.sec.train_sec",
    distributed=True,
)
PREDICT = Stage(
    "predict_sec",
    "the SEC network's score maps for a chain's images, and its own val mIoU",
    inputs=lambda cfg, source: {"model": Ref("train_sec", "out_model", source), "cams": chain_ref(cfg, source)},
    input_args=("model", "cams"),
    outputs={
        "out_dir": Output("{source}/scores", directory=True),
        "out_val_json": Output("{source}/val.json"),
        "out_val_csv": Output("{source}/val_per_class.csv"),
        "out_val_per_image": Output("{source}/val_per_image.npz"),
    },
    params={
        "val_split": "splits.val",
        "mask_folder": "mask_folder",
        **{k: f"predict_sec.{k}" for k in ("scales", "flip", "precision")},
        "device": "device",
    },
    variant="source",
    threads="heavy",
    mem_mb=4000,
    runtime=240,
    gpu=True,
    module="wsss_stages.refiners.sec.predict_sec",
)

register_refiner(
    Refiner(
        "sec",
        "SEC",
        stages=(CUES, TRAIN, PREDICT),
        apply="predict_sec",
        artifact="out_dir",
        output="scores",
        accepts=("cams",),
        sections=SECTIONS,
    )
)
