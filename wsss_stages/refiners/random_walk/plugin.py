"""AffinityNet random walk (Ahn & Kwak, CVPR 2018; the walk as in irn) as a refiner.

Stages: ``make_affinity_labels`` (confident foreground / background / unsure from the seeds),
``train_affinitynet`` (the embedding, on a backbone initialised from the classifier), and
``random_walk`` (walks a chain's CAM-format maps; irn's walk writes CAM-format maps whose background
threshold, ``random_walk.bg_threshold``, is applied downstream and can be swept by eval_cams;
psa's walks a background channel with them and writes score maps).
"""

from __future__ import annotations

import yaml

from wsss_stages.lib.plan.declare import Derived, Output, Ref, Refiner, Stage, register_refiner
from wsss_stages.lib.plan.pipeline import SEEDS, chain_ref, chain_threshold, classifier, seeds

SECTIONS = yaml.safe_load("""
make_affinity_labels:
  type: object
  additionalProperties: false
  default: {}
  description: confident foreground / background / unsure labels from the seed CAMs (affinity_labels.py)
  properties:
    method:
      type: string
      enum: [irn, psa]
      default: irn
      description: >
        irn (cam_to_ir_label: [t, CAMs] through a label CRF at a foreground and a background
        threshold) or psa (background (1 - max CAM)^α through a soft CRF at a low and a high α)
    thresholds:
      type: string
      enum: [absolute, relative, quantile]
      default: absolute
      description: >
        irn's thresholds: absolute (conf_fg / conf_bg), relative to the seed threshold swept on
        train (relative_fg / relative_bg times it), or per-image quantiles of the largest CAM
        (quantile_fg / quantile_bg; no ground truth involved)
    conf_fg: {$ref: "#/$defs/unit_interval", default: 0.30, description: absolute CAM score above which a pixel is
        confident foreground (irn)}
    conf_bg: {$ref: "#/$defs/unit_interval", default: 0.05, description: absolute CAM score below which a pixel is
        confident background (irn)}
    relative_fg: {type: number, exclusiveMinimum: 0, default: 2.0, description: "foreground threshold as a multiple of
        the seed threshold (irn's 0.30 / 0.15)"}
    relative_bg: {type: number, minimum: 0, default: 0.33, description: "background threshold as a multiple of the seed
        threshold (irn's 0.05 / 0.15)"}
    quantile_fg: {$ref: "#/$defs/unit_interval", default: 0.8, description: per-image quantile of the largest CAM above
        which a pixel is confident foreground}
    quantile_bg: {$ref: "#/$defs/unit_interval", default: 0.3, description: per-image quantile of the largest CAM below
        which a pixel is confident background}
    alpha_low: {type: number, exclusiveMinimum: 0, default: 4, description: "psa: background power giving the confident
        foreground"}
    alpha_high: {type: number, exclusiveMinimum: 0, default: 32, description: "psa: background power giving the
        confident background"}
    crf: {type: boolean, default: true, description: "irn: refine both label maps with irn's label CRF (psa always uses
        its soft CRF)"}
train_affinitynet:
  type: object
  additionalProperties: false
  default: {}
  description: AffinityNet embedding on a backbone initialised from the trained classifier
  properties:
    stride: {type: integer, enum: [4, 8], default: 8, description: "feature stride of the embedding (irn's boundary
        network is always at stride 4)"}
    radius: {type: integer, minimum: 2, default: 10, description: training pairs within this radius (feature pixels)}
    dim: {type: integer, minimum: 4, default: 64, description: embedding channels}
    boundary_levels:
      type: string
      enum: [all, two]
      default: all
      description: >
        irn's boundary branch reads every stage of the backbone (all: irn's five levels on ResNet-50
        and on lite0) or only the stride-4 level and the last (two)
    freeze_backbone: {type: boolean, default: false, description: "train only the embedding head (faster); else the
        backbone too, at lr / 10"}
    epochs: {type: integer, minimum: 1, default: 3, description: passes over the classifier split}
    batch_size: {type: integer, minimum: 1, default: 16, description: images per step}
    crop_size: {type: integer, minimum: 16, default: 512, description: square training crop}
    scale_range:
      type: array
      items: {type: number, exclusiveMinimum: 0}
      minItems: 2
      maxItems: 2
      default: [0.5, 1.5]
      description: random rescale range
    lr: {type: number, exclusiveMinimum: 0, default: 0.1, description: learning rate of the embedding head (backbone lr
        / 10)}
    weight_decay: {type: number, minimum: 0, default: 0.0001, description: SGD weight decay}
    momentum: {type: number, minimum: 0, maximum: 1, default: 0.9, description: SGD momentum}
    workers: {type: integer, minimum: 0, default: 0, description: DataLoader worker processes}
    precision: {type: string, enum: [auto, fp32, bf16, fp16], default: auto, description: training arithmetic (as
        training.precision)}
random_walk:
  type: object
  additionalProperties: false
  default: {}
  description: the random walk on AffinityNet affinities, with a sparse transition matrix (bounded memory)
  properties:
    method:
      type: string
      enum: [irn, psa]
      default: irn
      description: >
        irn (make_sem_seg_labels): train_affinitynet trains irn's class-boundary branch, affinities
        are 1 - the largest boundary on the path between two pixels, the CAMs times (1 - boundary)
        are walked at stride 4, divided by their joint maximum and written in CAM format, whose
        background threshold (bg_threshold) is applied downstream. psa (infer_aff): AffinityNet's
        embedding, a background channel (1 - max CAM)^bg_power walked with the CAMs, score maps
        whose argmax is the class (settings in random_walk.psa).
    beta: {type: number, exclusiveMinimum: 0, default: 10, description: power applied to affinities (irn 10)}
    exp_times: {type: integer, minimum: 0, maximum: 12, default: 8, description: the walk takes 2^exp_times steps (irn
        8)}
    radius: {type: integer, minimum: 2, default: 5, description: neighbourhood radius in feature pixels (irn and psa 5)}
    figures: {type: integer, minimum: 0, default: 6, description: "scored images that get a figure (image, CAM, affinity
        labels, boundary or affinity, walked result, ground truth)"}
    bg_threshold:
      $ref: "#/$defs/threshold_or_auto"
      default: 0.25
      description: >
        irn: background threshold applied to the walked CAMs (irn sem_seg_bg_thres 0.25); "auto" has
        eval_cams choose it on the walked CAMs of the seed split (threshold_rule). Changing it reruns only the
        pseudo-masks (and the CRF on walked CAMs), never the walk
    psa:
      type: object
      additionalProperties: false
      default: {}
      description: psa's walk (method psa)
      properties:
        beta: {type: number, exclusiveMinimum: 0, default: 8, description: power applied to affinities (psa 8)}
        exp_times: {type: integer, minimum: 0, maximum: 12, default: 8, description: the walk takes 2^exp_times steps
            (psa logt 8)}
        bg_power: {type: number, exclusiveMinimum: 0, default: 16, description: "the walked background channel is (1 -
            max CAM)^bg_power (psa's α 16)"}
""")

