"""The stage graph of an experiment, derived from the stage declarations (it exists only here).

A *node* is a stage and its wildcard value: ``("refine_crf", "rw")``. For a config, a node's
inputs, parameters and thresholds come from its :class:`~wsss_stages.lib.plan.declare.Stage`; the
Snakemake rules and the artifact sharing between experiments both read them from here.

Refinements are chains of registered refiners joined by "+": "none" (the seeds themselves),
"crf", "rw", "rw+crf" … The seeds are one classifier's CAMs (``make_cams``) or adversarial
erasing's fused maps (``train_erasing``). Each chain's last refiner refines the chain before
it (its ``source``: "cams" for the seeds).

Light on imports on purpose (the Snakefile imports it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from wsss_stages import WsssError
from wsss_stages.lib.plan.declare import REGISTRY, Ref, Stage, Threshold, lookup, param_value

Node = tuple[str, str]  # (stage, wildcard value or "")
SEEDS = "cams"  # the source name of the seed maps


# ============================================================================ seeds and refinement chains
def classifier(cfg: dict, output: str = "out_model") -> Ref:
    """The classifier the CAMs come from (``out_model``, or its record ``out_info``): train_classifier's,
    or ACR's C (``train_acr``) when ``acr.enabled``."""
    return Ref("train_acr" if cfg["acr"]["enabled"] else "train_classifier", output)


def seeds(cfg: dict) -> Ref:
    """The seed maps: one classifier's CAMs, or adversarial erasing's fused maps."""
    if cfg["adversarial_erasing"]["enabled"]:
        return Ref("train_erasing", "out_dir")
    return Ref("make_cams", "out_dir")


def chain_links(chain: str) -> list[str]:
    """ "rw+crf" → ["rw", "crf"]; "none" or "cams" → []."""
    return [] if chain in ("none", SEEDS) else chain.split("+")


def chain_source(chain: str) -> str:
    """The chain before the last refiner: "rw+crf" → "rw", "crf" → "cams"."""
    return "+".join(chain_links(chain)[:-1]) or SEEDS


def check_chain(cfg: dict, chain: str, where: str) -> None:
    """Every link is a registered refiner that accepts what the link before it produces."""
    kind = "cams"
    for link in chain_links(chain):
        refiner = REGISTRY.refiners.get(link)
        if refiner is None:
            known = ", ".join(["none", *REGISTRY.refiners])
            raise WsssError(
                f"config key '{where}': unknown refinement '{link}' in '{chain}' (known: {known}, chained with +)"
            )
        if kind not in refiner.accepts:
            raise WsssError(f"config key '{where}': '{link}' cannot refine {kind} (in '{chain}')")
        kind = refiner.output_kind(cfg, kind)


def chain_kind(cfg: dict, chain: str) -> str:
    """ "cams" (CAM format: needs a background threshold) or "scores" (carries its own background)."""
    links = chain_links(chain)
    return REGISTRY.refiners[links[-1]].output_kind(cfg, chain_kind(cfg, chain_source(chain))) if links else "cams"


def chain_ref(cfg: dict, chain: str) -> Ref:
    """The maps a refinement chain ends with."""
    links = chain_links(chain)
    if not links:
        return seeds(cfg)
    refiner = REGISTRY.refiners[links[-1]]
    return Ref(refiner.apply, refiner.artifact, chain_source(chain))


def chain_threshold(cfg: dict, chain: str) -> Threshold | None:
    """The background threshold that turns a chain's CAM-format maps into labels (None for scores):
    ``cam_bg_threshold`` for the seeds, the last refiner's own key otherwise; "auto" reads the
    eval_cams sweep of those maps on the seed split."""
    if chain_kind(cfg, chain) != "cams":
        return None
    links = chain_links(chain)
    key = REGISTRY.refiners[links[-1]].threshold if links else "cam_bg_threshold"
    return Threshold(lookup(cfg, key), Ref("eval_cams", "out_best", chain if links else SEEDS), key)


def chain_rule(cfg: dict, chain: str) -> str:
    """How an automatic threshold of a chain's maps is chosen: the rule its own key names (``otsu``,
    ``sweep`` …), else ``threshold_rule``."""
    links = chain_links(chain)
    key = REGISTRY.refiners[links[-1]].threshold if links else "cam_bg_threshold"
    value = lookup(cfg, key) if key else "auto"
    return value if isinstance(value, str) and value != "auto" else cfg["threshold_rule"]


