# Helpers shared by the rules: paths, the stage command, code dependencies, resources.
# The config -> argument mapping lives in each rule's `params:` (only the keys that rule uses).

import os
import shlex
from pathlib import Path

from wsss_stages.codedeps import stage_code_files

EXPERIMENT = config["experiment"]
RESULTS = f"results/{EXPERIMENT}"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
DEMO_ROOT = "results/make_demo_data/VOC2012"
DATA_ROOT = DEMO_ROOT if config["dataset"] == "demo" else str(config["data_root"])
REFINEMENT = config["make_pseudo_masks"]["refinement"]
ALL_REFINEMENTS = ["none", "crf", "rw", "rw+crf"]

# Jobs run `python -m wsss_stages` with this checkout first on PYTHONPATH: the code that runs is
# the code Snakemake tracks (see code()), whatever version of the package is installed.
shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

# "gt" exists only from train_segmentation on: DeepLab trained on ground truth (the upper bound)
wildcard_constraints:
    refinement=r"none|crf|rw|rw\+crf|gt",
    source="cams|rw",


def code(stage):
    """The stage module and the package modules it imports: edits to them rerun the stage."""
    return [os.path.relpath(p) if Path(p).is_relative_to(Path.cwd()) else p for p in stage_code_files(stage)]


def data_root(wildcards, input):
    """The data root: the demo's folder comes from the input path, a real tree from the config."""
    return os.path.dirname(input.data[0]) if config["dataset"] == "demo" else DATA_ROOT


def ignore_band_arg():
    band = config["make_pseudo_masks"]["ignore_band"]
    return f"--ignore-band {band[0]} {band[1]}" if band else ""


def data_input():
    """The demo dataset is itself an artifact; a real VOC tree is an external input."""
    return [f"{DEMO_ROOT}/manifest.json"] if config["dataset"] == "demo" else []


def device():
    return config["device"]


def gpus():
    """Training/inference jobs ask for a GPU unless the config pins the CPU."""
    return 0 if config["device"] == "cpu" else 1


def heavy_threads():
    return min(max(workflow.cores, 1), 8)


def training_args(stage):
    """The training/backbone section of a training stage, as CLI flags (only that stage's keys)."""
    backbone = config[stage]["backbone"]
    training = config[stage]["training"]
    flags = {
        "backbone": backbone["name"],
        "weights": backbone["weights"],
        "output-stride": backbone["output_stride"],
        "epochs": training["epochs"],
        "batch-size": training["batch_size"],
        "crop-size": training["crop_size"],
        "scale-range": " ".join(str(v) for v in training["scale_range"]),
        "lr": training["lr"],
        "head-lr-mult": training["head_lr_mult"],
        "weight-decay": training["weight_decay"],
        "momentum": training["momentum"],
        "workers": training["workers"],
        "checkpoint-every": training["checkpoint_every"],
    }
    args = " ".join(f"--{k} {v}" for k, v in flags.items())
    return f"{args} {flag('freeze-bn', backbone['freeze_bn'])}"


def classifier_method_args():
    """Seed-method flags of train_classifier (Puzzle-CAM, Hide-and-Seek), only those in use."""
    section = config["train_classifier"]
    args = f"--method {section['method']}"
    if section["method"] == "puzzle":
        args += f" --puzzle-alpha-target {section['puzzle']['alpha']} --puzzle-terms {' '.join(section['puzzle']['terms'])}"
    hide = section["hide_and_seek"]
    if hide["patch_sizes"]:
        args += f" --hide-patch-sizes {' '.join(map(str, hide['patch_sizes']))} --hide-prob {hide['prob']}"
    return args


def threshold_input(value, best_json):
    """A threshold set to "auto" comes from the best of a sweep (best.json), else from params."""
    return best_json if value == "auto" else []


def threshold_arg(value, best_json):
    return f"--bg-threshold-from {best_json}" if value == "auto" else f"--bg-threshold {value}"


CRF_BEST = f"{RESULTS}/tune_crf/best.json"

# CAM-format folders (CAMs, and CAMs after the random walk) and the sweep that tunes each one's
# background threshold on the seed split
# ("cams" are the seeds: one classifier's CAMs, or adversarial erasing's fused maps)
SEEDS = f"{RESULTS}/train_erasing/cams" if config["adversarial_erasing"]["enabled"] else f"{RESULTS}/make_cams/cams"
CAM_FOLDERS = {"cams": SEEDS, "rw": f"{RESULTS}/random_walk/cams"}
CAM_BEST = {source: f"{RESULTS}/eval_cams/{source}/best.json" for source in CAM_FOLDERS}

SCORES = {
    "none": CAM_FOLDERS["cams"],
    "crf": f"{RESULTS}/refine_crf/cams/scores",
    "rw": CAM_FOLDERS["rw"],
    "rw+crf": f"{RESULTS}/refine_crf/rw/scores",
}


def scores_for(wildcards):
    """Score maps (or CAM-format maps) that become pseudo-masks, by refinement."""
    return SCORES[wildcards.refinement]


def training_masks(wildcards):
    """Pseudo-masks of a refinement; none for "gt" (the stage reads the dataset's masks)."""
    return [] if wildcards.refinement == "gt" else f"{RESULTS}/make_pseudo_masks/{wildcards.refinement}/masks"


def crf_source(wildcards):
    """What the dense CRF refines: CAMs, or the random walk's CAMs."""
    return CAM_FOLDERS[wildcards.source]


def cam_folder(wildcards):
    return CAM_FOLDERS[wildcards.source]


# where the background threshold of CAM-format maps comes from, per use: (config value, sweep result)
MASK_BACKGROUND = {
    "none": (config["cam_bg_threshold"], CAM_BEST["cams"]),
    "rw": (config["random_walk"]["bg_threshold"], CAM_BEST["rw"]),
}
CRF_BACKGROUND = {
    "cams": (config["refine_crf"]["bg_threshold"], CRF_BEST),
    "rw": (config["random_walk"]["bg_threshold"], CAM_BEST["rw"]),
}


def background_input(table, key):
    """best.json of the sweep when the threshold is "auto" (CAM-format inputs only), else nothing."""
    return threshold_input(*table[key]) if key in table else []


def background_arg(table, key):
    """--bg-threshold(-from) for CAM-format inputs; refined score maps carry their own background."""
    return threshold_arg(*table[key]) if key in table else ""


def reported_refinements():
    """The refinement that trains DeepLab first, then the ones only compared."""
    chosen = config["make_pseudo_masks"]
    return [REFINEMENT] + [r for r in chosen["compare"] if r != REFINEMENT]


def flag(name, value):
    return f"--{name}" if value else f"--no-{name}"


def print_metrics_table():
    path = Path(RESULTS) / "metrics.md"
    if path.is_file():
        print(f"\n{path.read_text()}")


def mask_folder_arg():
    folder = config["mask_folder"]
    return f"--mask-folder {folder}" if folder else ""


def compare_arg():
    others = reported_refinements()[1:]
    pairs = " ".join(f"{r}={RESULTS}/eval_pseudo_masks/{r}/metrics.json" for r in others)
    return f"--compare {pairs}" if others else ""