AFFINITYNET_KEYS = (
    "stride",
    "radius",
    "dim",
    "freeze_backbone",
    "epochs",
    "batch_size",
    "crop_size",
    "scale_range",
    "lr",
    "weight_decay",
    "momentum",
    "workers",
    "precision",
)

LABEL_OPTIONS = {
    "psa": ("alpha_low", "alpha_high"),
    "absolute": ("thresholds", "conf_fg", "conf_bg", "crf"),
    "relative": ("thresholds", "relative_fg", "relative_bg", "crf"),
    "quantile": ("thresholds", "quantile_fg", "quantile_bg", "crf"),
}


def boundary_levels(cfg: dict, variant: str) -> str:
    """The boundary branch's levels (irn); psa's embedding has none, so the setting never retrains it."""
    return cfg["train_affinitynet"]["boundary_levels"] if cfg["random_walk"]["method"] == "irn" else "n/a"


def label_options(cfg: dict, variant: str) -> dict:
    """The settings the chosen label construction reads (the others change nothing it writes)."""
    section = cfg["make_affinity_labels"]
    keys = LABEL_OPTIONS["psa" if section["method"] == "psa" else section["thresholds"]]
    return {k: section[k] for k in keys}


def seed_threshold(cfg: dict, variant: str) -> dict:
    section = cfg["make_affinity_labels"]
    relative = section["method"] == "irn" and section["thresholds"] == "relative"
    return {"seed_threshold": chain_threshold(cfg, SEEDS) if relative else None}


