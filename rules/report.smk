# Reports over the experiments' summaries (summarize_metrics and write_benchmark are generated in stages.smk).


# Not part of `all`: `snakemake --cores all benchmarks` adds, to each experiment, the refinements of
# write_benchmark.refinements (AffinityNet and the random walk by default) and the fully-supervised
# upper bound, and writes results/<experiment>/benchmark.md (docs/cpu.md).
rule benchmarks:
    input:
        [f"results/{name}/benchmark.md" for name in EXPERIMENTS],


# Not part of `all`: `snakemake --cores all threshold_explorer` draws, per experiment, a sample's label maps at
# the candidate thresholds around the one in use (README, Picking a threshold by eye).
rule threshold_explorer:
    input:
        explorer_figures(),


# Not part of `all`: the figures of Snakemake's HTML report — `snakemake --cores all report_figures`, then
# `snakemake --report report.html report_figures` (README, Looking at the results).
rule report_figures:
    input:
        [f"results/{name}/write_gallery/gallery" for name in EXPERIMENTS],
        explorer_figures(),
        [f"{LEADERBOARD}.png"] if MULTI else [],


LEADERBOARD_STAGE = REGISTRY.stage("write_leaderboard")


# Several experiments (config key `experiments`) or repeats (`repeats`): one table comparing them, written by `all`.
rule write_leaderboard:
    input:
        summaries=[f"results/{name}/metrics.json" for name in EXPERIMENTS],
    output:
        out_md=f"{LEADERBOARD}.md",
        out_csv=f"{LEADERBOARD}.csv",
        out_plot=report(f"{LEADERBOARD}.png", category="Leaderboard"),
    log:
        f"{LEADERBOARD}.log",
    benchmark:
        f"{LEADERBOARD}.benchmark.tsv"
    conda:
        "../envs/wsss.yaml"
    threads: 1
    resources:
        mem_mb=LEADERBOARD_STAGE.mem_mb,
        runtime=LEADERBOARD_STAGE.runtime,
    params:
        summaries=[f"{name}=results/{name}/metrics.json" for name in EXPERIMENTS],
        groups=[f"{name}={RUN.configs[name]['repeat']['of']}" for name in EXPERIMENTS],
        jobs=[f"{name}={path}" for name in EXPERIMENTS for path in RUN.job_benchmarks(name)],
        code=code_of(LEADERBOARD_STAGE, config),
        labels=sorted(
            {f"{RUN.configs[name]['repeat']['of']}={method_label(RUN.configs[name])}" for name in EXPERIMENTS}
        ),
    shell:
        command(LEADERBOARD_STAGE)
