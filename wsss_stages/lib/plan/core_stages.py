"""Declarations of the core stages.

Plug-ins declare theirs in ``methods/<name>/plugin.py`` and ``refiners/<name>/plugin.py``.

Each :class:`Stage` names the function ``wsss_stages.stages.<name>.<name>`` (reports: ``wsss_stages.reports``) and
everything its rule
needs; see :mod:`wsss_stages.lib.plan.declare` for what derives from it. No torch here.
"""

from __future__ import annotations

from wsss_stages.lib.plan.declare import REGISTRY, Derived, Output, Ref, Stage, register_stage, section
from wsss_stages.lib.plan.pipeline import (
    SEEDS,
    chain_kind,
    chain_ref,
    chain_rule,
    chain_threshold,
    classifier,
    reported_refinements,
    seeds,
)


def _method_options(cfg: dict, variant: str) -> dict:
    """The active classifier method's own section, reduced to what changes training."""
    classifier = cfg["train_classifier"]
    method = REGISTRY.methods[classifier["method"]]
    options = dict(classifier.get(method.name, {}))
    return method.relevant(options) if method.relevant else options


def _cam_options(cfg: dict, variant: str) -> dict:
    cams = cfg["make_cams"]
    return dict(cams.get(cams["cam_type"], {}))


def cam_splits(cfg: dict, variant: str) -> list[str]:
    """CAMs are needed where they are scored (seeds) and where pseudo-masks train DeepLab."""
    return sorted({cfg["splits"]["seeds"], cfg["splits"]["segmentation"]})


# the classifier recipe: train_classifier and every step of adversarial erasing read the same keys
CLASSIFIER_RECIPE = {
    "backbone": section("train_classifier.backbone"),
    "training": section("train_classifier.training"),
    "method": "train_classifier.method",
    "method_options": Derived(("train_classifier",), _method_options),
}
CAM_INFERENCE = {"scales": "make_cams.scales", "flip": "make_cams.flip", "precision": "make_cams.precision"}
SCORING = {"split": "splits.seeds", "mask_folder": "mask_folder"}
RULE = Derived(("threshold_rule", "cam_bg_threshold"), chain_rule)


def code_of_method(cfg: dict) -> list[str]:
    return [REGISTRY.methods[cfg["train_classifier"]["method"]].impl.split(":")[0]]


def _code_of_cam_source(cfg: dict) -> list[str]:
    impl = REGISTRY.cam_sources[cfg["make_cams"]["cam_type"]].impl
    return [impl.split(":")[0]] if impl else []


register_stage(
    Stage(
        "make_demo_data",
        "generate the built-in synthetic dataset in VOC layout",
        outputs={"out_dir": Output("VOC2012", directory=True)},
        params={k: f"make_demo_data.{k}" for k in ("num_train", "num_seed_eval", "num_val", "image_size", "seed")},
        data=False,
        mem_mb=1000,
        runtime=10,
        rule="run",
    )
)

register_stage(
    Stage(
        "convert_dataset",
        "write a COCO 2014 or image-folder dataset as a VOC-layout tree (images linked)",
        outputs={"out_dir": Output("VOC2012", directory=True)},
        params={
            "kind": "dataset",
            "source": Derived(("dataset", "coco", "folder"), lambda cfg, variant: dict(cfg[cfg["dataset"]])),
        },
        data=False,
        mem_mb=4000,
        runtime=240,
        rule="run",
    )
)


def _all_splits(cfg: dict, variant: str) -> list[str]:
    return sorted(set(cfg["splits"].values()))


def _scored_splits(cfg: dict, variant: str) -> list[str]:
    return sorted({cfg["splits"]["seeds"], cfg["splits"]["val"]})


