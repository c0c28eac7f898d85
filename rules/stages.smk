# One rule per registered stage, generated from its declaration (wsss_stages/lib/plan/core_stages.py and the
# plug-ins in wsss_stages/methods/): `snakemake --list-rules` shows them, `-p` their commands.
# Run-level rules (the demo data, the leaderboard) are in data.smk and report.smk.

CONTEXT = {
    # the Snakemake benchmark files of every job the report covers (read for their cost)
    "write_benchmark": {
        "jobs": lambda wc: [
            *RUN.job_benchmarks(wc.exp, RUN.benchmark_nodes(wc.exp)),
            f"results/{wc.exp}/benchmarks/summarize_metrics.tsv",
        ]
    },
}

# the stages whose rules are generated here; the rest have run-level rules elsewhere, or none
GENERATED = [s for s in REGISTRY.stages.values() if s.rule == "generated"]
# Snakemake evaluates `shell:` twice: here, and again when the job runs, after this loop has moved
# on. There the job's own rule name (`rule`) picks the command, never the loop variable.
COMMANDS = {stage.name: command(stage) for stage in GENERATED}

for _stage in GENERATED:

    rule:
        name:
            _stage.name
        input:
            unpack(rule_inputs(_stage)),
        output:
            **rule_outputs(_stage),
        log:
            job_file(_stage, "logs", "log"),
        benchmark:
            job_file(_stage, "benchmarks", "tsv")
        wildcard_constraints:
            **({_stage.variant: variant_pattern(_stage)} if _stage.variant else {}),
            **({"exp": experiments_pattern(UNSHARDED[_stage.name])} if SHARDED.get(_stage.name) else {}),
        conda:
            "../envs/wsss.yaml"
        threads: rule_threads(_stage)
        resources:
            mem_mb=_stage.mem_mb,
            runtime=_stage.runtime,
            gpu=gpus(_stage),
        params:
            **rule_params(_stage, CONTEXT.get(_stage.name)),
            **({"shard": WHOLE_SHARD} if _stage.shardable else {}),
            **({"launch": launcher(_stage)} if _stage.distributed else {}),
        shell:
            COMMANDS[locals().get("rule", _stage.name)]