def refinement_pattern() -> str:
    """Regex of every chain of registered refiners (wildcard constraint)."""
    names = "|".join(re.escape(n) for n in sorted(REGISTRY.refiners, key=len, reverse=True)) or "(?!)"
    return f"(?:{names})(?:\\+(?:{names}))*"


def reported_refinements(cfg: dict) -> list[str]:
    """The refinement that trains DeepLab first, then the ones only compared."""
    chosen = cfg["make_pseudo_masks"]
    return [chosen["refinement"]] + [r for r in chosen["compare"] if r != chosen["refinement"]]


# ============================================================================ nodes
def node_inputs(cfg: dict, stage: Stage, variant: str) -> dict[str, Any]:
    """Argument → Ref (or list / mapping of Refs, or None), thresholds' sweeps included."""
    inputs = dict(stage.inputs(cfg, variant))
    for arg, threshold in node_thresholds(cfg, stage, variant).items():
        inputs[f"{arg}_sweep"] = threshold.sweep if threshold is not None and threshold.auto else None
    return inputs


def node_thresholds(cfg: dict, stage: Stage, variant: str) -> dict[str, Threshold | None]:
    return dict(stage.thresholds(cfg, variant)) if stage.thresholds else {}


def node_params(cfg: dict, stage: Stage, variant: str) -> dict[str, Any]:
    """Argument → config value, thresholds as configured (a number or "auto")."""
    values = {arg: param_value(cfg, param, variant) for arg, param in stage.params.items()}
    for arg, threshold in node_thresholds(cfg, stage, variant).items():
        values[arg] = None if threshold is None else threshold.value
    return values


def refs(value) -> list[Ref]:
    if value is None:
        return []
    if isinstance(value, Ref):
        return [value]
    if isinstance(value, dict):
        return list(value.values())
    return list(value)


def upstream(cfg: dict, node: Node) -> list[Node]:
    stage = REGISTRY.stage(node[0])
    return [ref.node for value in node_inputs(cfg, stage, node[1]).values() for ref in refs(value)]


def closure(cfg: dict, targets: Iterable[Node]) -> list[Node]:
    """``targets`` and every node they read, transitively, sorted."""
    seen: dict[Node, None] = {}
    stack = list(targets)
    while stack:
        node = stack.pop()
        if node not in seen:
            seen[node] = None
            stack.extend(upstream(cfg, node))
    return sorted(seen)


def job_name(node: Node) -> str:
    """A node's job name, as in its log and benchmark file names: stage, or stage_wildcard."""
    stage, variant = node
    return f"{stage}_{variant}" if variant else stage


def _count(cfg: dict, key: str, stage: str) -> int:
    value = cfg[key]
    return value.get(stage, 1) if isinstance(value, dict) else value


def shard_count(cfg: dict, stage: str) -> int:
    """How many jobs a stage's images are split into (config ``shards``; 1 for stages that are not shardable)."""
    return _count(cfg, "shards", stage) if REGISTRY.stage(stage).shardable else 1


def process_count(cfg: dict, stage: str) -> int:
    """How many data-parallel processes a training stage runs as (config ``processes``; 1 for the others)."""
    return _count(cfg, "processes", stage) if REGISTRY.stage(stage).distributed else 1


def job_files(cfg: dict, node: Node) -> list[str]:
    """The file names (without suffix) of a node's jobs: one, or each shard's and the gather's."""
    count = shard_count(cfg, node[0])
    if count == 1:
        return [job_name(node)]
    return [f"{job_name(node)}_shard{k + 1}of{count}" for k in range(count)] + [f"{job_name(node)}_gather"]