# run-level: one check per data tree and set of splits, shared by every experiment on it (rules/data.smk)
register_stage(
    Stage(
        "check_data",
        "check every file the run will read (splits, images, labels, masks, saliency), all problems at once",
        outputs={"out_report": Output("report.json")},
        params={
            "splits": Derived(("splits",), _all_splits),
            "scored_splits": Derived(("splits.seeds", "splits.val"), _scored_splits),
            "mask_folder": "mask_folder",
            "allow_missing_masks": "check_data.allow_missing_masks",
        },
        context=("fingerprint",),
        threads="all",
        mem_mb=2000,
        runtime=30,
        rule="run",
    )
)

register_stage(
    Stage(
        "train_classifier",
        "train the multi-label GAP classifier of the chosen method (resumable)",
        outputs={"out_model": Output("model.pt"), "out_info": Output("model.json")},
        params={"split": "splits.classifier", **CLASSIFIER_RECIPE, "seed": "seed", "device": "device"},
        threads="heavy",
        mem_mb=8000,
        runtime=600,
        gpu=True,
        code=code_of_method,
        distributed=True,
    )
)

register_stage(
    Stage(
        "score_classifier",
        "multi-label classification mAP of the classifier on the scored splits (does it still classify?)",
        inputs=lambda cfg, v: {"model": classifier(cfg)},
        input_args=("model",),
        outputs={"out_json": Output("metrics.json")},
        params={
            "splits": Derived(("splits.seeds", "splits.val"), _scored_splits),
            "size": "score_classifier.size",
            "precision": "score_classifier.precision",
            "device": "device",
        },
        threads="heavy",
        mem_mb=4000,
        runtime=30,
        gpu=True,
    )
)


def _val_split(cfg: dict, variant: str) -> str | None:
    return cfg["splits"]["val"] if cfg["eval_cams"]["score_val"] else None


register_stage(
    Stage(
        "make_cams",
        "multi-scale + flip class maps of the chosen CAM source, for each image's classes",
        inputs=lambda cfg, v: {"model": classifier(cfg)},
        input_args=("model",),
        outputs={"out_dir": Output("cams", directory=True), "out_val_dir": Output("val_cams", directory=True)},
        params={
            "splits": Derived(("splits.seeds", "splits.segmentation"), cam_splits),
            "val_split": Derived(("splits.val", "eval_cams.score_val"), _val_split),
            **CAM_INFERENCE,
            "cam_type": "make_cams.cam_type",
            "cam_options": Derived(("make_cams",), _cam_options),
            "device": "device",
        },
        threads="heavy",
        mem_mb=8000,
        runtime=240,
        gpu=True,
        code=_code_of_cam_source,
        shardable=True,
    )
)

register_stage(
    Stage(
        "eval_cams",
        "background-threshold sweep of CAM-format maps against masks (the seeds, or a refiner's)",
        inputs=lambda cfg, source: {"cams": chain_ref(cfg, source)},
        input_args=("cams",),
        outputs={
            "out_csv": Output("{source}/sweep.csv"),
            "out_best": Output("{source}/best.json"),
            "out_per_class": Output("{source}/per_class.csv"),
            "out_plot": Output("{source}/sweep.png", report="Threshold sweeps"),
        },
        params={**SCORING, "thresholds": "eval_cams.thresholds", "rule": RULE},
        variant="source",
        runtime=60,
    )
)

register_stage(
    Stage(
        "score_cams",
        "the seed CAMs of val scored at the background threshold tuned on the seed split",
        inputs=lambda cfg, v: {"cams": Ref("make_cams", "out_val_dir")},
        input_args=("cams",),
        outputs={
            "out_json": Output("metrics.json"),
            "out_csv": Output("per_class.csv"),
            "out_per_image": Output("per_image.npz"),
        },
        params={"split": "splits.val", "mask_folder": "mask_folder"},
        thresholds=lambda cfg, v: {"bg_threshold": chain_threshold(cfg, SEEDS)},
        threshold_args=("bg_threshold",),
        runtime=30,
    )
)


