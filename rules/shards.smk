# Sharded per-image stages (config `shards`; wsss_stages/lib/plan/shards.py). For an experiment that splits a
# stage into N shards, `<stage>_shard` runs the stage on one slice of the images (one job per shard,
# placed anywhere by a cluster; wildcard `shard` = <k>of<N>) into temporary folders under
# results/<experiment>/<stage>/shards/, and `<stage>_gather` assembles them into the artifact every
# consumer reads, at its usual path. Experiments with one shard keep the stage's own rule (stages.smk).

SHARD_RE = r"[0-9]+of[0-9]+"

for _stage in [s for s in GENERATED if SHARDED.get(s.name)]:

    rule:
        name:
            f"{_stage.name}_shard"
        input:
            unpack(rule_inputs(_stage)),
        output:
            **shard_outputs(_stage),
        log:
            job_file(_stage, "logs", "log", "_shard{shard}"),
        benchmark:
            job_file(_stage, "benchmarks", "tsv", "_shard{shard}")
        wildcard_constraints:
            **({_stage.variant: variant_pattern(_stage)} if _stage.variant else {}),
            exp=experiments_pattern(SHARDED[_stage.name]),
            shard=SHARD_RE,
        conda:
            "../envs/wsss.yaml"
        threads: rule_threads(_stage)
        resources:
            mem_mb=_stage.mem_mb,
            runtime=_stage.runtime,
            gpu=gpus(_stage),
        params:
            **rule_params(_stage, CONTEXT.get(_stage.name)),
            shard=lambda wildcards: shard_from_folder(wildcards.shard).spec,
        shell:
            COMMANDS[locals().get("rule", f"{_stage.name}_shard").removesuffix("_shard")]

    rule:
        name:
            f"{_stage.name}_gather"
        input:
            unpack(shard_parts(_stage)),
        output:
            **rule_outputs(_stage),
        log:
            job_file(_stage, "logs", "log", "_gather"),
        benchmark:
            job_file(_stage, "benchmarks", "tsv", "_gather")
        wildcard_constraints:
            **({_stage.variant: variant_pattern(_stage)} if _stage.variant else {}),
            exp=experiments_pattern(SHARDED[_stage.name]),
        conda:
            "../envs/wsss.yaml"
        threads: 1
        resources:
            mem_mb=GATHER.mem_mb,
            runtime=GATHER.runtime,
        params:
            **gather_params(_stage),
            code=gather_code(_stage),
        shell:
            command(GATHER)