LABELS = Stage(
    "make_affinity_labels",
    "confident fg / bg / unsure labels from the seed CAMs, for AffinityNet, and their precision",
    inputs=lambda cfg, v: {"cams": seeds(cfg)},
    input_args=("cams",),
    outputs={"out_dir": Output("labels", directory=True), "out_diagnostics": Output("diagnostics.json")},
    params={
        "method": "make_affinity_labels.method",
        "options": Derived(("make_affinity_labels",), label_options),
        "split": "splits.seeds",
        "mask_folder": "mask_folder",
        "pair_stride": "train_affinitynet.stride",
        "pair_radius": "train_affinitynet.radius",
    },
    thresholds=seed_threshold,
    threshold_args=("seed_threshold",),
    threads="all",
    mem_mb=4000,
    runtime=240,
    module="wsss_stages.refiners.random_walk.make_affinity_labels",
)


def pair_network(cfg: dict, variant: str) -> str:
    """irn's walk reads a boundary network; psa's an AffinityNet embedding."""
    return "boundary" if cfg["random_walk"]["method"] == "irn" else "embedding"


TRAIN = Stage(
    "train_affinitynet",
    "train the inter-pixel affinity network (resumable)",
    inputs=lambda cfg, v: {
        "classifier": classifier(cfg),
        "labels": Ref("make_affinity_labels", "out_dir"),
    },
    input_args=("classifier", "labels"),
    outputs={"out_model": Output("model.pt")},
    params={
        "network": Derived(("random_walk.method",), pair_network),
        "boundary_levels": Derived(("random_walk.method", "train_affinitynet.boundary_levels"), boundary_levels),
        "split": "splits.classifier",
        **{k: f"train_affinitynet.{k}" for k in AFFINITYNET_KEYS},
        "seed": "seed",
        "device": "device",
    },
    threads="heavy",
    mem_mb=8000,
    runtime=600,
    gpu=True,
    module="wsss_stages.refiners.random_walk.train_affinitynet",
    distributed=True,
)


def walk_setting(key: str) -> Derived:
    """A walk setting of the chosen method: random_walk.<key> (irn) or random_walk.psa.<key> (psa)."""

    def value(cfg: dict, variant: str):
        section = cfg["random_walk"]
        return section["psa"][key] if section["method"] == "psa" else section[key]

    return Derived((f"random_walk.{key}", f"random_walk.psa.{key}", "random_walk.method"), value)


def walk_output(cfg: dict) -> str:
    return "scores" if cfg["random_walk"]["method"] == "psa" else "cams"


WALK = Stage(
    "random_walk",
    "propagate a chain's CAMs by a random walk on learned affinities (sparse, bounded memory)",
    inputs=lambda cfg, source: {
        "model": Ref("train_affinitynet", "out_model"),
        "cams": chain_ref(cfg, source),
        "labels": Ref("make_affinity_labels", "out_dir"),
    },
    input_args=("model", "cams", "labels"),
    outputs={
        "out_dir": Output("{source}/maps", directory=True),
        "out_diagnostics": Output("{source}/diagnostics.json"),
        "out_figures": Output("{source}/figures", directory=True, report="Random walk"),
    },
    params={
        "method": "random_walk.method",
        "beta": walk_setting("beta"),
        "exp_times": walk_setting("exp_times"),
        "radius": "random_walk.radius",
        "bg_power": Derived(
            ("random_walk.psa.bg_power", "random_walk.method"),
            lambda cfg, v: cfg["random_walk"]["psa"]["bg_power"] if cfg["random_walk"]["method"] == "psa" else None,
        ),
        "split": "splits.seeds",
        "mask_folder": "mask_folder",
        "figures": "random_walk.figures",
        "device": "device",
    },
    variant="source",
    threads="heavy",
    mem_mb=4000,
    runtime=240,
    gpu=True,
    module="wsss_stages.refiners.random_walk.random_walk",
    shardable=True,
    merge={"out_diagnostics": "wsss_stages.lib.evaluation.stats:merge_affinity_reports"},
)


def check(config: dict) -> list[str]:
    """Confidence bounds in the right order."""
    labels, problems = config["make_affinity_labels"], []
    if labels["conf_bg"] > labels["conf_fg"]:
        problems.append("config key 'make_affinity_labels.conf_bg' exceeds make_affinity_labels.conf_fg")
    if labels["quantile_bg"] > labels["quantile_fg"]:
        problems.append("config key 'make_affinity_labels.quantile_bg' exceeds make_affinity_labels.quantile_fg")
    return problems


register_refiner(
    Refiner(
        "rw",
        "random walk",
        stages=(LABELS, TRAIN, WALK),
        apply="random_walk",
        artifact="out_dir",
        output=walk_output,
        threshold="random_walk.bg_threshold",
        accepts=("cams",),
        sections=SECTIONS,
        check=check,
    )
)
