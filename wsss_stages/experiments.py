"""Several experiments in one DAG: overlays on one base config, and which artifacts they share.

An experiment is the base config with an overlay from ``experiments:`` deep-merged onto it
(mappings merge, everything else replaces). Its results folder is ``results/<experiment>_<name>/``.

Each stage output ("node": a stage and, where the stage has a wildcard, its value) has a
*signature*: the config values the stage reads plus the signatures of the nodes it reads. Two
experiments whose signatures agree for a node would build the same file, so the node is built
once, in the folder of the first such experiment (its *owner*), and the others read it there. A
Grad-CAM experiment therefore reuses the CAM experiment's classifier, and experiments that differ
only in refinement share everything up to the refinement.

The stage graph below mirrors the rules' inputs and ``params:``; tests check the sharing on a real DAG.
Light on imports on purpose (the Snakefile imports it).
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from typing import Any, Iterable

from wsss_stages import WsssError
from wsss_stages.config import validate_config

Node = tuple[str, str]  # (stage, wildcard value or "")

# overlays may not change these: they name the run as a whole or its shared demo data
RUN_KEYS = ("experiment", "experiments", "leaderboard", "make_demo_data")
# read by (nearly) every stage: never shared across experiments that differ in them
COMMON_KEYS = ("dataset", "data_root", "mask_folder", "device", "seed")
REFINEMENTS = ("none", "crf", "rw", "rw+crf")
CRF_KEYS = tuple(f"refine_crf.{k}" for k in ("iterations", "gaussian_sxy", "gaussian_compat", "bilateral_sxy", "bilateral_srgb", "bilateral_compat"))


# ============================================================================ expansion
def deep_merge(base: dict, overlay: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def expand_experiments(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Folder name → validated config of each experiment (one, named ``experiment``, without overlays)."""
    overlays = config.get("experiments") or {}
    base = {k: v for k, v in config.items() if k not in ("experiments", "leaderboard")}
    if not overlays:
        return {config["experiment"]: base}
    experiments = {}
    for name, overlay in overlays.items():
        overlay = overlay or {}
        if not isinstance(overlay, dict):
            raise WsssError(f"invalid config:\n  config key 'experiments.{name}' must be a mapping of config keys")
        fixed = [k for k in overlay if k in RUN_KEYS]
        if fixed:
            raise WsssError(f"invalid config:\n  config key 'experiments.{name}.{fixed[0]}' belongs to the whole run; set it at the top level")
        try:
            merged = validate_config(deep_merge(base, overlay))
        except WsssError as error:
            raise WsssError(str(error).replace("config key '", f"config key 'experiments.{name}.")) from None
        merged["experiment"] = f"{config['experiment']}_{name}"
        experiments[merged["experiment"]] = merged
    return experiments


# ============================================================================ stage graph
def _seeds(cfg: dict) -> Node:
    return ("train_erasing", "") if cfg["adversarial_erasing"]["enabled"] else ("make_cams", "")


def _auto(value) -> bool:
    return value == "auto"


def stage_graph(cfg: dict) -> dict[Node, tuple[list[Node], list[str]]]:
    """Node → (nodes it reads, dotted config keys it reads) for one experiment's config."""
    seeds, rw = _seeds(cfg), ("random_walk", "")
    cam_auto, rw_auto = _auto(cfg["cam_bg_threshold"]), _auto(cfg["random_walk"]["bg_threshold"])
    graph: dict[Node, tuple[list[Node], list[str]]] = {
        ("train_classifier", ""): ([], ["train_classifier", "splits.classifier"]),
        ("make_cams", ""): ([("train_classifier", "")], ["make_cams", "splits.seeds", "splits.segmentation"]),
        ("train_erasing", ""): ([("train_classifier", "")], ["adversarial_erasing.steps", "adversarial_erasing.delta",
                                                            "adversarial_erasing.map_floor", "make_cams.scales", "make_cams.flip",
                                                            "make_cams.precision", "splits"]),
        ("eval_cams", "cams"): ([seeds], ["eval_cams", "splits.seeds"]),
        ("tune_crf", ""): ([seeds], ["refine_crf.thresholds", *CRF_KEYS, "splits.seeds"]),
        ("make_affinity_labels", ""): ([seeds], ["make_affinity_labels"]),
        ("train_affinitynet", ""): ([("train_classifier", ""), ("make_affinity_labels", "")], ["train_affinitynet", "splits.classifier"]),
        rw: ([("train_affinitynet", ""), seeds], ["random_walk.beta", "random_walk.exp_times", "random_walk.radius"]),
        ("eval_cams", "rw"): ([rw], ["eval_cams", "splits.seeds"]),
        ("refine_crf", "cams"): ([seeds] + ([("tune_crf", "")] if _auto(cfg["refine_crf"]["bg_threshold"]) else []),
                                 ["refine_crf.bg_threshold", *CRF_KEYS]),
        ("refine_crf", "rw"): ([rw] + ([("eval_cams", "rw")] if rw_auto else []), ["random_walk.bg_threshold", *CRF_KEYS]),
        ("make_pseudo_masks", "none"): ([seeds] + ([("eval_cams", "cams")] if cam_auto else []), ["cam_bg_threshold"]),
        ("make_pseudo_masks", "crf"): ([("refine_crf", "cams")], []),
        ("make_pseudo_masks", "rw"): ([rw] + ([("eval_cams", "rw")] if rw_auto else []), ["random_walk.bg_threshold"]),
        ("make_pseudo_masks", "rw+crf"): ([("refine_crf", "rw")], []),
        ("train_segmentation", "gt"): ([], ["train_segmentation", "splits.segmentation"]),
    }
    for refinement in REFINEMENTS:
        upstream, keys = graph[("make_pseudo_masks", refinement)]
        graph[("make_pseudo_masks", refinement)] = (upstream, keys + ["make_pseudo_masks.ignore_band"])
        graph[("eval_pseudo_masks", refinement)] = ([("make_pseudo_masks", refinement)], ["splits.seeds"])
        graph[("train_segmentation", refinement)] = ([("make_pseudo_masks", refinement)], ["train_segmentation", "splits.segmentation"])
    for refinement in (*REFINEMENTS, "gt"):
        graph[("predict_segmentation", refinement)] = ([("train_segmentation", refinement)], ["predict_segmentation", "splits.val"])
        graph[("eval_segmentation", refinement)] = ([("predict_segmentation", refinement)], ["splits.val"])
    return graph


