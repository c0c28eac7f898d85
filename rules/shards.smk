# Sharded per-image stages (config `shards`; wsss_stages/lib/shards.py). For an experiment that splits a
# stage into N shards, `<stage>_shard` runs the stage on one slice of the images (one job per shard,
# placed anywhere by a cluster; wildcard `shard` = <k>of<N>) into temporary folders under
# results/<experiment>/<stage>/shards/, and `<stage>_gather` assembles them into the artifact every
# consumer reads, at its usual path. Experiments with one shard keep the stage's own rule (stages.smk).

GATHER = REGISTRY.stage("gather_shards")


def shard_path(stage, name, shard):
    """Where a shard writes output ``name`` of ``stage`` (wildcards left in place, or ``shard`` filled in)."""
    return f"results/{{exp}}/{stage.name}/shards/{shard}/{stage.outputs[name].path}"


def shard_outputs(stage):
    return {name: temp(directory(shard_path(stage, name, "{shard}")) if out.directory else shard_path(stage, name, "{shard}"))
            for name, out in stage.outputs.items()}


def shard_parts(stage):
    """Input function of a gather: every shard's version of every output, shards in order."""

    def parts(wildcards):
        count = shard_count(cfg(wildcards), stage.name)
        fill = {"exp": wildcards.exp, **({stage.variant: wildcards[stage.variant]} if stage.variant else {})}
        return {name: [shard_path(stage, name, f"{k + 1}of{count}").format(**fill) for k in range(count)] for name in stage.outputs}

    return parts


def gather_code(stage):
    """The gather's code, and the modules of the stage's merge functions (loaded by name)."""
    modules = sorted({merge.split(":")[0] for merge in stage.merge.values()})
    return lambda wildcards: code_of(GATHER, cfg(wildcards), modules)


def gather_params(stage):
    """The shards' outputs and the gathered outputs as name=path items."""
    names = tuple(stage.outputs)
    return {"stage": stage.name,
            "parts": lambda wildcards, input: [f"{n}={p}" for n in names for p in input[n]],
            "outputs": lambda wildcards, output: [f"{n}={output[n]}" for n in names]}


SHARD_RE = r"[0-9]+of[0-9]+"

for _stage in [s for s in GENERATED if SHARDED.get(s.name)]:

    rule:
        name:
            f"{_stage.name}_shard"
        wildcard_constraints:
            **({_stage.variant: variant_pattern(_stage)} if _stage.variant else {}),
            exp=experiments_pattern(SHARDED[_stage.name]),
            shard=SHARD_RE,
        input:
            unpack(rule_inputs(_stage)),
        output:
            **shard_outputs(_stage),
        params:
            **rule_params(_stage, CONTEXT.get(_stage.name)),
            shard=lambda wildcards: shard_from_folder(wildcards.shard).spec,
        log:
            job_file(_stage, "logs", "log", "_shard{shard}"),
        benchmark:
            job_file(_stage, "benchmarks", "tsv", "_shard{shard}")
        threads: rule_threads(_stage)
        resources:
            mem_mb=_stage.mem_mb,
            runtime=_stage.runtime,
            gpu=gpus(_stage),
        conda:
            "../envs/wsss.yaml"
        shell:
            COMMANDS[locals().get("rule", f"{_stage.name}_shard").removesuffix("_shard")]

    rule:
        name:
            f"{_stage.name}_gather"
        wildcard_constraints:
            **({_stage.variant: variant_pattern(_stage)} if _stage.variant else {}),
            exp=experiments_pattern(SHARDED[_stage.name]),
        input:
            unpack(shard_parts(_stage)),
            code=gather_code(_stage),
        output:
            **rule_outputs(_stage),
        params:
            **gather_params(_stage),
        log:
            job_file(_stage, "logs", "log", "_gather"),
        benchmark:
            job_file(_stage, "benchmarks", "tsv", "_gather")
        threads: 1
        resources:
            mem_mb=GATHER.mem_mb,
            runtime=GATHER.runtime,
        conda:
            "../envs/wsss.yaml"
        shell:
            command(GATHER)