def scores_val(cfg: dict) -> bool:
    """Seeds are scored on val too: asked for, and the seeds are one classifier's CAMs (make_cams)."""
    return cfg["eval_cams"]["score_val"] and not cfg["adversarial_erasing"]["enabled"]


register_stage(
    Stage(
        "make_pseudo_masks",
        "score maps or thresholded CAMs -> palette PNG pseudo-masks (optional 255 band)",
        inputs=lambda cfg, refinement: {"scores": chain_ref(cfg, refinement)},
        input_args=("scores",),
        outputs={"out_dir": Output("{refinement}/masks", directory=True)},
        params={"ignore_band": "make_pseudo_masks.ignore_band"},
        thresholds=lambda cfg, refinement: {"bg_threshold": chain_threshold(cfg, refinement)},
        threshold_args=("bg_threshold",),
        variant="refinement",
        data=False,
        threads="all",
        runtime=60,
        shardable=True,
    )
)

register_stage(
    Stage(
        "eval_pseudo_masks",
        "score pseudo-masks against ground truth on the seed split",
        inputs=lambda cfg, refinement: {"masks": Ref("make_pseudo_masks", "out_dir", refinement)},
        input_args=("masks",),
        outputs={
            "out_json": Output("{refinement}/metrics.json"),
            "out_csv": Output("{refinement}/per_class.csv"),
            "out_per_image": Output("{refinement}/per_image.npz"),
        },
        params=SCORING,
        variant="refinement",
        runtime=30,
    )
)


def _training_masks(cfg: dict, refinement: str) -> dict:
    """Pseudo-masks of a refinement; none for "gt" (the stage reads the dataset's masks: the upper bound)."""
    return {"masks": None if refinement == "gt" else Ref("make_pseudo_masks", "out_dir", refinement)}


register_stage(
    Stage(
        "train_segmentation",
        "train DeepLab on pseudo-masks, or on ground truth for the upper bound (resumable)",
        inputs=_training_masks,
        input_args=("masks",),
        outputs={"out_model": Output("{refinement}/model.pt")},
        params={
            "split": "splits.segmentation",
            "mask_folder": Derived(
                ("mask_folder",), lambda cfg, refinement: cfg["mask_folder"] if refinement == "gt" else None
            ),
            "head": "train_segmentation.head",
            "head_width": "train_segmentation.head_width",
            "backbone": section("train_segmentation.backbone"),
            "training": section("train_segmentation.training"),
            "seed": "seed",
            "device": "device",
        },
        variant="refinement",
        variant_extra=("gt",),
        threads="heavy",
        mem_mb=12000,
        runtime=1440,
        gpu=True,
        distributed=True,
    )
)

DECODER_NET = "decoder_net"  # the wildcard of the segmentation stages for a classifier's own decoder (RecurSeed)


def has_decoder(cfg: dict) -> bool:
    """The classifier carries a segmentation decoder, trained with it (RecurSeed)."""
    return cfg["train_classifier"]["method"] == "recurseed" and not cfg["adversarial_erasing"]["enabled"]


def _segmentation_model(cfg: dict, refinement: str) -> dict:
    """The network trained on a refinement's pseudo-masks, or (``decoder_net``) the classifier's own decoder."""
    if refinement == DECODER_NET:
        return {"model": classifier(cfg)}
    return {"model": Ref("train_segmentation", "out_model", refinement)}


register_stage(
    Stage(
        "predict_segmentation",
        "predict masks with the segmentation network",
        inputs=_segmentation_model,
        input_args=("model",),
        outputs={"out_dir": Output("{refinement}/masks", directory=True)},
        params={
            "split": "splits.val",
            **{k: f"predict_segmentation.{k}" for k in ("scales", "flip", "crf", "precision")},
            "device": "device",
        },
        variant="refinement",
        variant_extra=("gt", DECODER_NET),
        threads="heavy",
        mem_mb=8000,
        runtime=120,
        gpu=True,
        shardable=True,
    )
)

