# Helpers shared by the rules: how a stage declaration (wsss_stages/lib/plan/core_stages.py and the plug-ins
# in wsss_stages/methods/) becomes a rule's inputs, outputs, params, log, resources and command.
# The mapping from config to stage arguments lives in the declarations, nowhere else.

import json
import os
import re
import shlex
from pathlib import Path

from wsss_stages.lib.plan.codedeps import code_fingerprint
from wsss_stages.lib.plan.core_stages import explored_chains
from wsss_stages.lib.plan.registry import PLUGINS_ENV, REGISTRY
from wsss_stages.lib.plan.experiments import preset_folders
from wsss_stages.lib.plan.pipeline import (
    Experiments,
    data_check_key,
    data_fingerprint,
    linked_data_root,
    method_label,
    node_inputs,
    node_params,
    converted_key,
    process_count,
    refinement_pattern,
    refs,
    shard_count,
)
from wsss_stages.lib.plan.shards import shard_from_folder

# One run holds one experiment, or several (config key `experiments`): every path below
# results/ carries the {exp} wildcard, and each job reads its experiment's own config.
# With overlays, the base config's own folders (results/<experiment>[_r<r>]) hold what it would build
# identically, shared across runs (lib/plan/experiments.py, preset_folders).
RUN = Experiments(EXPERIMENT_CONFIGS, homes=preset_folders(config))
EXPERIMENTS = RUN.names
MULTI = len(EXPERIMENTS) > 1  # several experiments or repeats: a leaderboard compares them
LEADERBOARD = f"results/{config['leaderboard']}"
DEMO_ROOT = "results/make_demo_data/VOC2012"

# Jobs run `python -m wsss_stages` with this checkout first on PYTHONPATH (the code that runs is the
# code whose fingerprint Snakemake tracks, see code_of) and import the config's plug-ins (WSSS_PLUGINS).
shell.prefix(
    f"set -euo pipefail; export PYTHONPATH={shlex.quote(workflow.basedir)}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
    f"export {PLUGINS_ENV}={shlex.quote(','.join(config['plugins']))}; "
)

CHAINS = refinement_pattern()


wildcard_constraints:
    exp="|".join(re.escape(name) for name in RUN.folders),
    check="[0-9a-f]{10}",
    convert="[0-9a-f]{10}",


def experiments_pattern(names):
    """A wildcard constraint matching exactly these experiment folders (none: matches nothing)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


# Per-image stages split into shards (config `shards`, rules/shards.smk): per stage, the experiments whose
# folders get shard jobs and a gather, and those whose folders get the one job as before.
SHARDED = {
    s.name: [e for e in RUN.folders if shard_count(RUN.configs[e], s.name) > 1]
    for s in REGISTRY.stages.values()
    if s.shardable
}
UNSHARDED = {name: [e for e in RUN.folders if e not in exps] for name, exps in SHARDED.items()}
WHOLE_SHARD = "0/1"


def variant_pattern(stage):
    """What a stage's wildcard may be: the seeds ("cams") or a refinement chain, plus its extras ("gt")."""
    first = "cams" if stage.variant == "source" else "none"
    return "|".join([first, CHAINS, *map(re.escape, stage.variant_extra)])


def variant_of(stage, wildcards):
    return wildcards[stage.variant] if stage.variant else ""


CHECKS = {data_check_key(c): c for c in RUN.configs.values()}  # one data check per data tree and set of splits


def check_config(wildcards):
    """A config that the data check ``wildcards.check`` stands for."""
    return CHECKS[wildcards.check]


def cfg(wildcards):
    """The config of the job's experiment."""
    return RUN.configs[wildcards.exp]


def code_of(stage, cfg, modules=()):
    """The fingerprint of what the stage module, the plug-in implementations this config selects (and
    further ``modules``) and what they import do (lib/plan/codedeps.py): a change in behaviour reruns the
    stage, a comment, a docstring or a touch does not."""
    return code_fingerprint(stage.module_name, *(stage.code(cfg) if stage.code else []), *modules)


CONVERTED = {
    converted_key(c): c for c in RUN.configs.values() if converted_key(c)
}  # coco / folder trees (convert_dataset)