# ============================================================================ experiments sharing artifacts
class Experiments:
    """The experiments of one run, and the owner (results folder) of every node of each.

    A node's *signature* is what its job receives: its parameters, the data it reads, and the
    signatures of the nodes it reads. Two experiments whose signatures agree would build the same
    file, so the node is built once, in the folder of the first experiment that uses it (its
    *owner*), and the others read it there. With ``homes`` (the base config's own folders,
    :func:`~wsss_stages.lib.plan.experiments.preset_folders`) a node the base builds identically is
    owned by the base's folder, which runs with and without overlays share."""

    def __init__(self, experiments: dict[str, dict[str, Any]], homes: dict[str, dict[str, Any]] | None = None):
        homes = homes or {}
        for name in set(experiments) & set(homes):
            if experiments[name] != homes[name]:
                raise WsssError(
                    f"invalid config:\n  experiment folder 'results/{name}' is also the base config's own folder; "
                    f"rename the overlay in 'experiments'"
                )
        self.experiments = list(experiments)
        self.homes = [name for name in homes if name not in experiments]
        self.configs = {**homes, **experiments}

    @property
    def names(self) -> list[str]:
        """The run's experiments (and their repeats): what it summarises and compares."""
        return self.experiments

    @property
    def folders(self) -> list[str]:
        """Every folder the run may build in: the experiments' and the base config's own (``homes``)."""
        return list(self.configs)

    @cache
    def signature(self, experiment: str, node: Node) -> str:
        cfg = self.configs[experiment]
        stage = REGISTRY.stage(node[0])
        values = node_params(cfg, stage, node[1])
        if stage.data:
            values["<data>"] = data_identity(cfg)
        ups = [self.signature(experiment, up) for up in upstream(cfg, node)]
        return json.dumps([node, values, ups], sort_keys=True, default=str)

    @cache
    def owner(self, experiment: str, node: Node) -> str:
        """The base config's own folder when the base builds ``node`` exactly as ``experiment``
        would (so that runs with and without overlays share it), else the first experiment that
        does (``experiment`` itself when none does, e.g. for nodes only a benchmark target asks for)."""
        mine = self.signature(experiment, node)
        return next(
            (
                name
                for name in [*self.homes, *self.names]
                if node in self.used_nodes(name) and self.signature(name, node) == mine
            ),
            experiment,
        )

    @cache
    def used_nodes(self, experiment: str) -> frozenset[Node]:
        """The nodes an experiment's summary needs, transitively."""
        return frozenset(closure(self.configs[experiment], [("summarize_metrics", "")]))

    def benchmark_nodes(self, experiment: str) -> list[Node]:
        """The nodes the experiment's benchmark report covers, transitively."""
        return [n for n in closure(self.configs[experiment], [("write_benchmark", "")]) if n != ("write_benchmark", "")]

    def path(self, experiment: str, ref: Ref) -> str:
        """Where ``experiment`` reads ``ref``: in the folder of the node's owner."""
        relpath = REGISTRY.stage(ref.stage).output_path(ref.output, ref.variant)
        return f"results/{self.owner(experiment, ref.node)}/{relpath}"

    def job_benchmarks(self, experiment: str, nodes: Iterable[Node] | None = None) -> list[str]:
        """The benchmark file of every job an experiment needs (or of ``nodes``), in its owner's folder."""
        nodes = sorted(self.used_nodes(experiment) if nodes is None else nodes)
        return [
            f"results/{owner}/benchmarks/{name}.tsv"
            for node in nodes
            for owner in [self.owner(experiment, node)]
            for name in job_files(self.configs[owner], node)
        ]


# ============================================================================ labels
def method_label(cfg: dict) -> str:
    """A short human name of an experiment's seed method, e.g. "Puzzle-CAM (cls+re, α 4)"."""
    classifier = cfg["train_classifier"]
    method = REGISTRY.methods[classifier["method"]]
    parts = [] if method.name == "cam" else [method.label(classifier.get(method.name, {}))]
    acr = cfg["acr"]
    if acr["enabled"]:
        parts.append(f"ACR ({acr['strategy']}{' + SRF' if acr['srf']['enabled'] else ''})")
    erasing = cfg["adversarial_erasing"]
    if erasing["enabled"]:
        parts.append(f"AE-PSL (T {erasing['steps']}, δ {erasing['delta']:g})")
    cams = cfg["make_cams"]
    source = REGISTRY.cam_sources[cams["cam_type"]]
    label = source.label(cams.get(source.name, {}))
    if label:
        parts.append(label)
    return " + ".join(parts) or "CAM"


# ============================================================================ the data check
def data_identity(cfg: dict) -> list:
    """Which data a config reads: a VOC tree by its contents (not its path, so that a tree moved to a
    node's scratch disk is the same data), or the demo's, COCO's or a folder's settings."""
    settings = {"demo": cfg["make_demo_data"], "coco": cfg["coco"], "folder": cfg["folder"]}.get(cfg["dataset"])
    return [cfg["dataset"], data_fingerprint(cfg) if cfg["dataset"] == "voc" else None, settings]