register_stage(
    Stage(
        "eval_segmentation",
        "score predicted masks against ground truth on val",
        inputs=lambda cfg, refinement: {"masks": Ref("predict_segmentation", "out_dir", refinement)},
        input_args=("masks",),
        outputs={
            "out_json": Output("{refinement}/metrics.json"),
            "out_csv": Output("{refinement}/per_class.csv"),
            "out_per_image": Output("{refinement}/per_image.npz"),
        },
        params={"split": "splits.val", "mask_folder": "mask_folder"},
        variant="refinement",
        variant_extra=("gt", DECODER_NET),
        runtime=30,
    )
)


def _summary_inputs(cfg: dict, variant: str) -> dict:
    chosen, *compared = reported_refinements(cfg)
    enabled = cfg["train_segmentation"]["enabled"]
    return {
        "cam_best": Ref("eval_cams", "out_best", SEEDS),
        "pseudo_masks": Ref("eval_pseudo_masks", "out_json", chosen),
        "pseudo_mask_dir": Ref("make_pseudo_masks", "out_dir", chosen),
        "segmentation": Ref("eval_segmentation", "out_json", chosen) if enabled else None,
        "cam_val": Ref("score_cams", "out_json") if scores_val(cfg) else None,
        "classifier_info": classifier(cfg, "out_info"),
        "classifier_map": Ref("score_classifier", "out_json"),
        "seeds": seeds(cfg),
        "compare": {r: Ref("eval_pseudo_masks", "out_json", r) for r in compared},
        "decoder_net": Ref("eval_segmentation", "out_json", DECODER_NET) if has_decoder(cfg) else None,
    }


register_stage(
    Stage(
        "summarize_metrics",
        "collect the headline numbers into metrics.json / metrics.md",
        inputs=_summary_inputs,
        input_args=(
            "cam_best",
            "pseudo_masks",
            "pseudo_mask_dir",
            "segmentation",
            "cam_val",
            "compare",
            "classifier_info",
            "classifier_map",
            "seeds",
            "decoder_net",
        ),
        outputs={"out_json": Output("metrics.json", root=True), "out_md": Output("metrics.md", root=True)},
        params={"experiment": "experiment", "refinement": "make_pseudo_masks.refinement"},
        data=False,
        mem_mb=500,
        runtime=5,
        module="wsss_stages.reports.summarize_metrics",
    )
)


def _benchmark_inputs(cfg: dict, variant: str) -> dict:
    refinement = cfg["make_pseudo_masks"]["refinement"]
    return {
        "cam_best": Ref("eval_cams", "out_best", SEEDS),
        "pseudo_masks": {r: Ref("eval_pseudo_masks", "out_json", r) for r in cfg["write_benchmark"]["refinements"]},
        "segmentation": Ref("eval_segmentation", "out_json", refinement),
        "upper_bound": Ref("eval_segmentation", "out_json", "gt"),
        "summary": Ref("summarize_metrics", "out_json"),
    }


register_stage(
    Stage(
        "write_benchmark",
        "quality per stage, the fully-supervised upper bound and per-job cost: benchmark.md / .csv",
        inputs=_benchmark_inputs,
        input_args=("cam_best", "pseudo_masks", "segmentation", "upper_bound", "summary"),
        outputs={"out_md": Output("benchmark.md", root=True), "out_csv": Output("benchmark.csv", root=True)},
        params={"experiment": "experiment", "refinement": "make_pseudo_masks.refinement"},
        context=("jobs",),
        data=False,
        mem_mb=500,
        runtime=5,
        module="wsss_stages.reports.write_benchmark",
    )
)

# run-level: one table over all experiments (its rule is written out in rules/report.smk)
register_stage(
    Stage(
        "write_leaderboard",
        "compare several experiments (seeds, pseudo-masks, final val, wall time): leaderboard.md / .csv / .png",
        context=("summaries", "groups", "jobs", "labels"),
        outputs={"out_md": Output(""), "out_csv": Output(""), "out_plot": Output("")},
        data=False,
        mem_mb=500,
        runtime=5,
        rule="run",
        module="wsss_stages.reports.write_leaderboard",
    )
)