def converted_root(cfg):
    return f"results/convert_dataset/{converted_key(cfg)}/VOC2012"


def data_input(cfg):
    """The demo dataset and converted COCO / folder trees are artifacts; a real VOC tree is an external input."""
    if cfg["dataset"] == "demo":
        return [f"{DEMO_ROOT}/manifest.json"]
    return [f"{converted_root(cfg)}/manifest.json"] if converted_key(cfg) else []


def data_root(cfg):
    """The tree the stages read: the demo's, a converted one, or a VOC tree through its content-named link."""
    if cfg["dataset"] == "demo":
        return DEMO_ROOT
    return converted_root(cfg) if converted_key(cfg) else linked_data_root(cfg)


def conversion_sources(cfg):
    """The files a conversion reads (it reruns when they change): annotation files, label CSV, class list, folders."""
    if cfg["dataset"] == "coco":
        return [p for split in cfg["coco"]["splits"].values() for p in (split["annotations"], split["images"])]
    return [cfg["folder"][k] for k in ("images", "labels", "classes", "masks") if cfg["folder"][k]]


def rule_inputs(stage):
    """Input function: the artifacts the stage reads, in the folders of the experiments that own them."""

    def inputs(wildcards):
        c = cfg(wildcards)
        found = {}
        if stage.data:
            found["data"] = data_input(c)
            found["data_check"] = f"results/check_data/{data_check_key(c)}/report.json"
        for arg, value in node_inputs(c, stage, variant_of(stage, wildcards)).items():
            found[arg] = [RUN.path(wildcards.exp, ref) for ref in refs(value)]
        return found

    return inputs


def as_argument(value):
    """A value as the stage's command line takes it: sections as JSON, the rest as they are."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")) if isinstance(value, dict) else value


def artifact_argument(exp, value):
    """Paths of an input argument: one path, a list, or name=path items; None when absent."""
    if isinstance(value, dict):
        return [f"{name}={RUN.path(exp, ref)}" for name, ref in value.items()]
    found = [RUN.path(exp, ref) for ref in refs(value)]
    return found if isinstance(value, list) else (found[0] if found else None)


def rule_params(stage, context=None):
    """One params entry per stage argument: each config value the stage reads (a change reruns it),
    the paths of its inputs, and a threshold's sweep result where it is "auto"."""

    def config_value(arg):
        def value(wildcards):
            c, variant = cfg(wildcards), variant_of(stage, wildcards)
            found = node_params(c, stage, variant)[arg]
            if arg in stage.threshold_args and isinstance(found, str):
                return None  # "auto" or a rule's name: the stage reads it from the sweep (<arg>_sweep)
            return as_argument(found)

        return value

    def input_value(arg):
        return lambda wildcards: artifact_argument(
            wildcards.exp, node_inputs(cfg(wildcards), stage, variant_of(stage, wildcards))[arg]
        )

    params = {arg: input_value(arg) for arg in stage.input_args}
    if stage.data:
        params["data_root"] = lambda wildcards: data_root(cfg(wildcards))
    params.update({arg: config_value(arg) for arg in (*stage.params, *stage.threshold_args)})
    params.update({f"{arg}_sweep": input_value(f"{arg}_sweep") for arg in stage.threshold_args})
    params["code"] = lambda wildcards: code_of(stage, cfg(wildcards))
    params.update(context or {})
    return params


def command(stage, via_params=()):
    """`python -m wsss_stages <stage> --arg {params.arg} …`: one flag per declared argument; outputs come from
    `output`, except those in ``via_params`` (e.g. a folder whose rule declares only a file inside it).
    A distributed training stage starts with its launcher instead (`params.launch`: python, or torchrun)."""
    source = lambda arg: "output" if arg in stage.outputs and arg not in via_params else "params"  # noqa: E731
    flags = [f"--{arg.replace('_', '-')} {{{source(arg)}.{arg}:q}}" for arg in stage.args]
    python = "{params.launch}" if stage.distributed else "python"
    return f"{python} -m wsss_stages {stage.name} {' '.join(flags)} --threads {{threads}} > {{log:q}} 2>&1"