def converted_key(cfg: dict) -> str | None:
    """The folder of the tree convert_dataset writes for a coco or folder dataset (None for the others)."""
    if cfg["dataset"] not in ("coco", "folder"):
        return None
    return hashlib.sha1(json.dumps(data_identity(cfg), sort_keys=True, default=str).encode()).hexdigest()[:10]


def data_check_key(cfg: dict) -> str:
    """The folder of the data check an experiment reads: one per data tree and set of splits, so that
    experiments on the same data share it (and their artifacts stay shared)."""
    stage = REGISTRY.stage("check_data")
    identity = [data_identity(cfg), node_params(cfg, stage, "")]
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]


DATA_FOLDERS = (
    "ImageSets/Segmentation",
    "JPEGImages",
    "Annotations",
    "SegmentationClass",
    "SegmentationClassAug",
    "SaliencyMaps",
)
HASH_CACHE = Path(".snakemake/wsss/data-hashes")  # relative to the workflow directory


def data_fingerprint(cfg: dict, cache_dir: Path | None = HASH_CACHE) -> str:
    """Identity of the data a run reads (the names and contents of the tree's files; the demo's
    settings for the generated demo): the check reruns when it changes."""
    if cfg["dataset"] == "demo":
        return "demo:" + json.dumps(cfg["make_demo_data"], sort_keys=True)
    if converted_key(cfg):  # the converted tree is an artifact: the check follows its manifest (an input)
        return f"converted:{converted_key(cfg)}"
    return tree_digest(str(cfg["data_root"]), None if cache_dir is None else str(cache_dir))


DATA_LINKS = HASH_CACHE.parent / "data"  # .snakemake/wsss/data, beside the hash cache


def linked_data_root(cfg: dict, links: Path = DATA_LINKS) -> str:
    """The path the stages are given for a VOC tree: a symlink named by the tree's contents
    (``links/<fingerprint>`` → the tree), so that a rule's parameters, and with them what Snakemake
    reruns, do not change when the same data moves to another path. In a read-only workflow
    directory the tree's own path is given instead (moving the tree then reruns the stages)."""
    target = Path(cfg["data_root"]).resolve()
    link = links / data_fingerprint(cfg, cache_dir=links.parent / HASH_CACHE.name)[:16]
    try:
        if not (link.is_symlink() and link.readlink() == target):
            link.parent.mkdir(parents=True, exist_ok=True)
            tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(target, target_is_directory=True)
            os.replace(tmp, link)  # atomic: cluster jobs parsing the workflow at once all see a whole link
    except OSError:
        return str(cfg["data_root"])
    return str(link)


@cache
def tree_digest(root: str, cache_dir: str | None) -> str:
    """SHA-1 over the names and content hashes of a VOC tree's data files.

    Contents, not modification times: a tree copied to a node's scratch disk, re-mounted or
    re-extracted is the same data and must not retrain everything downstream of the check. A
    file's hash is cached under ``cache_dir`` by (size, mtime), so only new or touched files are
    read again (the first look at full VOC reads its ~2 GB once)."""
    base = Path(root)
    files = [
        (f"{folder}/{entry.name}", entry)
        for folder in DATA_FOLDERS
        if (base / folder).is_dir()
        for entry in sorted(os.scandir(base / folder), key=lambda e: e.name)
        if entry.is_file()
    ]
    files += [(extra, base / extra) for extra in ("classes.txt",) if (base / extra).is_file()]
    cache_file = (
        Path(cache_dir) / (hashlib.sha1(str(base.resolve()).encode()).hexdigest()[:16] + ".json") if cache_dir else None
    )
    cache = _read_hash_cache(cache_file)
    fresh, digest = {}, hashlib.sha1()
    for name, entry in files:
        stat = entry.stat()
        known = cache.get(name)
        if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
            content = known[2]
        else:
            content = _file_sha1(base / name)
        fresh[name] = [stat.st_size, stat.st_mtime_ns, content]
        digest.update(f"{name}|{content}\n".encode())
    if cache_file and fresh != cache:
        _write_hash_cache(cache_file, fresh)
    return digest.hexdigest()


def _file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_hash_cache(path: Path | None) -> dict:
    try:
        data = json.loads(path.read_text()) if path else {}
    except (OSError, ValueError):  # absent or unreadable: everything is hashed again
        return {}
    return data if isinstance(data, dict) else {}


def _write_hash_cache(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
    except OSError:  # a read-only workflow directory: the fingerprint is right, only slower next time
        pass