# the gather job of every sharded per-image stage (config `shards`; its rules are generated in rules/shards.smk)
register_stage(
    Stage(
        "gather_shards",
        "assemble the shards of a sharded per-image stage into its usual artifact",
        outputs={},
        context=("stage", "parts", "outputs"),
        data=False,
        mem_mb=1000,
        runtime=30,
        rule="run",
    )
)

# not a pipeline stage: the command that builds VOC's train_aug from SBD, before a GPU-preset run (no rule)
register_stage(
    Stage(
        "build_train_aug",
        "write VOC 2012's 10,582-image train_aug (SegmentationClassAug/, train_aug.txt) from SBD",
        outputs={},
        context=("sbd", "voc"),
        data=False,
        rule="none",
    )
)

# not a pipeline stage: the command users run on new images after training (no rule is generated)
register_stage(
    Stage(
        "predict",
        "apply a trained segmentation network to a folder of new images (palette PNGs, optional overlays)",
        outputs={"out_dir": Output("")},
        input_args=("model", "images"),
        context=("overlays", "scales", "flip", "crf", "precision", "device"),
        data=False,
        rule="none",
    )
)


def _gallery_inputs(cfg: dict, variant: str) -> dict:
    reported = ["none", *[r for r in reported_refinements(cfg) if r != "none"]]
    chosen = cfg["make_pseudo_masks"]["refinement"]
    return {
        "cams": seeds(cfg),
        "pseudo_masks": {r: Ref("make_pseudo_masks", "out_dir", r) for r in reported},
        "per_class": {r: Ref("eval_pseudo_masks", "out_csv", r) for r in reported},
        "classifier_info": classifier(cfg, "out_info"),
        "segmentation_model": Ref("train_segmentation", "out_model", chosen)
        if cfg["train_segmentation"]["enabled"]
        else None,
    }


# not in `all`: target `report_figures` (rules/report.smk), for the HTML report
register_stage(
    Stage(
        "write_gallery",
        "a fixed sample of images with every map side by side, training curves, per-class IoU (report)",
        inputs=_gallery_inputs,
        input_args=("cams", "pseudo_masks", "per_class", "classifier_info", "segmentation_model"),
        outputs={
            "out_dir": Output("gallery", directory=True, report="Gallery"),
            "out_curves": Output("curves.png", report="Training"),
            "out_per_class": Output("per_class.png", report="Per-class IoU"),
        },
        params={"split": "splits.seeds", "mask_folder": "mask_folder", "images": "write_gallery.images"},
        mem_mb=4000,
        runtime=30,
        module="wsss_stages.reports.write_gallery",
    )
)


def explored_chains(cfg: dict) -> list[str]:
    """The maps explore_thresholds draws: the seeds and every reported refinement with CAM-format maps."""
    reported = [r for r in reported_refinements(cfg) if r != "none" and chain_kind(cfg, r) == "cams"]
    return [SEEDS, *reported]


# not in `all`: target `threshold_explorer` (rules/report.smk)
register_stage(
    Stage(
        "explore_thresholds",
        "a sample's label maps at each candidate background threshold, to pick one by eye (report)",
        inputs=lambda cfg, source: {"cams": chain_ref(cfg, source)},
        input_args=("cams",),
        outputs={"out_png": Output("{source}.png", report="Threshold explorer")},
        params={
            "split": "splits.seeds",
            "mask_folder": "mask_folder",
            "candidates": "eval_cams.thresholds",
            "images": "explore_thresholds.images",
            "columns": "explore_thresholds.columns",
        },
        thresholds=lambda cfg, source: {"bg_threshold": chain_threshold(cfg, source)},
        threshold_args=("bg_threshold",),
        variant="source",
        mem_mb=2000,
        runtime=10,
        module="wsss_stages.reports.explore_thresholds",
    )
)