def launcher(stage):
    """`python`, or torchrun (as `python -m torch.distributed.run`, the job's own python) for several processes."""

    def launch(wildcards):
        count = process_count(cfg(wildcards), stage.name)
        return "python" if count == 1 else f"python -m torch.distributed.run --standalone --nproc-per-node={count}"

    return launch


def job_file(stage, folder, suffix, job=""):
    """A job's log or benchmark file; ``job`` tells a shard's (``_shard{shard}``) or the gather's (``_gather``)
    apart."""
    variant = f"_{{{stage.variant}}}" if stage.variant else ""
    return f"results/{{exp}}/{folder}/{stage.name}{variant}{job}.{suffix}"


def rule_outputs(stage):
    """Declared outputs; directories as such, the report's figures marked for `snakemake --report`, and the
    per-image folders of the stages named in `temporary` as temp() (deleted once every reader is done)."""
    outputs = {}
    for arg, out in stage.outputs.items():
        path = f"results/{{exp}}/{stage.output_path(arg)}"
        path = directory(path) if out.directory else path
        if arg in stage.temporary_outputs and stage.name in config["temporary"]:
            path = temp(path)
        if out.report:
            path = report(
                path, category=out.report, subcategory="{exp}", patterns=["{name}.png"] if out.directory else []
            )
        outputs[arg] = path
    return outputs


# Threads declared per rule whatever --cores says (a cluster has no --cores); locally Snakemake caps
# them at --cores; on SLURM they become --cpus-per-task (a profile's `set-threads` overrides them per rule).
THREADS = {"heavy": 8, "all": 16}  # training / inference (beyond 8 threads they scale poorly); process pools


def rule_threads(stage):
    return THREADS.get(stage.threads, stage.threads)


def gpus(stage):
    """Training/inference jobs ask for a GPU (one per training process) unless the config pins the CPU."""
    return lambda wildcards: int(stage.gpu and cfg(wildcards)["device"] != "cpu") * process_count(
        cfg(wildcards), stage.name
    )


def print_metrics_table():
    paths = [Path(f"{LEADERBOARD}.md")] if MULTI else [Path(f"results/{EXPERIMENTS[0]}/metrics.md")]
    for path in paths:
        if path.is_file():
            print(f"\n{path.read_text()}")


def experiment_targets(name):
    return [f"results/{name}/metrics.json", f"results/{name}/metrics.md"]


# ---------------------------------------------------------------------------- sharded stages (rules/shards.smk)
GATHER = REGISTRY.stage("gather_shards")


def explorer_figures():
    """The threshold explorer's figures of every experiment (target threshold_explorer)."""
    return [
        f"results/{name}/explore_thresholds/{chain}.png"
        for name in EXPERIMENTS
        for chain in explored_chains(RUN.configs[name])
    ]


def shard_path(stage, name, shard):
    """Where a shard writes output ``name`` of ``stage`` (wildcards left in place, or ``shard`` filled in)."""
    return f"results/{{exp}}/{stage.name}/shards/{shard}/{stage.outputs[name].path}"


def shard_outputs(stage):
    return {
        name: temp(
            directory(shard_path(stage, name, "{shard}")) if out.directory else shard_path(stage, name, "{shard}")
        )
        for name, out in stage.outputs.items()
    }


def shard_parts(stage):
    """Input function of a gather: every shard's version of every output, shards in order."""

    def parts(wildcards):
        count = shard_count(cfg(wildcards), stage.name)
        fill = {"exp": wildcards.exp, **({stage.variant: wildcards[stage.variant]} if stage.variant else {})}
        return {
            name: [shard_path(stage, name, f"{k + 1}of{count}").format(**fill) for k in range(count)]
            for name in stage.outputs
        }

    return parts


def gather_code(stage):
    """The gather's code, and the modules of the stage's merge functions (loaded by name)."""
    modules = sorted({merge.split(":")[0] for merge in stage.merge.values()})
    return lambda wildcards: code_of(GATHER, cfg(wildcards), modules)


def gather_params(stage):
    """The shards' outputs and the gathered outputs as name=path items."""
    names = tuple(stage.outputs)
    return {
        "stage": stage.name,
        "parts": lambda wildcards, input: [f"{n}={p}" for n in names for p in input[n]],
        "outputs": lambda wildcards, output: [f"{n}={output[n]}" for n in names],
    }