def _lookup(cfg: dict, dotted: str):
    value = cfg
    for part in dotted.split("."):
        value = value[part]
    if dotted == "train_segmentation":  # whether DeepLab runs at all changes no file it writes
        value = {k: v for k, v in value.items() if k != "enabled"}
    return value


def reported_refinements(cfg: dict) -> list[str]:
    """The refinement that trains DeepLab first, then the ones only compared."""
    chosen = cfg["make_pseudo_masks"]
    return [chosen["refinement"]] + [r for r in chosen["compare"] if r != chosen["refinement"]]


def job_name(node: Node) -> str:
    """A node's job name, as in its log and benchmark file names: stage, or stage_wildcard."""
    stage, variant = node
    return f"{stage}_{variant}" if variant else stage


def summary_nodes(cfg: dict) -> list[Node]:
    """The nodes whose results an experiment's summary (metrics.json) reads."""
    chosen = cfg["make_pseudo_masks"]
    refinements = reported_refinements(cfg)
    nodes = [("eval_cams", "cams"), ("make_pseudo_masks", chosen["refinement"])]
    nodes += [("eval_pseudo_masks", r) for r in refinements]
    if cfg["train_segmentation"]["enabled"]:
        nodes.append(("eval_segmentation", chosen["refinement"]))
    return nodes


def benchmark_nodes(cfg: dict) -> list[Node]:
    """The nodes the benchmark report reads: every refinement, and DeepLab on ground truth too."""
    nodes = [("eval_cams", "cams"), *(("eval_pseudo_masks", r) for r in REFINEMENTS), ("eval_segmentation", "gt")]
    return summary_nodes(cfg) + nodes + [("eval_segmentation", cfg["make_pseudo_masks"]["refinement"])]


def upstream_closure(graph: dict[Node, tuple[list[Node], list[str]]], targets: Iterable[Node]) -> list[Node]:
    """``targets`` and every node they read, transitively, in a stable order."""
    seen: dict[Node, None] = {}
    stack = list(targets)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen[node] = None
            stack.extend(graph[node][0])
    return sorted(seen)


# ============================================================================ sharing
class Experiments:
    """The experiments of one run, and the owner (results folder) of every node of each."""

    def __init__(self, experiments: dict[str, dict[str, Any]]):
        self.configs = experiments
        self.graphs = {name: stage_graph(cfg) for name, cfg in experiments.items()}

    @property
    def names(self) -> list[str]:
        return list(self.configs)

    @lru_cache(maxsize=None)
    def signature(self, experiment: str, node: Node) -> str:
        upstream, keys = self.graphs[experiment][node]
        cfg = self.configs[experiment]
        values = {key: _lookup(cfg, key) for key in (*COMMON_KEYS, *keys)}
        if cfg["dataset"] == "demo":
            values["make_demo_data"] = cfg["make_demo_data"]
        return json.dumps([node, values, [self.signature(experiment, up) for up in upstream]], sort_keys=True)

    @lru_cache(maxsize=None)
    def owner(self, experiment: str, node: Node) -> str:
        """The first experiment that uses ``node`` and builds it exactly as ``experiment`` would
        (``experiment`` itself when none does, e.g. for nodes only a benchmark target asks for)."""
        mine = self.signature(experiment, node)
        return next((name for name in self.names if node in self.used_nodes(name) and self.signature(name, node) == mine), experiment)

    @lru_cache(maxsize=None)
    def used_nodes(self, experiment: str) -> frozenset[Node]:
        """The nodes an experiment's summary needs, transitively."""
        return frozenset(upstream_closure(self.graphs[experiment], summary_nodes(self.configs[experiment])))

    def benchmark_nodes(self, experiment: str) -> list[Node]:
        """The nodes the experiment's benchmark report covers, transitively."""
        return upstream_closure(self.graphs[experiment], benchmark_nodes(self.configs[experiment]))


# ============================================================================ labels
def method_label(cfg: dict) -> str:
    """A short human name of an experiment's seed method, e.g. "Puzzle-CAM (cls+re, α 4)"."""
    classifier = cfg["train_classifier"]
    parts = []
    if classifier["method"] == "puzzle":
        puzzle = classifier["puzzle"]
        alpha = f", α {puzzle['alpha']:g}" if "re" in puzzle["terms"] else ""  # α weighs L_re only
        parts.append(f"Puzzle-CAM ({'+'.join(puzzle['terms'])}{alpha})")
    hide = classifier["hide_and_seek"]
    if hide["patch_sizes"]:
        parts.append(f"Hide-and-Seek ({'/'.join(map(str, hide['patch_sizes']))} px, p {hide['prob']:g})")
    erasing = cfg["adversarial_erasing"]
    if erasing["enabled"]:
        parts.append(f"AE-PSL (T {erasing['steps']}, δ {erasing['delta']:g})")
    cams = cfg["make_cams"]
    if cams["cam_type"] == "gradcam":
        parts.append("Grad-CAM" + (" (low layer)" if cams["gradcam_layer"] == "low" else ""))
    return " + ".join(parts) or "CAM"
