# Helpers shared by the rules: paths, the stage command, code dependencies, resources.
# The config -> argument mapping lives in each rule's `params:` (only the keys that rule uses).

import os
import re
import shlex
from pathlib import Path

from wsss_stages.codedeps import stage_code_files
from wsss_stages.experiments import Experiments, job_name, method_label
from wsss_stages.experiments import reported_refinements as refinements_reported

# One run holds one experiment, or several (config key `experiments`): every path below
# results/ carries the {exp} wildcard, and each rule reads its experiment's own config.
RUN = Experiments(EXPERIMENT_CONFIGS)
EXPERIMENTS = RUN.names
MULTI = bool(config["experiments"])
LEADERBOARD = f"results/{config['leaderboard']}"
RESULTS = "results/{exp}"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
DEMO_ROOT = "results/make_demo_data/VOC2012"
ALL_REFINEMENTS = ["none", "crf", "rw", "rw+crf"]

# Jobs run `python -m wsss_stages` with this checkout first on PYTHONPATH: the code that runs is
# the code Snakemake tracks (see code()), whatever version of the package is installed.
shell.prefix(f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

# "gt" exists only from train_segmentation on: DeepLab trained on ground truth (the upper bound)
wildcard_constraints:
    exp="|".join(re.escape(name) for name in EXPERIMENTS),
    refinement=r"none|crf|rw|rw\+crf|gt",
    source="cams|rw",


def code(stage):
    """The stage module and the package modules it imports: edits to them rerun the stage."""
    return [os.path.relpath(p) if Path(p).is_relative_to(Path.cwd()) else p for p in stage_code_files(stage)]


def cfg(wildcards):
    """The config of the job's experiment."""
    return RUN.configs[wildcards.exp]


def setting(*keys):
    """A params/input function: the value at ``keys`` in the job's experiment config."""

    def value(wildcards):
        node = cfg(wildcards)
        for key in keys:
            node = node[key]
        return node

    return value


def artifact(stage, relpath, variant=""):
    """Path of ``stage``'s output ``relpath`` as this job's experiment reads it: in the folder of the
    experiment that owns it (built once for all experiments that would build it identically).
    ``relpath`` and ``variant`` may hold wildcards, e.g. "{source}"."""

    def path(wildcards):
        node = (stage, variant.format(**wildcards))
        return f"results/{RUN.owner(wildcards.exp, node)}/{stage}/{relpath.format(**wildcards)}"

    return path


def data_root(wildcards, input):
    """The data root: the demo's folder comes from the input path, a real tree from the config."""
    return os.path.dirname(input.data[0]) if cfg(wildcards)["dataset"] == "demo" else str(cfg(wildcards)["data_root"])


def ignore_band_arg(wildcards):
    band = cfg(wildcards)["make_pseudo_masks"]["ignore_band"]
    return f"--ignore-band {band[0]} {band[1]}" if band else ""


def data_input(wildcards):
    """The demo dataset is itself an artifact; a real VOC tree is an external input."""
    return [f"{DEMO_ROOT}/manifest.json"] if cfg(wildcards)["dataset"] == "demo" else []


def device(wildcards):
    return cfg(wildcards)["device"]


def gpus(wildcards):
    """Training/inference jobs ask for a GPU unless the config pins the CPU."""
    return 0 if cfg(wildcards)["device"] == "cpu" else 1


def heavy_threads():
    return min(max(workflow.cores, 1), 8)


def training_args(stage):
    """The training/backbone section of a training stage, as CLI flags (only that stage's keys)."""

    def args(wildcards):
        backbone = cfg(wildcards)[stage]["backbone"]
        training = cfg(wildcards)[stage]["training"]
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
        text = " ".join(f"--{k} {v}" for k, v in flags.items())
        return f"{text} {flag('freeze-bn', backbone['freeze_bn'])}"

    return args


def classifier_method_args(wildcards):
    """Seed-method flags of train_classifier (Puzzle-CAM, Hide-and-Seek), only those in use."""
    section = cfg(wildcards)["train_classifier"]
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


def seeds(wildcards):
    """The seed maps: one classifier's CAMs, or adversarial erasing's fused maps."""
    if cfg(wildcards)["adversarial_erasing"]["enabled"]:
        return artifact("train_erasing", "cams")(wildcards)
    return artifact("make_cams", "cams")(wildcards)


def cam_folder(wildcards, source=None):
    """CAM-format maps by source: the seeds ("cams"), or CAMs after the random walk ("rw")."""
    source = source or wildcards.source
    return seeds(wildcards) if source == "cams" else artifact("random_walk", "cams")(wildcards)


def cam_best(wildcards, source):
    """best.json of the eval_cams sweep (on the seed split) of a CAM-format folder."""
    return artifact("eval_cams", f"{source}/best.json", source)(wildcards)


def scores_for(wildcards):
    """Score maps (or CAM-format maps) that become pseudo-masks, by refinement."""
    refinement = wildcards.refinement
    if refinement in ("crf", "rw+crf"):
        source = "cams" if refinement == "crf" else "rw"
        return artifact("refine_crf", f"{source}/scores", source)(wildcards)
    return cam_folder(wildcards, "cams" if refinement == "none" else "rw")


def pseudo_masks(wildcards, refinement=None):
    refinement = refinement or wildcards.refinement
    return artifact("make_pseudo_masks", f"{refinement}/masks", refinement)(wildcards)


def training_masks(wildcards):
    """Pseudo-masks of a refinement; none for "gt" (the stage reads the dataset's masks)."""
    return [] if wildcards.refinement == "gt" else pseudo_masks(wildcards)


def background(wildcards, use, key):
    """(config value, sweep best.json) behind the background threshold of CAM-format maps, or None
    for maps that carry their own background (refined scores). ``use``: "mask" or "crf"."""
    c = cfg(wildcards)
    if use == "mask" and key == "none":
        return c["cam_bg_threshold"], cam_best(wildcards, "cams")
    if use == "crf" and key == "cams":
        return c["refine_crf"]["bg_threshold"], artifact("tune_crf", "best.json")(wildcards)
    if key == "rw":
        return c["random_walk"]["bg_threshold"], cam_best(wildcards, "rw")
    return None


def background_input(use, key_wildcard):
    """best.json of the sweep when the threshold is "auto" (CAM-format inputs only), else nothing."""

    def path(wildcards):
        found = background(wildcards, use, wildcards[key_wildcard])
        return threshold_input(*found) if found else []

    return path


def background_arg(use, key_wildcard):
    """--bg-threshold(-from) for CAM-format inputs; refined score maps carry their own background."""

    def arg(wildcards):
        found = background(wildcards, use, wildcards[key_wildcard])
        return threshold_arg(*found) if found else ""

    return arg


def refinement_of(wildcards):
    return cfg(wildcards)["make_pseudo_masks"]["refinement"]


def reported_refinements(wildcards):
    """The refinement that trains DeepLab first, then the ones only compared."""
    return refinements_reported(cfg(wildcards))


def pseudo_mask_metrics(wildcards, refinement):
    return artifact("eval_pseudo_masks", f"{refinement}/metrics.json", refinement)(wildcards)


def segmentation_metrics(wildcards, refinement=None):
    refinement = refinement or refinement_of(wildcards)
    return artifact("eval_segmentation", f"{refinement}/metrics.json", refinement)(wildcards)


def flag(name, value):
    return f"--{name}" if value else f"--no-{name}"


def print_metrics_table():
    paths = [Path(f"{LEADERBOARD}.md")] if MULTI else [Path(f"results/{EXPERIMENTS[0]}/metrics.md")]
    for path in paths:
        if path.is_file():
            print(f"\n{path.read_text()}")


def mask_folder_arg(wildcards):
    folder = cfg(wildcards)["mask_folder"]
    return f"--mask-folder {folder}" if folder else ""


def compare_arg(wildcards):
    pairs = " ".join(f"{r}={pseudo_mask_metrics(wildcards, r)}" for r in reported_refinements(wildcards)[1:])
    return f"--compare {pairs}" if pairs else ""


def summary_inputs(wildcards):
    """What an experiment's summary reads; the segmentation score only when DeepLab is enabled."""
    refinement = refinement_of(wildcards)
    inputs = {
        "cam_best": cam_best(wildcards, "cams"),
        "pseudo_masks": pseudo_mask_metrics(wildcards, refinement),
        "pseudo_mask_dir": pseudo_masks(wildcards, refinement),
        "compare": [pseudo_mask_metrics(wildcards, r) for r in reported_refinements(wildcards)[1:]],
    }
    if cfg(wildcards)["train_segmentation"]["enabled"]:
        inputs["segmentation"] = segmentation_metrics(wildcards)
    return inputs


def segmentation_arg(wildcards, input):
    return f"--segmentation {input.segmentation}" if "segmentation" in input.keys() else ""


def experiment_targets(name):
    return [f"results/{name}/metrics.json", f"results/{name}/metrics.md"]


def job_benchmarks(name, nodes=None):
    """The benchmark file of every job an experiment needs (its summary's, or ``nodes``), shared ones
    in the folder of the experiment that built them."""
    return [f"results/{RUN.owner(name, node)}/benchmarks/{job_name(node)}.tsv" for node in sorted(RUN.used_nodes(name) if nodes is None else nodes)]
